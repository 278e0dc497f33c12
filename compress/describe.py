"""What ``splat info`` shows for our non-scene files (``.gsi`` images, ``.gsv`` videos, ``.m3``
feature memories), registered through the ``splat.describe`` entry-point group.

Each ``describe(path)`` verifies the file as its reader does and returns ordered, JSON-able
fields; ``FormatError`` (naming the file) on bad input.
"""
from __future__ import annotations

import os
from typing import Any

from splat.describe import Describer


def describe_gsi(path: str | os.PathLike) -> dict[str, Any]:
    """Image size, channels, Gaussian count, render rule and bits per pixel of a ``.gsi`` file."""
    from .image.gsi import decode, read_header

    from splat.io._common import read_bytes

    data = read_bytes(path)
    h, _, _ = read_header(data, path)
    g = decode(data, path)
    meta = h.get("meta") if isinstance(h.get("meta"), dict) else {}
    return {
        "width": g.width, "height": g.height, "channels": g.channels, "gaussians": len(g),
        "render mode": g.mode, "LOD layers": [int(s) for s in h["layers"]],
        "bits per pixel": len(data) * 8 / (g.width * g.height),
        "source bit depth": meta.get("bit_depth"), "source": meta.get("source"),
    }


def describe_gsv(path: str | os.PathLike) -> dict[str, Any]:
    """Frames, fps, Gaussians, coding, segments and bitrate of a ``.gsv`` clip (header and index only)."""
    from .video.codec import VideoReader

    with VideoReader(path) as r:
        i = r.info
        return {
            "frames": i.n_frames, "fps": i.fps, "duration (s)": i.n_frames / i.fps,
            "gaussians": i.n_gaussians, "sh_degree": i.sh_degree,
            "coding": "tracked (dual motion)" if i.tracked else "intra per frame",
            "segments": i.n_segments, "gop": i.gop,
            "bitrate (Mbit/s)": i.total_bytes * 8 * i.fps / i.n_frames / 1e6,
            "bounds_min": [float(x) for x in i.bounds_min], "bounds_max": [float(x) for x in i.bounds_max],
        }


def describe_m3(path: str | os.PathLike, *, allow_outside_ref: bool = False) -> dict[str, Any]:
    """Gaussians, feature models and query size of a ``.m3`` feature memory (its scene loaded and checked)."""
    from .memory.m3file import cameras_from_meta, read_m3

    mem = read_m3(path, allow_outside_ref=allow_outside_ref)
    return {
        "gaussians": len(mem.scene), "sh_degree": mem.scene.sh_degree,
        "scene": mem.scene_ref or "embedded",
        "models": [f"{m.name} (dim {m.dim}, query {m.query_dim}, bank {m.bank_size})" for m in mem.models],
        "query channels": int(mem.queries.shape[1]),
        "cameras": len(cameras_from_meta(mem.meta)),
    }


def _magic(m: bytes):
    return lambda head: head[:len(m)] == m


GSI = Describer("gsi", (".gsi",), _magic(b"GSI1"), describe_gsi, "Gaussian image (Image-GS style)")
GSV = Describer("gsv", (".gsv",), _magic(b"GSV1"), describe_gsv, "volumetric video (DualGS style)")
M3 = Describer("m3", (".m3",), _magic(b"GSM3"), describe_m3, "feature memory (M3 style)")
