"""The 2D "sum" rule in plain torch, for CUDA tensors (runs on any device).

Same rule as ``kernels.py`` and ``reference.py``: pixel (i, j) centred at (j + 0.5, i + 0.5),
w = exp(-sigma) where 0 <= sigma <= ln 255, else 0, image = sum over Gaussians of w * colour.

Memory is bounded: the image is cut into bands of rows, each band evaluates only the
Gaussians whose sigma <= ln 255 ellipse reaches it, in chunks of at most ``max_elems``
(pixels x Gaussians) per temporary. The backward recomputes each block instead of keeping
it, so a fit's memory does not grow with the image either.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor

from .kernels import SIGMA_MAX

BAND_ROWS = 16
MAX_ELEMS = 1 << 24  # pixels x Gaussians per block (64 MiB per float32 temporary)


def _reach_y(conics: Tensor) -> Tensor:
    """Half-height [N] (px) of each Gaussian's sigma <= ln 255 ellipse; inf when not positive definite."""
    a, b, c = conics.unbind(-1)
    det = a * c - b * b
    ok = (det > 0) & (a > 0)
    cov_yy = torch.where(ok, a / torch.where(ok, det, torch.ones_like(det)), torch.full_like(det, math.inf))
    return torch.sqrt(2.0 * SIGMA_MAX * cov_yy) * (1.0 + 1e-5) + 1e-4


def _blocks(means: Tensor, conics: Tensor, width: int, height: int, band_rows: int, max_elems: int):
    """Yield (y0, y1, ids) blocks: rows [y0, y1) and the Gaussians ids [n] that may reach them."""
    with torch.no_grad():
        reach = _reach_y(conics.detach())
        my = means.detach()[:, 1]
        lo, hi = my - reach, my + reach
    per = max(1, max_elems // max(1, band_rows * width))
    for y0 in range(0, height, band_rows):
        y1 = min(height, y0 + band_rows)
        ids = torch.nonzero((hi >= y0 + 0.5) & (lo <= y1 - 0.5)).flatten()
        for s in range(0, ids.numel(), per):
            yield y0, y1, ids[s : s + per]


def _block(means: Tensor, conics: Tensor, colors: Tensor, y0: int, y1: int, width: int) -> Tensor:
    """Sum of the given Gaussians over rows [y0, y1): [y1-y0, W, C]."""
    dev, dt = means.device, means.dtype
    xs = torch.arange(width, device=dev, dtype=dt) + 0.5
    ys = torch.arange(y0, y1, device=dev, dtype=dt) + 0.5
    dx = xs[None, :, None] - means[None, None, :, 0]  # [1,W,n]
    dy = ys[:, None, None] - means[None, None, :, 1]  # [h,1,n]
    sig = 0.5 * (conics[:, 0] * dx * dx + conics[:, 2] * dy * dy) + conics[:, 1] * dx * dy  # [h,W,n]
    w = torch.where((sig >= 0) & (sig <= SIGMA_MAX), torch.exp(-sig), torch.zeros_like(sig))
    h, n = y1 - y0, means.shape[0]
    return (w.reshape(h * width, n) @ colors).reshape(h, width, colors.shape[1])


class _SumRaster(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, conics, colors, width, height, band_rows, max_elems):
        out = colors.new_zeros(height, width, colors.shape[1])
        for y0, y1, ids in _blocks(means, conics, width, height, band_rows, max_elems):
            out[y0:y1] += _block(means[ids], conics[ids], colors[ids], y0, y1, width)
        ctx.save_for_backward(means, conics, colors)
        ctx.shape = (width, height, band_rows, max_elems)
        return out

    @staticmethod
    def backward(ctx, grad_out):
        means, conics, colors = ctx.saved_tensors
        width, height, band_rows, max_elems = ctx.shape
        gm, gq, gc = torch.zeros_like(means), torch.zeros_like(conics), torch.zeros_like(colors)
        for y0, y1, ids in _blocks(means, conics, width, height, band_rows, max_elems):
            with torch.enable_grad():
                leaves = [t[ids].detach().requires_grad_() for t in (means, conics, colors)]
                out = _block(*leaves, y0, y1, width)
                dm, dq, dc = torch.autograd.grad(out, leaves, grad_out[y0:y1])
            gm.index_add_(0, ids, dm)
            gq.index_add_(0, ids, dq)
            gc.index_add_(0, ids, dc)
        return gm, gq, gc, None, None, None, None


def rasterize_sum_torch(means: Tensor, conics: Tensor, colors: Tensor, width: int, height: int, *,
                        band_rows: int = BAND_ROWS, max_elems: int = MAX_ELEMS) -> Tensor:
    """Render the "sum" rule: means [N,2] px, conics [N,3] (A, B, C), colors [N,C] -> [H,W,C].

    Differentiable w.r.t. means, conics and colors; computed in the inputs' dtype and device.
    """
    if band_rows < 1 or max_elems < 1:
        raise ValueError("band_rows and max_elems must be positive")
    dt = torch.promote_types(torch.promote_types(means.dtype, conics.dtype), colors.dtype)
    return _SumRaster.apply(means.to(dt), conics.to(dt), colors.to(dt), int(width), int(height),
                            int(band_rows), int(max_elems))
