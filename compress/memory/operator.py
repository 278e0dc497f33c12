"""Frozen-geometry rendering as a sparse linear operator.

With the geometry fixed, compositing per-Gaussian channels is linear in the channels:
``image[p] = sum_n W[p, n] * values[n]`` with ``W[p, n] = alpha_n(p) * T_n(p)`` (the blend
weight). Distillation re-renders the same views hundreds of times, so building W once
per view and then using sparse matrix products makes every step (and its backward,
W^T @ grad) cheap and independent of the number of Gaussians and of channels.

W follows the renderer's rules exactly (``render/projection.py``): depth order, alpha =
min(0.99, opacity * exp(-sigma)), contributions below 1/255 skipped, a pixel stops
before the Gaussian that would bring its transmittance to <= 1e-4, zero background.
Tests check ``W @ values`` against ``render.rasterize(mode="features")``.
"""
from __future__ import annotations

import warnings

import numba
import numpy as np
import torch
from torch import Tensor

from render import project_gaussians
from render.projection import ALPHA_THRESHOLD, MAX_ALPHA, TRANSMITTANCE_THRESHOLD
from splat.camera import Camera, stack_cameras
from splat.scene import GaussianScene

MAX_ALPHA_C = MAX_ALPHA
ALPHA_C = ALPHA_THRESHOLD
T_STOP_C = TRANSMITTANCE_THRESHOLD


@numba.njit(cache=True, parallel=True)
def _blend_pixels(mu, con, op, tile_ptr, tile_idx, tiles_x, tile, width, height, counts, out_g, out_w, fill):
    """Per pixel: walk the tile's depth-sorted candidates, composite like the renderer, and
    either count the contributions (fill=False) or write them (fill=True) after counts[p]."""
    npix = width * height
    for p in numba.prange(npix):
        y = p // width
        x = p - y * width
        t = (y // tile) * tiles_x + (x // tile)
        px = x + 0.5
        py = y + 0.5
        T = 1.0
        k = 0
        base = counts[p] if fill else 0
        for j in range(tile_ptr[t], tile_ptr[t + 1]):
            g = tile_idx[j]
            dx = mu[g, 0] - px
            dy = mu[g, 1] - py
            sigma = 0.5 * (con[g, 0] * dx * dx + con[g, 2] * dy * dy) + con[g, 1] * dx * dy
            if sigma < 0.0:
                continue
            a = min(MAX_ALPHA_C, op[g] * np.exp(-sigma))
            if a < ALPHA_C:
                continue
            t_next = T * (1.0 - a)
            if t_next <= T_STOP_C:
                break
            if fill:
                out_g[base + k] = g
                out_w[base + k] = a * T
            k += 1
            T = t_next
        if not fill:
            counts[p] = k


@torch.no_grad()
def blend_operator(scene: GaussianScene, camera: Camera, *, tile: int = 8) -> Tensor:
    """The blend-weight matrix W [H*W, N] of one camera (sparse CSR, float32).

    Gaussians are projected (float64), depth-sorted and binned into ``tile`` x ``tile``
    pixel blocks by their screen extent (the projection's radii, beyond which alpha <
    1/255); a numba kernel then composites every pixel front to back, exactly like the
    renderer, recording each contribution's blend weight alpha * T.
    """
    s = scene.detach().to(dtype=torch.float64)
    viewmats, Ks = stack_cameras([camera], dtype=torch.float64)
    p = project_gaussians(s.means, s.quats, s.scales, s.opacities, viewmats, Ks, camera.width, camera.height)
    vis = (p.radii[0] > 0).all(dim=-1)
    idx = vis.nonzero()[:, 0]
    order = idx[torch.argsort(p.depths[0, idx], stable=True)]
    mu, con, op = p.means2d[0, order], p.conics[0, order], p.opacities[0, order]
    rad = p.radii[0, order].double()
    W, H = camera.width, camera.height
    tiles_x, tiles_y = -(-W // tile), -(-H // tile)
    # tile ranges each Gaussian's box [mu - r, mu + r] touches (pixel centres at +0.5)
    tx0 = torch.clamp(torch.floor((mu[:, 0] - rad[:, 0]) / tile), 0, tiles_x - 1).long()
    tx1 = torch.clamp(torch.floor((mu[:, 0] + rad[:, 0]) / tile), 0, tiles_x - 1).long()
    ty0 = torch.clamp(torch.floor((mu[:, 1] - rad[:, 1]) / tile), 0, tiles_y - 1).long()
    ty1 = torch.clamp(torch.floor((mu[:, 1] + rad[:, 1]) / tile), 0, tiles_y - 1).long()
    lists = []
    for ty in range(tiles_y):
        in_y = (ty0 <= ty) & (ty1 >= ty)
        for tx in range(tiles_x):
            lists.append((in_y & (tx0 <= tx) & (tx1 >= tx)).nonzero()[:, 0])
    tile_ptr = np.zeros(len(lists) + 1, np.int64)
    tile_ptr[1:] = np.cumsum([len(li) for li in lists])
    tile_idx = torch.cat(lists).numpy().astype(np.int64) if lists else np.zeros(0, np.int64)
    mu_n, con_n, op_n = mu.numpy(), con.numpy(), op.numpy()
    counts = np.zeros(W * H, np.int64)
    dummy_g, dummy_w = np.zeros(1, np.int64), np.zeros(1, np.float64)
    _blend_pixels(mu_n, con_n, op_n, tile_ptr, tile_idx, tiles_x, tile, W, H, counts, dummy_g, dummy_w, False)
    ptr = np.zeros(W * H + 1, np.int64)
    ptr[1:] = np.cumsum(counts)
    out_g = np.zeros(int(ptr[-1]), np.int64)
    out_w = np.zeros(int(ptr[-1]), np.float64)
    _blend_pixels(mu_n, con_n, op_n, tile_ptr, tile_idx, tiles_x, tile, W, H, ptr[:-1].copy(), out_g, out_w, True)
    cols = order[torch.from_numpy(out_g)]
    with warnings.catch_warnings():  # "sparse CSR support is in beta": we use only matmul and transpose
        warnings.simplefilter("ignore", UserWarning)
        return torch.sparse_csr_tensor(torch.from_numpy(ptr), cols, torch.from_numpy(out_w).float(),
                                       (H * W, len(scene)), check_invariants=False)


class _SparseApply(torch.autograd.Function):
    @staticmethod
    def forward(ctx, op: Tensor, op_t: Tensor, values: Tensor) -> Tensor:
        ctx.op_t = op_t
        return op @ values

    @staticmethod
    def backward(ctx, grad: Tensor):
        return None, None, ctx.op_t @ grad.contiguous()


class BlendOperator:
    """W [H*W, N] and its transpose (both CSR) for one camera; ``apply`` renders channels."""

    def __init__(self, scene: GaussianScene, camera: Camera, tile: int = 8) -> None:
        self.width, self.height = camera.width, camera.height
        self.op = blend_operator(scene, camera, tile=tile)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            self.op_t = self.op.to_sparse_coo().t().coalesce().to_sparse_csr()

    @property
    def nnz(self) -> int:
        return int(self.op.values().numel())

    def apply(self, values: Tensor) -> Tensor:
        """values [N,c] -> image [H,W,c] with zero background (differentiable in values)."""
        v = values.to(torch.float32).contiguous()
        return _SparseApply.apply(self.op, self.op_t, v).reshape(self.height, self.width, v.shape[-1])
