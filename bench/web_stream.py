"""Streaming playback of a `.gsv` clip through the web engine (viewer/web/src/stream) in Node.

The clip is served by a local Range-capable HTTP server that counts the bytes it sends
(tests/web_harness.CountingServer); ``viewer/web/cli/stream_play.mjs`` plays it with the
`GsvPlayer` core, decoding in this thread (`ThreadDecoder`) or in a worker (`WorkerDecoder`
over worker_threads, frames transferred back), the two one after the other, never side by side:

* as fast as frames decode (``realtime: false``), looping ``--passes`` times: the first pass is
  cold (fetch + V8 warm-up), later passes play from the segment cache; delivered fps of the best
  warm pass (segment loads included) and the mean decode ms of a predicted frame;
  The process's CPU time (all threads: the main thread, the worker, GC) per warm pass gives
  frames per CPU second, the steadier number on a loaded machine;
* in real time at speed 1: the delivered fps (the clip's rate when decoding keeps up);
* wire bytes against the file's size.

Default clip: the 50k-Gaussian tracked performer clip of ``bench/web_decode.py`` (60 frames at
30 fps, gop 30), made in ``--work`` once. Goal (issue): worker decode >= 60 fps at 50k.

    make web && .venv/bin/python bench/web_stream.py
    .venv/bin/python bench/web_stream.py --video /tmp/clip.gsv --passes 4
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.append(str(ROOT / "tests"))  # web_harness (the counting server, the Node driver)
sys.path.append(str(ROOT / "bench"))  # web_decode.make_clip (appended: bench/render.py must not shadow render)
RESULTS = ROOT / "bench" / "results" / "web_stream.json"
GOAL_FPS = 60.0


def _passes(res, frames: int) -> list[dict]:
    """Per loop pass: delivered fps (its frames over its wall time) and predicted-frame decode ms."""
    t = res.arrays["frameMs"]
    cpu = res.arrays["frameCpuMs"]
    order = res.arrays["order"]
    dec = res.arrays["decodeMs"]
    seg_first = set(json.loads(res.values["segmentFirsts"])) if "segmentFirsts" in res.values else set()
    out = []
    for k in range(len(order) // frames):
        sl = slice(k * frames, (k + 1) * frames)
        i0 = k * frames - 1 if k else 0
        n = frames if k else frames - 1
        pred = [float(d) for i, d in zip(order[sl], dec[sl]) if int(i) not in seg_first]
        i1 = (k + 1) * frames - 1
        out.append({"fps": n * 1000.0 / float(t[i1] - t[i0]), "fps_cpu": n * 1000.0 / float(cpu[i1] - cpu[i0]),
                    "predicted_decode_ms": statistics.mean(pred) if pred else float("nan")})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--video", type=Path, default=None, help="a .gsv clip (default: the 50k performer, made in --work)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/splatkit_web_decode"), help="where the default clip is kept")
    ap.add_argument("--passes", type=int, default=3, help="loop passes per run (the first is cold)")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS, help="results JSON")
    args = ap.parse_args(argv)

    from compress.video import VideoReader
    from web_decode import make_clip
    from web_harness import CountingServer, node_stream

    clip = args.video or make_clip(args.work)
    data = clip.read_bytes()
    with VideoReader(data) as r:
        info = r.info
        firsts = [int(x) for x in info.segment_first]
    load_before = os.getloadavg()
    rows = []
    for decoder in ("thread", "worker"):
        with CountingServer({"/clip.gsv": data}) as srv:
            res = node_stream({"url": srv.url("/clip.gsv"), "scenario": "loop", "passes": args.passes, "decoder": decoder,
                               "timeoutMs": 600000}, timeout_s=900)
            fast_bytes = srv.bytes_sent
        assert res.error is None, res.error
        res.values["segmentFirsts"] = json.dumps(firsts)
        passes = _passes(res, info.n_frames)
        warm = max(passes[1:], key=lambda p: p["fps"]) if len(passes) > 1 else passes[0]
        with CountingServer({"/clip.gsv": data}) as srv:
            rt = node_stream({"url": srv.url("/clip.gsv"), "scenario": "play", "decoder": decoder,
                              "options": {"realtime": True}}, timeout_s=300)
            rt_bytes = srv.bytes_sent
        t = rt.arrays["frameMs"]
        rt_fps = (len(t) - 1) * 1000.0 / float(t[-1] - t[0])
        rows.append({"decoder": decoder, "passes": passes, "cold_fps": passes[0]["fps"], "warm_fps": warm["fps"],
                     "warm_fps_cpu": max(p["fps_cpu"] for p in passes[1:]) if len(passes) > 1 else passes[0]["fps_cpu"],
                     "predicted_decode_ms": warm["predicted_decode_ms"], "realtime_fps": rt_fps,
                     "realtime_stalls": json.loads(rt.values["stats"])["stalls"],
                     "wire_ratio": rt_bytes / len(data), "loop_wire_ratio": fast_bytes / len(data)})
    load_after = os.getloadavg()
    result = {"clip": {"file": clip.name, "bytes": len(data), "frames": info.n_frames, "fps": info.fps,
                       "gaussians": info.n_gaussians, "segments": info.n_segments},
              "load_before": load_before, "load_after": load_after, "cpus": os.cpu_count(), "goal_fps": GOAL_FPS,
              "rows": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))

    from rich.console import Console

    from splat.progress import summary_table

    Console(width=200).print(summary_table(
        f"{clip.name}: {info.n_gaussians:,} Gaussians, {info.n_frames} frames at {info.fps:g} fps, {len(data):,} bytes "
        f"(load {load_before[0]:.1f} -> {load_after[0]:.1f}, {os.cpu_count()} cores)",
        ["decoder", "cold pass fps", f"best warm pass fps ({args.passes - 1})", "warm frames per CPU s", "predicted decode ms",
         "real-time delivered fps", "wire / file", f"loop x{args.passes} wire / file", f"goal >= {GOAL_FPS:g} fps"],
        [(r["decoder"], f"{r['cold_fps']:.0f}", f"{r['warm_fps']:.0f}", f"{r['warm_fps_cpu']:.0f}", f"{r['predicted_decode_ms']:.1f}",
          f"{r['realtime_fps']:.1f}", f"{r['wire_ratio']:.4f}", f"{r['loop_wire_ratio']:.4f}",
          "met" if r["warm_fps"] >= GOAL_FPS else ("met in CPU time" if r["warm_fps_cpu"] >= GOAL_FPS else "missed"))
         for r in rows]))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
