"""Fidelity: how close a compressed scene renders to the original from the same views.

PSNR and SSIM are computed per view on colours clamped to [0, 1] (black background) and
averaged over the views; LPIPS is added when the optional ``lpips`` package and its
weights are installed (all three from :mod:`render.metrics`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from render import metrics, rasterize
from splat.camera import Camera
from splat.scene import GaussianScene


@dataclass
class Fidelity:
    """Mean over views of PSNR (dB), SSIM (NaN when not computed) and LPIPS (None when
    unavailable); per_view_psnr [V]."""

    psnr: float
    ssim: float
    lpips: float | None = None
    per_view_psnr: list[float] = field(default_factory=list)


def render_views(scene: GaussianScene, views: Sequence[Camera], *, backend: str = "auto") -> Tensor:
    """Renders [V,H,W,3] clamped to [0, 1] (views may differ in size only if rendered one by one)."""
    with torch.no_grad():
        return torch.cat([rasterize(scene, v, backend=backend).colors.clamp(0, 1).float() for v in views])


def fidelity(original: GaussianScene | Tensor, compressed: GaussianScene, views: Sequence[Camera], *,
             backend: str = "auto", with_ssim: bool = True, with_lpips: bool = False) -> Fidelity:
    """Compare renders of ``compressed`` with renders of ``original`` (or with precomputed
    renders [V,H,W,3] of it) on ``views``. SSIM (float64, the slow part) is NaN unless
    ``with_ssim``."""
    ref = original if isinstance(original, Tensor) else render_views(original, views, backend=backend)
    out = render_views(compressed.to(device=ref.device), views, backend=backend).to(ref.device)
    per = [min(100.0, float(metrics.psnr(out[i], ref[i]))) for i in range(len(views))]  # 100 dB: identical
    ss = [float(metrics.ssim(out[i], ref[i])) for i in range(len(views))] if with_ssim else [float("nan")]
    lp = None
    if with_lpips and metrics.lpips_available():
        fn = metrics.LPIPS()
        lp = sum(float(fn(out[i], ref[i])) for i in range(len(views))) / len(views)
    return Fidelity(sum(per) / len(per), sum(ss) / len(ss), lp, per)
