#!/usr/bin/env node
// Sequential playback timing of a .gsv clip with the TypeScript decoder in Node (one thread),
// for bench/web_decode.py.
//   node bench_video.mjs FILE [--repeat N]
// Each pass opens the clip and decodes every frame in order; a segment's load (fetch, CRC,
// keyframe, skin binding) is timed apart from its frames. Prints one JSON line: per pass the
// segment-load and predicted-frame times (ms, wall) and the CPU time of the predicted frames
// (user + system of this process, garbage collection included); the first pass is cold.
import { readFileSync } from "node:fs";
import * as F from "../dist/formats.mjs";

const args = process.argv.slice(2);
const get = (flag, dflt) => { const j = args.indexOf(flag); return j >= 0 ? args[j + 1] : dflt; };
const file = args[0];
const repeat = Number(get("--repeat", "3"));
if (!file) {
  console.error("usage: node bench_video.mjs FILE.gsv [--repeat N]");
  process.exit(2);
}
const data = new Uint8Array(readFileSync(file));

async function pass() {
  const t0 = performance.now();
  const video = await F.openGsv(F.bytesReader(data), { size: data.length });
  const out = { open_ms: performance.now() - t0, segment_ms: [], keyframe_ms: [], predicted_ms: [], predicted_cpu_ms: 0 };
  for (let s = 0; s < video.segments.length; s++) {
    let t = performance.now();
    const seg = await video.segment(s);
    out.segment_ms.push(performance.now() - t);
    for (let f = 0; f < seg.frames; f++) {
      t = performance.now();
      const c0 = process.cpuUsage();
      seg.frame(f);
      const c = process.cpuUsage(c0);
      const predicted = f > 0 && seg.mode === "tracked";
      (predicted ? out.predicted_ms : out.keyframe_ms).push(performance.now() - t);
      if (predicted) out.predicted_cpu_ms += (c.user + c.system) / 1000;
    }
  }
  out.total_ms = performance.now() - t0;
  return out;
}

const passes = [];
for (let i = 0; i <= repeat; i++) passes.push(await pass());
console.log(JSON.stringify({ file, frames: passes[0].segment_ms.length ? passes[0].keyframe_ms.length + passes[0].predicted_ms.length : 0,
  cold: passes[0], warm: passes.slice(1) }));
