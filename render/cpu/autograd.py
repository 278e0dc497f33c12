"""The CPU backend's differentiable entry point: :func:`rasterize_to_pixels`."""
from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from ..projection import MAX_ALPHA, check_max_alpha
from ..rasterize import GaussianStats, stats_wanted
from .binning import TileBins, bin_gaussians, depth_order
from .kernels import backward_tiles, forward_tiles, reduce_pairs


def _np32(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float32).numpy())


def _gather(flat: np.ndarray, order: np.ndarray, width: int) -> np.ndarray:
    """Rows ``order`` of a [C*N, width] array as contiguous float32."""
    return np.ascontiguousarray(flat.reshape(-1, width)[order])


def _per_gaussian(bins, pair_vals: np.ndarray, order: np.ndarray, C: int, N: int) -> np.ndarray:
    """Sum of ``pair_vals`` [M] over each Gaussian's (tile) pairs, summed over the C cameras:
    [N] float64 (exact for integer counts)."""
    sums = np.empty((len(order), 1), np.float64)
    reduce_pairs(bins.pair_offsets, bins.pair_pos, pair_vals.astype(np.float64)[:, None], sums)
    full = np.zeros(C * N, np.float64)
    full[order] = sums[:, 0]
    return full if C == 1 else full.reshape(C, N).sum(0)


class _RasterizeToPixels(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means2d, conics, colors, opacities, background, depths, radii, width, height, tile_size, want_stats,
                max_alpha):
        C, N, D = colors.shape
        order, cams = depth_order(depths.detach().cpu().numpy(), radii.detach().cpu().numpy())
        xy = _gather(_np32(means2d), order, 2)
        con = _gather(_np32(conics), order, 3)
        op = _gather(_np32(opacities), order, 1)[:, 0].copy()
        col = _gather(_np32(colors), order, D)
        bins = bin_gaussians(xy, con, op, order, cams, C, width, height, tile_size)
        bg = np.zeros((C, D), np.float32) if background is None else _np32(background).reshape(C, D)
        out = np.empty((C, height, width, D), np.float32)
        T = np.empty((C, height, width), np.float32)
        last = np.empty((C, height, width), np.int32)
        M = bins.num_pairs
        pw = np.zeros(M, np.float32)
        ph = np.zeros(M, np.int32)
        forward_tiles(
            bins.tile_offsets, bins.tile_entries, xy, con, op, col, bins.tiles_x, bins.tiles_y, tile_size,
            width, height, bg, out, T, last, pw, ph, np.float32(max_alpha),
        )
        dtype, dev = colors.dtype, colors.device
        out_t = torch.from_numpy(out).to(dev, dtype)
        alpha_t = torch.from_numpy(1.0 - T).to(dev, dtype)[..., None]
        if want_stats:  # one statistic at a time: a large scene's pair arrays are the peak here
            blend_t = torch.from_numpy(_per_gaussian(bins, pw, order, C, N)).to(dev, dtype)
            del pw
            hits_t = torch.from_numpy(np.rint(_per_gaussian(bins, ph, order, C, N)).astype(np.int64)).to(dev)
        else:
            blend_t = torch.zeros(0, dtype=dtype, device=dev)
            hits_t = torch.zeros(0, dtype=torch.int64, device=dev)
        ctx.mark_non_differentiable(blend_t, hits_t)
        ctx.bins = bins
        ctx.arrays = (xy, con, op, col, out, T, last)
        ctx.shape = (C, N, D, width, height, tile_size)
        ctx.max_alpha = max_alpha
        ctx.has_bg = background is not None
        return out_t, alpha_t, blend_t, hits_t

    @staticmethod
    def backward(ctx, v_out, v_alpha, _vb, _vh):
        bins: TileBins = ctx.bins
        xy, con, op, col, out, T, last = ctx.arrays
        C, N, D, width, height, tile_size = ctx.shape
        dtype, dev = v_out.dtype, v_out.device
        g = _np32(v_out)
        ga = _np32(v_alpha)[..., 0]
        M = bins.num_pairs
        K = len(bins.order)
        pair_geo = np.zeros((M, 6), np.float32)
        pair_col = np.zeros((M, D), np.float32)
        backward_tiles(
            bins.tile_offsets, bins.tile_entries, xy, con, op, col, bins.tiles_x, bins.tiles_y, tile_size,
            width, height, out, T, last, g, ga, pair_geo, pair_col, np.float32(ctx.max_alpha),
        )
        geo = np.zeros((K, 6), np.float32)
        vcol = np.zeros((K, D), np.float32)
        reduce_pairs(bins.pair_offsets, bins.pair_pos, pair_geo, geo)
        reduce_pairs(bins.pair_offsets, bins.pair_pos, pair_col, vcol)

        def scatter(vals: np.ndarray, width_: int) -> Tensor:
            full = np.zeros((C * N, width_), np.float32)
            full[bins.order] = vals
            return torch.from_numpy(full.reshape(C, N, width_)).to(dev, dtype)

        v_means2d = scatter(geo[:, 0:2], 2) if ctx.needs_input_grad[0] else None
        v_conics = scatter(geo[:, 2:5], 3) if ctx.needs_input_grad[1] else None
        v_colors = scatter(vcol, D) if ctx.needs_input_grad[2] else None
        v_opac = scatter(geo[:, 5:6], 1)[..., 0] if ctx.needs_input_grad[3] else None
        v_bg = None
        if ctx.has_bg and ctx.needs_input_grad[4]:
            v_bg = torch.from_numpy((T[..., None] * g).sum(axis=(1, 2), dtype=np.float64)).to(dev, dtype)
        return v_means2d, v_conics, v_colors, v_opac, v_bg, None, None, None, None, None, None, None


def rasterize_to_pixels(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    *,
    background: Tensor | None = None,
    return_stats: bool | str = False,
    tile_size: int = 8,
    max_alpha: float = MAX_ALPHA,
) -> tuple[Tensor, Tensor, GaussianStats | None]:
    """Composite screen-space Gaussians on the CPU (tile-based numba kernels).

    means2d [C,N,2] px, conics [C,N,3] (A,B,C), colors [C,N,D] (any D >= 1),
    opacities [C,N], depths [C,N] (sort key), radii [C,N,2] int (0 = culled),
    background [C,D] or None (black). Returns colours [C,H,W,D], alphas [C,H,W,1] and,
    if asked, per-Gaussian stats summed over cameras (``return_stats``: True or "all" for
    both, "blend_weight" for blend weights only). max_alpha: the clamp on one Gaussian's
    alpha (0.99; 0.999 reproduces gsplat < 1.6). Differentiable w.r.t. means2d,
    conics, colors, opacities and background; computed in float32, returned in the
    dtype of ``colors``.
    """
    if colors.ndim != 3 or means2d.shape[:2] != colors.shape[:2]:
        raise ValueError(f"colors must be [C,N,D] matching means2d [C,N,2]; got {tuple(colors.shape)} and {tuple(means2d.shape)}")
    if colors.shape[-1] < 1:
        raise ValueError("colors need at least one channel")
    if width < 1 or height < 1:
        raise ValueError(f"image size must be positive, got {width}x{height}")
    if tile_size < 1:
        raise ValueError(f"tile_size must be positive, got {tile_size}")
    check_max_alpha(max_alpha)
    want = stats_wanted(return_stats)
    out, alpha, blend, hits = _RasterizeToPixels.apply(
        means2d, conics, colors, opacities, background, depths, radii, int(width), int(height), int(tile_size),
        bool(want), float(max_alpha),
    )
    stats = None
    if want:
        stats = GaussianStats(hit_count=hits if "hit_count" in want else None, blend_weight=blend)
    return out, alpha, stats
