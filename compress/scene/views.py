"""Which cameras the compressor uses, and which it holds out for measuring fidelity.

* With cameras (INRIA ``cameras.json`` or ``transforms.json``): every 8th camera
  (index 0, 8, 16, ...) is held out; the rest drive significance and fine-tuning.
* Without: the compressor uses hemisphere views fitted to the scene; fidelity is measured
  on orbit views at other elevations and azimuths that the compressor never sees.

Views are rendered at a reduced resolution (longest side ``max_side`` pixels) to keep CPU
time in check; the intrinsics are scaled with the image.
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from splat.camera import Camera, hemisphere_cameras, orbit_cameras
from splat.scene import GaussianScene


@dataclass
class ViewSplit:
    """train: views the compressor may use; heldout: views only for fidelity; source: 'file' or 'generated'."""

    train: list[Camera]
    heldout: list[Camera]
    source: str


def fit_resolution(cam: Camera, max_side: int) -> Camera:
    """The same view with its longest side at most ``max_side`` pixels."""
    s = max(cam.width, cam.height)
    if s <= max_side:
        return cam
    f = max_side / s
    return cam.resized(max(1, round(cam.width * f)), max(1, round(cam.height * f)))


def split_views(
    scene: GaussianScene,
    cameras: Sequence[Camera] | None = None,
    *,
    holdout_every: int = 8,
    n_train: int = 24,
    n_heldout: int = 8,
    max_side: int = 480,
    up: str = "-y",
) -> ViewSplit:
    """Training and held-out views for ``scene`` (see module docstring)."""
    if cameras:
        cams = [fit_resolution(c, max_side) for c in cameras]
        held = [c for i, c in enumerate(cams) if i % holdout_every == 0]
        train = [c for i, c in enumerate(cams) if i % holdout_every != 0] or held
        return ViewSplit(train, held, "file")
    w, h = max_side, round(max_side * 3 / 4)
    train = hemisphere_cameras(scene, n_train, width=w, height=h, up=up, seed=0)
    held = orbit_cameras(scene, n_heldout, width=w, height=h, up=up, elevation_deg=35.0, phase_deg=360.0 / (2 * n_heldout) + 7.0)
    for i, c in enumerate(held):
        object.__setattr__(c, "name", f"heldout_{i:03d}")
    return ViewSplit(train, held, "generated")


def scene_scale(scene: GaussianScene) -> float:
    """Robust scene radius: half the diagonal of the 2%..98% bounds of the centres."""
    lo, hi = scene.bounds(quantile=0.02)
    return max(float((hi - lo).double().norm()) / 2, 1e-6)


def jitter_cameras(cameras: Sequence[Camera], sigma: float, copies: int = 1, seed: int = 0) -> list[Camera]:
    """Copies of ``cameras`` with their centres moved by N(0, sigma^2) (world units), same orientation."""
    g = torch.Generator().manual_seed(seed)
    out = []
    for k in range(copies):
        for c in cameras:
            d = torch.randn(3, generator=g, dtype=torch.float64) * sigma
            w2c = c.world_to_camera.clone()
            # moving the centre by d changes the translation by -R d
            w2c[:3, 3] = w2c[:3, 3] - w2c[:3, :3] @ d
            out.append(Camera(c.fx, c.fy, c.cx, c.cy, c.width, c.height, w2c, f"{c.name}_jit{k}"))
    return out


def pseudo_views(scene: GaussianScene, train: Sequence[Camera], *, jitter: float = 0.05, copies: int = 1,
                 n_orbit: int = 8, seed: int = 0) -> list[Camera]:
    """Distillation views: the training views, jittered copies (sigma = jitter x scene scale)
    and a ring of orbit views at the training views' resolution."""
    if not train:
        raise ValueError("pseudo_views needs at least one training view")
    w, h = train[0].width, train[0].height
    fov = math.degrees(train[0].fov_y)
    views = list(train) + jitter_cameras(train, jitter * scene_scale(scene), copies, seed)
    if n_orbit:
        views += orbit_cameras(scene, n_orbit, width=w, height=h, fov_y_deg=fov, elevation_deg=10.0, phase_deg=11.0)
    return views


def find_cameras(scene_path: Path) -> Path | None:
    """``cameras.json`` or ``transforms.json`` beside the scene or up to three folders above.

    A found name must be a regular file whose real path stays in the folder it was found in
    (FormatError for a link leading elsewhere); FIFOs and devices are refused when read."""
    from splat.bounded import resolve_inside

    d = scene_path.resolve().parent
    for _ in range(4):
        for name in ("cameras.json", "transforms.json"):
            if os.path.lexists(d / name):
                return resolve_inside(d, name)
        if d.parent == d:
            break
        d = d.parent
    return None
