"""Fidelity: how close a compressed scene renders to the original from the same views.

PSNR and SSIM are computed per view on colours clamped to [0, 1] (black background) and
averaged over the views; LPIPS is added when the optional ``lpips`` package and its
weights are installed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
from torch import Tensor

from render import rasterize
from splat.camera import Camera
from splat.scene import GaussianScene


@dataclass
class Fidelity:
    """Mean over views of PSNR (dB), SSIM and LPIPS (None when unavailable); per_view_psnr [V]."""

    psnr: float
    ssim: float
    lpips: float | None = None
    per_view_psnr: list[float] = field(default_factory=list)


def psnr(a: Tensor, b: Tensor) -> float:
    """PSNR (dB) of two images with values in [0, 1]; 100 dB for identical images."""
    mse = float(((a.double() - b.double()) ** 2).mean())
    return 100.0 if mse <= 1e-20 else min(100.0, -10.0 * math.log10(mse))


def _ssim(a: Tensor, b: Tensor) -> float:
    try:
        from render.metrics import ssim as _lib_ssim  # the renderer's metrics module, when present
    except ImportError:
        from .distill import ssim as _lib_ssim
    return float(_lib_ssim(a, b))


def _lpips_fn() -> Callable[[Tensor, Tensor], float] | None:
    try:
        from render.metrics import lpips  # optional: needs the lpips package and its weights
    except ImportError:
        return None
    return lpips


def render_views(scene: GaussianScene, views: Sequence[Camera], *, backend: str = "auto") -> Tensor:
    """Renders [V,H,W,3] clamped to [0, 1] (views may differ in size only if rendered one by one)."""
    with torch.no_grad():
        return torch.cat([rasterize(scene, v, backend=backend).colors.clamp(0, 1).float() for v in views])


def fidelity(original: GaussianScene | Tensor, compressed: GaussianScene, views: Sequence[Camera], *,
             backend: str = "auto", with_lpips: bool = False) -> Fidelity:
    """Compare renders of ``compressed`` with renders of ``original`` (or with precomputed
    renders [V,H,W,3] of it) on ``views``."""
    ref = original if isinstance(original, Tensor) else render_views(original, views, backend=backend)
    out = render_views(compressed.to(device=ref.device), views, backend=backend).to(ref.device)
    per = [psnr(out[i], ref[i]) for i in range(len(views))]
    ss = [_ssim(out[i], ref[i]) for i in range(len(views))]
    lp = None
    if with_lpips:
        fn = _lpips_fn()
        if fn is not None:
            try:
                lp = float(sum(float(fn(out[i], ref[i])) for i in range(len(views))) / len(views))
            except Exception:  # weights missing: LPIPS stays unavailable
                lp = None
    return Fidelity(sum(per) / len(per), sum(ss) / len(ss), lp, per)
