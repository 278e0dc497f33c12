"""``make demo`` step: render a procedurally generated scene to PNG and check the CPU
backend against the float64 reference on a small crop of it."""
from __future__ import annotations

import math
import time
from pathlib import Path

import torch

from splat.camera import orbit_cameras
from splat.scene import GaussianScene

from .rasterize import rasterize
from .views import render_to_pngs


def procedural_scene(n: int = 20000, seed: int = 0) -> GaussianScene:
    """A torus knot of coloured, elongated Gaussians (float32, SH degree 1, y is down)."""
    g = torch.Generator().manual_seed(seed)
    t = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    p, q = 2, 3
    r = torch.cos(q * t) + 2.0
    centre = torch.stack([r * torch.cos(p * t), -torch.sin(q * t), r * torch.sin(p * t)], -1) * 0.4
    means = centre + 0.06 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    hue = (t / (2 * math.pi))[:, None]
    colors = 0.5 + 0.45 * torch.cos(2 * math.pi * (hue + torch.tensor([0.0, 1 / 3, 2 / 3], dtype=torch.float64)))
    scales = torch.exp(torch.empty(n, 3, dtype=torch.float64).uniform_(math.log(0.004), math.log(0.03), generator=g))
    quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
    opac = torch.empty(n, dtype=torch.float64).uniform_(0.3, 0.95, generator=g)
    rest = 0.1 * torch.randn(n, 3, 3, generator=g, dtype=torch.float64)
    return GaussianScene.from_activated(means, quats, scales, opac, colors, rest).to(dtype=torch.float32)


def run(out_dir: Path) -> list[tuple[str, str]]:
    scene = procedural_scene()
    cams = orbit_cameras(scene, 4, width=480, height=360, up="-y")
    t0 = time.perf_counter()
    views = render_to_pngs(scene, cams, out_dir, background=(0.05, 0.05, 0.08), backend="cpu", force=True)
    dt = (time.perf_counter() - t0) / len(views)
    small = orbit_cameras(scene[::20], 1, width=64, height=48, up="-y")
    ref = rasterize(scene[::20], small, backend="reference")
    cpu = rasterize(scene[::20], small, backend="cpu")
    err = float((cpu.colors.double() - ref.colors).abs().max())
    return [
        ("procedural torus knot", f"{len(scene):,} Gaussians, {len(views)} PNG views 480x360, {dt:.2f} s each"),
        ("coverage", f"mean alpha {sum(v.coverage for v in views) / len(views):.2f}"),
        ("cpu vs float64 reference", f"max abs difference {err:.1e} on a 64x48 render"),
    ]
