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
// Dumpers map (bytes, options) to {name: TypedArray | number | string | boolean}. A format's
// decoder plugs in by adding an entry to `dumpers` (see docs/web.md).
import { readFileSync, writeFileSync } from "node:fs";
import * as F from "../dist/formats.mjs";

const DTYPES = new Map([
  [Float32Array, "float32"], [Float64Array, "float64"], [Int32Array, "int32"], [Uint32Array, "uint32"],
  [Uint8Array, "uint8"], [Int8Array, "int8"], [Uint16Array, "uint16"], [Int16Array, "int16"],
  [BigInt64Array, "int64"], [BigUint64Array, "uint64"],
]);

const splat = (s) => ({
  count: s.count, shDegree: s.shDegree, means: s.means, quats: s.quats, logScales: s.logScales,
  opacityLogits: s.opacityLogits, shDc: s.shDc, shRest: s.shRest,
});

/** kind -> (bytes, options) -> {name: value}. */
export const dumpers = {
  ints: (b, o) => ({ values: F.decodeInts(b, o.maxCount ?? b.length * 256 + 4096) }),
  intsraw: (b, o) => {
    const r = F.decodeIntsRaw(b, o.maxCount ?? b.length * 256 + 4096);
    return { lo: r.lo, hi: r.hi ?? new Uint32Array(r.n), signed: r.signed };
  },
  bytes: (b, o) => ({ values: F.decodeBytes(b, o.maxSize ?? b.length * 64 + 4096) }),
  ctx: (b, o) => {
    const ctx = o.contexts ? Int32Array.from(o.contexts) : null;
    return { values: F.decodeCtx(b, o.n, o.bits, ctx, o.nContexts ?? 1) };
  },
  container: (b, o) => {
    const box = F.unpackContainer(b, { magic: o.magic, maxVersion: o.maxVersion, what: "container" });
    const out = { version: box.version, header: JSON.stringify(box.header), tags: box.chunks.map((c) => c.tag).join(",") };
    box.chunks.forEach((c, i) => { out[`chunk${i}`] = c.data; });
    return out;
  },
  lgs: (b, o) => splat(F.decodeLgs(b, { maxGaussians: o.maxGaussians })),
  // .gsv: the header values and, for each frame in o.frames (default all), its arrays as "f<i>.<name>"
  gsv: async (b, o) => {
    const r = await F.openGsv(F.bytesReader(b), { size: b.length, partial: o.partial });
    const out = { frames: r.header.frames, segments: r.segments.length, version: r.header.version, coding: r.header.coding };
    for (const i of o.frames ?? [...Array(r.header.frames).keys()]) {
      Object.entries(splat(await r.frame(i))).forEach(([k, v]) => { out[`f${i}.${k}`] = v; });
    }
    return out;
  },
  gsi: (b, o) => {
    const g = F.decodeGsi(b, { maxGaussians: o.maxGaussians, maxPixels: o.maxPixels });
    return {
      means: g.means, scales: g.scales, rotations: g.rotations, colors: g.colors, count: g.count, width: g.width,
      height: g.height, channels: g.channels, mode: g.mode, k: g.k, layers: JSON.stringify(g.layers), version: g.version,
    };
  },
  m3: (b, o) => {
    // o.refCount: the file references its scene; stand in a zero scene of that many Gaussians
    const scene = o.refCount === undefined ? undefined : {
      count: o.refCount, shDegree: 0, means: new Float32Array(3 * o.refCount), quats: new Float32Array(4 * o.refCount),
      logScales: new Float32Array(3 * o.refCount), opacityLogits: new Float32Array(o.refCount),
      shDc: new Float32Array(3 * o.refCount), shRest: new Float32Array(0),
    };
    const m = F.decodeM3(b, { maxGaussians: o.maxGaussians, scene });
    const out = { count: m.count, queryTotal: m.queryTotal, queries: m.queries, models: m.models.length };
    if (m.sceneRef) out.sceneRef = m.sceneRef.ref;
    else Object.entries(splat(m.scene)).forEach(([k, v]) => { out[`scene.${k}`] = v; });
    m.models.forEach((md, i) => {
      Object.assign(out, {
        [`m${i}.name`]: md.name, [`m${i}.offset`]: md.offset, [`m${i}.dim`]: md.dim, [`m${i}.temperature`]: md.temperature,
        [`m${i}.learnable`]: md.learnable, [`m${i}.bank`]: md.bank, [`m${i}.projection`]: md.projection,
      });
      if (o.features) {
        const f = F.gaussianFeatures(m, md.name);
        out[`m${i}.features`] = f;
        if (o.vector) out[`m${i}.scores`] = F.cosineScores(f, md.dim, o.vector.slice(0, md.dim));
      }
    });
    return out;
  },
};

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

async function runJobs(jobsPath) {
  const jobs = JSON.parse(readFileSync(jobsPath, "utf8"));
  for (const job of jobs) {
    const fn = dumpers[job.kind];
    if (!fn) throw new Error(`no dumper for ${job.kind}`);
    const bytes = new Uint8Array(readFileSync(job.input));
    try {
      writeResult(job.output, await fn(bytes, job.options ?? {}));
    } catch (e) {
      if (!(e instanceof F.FormatError)) throw e;
      writeFileSync(job.output + ".json", JSON.stringify({ error: e.name, message: e.message }));
    }
  }
}

async function runFuzz(kind, corpusPath, caseMs, options) {
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
      await fn(bytes, options);
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
  await runFuzz(args[1], args[2], Number(get("--case-ms", "2000")), JSON.parse(get("--options", "{}")));
} else if (args.length === 1) {
  await runJobs(args[0]);
} else {
  console.error("usage: node dump.mjs JOBS.json | node dump.mjs --fuzz KIND CORPUS [--case-ms MS] [--options JSON]");
  process.exit(2);
}
