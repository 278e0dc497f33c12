"""Dense float64 PyTorch reference of the 2D Gaussian renderer. Used only by tests.

Every Gaussian is evaluated at every pixel; the rules are those of ``kernels.py``:
w = exp(-sigma) where sigma <= ln 255, else 0; TOPK keeps the K largest weights per pixel
and normalises, SUM adds every weight. Gradients come from autograd.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .kernels import DEFAULT_MODE, EPS, SIGMA_MAX


def render_reference(means: Tensor, conics: Tensor, colors: Tensor, width: int, height: int, *,
                     mode: str = DEFAULT_MODE, k: int = 10) -> Tensor:
    """means [N,2], conics [N,3], colors [N,C] in output pixels. Returns [H,W,C] (float64)."""
    means, conics, colors = means.double(), conics.double(), colors.double()
    ys, xs = torch.meshgrid(torch.arange(height, dtype=torch.float64), torch.arange(width, dtype=torch.float64),
                            indexing="ij")
    px, py = xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5
    dx = px[:, None] - means[None, :, 0]
    dy = py[:, None] - means[None, :, 1]
    sig = 0.5 * (conics[None, :, 0] * dx * dx + conics[None, :, 2] * dy * dy) + conics[None, :, 1] * dx * dy
    w = torch.where((sig <= SIGMA_MAX) & (sig >= 0), torch.exp(-sig), torch.zeros_like(sig))  # [P,N]
    if mode == "sum":
        out = w @ colors
    else:
        kk = min(k, w.shape[1])
        vals, idx = torch.topk(w, kk, dim=1)
        num = (vals[:, :, None] * colors[idx]).sum(1)
        out = num / (vals.sum(1, keepdim=True) + EPS)
    return out.reshape(height, width, colors.shape[1])
