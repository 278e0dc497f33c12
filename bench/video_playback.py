"""Video playback benchmark: frames per second the viewer delivers to a headless browser.

    .venv/bin/python bench/video_playback.py                  # the ~50k performer, 10 s of playback
    .venv/bin/python bench/video_playback.py --seconds 5 --gaussians 20000 --speed 2

The clip is the synthetic performer (``compress.video.synth``, driven by the motion
capture in ../shared/data/motion) encoded with ``encode_video``'s defaults; it is cached
in the system temp folder between runs. It is played through ``splat view``'s code path
(``viewer.video_view``) to real headless Chromium (Debian's, WebGL on SwiftShader) on
loopback, started before the clock runs.

Delivered fps = frame buffers (messages of at least 16 bytes a Gaussian) written to the
tab's websocket per second over the window. viser keeps only the newest pending buffer
of a node, and the websocket applies back-pressure, so a browser that cannot keep up
lowers this number. Also reported: frames the player showed and dropped, waits for the
decoder, decode and prepare time per frame, buffer fill, and the same pipeline without a
browser (decode + prepare + pack only) as the server's ceiling.

Writes bench/results/video_playback.json; prints a table.
"""
from __future__ import annotations

import argparse
import hashlib
import importlib.util
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
# bench/viewer.py is named like the package it measures: keep bench/ off the import path
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
sys.path.insert(0, str(ROOT / "tests"))  # the headless-Chromium helpers shared with the tests
RESULTS = ROOT / "bench" / "results"
GOAL_FPS = 30.0


def _bench_viewer():
    """bench/viewer.py as a module (its FreshBrowser and WireCounter)."""
    spec = importlib.util.spec_from_file_location("bench_viewer", ROOT / "bench" / "viewer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_clip(n_gaussians: int, n_frames: int, console) -> tuple[Path, dict]:
    """The performer clip as a .gsv with the encoder's defaults (cached by its parameters in
    the temp folder); returns (path, notes)."""
    from compress.video import VideoSettings, encode_video, synth

    codec_src = b"".join(p.read_bytes() for p in sorted((ROOT / "compress" / "video").glob("*.py")))
    key = hashlib.sha1(f"performer-{n_gaussians}-{n_frames}".encode() + codec_src).hexdigest()[:10]  # re-encode on codec changes
    path = Path(tempfile.gettempdir()) / f"splatkit-bench-performer-{key}.gsv"
    notes: dict = {"clip": f"synthetic performer, {n_gaussians} Gaussians, {n_frames} frames", "file": str(path),
                   "cached": path.exists()}
    if path.exists():
        return path, notes
    t0 = time.perf_counter()
    frames, fps = synth.performer_frames(n_gaussians, n_frames)
    notes["synth_s"] = time.perf_counter() - t0
    console.print(f"performer: {len(frames)} frames of {len(frames[0]):,} Gaussians at {fps:g} fps "
                  f"in {notes['synth_s']:.1f} s; encoding…")
    t0 = time.perf_counter()
    result = encode_video(frames, VideoSettings(fps=fps))
    notes["encode_s"] = time.perf_counter() - t0
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(result.data)
    os.replace(tmp, path)
    console.print(f"encoded in {notes['encode_s']:.1f} s -> {path} ({len(result.data):,} bytes)")
    return path, notes


def server_ceiling(path: Path, seconds: float) -> dict:
    """The server's ceiling without a browser: decode times (keyframes and predicted frames,
    one reader, sequential) and decode + prepare + pack through a FrameStream as fast as it goes."""
    from compress.video import FrameStream, VideoReader
    from viewer.splats import pack_buffer, prepare_splats, select_indices

    with VideoReader(path) as reader:
        info = reader.info
        first = set(int(f) for f in info.segment_first)
        key_ms, p_ms = [], []
        for i in range(min(info.n_frames, 2 * info.gop + 1)):
            t = time.perf_counter()
            reader.frame(i)
            (key_ms if i in first else p_ms).append(1000 * (time.perf_counter() - t))
    stream = FrameStream(VideoReader(path), start=0, capacity=8, loop=True)
    try:
        stream.next(timeout=60)  # warm-up: first segment and compiled kernels
        n, t0, prep_ms = 0, time.perf_counter(), []
        while time.perf_counter() - t0 < seconds:
            f = stream.next(timeout=60)
            t = time.perf_counter()
            prep = prepare_splats(f.scene)
            idx = select_indices(prep)
            pack_buffer(prep, idx, prep.base_rgb[idx])
            prep_ms.append(1000 * (time.perf_counter() - t))
            n += 1
        dt = time.perf_counter() - t0
    finally:
        stream.close()
    gop = info.gop
    mean_decode = (statistics.median(key_ms) + (gop - 1) * statistics.median(p_ms)) / gop
    return {"fps": n / dt, "frames": n, "prepare_pack_ms": statistics.median(prep_ms),
            "keyframe_decode_ms": statistics.median(key_ms), "pframe_decode_ms": statistics.median(p_ms),
            "decode_only_fps": 1000.0 / mean_decode, "gop": gop}


def playback(pw, bv, path: Path, seconds: float, speed: float, viewport: tuple[int, int], up: str) -> dict:
    """Play ``path`` to a fresh headless Chromium for ``seconds``; what reached the websocket."""
    from viewer.server import ViewerServer
    from viewer.video_view import load_video_asset
    from viewer_browser import watch

    asset = load_video_asset(path, paused=True, speed=speed, up=up)
    n = asset.info.count
    with bv.FreshBrowser(pw) as browser:
        srv = ViewerServer(asset, port=0, log=None)
        page = browser.new_page(viewport={"width": viewport[0], "height": viewport[1]})
        log = watch(page)
        try:
            page.goto(srv.url)
            if srv.wait_first_frame(300) is None:
                raise RuntimeError("the tab never drew its first frame")
            sess = srv.session(srv.client_ids()[0])
            view = sess.view
            c = view.controller
            with bv.WireCounter() as wire:
                t_play = time.perf_counter()
                c.play()
                time.sleep(seconds)
                t_end = time.perf_counter()
                st = c.stats
                snapshot = {"shown": st.shown, "dropped": st.dropped, "stalls": st.stalls, "errors": st.errors,
                            "decode_ms": st.decode_ms, "prepare_ms": st.show_ms, "buffered": c.buffered(),
                            "push_ms": view.layer.stats.last_push_ms}
                c.pause()
            big = [t for t, b in wire.messages if b >= 16 * n and t_play <= t <= t_end]
            # skip the first second (the decoder fills its buffer, the browser warms up)
            steady = [t for t in big if t >= t_play + 1.0]
            window = t_end - (t_play + 1.0)
            wire_bytes = sum(b for t, b in wire.messages if t_play <= t <= t_end)
        finally:
            page.close()
            srv.stop()
    return {
        "gaussians": n,
        "frames": asset.video.n_frames,
        "clip_fps": float(asset.video.fps),
        "speed": speed,
        "target_fps": float(asset.video.fps) * speed,
        "seconds": seconds,
        "viewport": list(viewport),
        "delivered_fps": len(steady) / window if window > 0 else float("nan"),
        "delivered_fps_incl_first_second": len(big) / (t_end - t_play),
        "wire_mbit_s": 8 * wire_bytes / (t_end - t_play) / 1e6,
        "shown_fps": snapshot["shown"] / (t_end - t_play),
        **snapshot,
        "foreign_requests": len(log.foreign()),
        "file_bytes": asset.info.file_size,
        "mean_bitrate_mbit_s": 8.0 * asset.video.total_bytes / (asset.video.n_frames / float(asset.video.fps)) / 1e6,
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--gaussians", type=int, default=50_000, help="performer size")
    ap.add_argument("--frames", type=int, default=60, help="frames in the clip (it loops)")
    ap.add_argument("--seconds", type=float, default=10.0, help="playback window measured")
    ap.add_argument("--speed", type=float, default=1.0, help="playback speed (target fps = clip fps x speed)")
    ap.add_argument("--viewport", default="960x540", help="browser viewport WxH")
    ap.add_argument("--clip", type=Path, default=None, help="play this .gsv instead of the performer")
    ap.add_argument("--up", default="+y", help="world up for the initial camera (the performer is y-up)")
    ap.add_argument("--out", type=Path, default=RESULTS / "video_playback.json")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)
    from rich.console import Console

    from splat.progress import summary_table

    console = Console(width=None if sys.stdout.isatty() else 150)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    console.print(f"load average {load:.2f} on {os.cpu_count()} cores")
    viewport = tuple(int(v) for v in args.viewport.lower().split("x"))
    if args.clip is not None:
        path, notes = args.clip, {"clip": str(args.clip)}
    else:
        path, notes = make_clip(args.gaussians, args.frames, console)
    ceiling = server_ceiling(path, min(args.seconds, 5.0))
    bv = _bench_viewer()
    pw = bv.start_playwright()
    try:
        rec = playback(pw, bv, path, args.seconds, args.speed, viewport, args.up)
    finally:
        pw.stop()
    ok = rec["delivered_fps"] >= GOAL_FPS * min(1.0, rec["target_fps"] / GOAL_FPS)
    console.print(summary_table(
        f"Video playback to headless Chromium ({viewport[0]}x{viewport[1]}, SwiftShader) on loopback",
        ["Gaussians", "target fps", "delivered fps", "shown fps", "dropped", "decoder waits", "decode ms",
         "prepare ms", "wire Mbit/s", f"goal >= {GOAL_FPS:g}"],
        [[rec["gaussians"], rec["target_fps"], rec["delivered_fps"], rec["shown_fps"], rec["dropped"], rec["stalls"],
          rec["decode_ms"], rec["prepare_ms"], rec["wire_mbit_s"], "met" if ok else "missed"]]))
    console.print(summary_table(
        "Server alone, no browser (one process, same machine, same moment)",
        ["keyframe decode ms", "P-frame decode ms", f"decode-only fps (GOP {ceiling['gop']})", "prepare+pack ms",
         "decode+prepare+pack fps"],
        [[ceiling["keyframe_decode_ms"], ceiling["pframe_decode_ms"], ceiling["decode_only_fps"],
          ceiling["prepare_pack_ms"], ceiling["fps"]]]))
    meta = {"load_average": load, "cpus": os.cpu_count(), "python": platform.python_version(),
            "client": "Debian chromium, headless=new, SwiftShader WebGL", "goal_fps": GOAL_FPS,
            "command": "python bench/video_playback.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_suffix(".tmp")
    tmp.write_text(json.dumps({"meta": meta, "clip": notes, "server_only": ceiling, "playback": rec,
                               "goal_met": ok}, indent=1))
    os.replace(tmp, args.out)
    console.print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
