#!/usr/bin/env node
// Plays a .gsv over HTTP with the streaming engine (dist/stream.mjs) in Node, for the tests
// (tests/test_web_stream.py) and the benchmark (bench/web_stream.py).
//   node stream_play.mjs SPEC.json
// SPEC: {url, output, scenario: "play" | "seek" | "playSeek" | "loop" | "abort", decoder: "thread" | "worker",
//        options: {PlayerOptions}, frame: N (seek, playSeek: after the first frame), passes: N (loop),
//        dump: bool, timeoutMs}; "abort" closes the player once the header is in, then waits waitMs
// Writes OUTPUT/OUTPUT.json (dumpers.writeResult): with dump, every presented frame as
// f{i}.{field}; values: the events, bytes fetched (after the header and at each pass end),
// requests, the source's mode, stats, elapsed ms, per-frame decode ms and presentation times
// (ms since the player was made) and the process's CPU time then (user + system ms, all threads).
import { readFileSync } from "node:fs";
import { Worker } from "node:worker_threads";
import * as S from "../dist/stream.mjs";
import { splat, writeResult } from "./dumpers.mjs";

/** A WorkerDecoder over a worker_threads worker running stream_worker_node.mjs. */
export function nodeWorkerDecoder() {
  const w = new Worker(new URL("./stream_worker_node.mjs", import.meta.url));
  w.unref();
  return new S.WorkerDecoder({
    postMessage: (m, transfer) => w.postMessage(m, transfer),
    addEventListener: (type, fn) => (type === "message" ? w.on("message", (data) => fn({ data }))
      : w.on("error", (e) => fn({ message: e?.message ?? String(e) }))),
    terminate: () => void w.terminate(),
  });
}

async function main(spec) {
  const source = new S.HttpSource(spec.url);
  // "workers2": two workers, alternate segments (the web player's page)
  const decoder = spec.decoder === "worker" ? nodeWorkerDecoder()
    : spec.decoder === "workers2" ? new S.SegmentRoutedDecoder([nodeWorkerDecoder(), nodeWorkerDecoder()]) : new S.ThreadDecoder();
  const scenario = spec.scenario ?? "play";
  const opts = { realtime: false, ...(spec.options ?? {}), decoder };
  if (scenario === "seek") Object.assign(opts, { autoplay: false, preload: "metadata" });
  if (scenario === "loop") opts.loop = true;
  const t0 = performance.now();
  const player = new S.GsvPlayer(source, opts);
  const out = {};
  const events = [];
  const order = [];
  const decodeMs = [];
  const frameMs = [];
  const frameCpuMs = [];
  const passBytes = [];
  let passes = 0;
  let finish;
  const finished = new Promise((r) => (finish = r));
  player.on("gap", (e) => events.push({ type: "gap", segment: e.segment, first: e.first, frames: e.frames, message: e.message }));
  player.on("error", (e) => { events.push({ type: "error", message: e.message }); finish(); });
  player.on("ended", (e) => { events.push({ type: "ended", index: e.index }); finish(); });
  player.on("seeked", (e) => events.push({ type: "seeked", index: e.index }));
  player.on("waiting", () => events.push({ type: "waiting" }));
  player.on("frame", (e) => {
    order.push(e.index);
    decodeMs.push(e.decodeMs);
    frameMs.push(performance.now() - t0);
    const c = process.cpuUsage();
    frameCpuMs.push((c.user + c.system) / 1000);
    if (spec.dump) Object.entries(splat(e.splats)).forEach(([k, v]) => { out[`f${e.index}.${k}`] = v; });
    if (scenario === "playSeek" && order.length === 1) {
      void player.seekFrame(spec.frame).then((i) => events.push({ type: "seekResolved", index: i, bytes: source.bytesFetched }));
    }
    if (scenario === "loop" && e.index === player.header.frames - 1) {
      passBytes.push(source.bytesFetched);
      if (++passes >= (spec.passes ?? 2)) { player.pause(); finish(); }
    }
  });
  let header;
  try {
    header = await player.ready;
  } catch (e) {
    out.error = e.message;
  }
  const headerBytes = source.bytesFetched;
  if (header) {
    if (scenario === "abort") {
      player.close();
      const closedAt = source.bytesFetched;
      await new Promise((r) => setTimeout(r, spec.waitMs ?? 500));
      events.push({ type: "closed", bytes: closedAt });
    } else if (scenario === "seek") {
      const got = await player.seekFrame(spec.frame ?? header.frames - 1);
      events.push({ type: "seekResolved", index: got });
    } else {
      const timer = setTimeout(() => { events.push({ type: "timeout" }); finish(); }, spec.timeoutMs ?? 60000);
      await finished;
      clearTimeout(timer);
    }
  }
  const stats = player.stats();
  Object.assign(out, {
    events: JSON.stringify(events), order: Int32Array.from(order), decodeMs: Float64Array.from(decodeMs), frameMs: Float64Array.from(frameMs),
    frameCpuMs: Float64Array.from(frameCpuMs),
    headerBytes, bytesFetched: source.bytesFetched, passBytes: JSON.stringify(passBytes), requests: source.requests,
    mode: source.mode ?? "", size: source.size ?? -1, frames: header?.frames ?? -1, fps: header?.fps ?? 0,
    segments: player.segments.length, elapsedMs: performance.now() - t0, stats: JSON.stringify(stats),
    decoderKind: decoder.kind,
  });
  player.close();
  writeResult(spec.output, out);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split("/").pop())) {
  if (process.argv.length !== 3) {
    console.error("usage: node stream_play.mjs SPEC.json");
    process.exit(2);
  }
  await main(JSON.parse(readFileSync(process.argv[2], "utf8")));
}
