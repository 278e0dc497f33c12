"""`make demo` step: encode a short mocap-driven performer clip to .gsv and play it back."""
from __future__ import annotations

import time
from pathlib import Path

from splat.atomic import atomic_write_bytes

from .codec import VideoReader, VideoSettings, encode_video
from .stream import FrameStream
from .synth import default_bvh_path, performer_frames


def run(out_dir: Path) -> list[tuple[str, str]]:
    out_dir.mkdir(parents=True, exist_ok=True)
    if not default_bvh_path().exists():
        return [("skipped", f"motion capture not found: {default_bvh_path()}")]
    n, count = 6000, 24
    frames, fps = performer_frames(n, count, frame_step=2)
    t0 = time.perf_counter()
    res = encode_video(frames, VideoSettings(fps=fps, gop=12))
    t_enc = time.perf_counter() - t0
    path = out_dir / "performer.gsv"
    atomic_write_bytes(path, res.data)
    raw = n * 4 * (17 + 9) * count  # float32 INRIA PLY payload per frame, SH degree 1
    with VideoReader(path) as r, FrameStream(r, capacity=8, loop=False) as fs:
        t0 = time.perf_counter()
        ms = [fs.next(timeout=30).decode_ms for _ in range(count)]
        wall = time.perf_counter() - t0
    return [
        ("clip", f"mocap performer, {count} frames x {n:,} Gaussians at {fps:.0f} fps, {res.info.n_segments} segments"),
        ("size", f"{path} {len(res.data) / 1024:.0f} KB, {len(res.data) * 8 / (n * count):.2f} bits/Gaussian/frame "
                 f"({raw / len(res.data):.0f}x smaller than float32 PLY frames)"),
        ("time", f"encode {t_enc / count:.2f} s/frame; playback {count / wall:.0f} fps through FrameStream "
                 f"(median decode {sorted(ms)[len(ms) // 2]:.1f} ms/frame)"),
    ]
