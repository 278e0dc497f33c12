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
// [wall s, CPU s (user + system of this process: the decode and the garbage collector), result]
const once = () => {
  const t0 = performance.now();
  const c0 = process.cpuUsage();
  const out = fn(new Uint8Array(readFileSync(file)), options);
  const c = process.cpuUsage(c0);
  return [(performance.now() - t0) / 1000, (c.user + c.system) / 1e6, out];
};
const [cold, , first] = once();
const times = [], cpu = [];
for (let i = 0; i < repeat; i++) {
  const [t, c] = once();
  times.push(t);
  cpu.push(c);
}
console.log(JSON.stringify({
  kind, file, cold_s: cold, times_s: times, min_s: Math.min(...times), cpu_s: cpu, min_cpu_s: Math.min(...cpu),
  count: first.count ?? null,
}));
