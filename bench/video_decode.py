"""Decode speed of a .gsv clip on one thread: the 50k-Gaussian mocap performer, 60 frames, gop 30.

Sequential decoding with segment (keyframe + skin binding) loads included, as a player does.
Writes bench/results/video_decode_idle.json. Run it on an idle machine:

    .venv/bin/python bench/video_decode.py
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's packages, not bench/render.py

import numpy as np  # noqa: E402

from compress.video import VideoReader, VideoSettings, encode_video  # noqa: E402
from compress.video.synth import performer_frames  # noqa: E402
from splat.threads import threads  # noqa: E402


def main() -> None:
    load = os.getloadavg()[0]
    with threads(1):
        frames, _ = performer_frames(50000, 60)
        t = time.perf_counter()
        res = encode_video(frames, VideoSettings(gop=30))
        enc = time.perf_counter() - t
        VideoReader(res.data).frame(0)  # warm numba's caches
        r = VideoReader(res.data)
        ts = []
        for i in range(60):
            t = time.perf_counter()
            r.frame(i)
            ts.append(time.perf_counter() - t)
    ts = np.array(ts)
    out = dict(gaussians=50000, frames=60, gop=30, coding=res.mode,
               bits_per_gaussian_frame=len(res.data) * 8 / (50000 * 60), encode_s_per_frame=enc / 60,
               decode_fps_incl_segment_loads=60 / ts.sum(), keyframe_ms=float(ts[[0, 30]].mean() * 1000),
               pframe_ms_median=float(np.median(ts) * 1000), load_average_before=load,
               load_average_after=os.getloadavg()[0])
    print(json.dumps(out, indent=1))
    (ROOT / "bench" / "results" / "video_decode_idle.json").write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
