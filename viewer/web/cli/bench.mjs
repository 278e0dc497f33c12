#!/usr/bin/env node
// Decode timing of the TypeScript decoders in Node (one thread), for bench/web_decode.py.
//   node bench.mjs KIND FILE [--repeat N] [--options JSON]
// Each run reads the file and decodes it with dumpers[KIND]; prints one JSON line with the
// first (cold: includes JIT warm-up) and the warm run times in seconds.
import { readFileSync } from "node:fs";
import { dumpers } from "./dumpers.mjs";

const args = process.argv.slice(2);
const get = (flag, dflt) => { const j = args.indexOf(flag); return j >= 0 ? args[j + 1] : dflt; };
const [kind, file] = args;
const repeat = Number(get("--repeat", "5"));
const options = JSON.parse(get("--options", "{}"));
const fn = dumpers[kind];
if (!fn || !file) {
  console.error("usage: node bench.mjs KIND FILE [--repeat N] [--options JSON]");
  process.exit(2);
}
const once = () => {
  const t0 = performance.now();
  const out = fn(new Uint8Array(readFileSync(file)), options);
  return [(performance.now() - t0) / 1000, out];
};
const [cold, first] = once();
const times = [];
for (let i = 0; i < repeat; i++) times.push(once()[0]);
console.log(JSON.stringify({ kind, file, cold_s: cold, times_s: times, min_s: Math.min(...times), count: first.count ?? null }));
