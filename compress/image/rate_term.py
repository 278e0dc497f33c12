"""A differentiable estimate of the bits of a ``.gsi`` file's shape and colour streams.

Quantisation-aware training adds ``weight * bits / pixels`` to the loss, so the optimiser
trades distortion for bits rather than only for Gaussian count.

For every attribute stream (``sa``, ``su``, ``sv``, ``c0`` .. , see ``quant.attribute_names``)
each Gaussian's parameter is mapped to its *continuous* index x on the file's quantiser
grid (``quant.py``: x = (value - lo) / step, the integer index is round(x)). The symbol
statistics are the current histogram of the integer indices (Laplace-smoothed, held
fixed for a step: ``histograms``); the density model is that histogram blurred by a
Gaussian kernel of ``KERNEL_SIGMA`` index steps,

    p(x) = sum_j P[j] * g(x - j),   g = N(0, KERNEL_SIGMA^2),
    bits(x) = -log2 p(x),

summed over Gaussians and streams. ``p`` is smooth in x, so gradients are exact (checked
against finite differences in float64 by the tests). The gradient moves values towards
the densely used indices, which is what lowers the entropy coder's cost; the real coder
also conditions on contexts (``streams.py``), so this is a proxy for the marginal part.
Positions are not in the proxy (their cost follows the count and spacing).
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch
from torch import Tensor

from compress.uniform import uniform_step

from .quant import QuantSpec, attribute_names, color_forward
from .streams import attribute_bits

KERNEL_SIGMA = 0.75  # index steps; wide enough that every value feels its neighbouring bins
SMOOTHING = 0.5  # Laplace pseudo-count per index of the histograms
_WINDOW = 3  # bins farther than this many sigmas from x are left out of the sum


def _range(spec: QuantSpec, name: str) -> tuple[float, float]:
    if name == "sa":
        return spec.size_lo, spec.size_hi
    if name in ("su", "sv"):
        return -spec.aniso_max, spec.aniso_max
    ch = int(name[1:])
    return spec.color_lo[ch], spec.color_hi[ch]


def continuous_indices(spec: QuantSpec, log_scales: Tensor, rotations: Tensor, colors: Tensor) -> dict[str, Tensor]:
    """Continuous quantiser coordinates {stream: [N]} (index units, differentiable) of the
    shape (log-scales [N,2], rotations [N] radians) and colours [N,C]."""
    a = 0.5 * (log_scales[:, 0] + log_scales[:, 1])
    h = 0.5 * (log_scales[:, 0] - log_scales[:, 1])
    vals = {"sa": a, "su": h * torch.cos(2 * rotations), "sv": h * torch.sin(2 * rotations)}
    coded = color_forward(colors, spec.color_transform)
    for ch in range(colors.shape[1]):
        vals[f"c{ch}"] = coded[:, ch]
    out = {}
    for name in attribute_names(colors.shape[1]):
        lo, hi = _range(spec, name)
        step = float(uniform_step(lo, hi, attribute_bits(spec, name)))
        out[name] = (vals[name] - lo) / step
    return out


def histograms(spec: QuantSpec, idx: dict[str, Tensor]) -> dict[str, Tensor]:
    """Smoothed probabilities [2^bits] (float64, no gradient) of the rounded indices per stream."""
    out = {}
    for name, x in idx.items():
        levels = 1 << attribute_bits(spec, name)
        q = torch.round(x.detach()).clamp(0, levels - 1).long()
        counts = torch.bincount(q, minlength=levels).double() + SMOOTHING
        out[name] = counts / counts.sum()
    return out


def bits_per_value(x: Tensor, probs: Tensor) -> Tensor:
    """-log2 of the blurred histogram ``probs`` [L] at continuous indices ``x`` [N] -> [N] bits."""
    levels = probs.numel()
    span = int(math.ceil(_WINDOW * KERNEL_SIGMA))
    offs = torch.arange(-span, span + 1, device=x.device)
    base = torch.round(x.detach()).long()
    j = base[:, None] + offs[None, :]  # [N, W] bins near x
    inside = (j >= 0) & (j < levels)
    p = probs.to(x.dtype)[j.clamp(0, levels - 1)] * inside
    d = x[:, None] - j.to(x.dtype)
    kern = torch.exp(-0.5 * (d / KERNEL_SIGMA) ** 2) / (KERNEL_SIGMA * math.sqrt(2 * math.pi))
    dens = (p * kern).sum(1)
    return -torch.log2(dens.clamp_min(1e-30))


def rate_bits(idx: dict[str, Tensor], probs: dict[str, Tensor]) -> Tensor:
    """Total estimated bits (scalar) of the attribute streams: sum of :func:`bits_per_value`,
    evaluated with its derivative in one numba pass (float64 inside; the fitter's hot path)."""
    names = list(idx)
    x = torch.cat([idx[k].reshape(-1) for k in names])
    counts = np.array([idx[k].numel() for k in names], np.int64)
    flat = np.ascontiguousarray(torch.cat([probs[k].detach().double().cpu() for k in names]).numpy())
    levels = np.array([probs[k].numel() for k in names], np.int64)
    return _RateBits.apply(x, flat, counts, levels)


@nb.njit(cache=True)
def _bits_and_slopes(x, flat, counts, levels, span, sigma, bits, slopes):
    """bits[i] = -log2 p(x[i]) and slopes[i] = d bits / dx for the values of every stream
    (``counts`` values each, in order) against that stream's ``levels`` bins of ``flat``."""
    norm = 1.0 / (sigma * math.sqrt(2.0 * math.pi))
    inv_s2 = 1.0 / (sigma * sigma)
    i = 0
    start = 0
    for s in range(counts.shape[0]):
        lv = levels[s]
        for _ in range(counts[s]):
            xi = x[i]
            dens = 0.0
            ddens = 0.0
            if math.isfinite(xi):
                b = int(np.rint(xi))
                for j in range(max(b - span, 0), min(b + span, lv - 1) + 1):
                    d = xi - j
                    pk = flat[start + j] * math.exp(-0.5 * d * d * inv_s2) * norm
                    dens += pk
                    ddens -= pk * d * inv_s2
            if dens > 1e-30:
                bits[i] = -math.log2(dens)
                slopes[i] = -ddens / (dens * math.log(2.0))
            else:
                bits[i] = -math.log2(1e-30)
                slopes[i] = 0.0
            i += 1
        start += lv


class _RateBits(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, flat, counts, levels):
        xs = np.ascontiguousarray(x.detach().cpu().numpy(), dtype=np.float64)
        bits = np.empty_like(xs)
        slopes = np.empty_like(xs)
        _bits_and_slopes(xs, flat, counts, levels, int(math.ceil(_WINDOW * KERNEL_SIGMA)), KERNEL_SIGMA, bits, slopes)
        ctx.save_for_backward(torch.from_numpy(slopes).to(device=x.device, dtype=x.dtype))
        return torch.tensor(float(bits.sum()), dtype=x.dtype, device=x.device)

    @staticmethod
    def backward(ctx, g):
        (slopes,) = ctx.saved_tensors
        return slopes * g, None, None, None


def estimate_bits(spec: QuantSpec, log_scales: Tensor, rotations: Tensor, colors: Tensor) -> Tensor:
    """The proxy for the current parameters with their own (fixed) statistics: scalar bits."""
    idx = continuous_indices(spec, log_scales, rotations, colors)
    return rate_bits(idx, histograms(spec, idx))
