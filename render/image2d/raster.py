"""The 2D Gaussian image renderer: one function, :func:`render_image`.

    img = render_image(means, scales, rotations, colors, width, height,
                       mode="topk" | "sum", k=10, scale=1.0, crop=None, backend="auto")

Gaussians live in image pixel coordinates (x right, y down, pixel (i, j) centred at
(i + 0.5, j + 0.5)): means [N,2] px, scales [N,2] px standard deviations along the
Gaussian's own axes, rotations [N] radians (axis 0 rotated counter-clockwise from +x
in the x/y frame), colors [N,C] with C in 1..16. ``scale`` resamples the image (output
pixel = scale x input pixel); ``crop`` = (x, y, w, h) in output pixels renders that
window only, touching only the Gaussians that reach it. Differentiable w.r.t. means,
scales, rotations and colors.

Backends: ``"cpu"`` (tile-based numba kernels with hand-written backward, ``kernels.py``),
``"torch"`` (``sum`` mode only: banded plain torch, ``torch_sum.py``; runs on CUDA),
``"reference"`` (dense float64 PyTorch, ``reference.py``; tests and tiny images only),
``"auto"`` (torch for CUDA tensors in ``sum`` mode, else cpu). ``topk`` has no GPU path
(gsplat's 2D path has no top-K normalized mode): CUDA tensors are rendered by the CPU
kernels and moved back.
"""
from __future__ import annotations

from typing import Literal

import numba as nb
import numpy as np
import torch
from torch import Tensor

from . import kernels

Mode = Literal["topk", "sum"]
MAX_CHANNELS = 16
DEFAULT_K = 10
DEFAULT_MODE: Mode = kernels.DEFAULT_MODE
# Gaussian-centric kernels: larger tiles split fewer Gaussians across tiles. On a fitted
# 768x512 set (8,000 Gaussians, one thread) 64-px tiles bin in 0.57 ms (32 px: 0.86, 16 px:
# about 1.6) and render forward / backward in 30.0 / 24.6 ms (32 px: 32.1 / 26.3)
TILE = 64


def conics_from_scale_rotation(scales: Tensor, rotations: Tensor) -> Tensor:
    """Inverse covariance (A, B, C) [N,3] of Sigma = R diag(s^2) R^T; differentiable."""
    c, s = torch.cos(rotations), torch.sin(rotations)
    ix = 1.0 / (scales[:, 0] * scales[:, 0])
    iy = 1.0 / (scales[:, 1] * scales[:, 1])
    return torch.stack([c * c * ix + s * s * iy, c * s * (ix - iy), s * s * ix + c * c * iy], dim=-1)


def _check(means: Tensor, colors: Tensor, width: int, height: int, mode: str, k: int) -> None:
    if mode not in ("topk", "sum"):
        raise ValueError(f"unknown render mode {mode!r} (topk or sum)")
    if not 1 <= colors.shape[-1] <= MAX_CHANNELS:
        raise ValueError(f"colors must have 1..{MAX_CHANNELS} channels, got {colors.shape[-1]}")
    if means.shape[0] != colors.shape[0]:
        raise ValueError("means and colors disagree on the Gaussian count")
    if width <= 0 or height <= 0:
        raise ValueError(f"output size must be positive, got {width}x{height}")
    if k < 1:
        raise ValueError("k must be >= 1")


def _planar_out(height: int, width: int, channels: int) -> np.ndarray:
    """An output image [H,W,C] viewing planar [C,H,W] memory (the kernels write every
    pixel, so it starts uninitialised). Planar rows are what the SUM kernel accumulates and
    what the fused loss reads, so neither side copies; torch treats the view as any [H,W,C]."""
    return np.empty((channels, height, width), np.float32).transpose(1, 2, 0)


class _Raster2D(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, conics, colors, width, height, mode_id, k):
        m = np.ascontiguousarray(means.detach().cpu().numpy(), dtype=np.float32)
        q = np.ascontiguousarray(conics.detach().cpu().numpy(), dtype=np.float32)
        c = np.ascontiguousarray(colors.detach().cpu().numpy(), dtype=np.float32)
        offsets, ids, tx, _ty = kernels.bin_gaussians(m, q, width, height, TILE)
        out = _planar_out(height, width, c.shape[1])
        need = ctx.needs_input_grad[0] or ctx.needs_input_grad[1] or ctx.needs_input_grad[2]
        store = need and mode_id == kernels.MODE_TOPK
        top_ids = np.empty((height * width if store else 0, k), np.int32)
        wsum = np.empty(height * width if store else 0, np.float32)
        wcache, woff = kernels._NO_CACHE, kernels._NO_OFFSETS
        if need and mode_id == kernels.MODE_SUM:
            # the forward pass keeps its weights for the backward (unless they are too many)
            woff = kernels.weight_offsets(m, q, width, height, TILE, offsets, ids, tx)
            if woff[-1] <= kernels.WEIGHT_CACHE_MAX:
                wcache = np.empty(max(int(woff[-1]), 1), np.float32)
            else:
                woff = kernels._NO_OFFSETS
        kernels.forward(m, q, c, width, height, TILE, offsets, ids, tx, mode_id, k, out, top_ids, wsum,
                        np.zeros(0, np.float32), nb.get_num_threads(), wcache, woff)
        if need:
            ctx.saved = (m, q, c, width, height, offsets, ids, tx, mode_id, k, out, top_ids, wsum, wcache, woff)
            ctx.devices = (means.device, conics.device, colors.device)
        return torch.from_numpy(out).to(colors.device)

    @staticmethod
    def backward(ctx, grad_out):
        m, q, c, width, height, offsets, ids, tx, mode_id, k, out, top_ids, wsum, wcache, woff = ctx.saved
        g = np.asarray(grad_out.detach().cpu().numpy(), dtype=np.float32)
        # the SUM kernel reads dL/dout planar: free when it arrives as a view of planar
        # memory (the fused loss's gradient does), one copy otherwise
        g = np.ascontiguousarray(g.transpose(2, 0, 1) if mode_id == kernels.MODE_SUM else g)
        gm, gq, gc = kernels.backward(m, q, c, width, height, TILE, offsets, ids, tx, mode_id, k, out, top_ids, wsum, g,
                                      nb.get_num_threads(), wcache, woff)
        dm, dq, dc = ctx.devices
        return torch.from_numpy(gm).to(dm), torch.from_numpy(gq).to(dq), torch.from_numpy(gc).to(dc), None, None, None, None


def rasterize_conics(means: Tensor, conics: Tensor, colors: Tensor, width: int, height: int, *,
                     mode: Mode = DEFAULT_MODE, k: int = DEFAULT_K, backend: str = "auto") -> Tensor:
    """Render Gaussians given in output pixels with conics (A, B, C) [N,3]. Returns [H,W,C]."""
    _check(means, colors, width, height, mode, k)
    if backend == "reference":
        from .reference import render_reference

        return render_reference(means, conics, colors, width, height, mode=mode, k=k)
    if backend == "auto" and mode == "sum" and colors.is_cuda:
        backend = "torch"
    if backend == "torch":
        if mode != "sum":
            raise ValueError("backend='torch' renders mode='sum' only")
        from .torch_sum import rasterize_sum_torch

        return rasterize_sum_torch(means, conics, colors, width, height).to(colors.dtype)
    if backend not in ("auto", "cpu"):
        raise ValueError(f"unknown backend {backend!r} (auto, cpu, torch, reference)")
    mode_id = kernels.MODE_TOPK if mode == "topk" else kernels.MODE_SUM
    out = _Raster2D.apply(means, conics, colors, int(width), int(height), mode_id, int(k))
    return out.to(colors.dtype)


def place(means: Tensor, scales: Tensor, scale: float = 1.0, crop: tuple[int, int, int, int] | None = None
          ) -> tuple[Tensor, Tensor]:
    """Map image-pixel Gaussians to output pixels: multiply by ``scale``, shift by the crop origin."""
    m = means * scale
    if crop is not None:
        m = m - torch.tensor([float(crop[0]), float(crop[1])], dtype=means.dtype, device=means.device)
    return m, scales * scale


def output_size(width: int, height: int, scale: float = 1.0, crop: tuple[int, int, int, int] | None = None
                ) -> tuple[int, int]:
    """(W, H) of the rendered image."""
    if crop is not None:
        return int(crop[2]), int(crop[3])
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


def render_image(means: Tensor, scales: Tensor, rotations: Tensor, colors: Tensor, width: int, height: int, *,
                 mode: Mode = DEFAULT_MODE, k: int = DEFAULT_K, scale: float = 1.0,
                 crop: tuple[int, int, int, int] | None = None, backend: str = "auto") -> Tensor:
    """Render [H', W', C] from Gaussians in a width x height image's pixel frame (see module doc)."""
    ow, oh = output_size(width, height, scale, crop)
    m, s = place(means, scales, scale, crop)
    conics = conics_from_scale_rotation(s, rotations)
    return rasterize_conics(m, conics, colors, ow, oh, mode=mode, k=k, backend=backend)


def contribution(means: Tensor, conics: Tensor, colors: Tensor, width: int, height: int, *,
                 mode: Mode = DEFAULT_MODE, k: int = DEFAULT_K) -> Tensor:
    """Per-Gaussian summed pixel share [N] (normalised weight in topk mode, weight in sum mode)."""
    _check(means, colors, width, height, mode, k)
    m = np.ascontiguousarray(means.detach().cpu().numpy(), dtype=np.float32)
    q = np.ascontiguousarray(conics.detach().cpu().numpy(), dtype=np.float32)
    c = np.ascontiguousarray(colors.detach().cpu().numpy(), dtype=np.float32)
    offsets, ids, tx, _ty = kernels.bin_gaussians(m, q, width, height, TILE)
    out = _planar_out(height, width, c.shape[1])
    stats = np.zeros(m.shape[0], np.float32)
    mode_id = kernels.MODE_TOPK if mode == "topk" else kernels.MODE_SUM
    kernels.forward(m, q, c, width, height, TILE, offsets, ids, tx, mode_id, k, out,
                    np.empty((0, k), np.int32), np.empty(0, np.float32), stats, nb.get_num_threads())
    return torch.from_numpy(stats)
