"""How much the renders move when a Gaussian's attributes are quantized (per-Gaussian error weights).

For a small change e of Gaussian i's parameters the render error is about |J e|^2, J the
Jacobian of the rendered pixels. Quantization errors of different Gaussians are independent,
so what matters per Gaussian is the diagonal of the Gauss-Newton matrix J^T J. It is
estimated without forming J: for each view, one backward pass of sum(render * v) with v a
random N(0, 1) image gives J^T v, and E[(J^T v)_k^2] = (J^T J)_kk (Hutchinson's estimator).
"""
from __future__ import annotations

from typing import Sequence

import torch
from torch import Tensor

from render import rasterize
from splat.camera import Camera
from splat.scene import GaussianScene

ATTRIBUTES = ("log_scales", "quats", "sh_dc")


def render_sensitivity(scene: GaussianScene, cameras: Sequence[Camera], *, backend: str = "auto",
                       seed: int = 0) -> dict[str, Tensor]:
    """{attribute: [N] float64}: estimated sum over views, pixels and the attribute's channels of
    (d render / d parameter)^2, for log-scales, quaternions and SH DC (colours in [0, 1] per unit)."""
    s = scene.detach().requires_grad_(True)
    for name in ("means", "opacity_logits", "sh_rest"):
        getattr(s, name).requires_grad_(False)
    out = {k: torch.zeros(len(scene), dtype=torch.float64) for k in ATTRIBUTES}
    g = torch.Generator().manual_seed(seed)
    for cam in cameras:
        img = rasterize(s, cam, backend=backend).colors
        (img * torch.randn(img.shape, generator=g, dtype=img.dtype)).sum().backward()
        for k in ATTRIBUTES:
            t = getattr(s, k)
            out[k] += t.grad.detach().double().pow(2).reshape(len(scene), -1).sum(1)
            t.grad = None
    return out


def error_weights(sens: dict[str, Tensor], steps: dict[str, float]) -> Tensor:
    """[N] float64: expected render error of each Gaussian when every attribute is quantized with
    ``steps[attribute]`` (uniform rounding error has variance step^2 / 12)."""
    return sum(sens[k] * (steps[k] ** 2 / 12.0) for k in ATTRIBUTES)
