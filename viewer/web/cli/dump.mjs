#!/usr/bin/env node
// Parity and fuzz harness for the TypeScript decoders (used by tests/web_harness.py).
//
//   node dump.mjs JOBS.json
//     JOBS.json: [{"kind": K, "input": IN, "output": OUT, "options": {...}}, ...]
//     Decodes every input with dumpers[K] in this one process and writes, per job, OUT (the
//     raw typed arrays back to back) and OUT.json ({"arrays": [{name, dtype, offset, length}],
//     "values": {...}} or {"error": name, "message": ...}).
//   node dump.mjs --fuzz KIND CORPUS [--case-ms MS] [--options JSON]
//     CORPUS: cases back to back, each a u32 little-endian length and the bytes. Decodes each
//     with dumpers[KIND]; prints one JSON line: outcome counts, slowest case, worst failure.
//     Only FormatError or a result is allowed; anything else is reported as a failure.
//
// The decoders by kind live in dumpers.mjs.
import { readFileSync, writeFileSync } from "node:fs";
import * as F from "../dist/formats.mjs";
import { dumpers } from "./dumpers.mjs";

const DTYPES = new Map([
  [Float32Array, "float32"], [Float64Array, "float64"], [Int32Array, "int32"], [Uint32Array, "uint32"],
  [Uint8Array, "uint8"], [Int8Array, "int8"], [Uint16Array, "uint16"], [Int16Array, "int16"],
  [BigInt64Array, "int64"], [BigUint64Array, "uint64"],
]);

function writeResult(path, result) {
  const arrays = [];
  const values = {};
  const parts = [];
  let offset = 0;
  for (const [name, v] of Object.entries(result)) {
    const dtype = v && DTYPES.get(v.constructor);
    if (dtype) {
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      arrays.push({ name, dtype, offset, length: v.length });
      parts.push(bytes);
      offset += bytes.length;
    } else {
      values[name] = v;
    }
  }
  const blob = new Uint8Array(offset);
  let p = 0;
  for (const part of parts) { blob.set(part, p); p += part.length; }
  writeFileSync(path, blob);
  writeFileSync(path + ".json", JSON.stringify({ arrays, values }));
}

function runJobs(jobsPath) {
  const jobs = JSON.parse(readFileSync(jobsPath, "utf8"));
  for (const job of jobs) {
    const fn = dumpers[job.kind];
    if (!fn) throw new Error(`no dumper for ${job.kind}`);
    const bytes = new Uint8Array(readFileSync(job.input));
    try {
      writeResult(job.output, fn(bytes, job.options ?? {}));
    } catch (e) {
      if (!(e instanceof F.FormatError)) throw e;
      writeFileSync(job.output + ".json", JSON.stringify({ error: e.name, message: e.message }));
    }
  }
}

function runFuzz(kind, corpusPath, caseMs, options) {
  const fn = dumpers[kind];
  if (!fn) throw new Error(`no dumper for ${kind}`);
  const corpus = new Uint8Array(readFileSync(corpusPath));
  const counts = { ok: 0, FormatError: 0 };
  const failures = [];
  let slowest = { ms: 0, case: -1 };
  let maxRss = 0;
  let pos = 0, i = 0;
  while (pos < corpus.length) {
    const len = F.readU32(corpus, pos);
    const bytes = corpus.slice(pos + 4, pos + 4 + len);
    pos += 4 + len;
    const t0 = performance.now();
    try {
      fn(bytes, options);
      counts.ok++;
    } catch (e) {
      if (e instanceof F.FormatError) counts.FormatError++;
      else failures.push({ case: i, error: `${e?.name}: ${e?.message}`, stack: String(e?.stack ?? "").split("\n").slice(0, 4).join(" | ") });
    }
    const ms = performance.now() - t0;
    if (ms > slowest.ms) slowest = { ms, case: i };
    if (ms > caseMs) failures.push({ case: i, error: `took ${ms.toFixed(0)} ms (cap ${caseMs} ms)` });
    if (i % 20 === 0) maxRss = Math.max(maxRss, process.memoryUsage().rss);
    i++;
  }
  maxRss = Math.max(maxRss, process.memoryUsage().rss);
  console.log(JSON.stringify({ kind, cases: i, counts, failures: failures.slice(0, 10), n_failures: failures.length, slowest, max_rss_mib: maxRss / 2 ** 20 }));
}

const args = process.argv.slice(2);
if (args[0] === "--fuzz") {
  const get = (flag, dflt) => { const j = args.indexOf(flag); return j >= 0 ? args[j + 1] : dflt; };
  runFuzz(args[1], args[2], Number(get("--case-ms", "2000")), JSON.parse(get("--options", "{}")));
} else if (args.length === 1) {
  runJobs(args[0]);
} else {
  console.error("usage: node dump.mjs JOBS.json | node dump.mjs --fuzz KIND CORPUS [--case-ms MS] [--options JSON]");
  process.exit(2);
}
