"""The CUDA backend: gsplat's tile intersection and rasterization kernels behind our contract.

Imported only when torch sees a GPU (``import gsplat`` JIT-compiles its extension
otherwise). Semantics are those of :func:`render.cpu.rasterize_to_pixels`:

* the same projected inputs (our torch projection has gsplat's conventions), so the
  images agree up to float32 rounding (tested by ``tests/test_gsplat_backend.py``);
* channel counts gsplat was not compiled for are zero-padded to the next supported one;
* stats: ``blend_weight`` is exact by a gradient trick (the image is linear in the
  colours, so d(sum of a one-channel render of zero colours)/d(colour_i) is the sum over
  pixels of alpha_i T_i); ``hit_count`` comes from gsplat's per-pixel contributor ids
  (gsplat >= 1.6) and otherwise from the CPU backend run on the same inputs.
"""
from __future__ import annotations

import bisect
import inspect
import math

import torch
from torch import Tensor

from .rasterize import GaussianStats

# channel counts compiled into gsplat's rasterizer (gsplat/cuda/csrc/Config.h)
_SUPPORTED_CHANNELS = (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64, 65, 128, 129, 256, 257, 512, 513)


def _gsplat():
    if not torch.cuda.is_available():
        raise RuntimeError("the gsplat backend needs a CUDA GPU")
    import gsplat

    return gsplat


def _padded_channels(d: int) -> int:
    i = bisect.bisect_left(_SUPPORTED_CHANNELS, d)
    if i == len(_SUPPORTED_CHANNELS):
        raise ValueError(f"gsplat supports at most {_SUPPORTED_CHANNELS[-1]} channels, got {d}")
    return _SUPPORTED_CHANNELS[i]


def _intersect(means2d, radii, depths, conics, opacities, width, height, tile_size):
    gs = _gsplat()
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    params = inspect.signature(gs.isect_tiles).parameters
    r = radii
    if _radii_is_scalar(gs):
        r = r.max(dim=-1).values  # gsplat 1.4 takes one radius per Gaussian (a square box: same image)
    kw = {}
    if "conics" in params and "opacities" in params:
        kw = {"conics": conics.detach().float(), "opacities": opacities.detach().float()}
    _, isect_ids, flatten_ids = gs.isect_tiles(means2d.detach().float(), r, depths.detach().float(), tile_size, tw, th, **kw)
    offsets = gs.isect_offset_encode(isect_ids, means2d.shape[0], tw, th)
    return offsets, flatten_ids


def _radii_is_scalar(gs) -> bool:
    version = getattr(gs, "__version__", "1.5")
    major, minor = (int(x) for x in version.split(".")[:2])
    return (major, minor) < (1, 5)


def rasterize_to_pixels_gsplat(
    proj,
    colors: Tensor,
    width: int,
    height: int,
    *,
    background: Tensor | None = None,
    return_stats: bool = False,
    tile_size: int = 16,
) -> tuple[Tensor, Tensor, GaussianStats | None]:
    """Composite a :class:`render.projection.Projection` with gsplat (CUDA tensors).

    colors [C,N,D], background [C,D] or None. Returns colours [C,H,W,D], alphas [C,H,W,1]
    and, if asked, per-Gaussian stats summed over cameras. Differentiable w.r.t. the
    projection's means2d, conics, opacities and the colours (gsplat's own backward).
    """
    gs = _gsplat()
    C, N, D = colors.shape
    dtype = colors.dtype
    offsets, flatten_ids = _intersect(proj.means2d, proj.radii, proj.depths, proj.conics, proj.opacities, width, height, tile_size)
    Dp = _padded_channels(D)
    cols, bg = colors.float(), None if background is None else background.float()
    if Dp != D:
        cols = torch.cat([cols, cols.new_zeros(C, N, Dp - D)], dim=-1)
        if bg is not None:
            bg = torch.cat([bg, bg.new_zeros(C, Dp - D)], dim=-1)
    means2d, conics, opac = proj.means2d.float(), proj.conics.float(), proj.opacities.float()
    img, alpha = gs.rasterize_to_pixels(means2d, conics, cols, opac, width, height, tile_size, offsets, flatten_ids, backgrounds=bg)
    img = img[..., :D].to(dtype)
    alpha = alpha.to(dtype)
    stats = None
    if return_stats:
        stats = _stats(gs, proj, means2d, conics, opac, offsets, flatten_ids, width, height, tile_size, dtype)
    return img, alpha, stats


def _stats(gs, proj, means2d, conics, opac, offsets, flatten_ids, width, height, tile_size, dtype) -> GaussianStats:
    C, N = opac.shape
    with torch.enable_grad():
        probe = torch.zeros(C, N, 1, device=opac.device, requires_grad=True)
        img, _ = gs.rasterize_to_pixels(
            means2d.detach(), conics.detach(), probe, opac.detach(), width, height, tile_size, offsets, flatten_ids
        )
        (blend,) = torch.autograd.grad(img.sum(), probe)
    blend = blend[..., 0].sum(0).to(dtype)
    hits = None
    if hasattr(gs, "rasterize_num_contributing_gaussians") and hasattr(gs, "rasterize_contributing_gaussian_ids"):
        hits = torch.zeros(N, dtype=torch.int64, device=opac.device)
        for c in range(C):  # one camera at a time: the id tensor is [H, W, max contributors]
            off_c, ids_c = _camera_slice(flatten_ids, offsets, c, N)
            args = (means2d[c : c + 1].detach(), conics[c : c + 1].detach(), opac[c : c + 1].detach(), off_c, ids_c, width, height, tile_size)
            num, _ = gs.rasterize_num_contributing_gaussians(*args)
            ids, _ = gs.rasterize_contributing_gaussian_ids(*args, num)
            hits += torch.bincount(ids[ids >= 0].long() % N, minlength=N)
    else:
        from .cpu import rasterize_to_pixels

        _, _, cpu_stats = rasterize_to_pixels(
            proj.means2d.detach().cpu(), proj.conics.detach().cpu(), torch.zeros(C, N, 1), proj.opacities.detach().cpu(),
            proj.depths.detach().cpu(), proj.radii.detach().cpu(), width, height, return_stats=True, tile_size=tile_size,
        )
        hits = cpu_stats.hit_count.to(opac.device)
    return GaussianStats(hit_count=hits, blend_weight=blend)


def _camera_slice(flatten_ids: Tensor, offsets: Tensor, c: int, n: int) -> tuple[Tensor, Tensor]:
    """Camera c's tile offsets and intersections, re-based as if it were the only camera."""
    start = int(offsets[c].reshape(-1)[0])
    end = int(offsets[c + 1].reshape(-1)[0]) if c + 1 < offsets.shape[0] else flatten_ids.shape[0]
    return offsets[c : c + 1] - start, flatten_ids[start:end] - c * n
