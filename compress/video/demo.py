"""`make demo` step: encode a short mocap-driven performer clip to .gsv and play it back; then
shuffle every frame's Gaussian order (as a Morton-sorting exporter would) and re-track it."""
from __future__ import annotations

import time
from pathlib import Path

from splat.atomic import atomic_write_bytes

import torch

from .codec import VideoReader, VideoSettings, encode_video
from .fidelity import clip_fidelity, sample_frames
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
    g = torch.Generator().manual_seed(0)
    shuffled = [f[torch.randperm(len(f), generator=g)] for f in frames]
    t0 = time.perf_counter()
    res2 = encode_video(shuffled, VideoSettings(fps=fps, gop=12))
    t_enc2 = time.perf_counter() - t0
    path2 = out_dir / "performer_shuffled.gsv"
    atomic_write_bytes(path2, res2.data)
    with VideoReader(path2) as r:
        fid = clip_fidelity(shuffled, r.frame, sample_frames(count, 3), views=2, size=96)
    return [
        ("clip", f"mocap performer, {count} frames x {n:,} Gaussians at {fps:.0f} fps, {res.info.n_segments} segments"),
        ("size", f"{path} {len(res.data) / 1024:.0f} KB, {len(res.data) * 8 / (n * count):.2f} bits/Gaussian/frame "
                 f"({raw / len(res.data):.0f}x smaller than float32 PLY frames)"),
        ("time", f"encode {t_enc / count:.2f} s/frame; playback {count / wall:.0f} fps through FrameStream "
                 f"(median decode {sorted(ms)[len(ms) // 2]:.1f} ms/frame)"),
        ("shuffled clip", f"every frame re-sorted: detected {res2.mode_detected}, coded as {res2.mode}; "
                          f"{path2} {len(res2.data) / 1024:.0f} KB ({len(res2.data) / len(res.data):.2f}x the ordered clip), "
                          f"{res2.stream_bytes.get('births', 0)} births / {res2.stream_bytes.get('deaths', 0)} deaths, "
                          f"worst render PSNR {min(x.psnr for x in fid):.1f} dB, encode {t_enc2 / count:.2f} s/frame"),
    ]
