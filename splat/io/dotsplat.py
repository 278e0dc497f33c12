"""antimatter15 ``.splat``: 32 bytes per Gaussian, no header, no SH.

Per Gaussian (little-endian): position 3 x float32, scale 3 x float32 (activated
standard deviations, not logs), colour 4 x uint8 (``round(255 * (0.5 + SH_C0*dc))``
and ``round(255 * sigmoid(opacity))``), rotation 4 x uint8 (unit wxyz quaternion
``q`` as ``round(128*q + 128)`` clamped to 0..255). Coordinates are stored as given
(the PLY's frame), as antimatter15's converter does.
"""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..errors import FormatError
from ..scene import GaussianScene
from ._common import (
    dc_from_rgb,
    logit,
    make_scene,
    normalize_quats,
    quiet_numpy,
    read_bytes,
    rgb_from_dc,
    scene_arrays,
    sigmoid,
    u8,
    warn,
)

NAME = "splat"
EXTENSIONS = (".splat",)
RECORD = 32
_DTYPE = np.dtype([("pos", "<f4", 3), ("scale", "<f4", 3), ("rgba", "u1", 4), ("rot", "u1", 4)])


def sniff(head: bytes) -> bool:
    return False  # no magic number: detected by extension only


def read(path: str | os.PathLike, *, check_finite: bool = True) -> GaussianScene:
    return decode(read_bytes(path), path, check_finite=check_finite)


@quiet_numpy
def decode(data: bytes, path=None, *, check_finite: bool = True) -> GaussianScene:
    if not data:
        raise FormatError("empty file, not a .splat scene (it holds no Gaussians)", path)
    if len(data) % RECORD:
        raise FormatError(
            f"size {len(data):,} bytes is not a multiple of {RECORD} (truncated or not a .splat file)", path)
    rec = np.frombuffer(data, dtype=_DTYPE)
    scale = rec["scale"].astype(np.float64)
    if check_finite:
        for name, arr in (("position", rec["pos"]), ("scale", scale)):
            bad = ~np.isfinite(arr).all(axis=1)
            if bad.any():
                raise FormatError(f"non-finite {name} (NaN or Inf) in Gaussian {int(np.nonzero(bad)[0][0])}", path)
        neg = (scale < 0).any(axis=1)
        if neg.any():
            raise FormatError(f"negative scale in Gaussian {int(np.nonzero(neg)[0][0])}", path)
    rgba = rec["rgba"].astype(np.float64) / 255.0
    quats = normalize_quats((rec["rot"].astype(np.float64) - 128.0) / 128.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_scales = np.log(np.maximum(scale, 1e-30))
    return make_scene(path, means=rec["pos"], quats=quats, log_scales=log_scales,
                      opacity_logits=logit(rgba[:, 3]), sh_dc=dc_from_rgb(rgba[:, :3]), check_finite=check_finite)


def encode(scene: GaussianScene) -> bytes:
    if len(scene) == 0:
        raise ValueError(".splat cannot store an empty scene (an empty file is not a valid .splat)")
    a = scene_arrays(scene)
    if a["sh_rest"].shape[1]:
        warn(f".splat stores no spherical harmonics: SH degree {scene.sh_degree} dropped (base colour kept)")
    if scene.extras:
        warn(f".splat stores no extra channels: {', '.join(sorted(scene.extras))} dropped")
    rec = np.empty(len(scene), dtype=_DTYPE)
    rec["pos"] = a["means"]
    rec["scale"] = np.exp(a["log_scales"].astype(np.float64))
    rgba = np.concatenate([rgb_from_dc(a["sh_dc"]), sigmoid(a["opacity_logits"])[:, None]], axis=1)
    rec["rgba"] = u8(rgba * 255.0)
    rec["rot"] = u8(normalize_quats(a["quats"]) * 128.0 + 128.0)
    return rec.tobytes()


def write(scene: GaussianScene, path: str | os.PathLike) -> None:
    Path(path).write_bytes(encode(scene))
