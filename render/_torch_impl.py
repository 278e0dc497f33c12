"""Pure-PyTorch float64 brute-force reference renderer. Used only by tests.

Written for clarity, not speed: every Gaussian is evaluated at every pixel, matrices are
built explicitly, and compositing uses a cumulative product. It follows the same rules
as the fast backends (see ``render/projection.py`` and ``docs/renderer.md``):
alpha = min(max_alpha, opacity * exp(-sigma)) (0.99 unless told); contributions with alpha < 1/255 are skipped;
a pixel stops *before* the Gaussian that would bring its transmittance to <= 1e-4.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .projection import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_THRESHOLD


def composite_reference(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    background: Tensor | None = None,
    max_alpha: float = MAX_ALPHA,
):
    """Dense compositing for one camera.

    means2d [N,2], conics [N,3], colors [N,D], opacities [N], depths [N], radii [N,2];
    max_alpha clamps one Gaussian's alpha.
    Returns colour [H,W,D], alpha [H,W,1], blend weight per Gaussian [N], hit count [N].
    """
    n, d = colors.shape
    vis = (radii > 0).all(dim=-1)
    order = torch.argsort(torch.where(vis, depths, torch.full_like(depths, float("inf"))), stable=True)
    order = order[vis[order]]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means2d.dtype), torch.arange(width, dtype=means2d.dtype), indexing="ij")
    px, py = xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5  # [P]
    mu, con, op, col = means2d[order], conics[order], opacities[order], colors[order]
    dx = mu[:, 0:1] - px[None, :]
    dy = mu[:, 1:2] - py[None, :]
    sigma = 0.5 * (con[:, 0:1] * dx * dx + con[:, 2:3] * dy * dy) + con[:, 1:2] * dx * dy
    alpha = torch.clamp_max(op[:, None] * torch.exp(-sigma), max_alpha)  # [M,P]
    ok = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    a = torch.where(ok, alpha, torch.zeros_like(alpha))
    one_minus = 1.0 - a
    T_after = torch.cumprod(one_minus, dim=0)
    T_before = torch.cat([torch.ones_like(T_after[:1]), T_after[:-1]], dim=0)
    keep = ok & (T_after > TRANSMITTANCE_THRESHOLD)
    w = torch.where(keep, a * T_before, torch.zeros_like(a))  # [M,P]
    out = w.T @ col  # [P,D]
    T_final = torch.prod(torch.where(keep, one_minus, torch.ones_like(one_minus)), dim=0)
    if background is not None:
        out = out + T_final[:, None] * background[None, :]
    blend = torch.zeros(n, dtype=means2d.dtype).index_add(0, order, w.sum(dim=1))
    hits = torch.zeros(n, dtype=torch.int64).index_add(0, order, keep.sum(dim=1))
    return out.reshape(height, width, d), (1.0 - T_final).reshape(height, width, 1), blend, hits
