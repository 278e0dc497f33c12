"""Global significance (LightGaussian): how much each Gaussian contributes to all views.

    significance_i = (sum over views and pixels of alpha_i * T_i) * (V_i / V_90)^beta

where alpha_i * T_i is Gaussian i's blend weight at a pixel (opacity x falloff x
transmittance in front of it), V_i the product of its three activated scales and V_90
the 90th percentile of V over the scene.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from torch import Tensor

from render import rasterize
from splat.camera import Camera
from splat.progress import Progress
from splat.scene import GaussianScene


def blend_weights(scene: GaussianScene, cameras: Sequence[Camera], *, backend: str = "auto",
                  progress: Progress | None = None) -> Tensor:
    """Accumulated blend weight [N] (float64) over every pixel of every camera.
    ``progress`` is advanced once per camera (the caller starts and ends the stage)."""
    total = torch.zeros(len(scene), dtype=torch.float64)
    with torch.no_grad():
        for cam in cameras:
            out = rasterize(scene, cam, backend=backend, return_stats="blend_weight")
            total.add_(out.stats.blend_weight.detach().cpu())  # promoted in place, no [N] float64 copy
            if progress is not None:
                progress.advance(1)
    return total


def volume_factor(scene: GaussianScene, beta: float = 0.1) -> Tensor:
    """(V / V_90)^beta [N] (float64), V the product of the activated scales."""
    if len(scene) == 0:
        return torch.zeros(0, dtype=torch.float64)
    vol = torch.exp(scene.log_scales.detach().double().sum(dim=1))
    v90 = vol.kthvalue(max(1, int(np.ceil(0.9 * len(vol))))).values
    return (vol / v90.clamp_min(1e-300)) ** beta


def significance(scene: GaussianScene, cameras: Sequence[Camera], *, beta: float = 0.1,
                 backend: str = "auto", progress: Progress | None = None) -> Tensor:
    """Global significance score [N] (float64); see the module docstring."""
    return blend_weights(scene, cameras, backend=backend, progress=progress) * volume_factor(scene, beta)


def spearman(a: Tensor | np.ndarray, b: Tensor | np.ndarray) -> float:
    """Spearman rank correlation of two score vectors (ties broken by index)."""
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    ra = np.empty(len(a))
    rb = np.empty(len(b))
    ra[np.argsort(a, kind="stable")] = np.arange(len(a))
    rb[np.argsort(b, kind="stable")] = np.arange(len(b))
    ra -= ra.mean()
    rb -= rb.mean()
    den = np.sqrt((ra * ra).sum() * (rb * rb).sum())
    return float((ra * rb).sum() / den) if den > 0 else 1.0


def prune_overlap(a: Tensor | np.ndarray, b: Tensor | np.ndarray, ratio: float) -> float:
    """Fraction of the Gaussians pruned under score ``a`` (lowest ``ratio``) also pruned under ``b``."""
    n = len(a)
    k = int(ratio * n)
    if k == 0:
        return 1.0
    sa = set(np.argsort(np.asarray(a), kind="stable")[:k].tolist())
    sb = set(np.argsort(np.asarray(b), kind="stable")[:k].tolist())
    return len(sa & sb) / k
