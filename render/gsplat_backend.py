"""The CUDA backend: gsplat's projection, SH, tile intersection and rasterization kernels
behind our contract.

Used only when torch sees a GPU (gsplat's kernels JIT-compile on first use). Semantics are
those of :func:`render.projection.project_gaussians`, :func:`render.sh.sh_colors` and
:func:`render.cpu.rasterize_to_pixels`, except the alpha clamp, which is the installed
gsplat's (0.999 before 1.6, see ``render/gsplat_compat.py``):

* :func:`project_gsplat` calls ``fully_fused_projection`` (opacity-aware radii from 1.5;
  1.4's scalar radii are repeated per axis) and :func:`sh_colors_gsplat` calls
  ``spherical_harmonics``; both take the gsplat module as an argument so the argument
  conversion is tested on the CPU against ``gsplat.cuda._torch_impl``
  (``tests/test_gsplat_reference.py``);
* channel counts gsplat was not compiled for are zero-padded to the next supported one;
* stats: ``blend_weight`` is exact by a gradient trick (the image is linear in the
  colours, so d(sum of a one-channel render of zero colours)/d(colour_i) is the sum over
  pixels of alpha_i T_i) and stays on the GPU; ``hit_count`` is computed only when asked,
  from gsplat's per-pixel contributor ids (gsplat >= 1.6) or else from the CPU backend
  run on the same inputs (a CPU render per call).
"""
from __future__ import annotations

import bisect
import inspect
import math

import torch
from torch import Tensor

from .gsplat_compat import check_supported, gsplat_max_alpha, per_axis_radii
from .projection import Projection
from .rasterize import GaussianStats, StatsRequest, stats_wanted

# channel counts compiled into gsplat's rasterizer (gsplat/cuda/csrc/Config.h)
_SUPPORTED_CHANNELS = (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64, 65, 128, 129, 256, 257, 512, 513)


def gsplat_module():
    """The imported gsplat package (a supported version), or RuntimeError without CUDA."""
    if not torch.cuda.is_available():
        raise RuntimeError("the gsplat backend needs a CUDA GPU")
    import gsplat

    check_supported(gsplat.__version__)
    return gsplat


def project_gsplat(
    gs,
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    antialiased: bool = False,
) -> Projection:
    """:func:`render.projection.project_gaussians` through ``gs.fully_fused_projection``.

    Same shapes and rules (means [N,3], quats [N,4] wxyz, scales [N,3], opacities [N],
    viewmats [C,4,4], Ks [C,3,3]); computed in float32, returned in the dtype of ``means``.
    Differentiable w.r.t. means, quats, scales (gsplat's backward) and opacities.
    """
    dtype = means.dtype
    kw = {}
    if "opacities" in inspect.signature(gs.fully_fused_projection).parameters:
        kw["opacities"] = opacities.detach().float().contiguous()  # bounds only (opacity-aware radii)
    radii, means2d, depths, conics, comp = gs.fully_fused_projection(
        means.float().contiguous(), None, quats.float().contiguous(), scales.float().contiguous(),
        viewmats.float().contiguous(), Ks.float().contiguous(), int(width), int(height),
        eps2d=float(eps2d), near_plane=float(near_plane), far_plane=float(far_plane), radius_clip=float(radius_clip),
        packed=False, calc_compensations=bool(antialiased), **kw,
    )
    if radii.ndim == 2:  # gsplat 1.4: one radius per Gaussian
        radii = radii[..., None].expand(-1, -1, 2)
    op = opacities[None, :].expand(viewmats.shape[0], -1)
    if antialiased:
        op = op * comp.to(opacities.dtype)
    return Projection(
        means2d=means2d.to(dtype), conics=conics.to(dtype), depths=depths.to(dtype),
        radii=radii.to(torch.int32).contiguous(), opacities=op,
    )


def sh_colors_gsplat(gs, degree: int, coeffs: Tensor, means: Tensor, campos: Tensor, radii: Tensor) -> Tensor:
    """:func:`render.sh.sh_colors` through ``gs.spherical_harmonics``: max(SH(dir) + 0.5, 0).

    coeffs [N,K,3], means [N,3], campos [C,3], radii [C,N,2] (culled Gaussians, radius 0,
    are skipped and get colour 0.5 clamped, as in gsplat's ``rasterization``). Returns [C,N,3]
    in the dtype of ``coeffs``.
    """
    C = campos.shape[0]
    nb = (degree + 1) ** 2
    dirs = (means[None, :, :] - campos[:, None, :]).float()  # [C,N,3]
    sh = coeffs[:, :nb, :].float()[None].expand(C, -1, -1, -1)  # [C,N,nb,3]
    kw = {}
    if "masks" in inspect.signature(gs.spherical_harmonics).parameters:
        kw["masks"] = (radii > 0).all(dim=-1)
    rgb = gs.spherical_harmonics(int(degree), dirs, sh, **kw)
    return torch.clamp_min(rgb + 0.5, 0.0).to(coeffs.dtype)


def _padded_channels(d: int) -> int:
    i = bisect.bisect_left(_SUPPORTED_CHANNELS, d)
    if i == len(_SUPPORTED_CHANNELS):
        raise ValueError(f"gsplat supports at most {_SUPPORTED_CHANNELS[-1]} channels, got {d}")
    return _SUPPORTED_CHANNELS[i]


def _intersect(means2d, radii, depths, conics, opacities, width, height, tile_size):
    gs = gsplat_module()
    tw, th = math.ceil(width / tile_size), math.ceil(height / tile_size)
    params = inspect.signature(gs.isect_tiles).parameters
    r = radii
    if not per_axis_radii(gs.__version__):
        r = r.max(dim=-1).values  # gsplat 1.4 takes one radius per Gaussian (a square box: same image)
    kw = {}
    if "conics" in params and "opacities" in params:
        kw = {"conics": conics.detach().float(), "opacities": opacities.detach().float()}
    _, isect_ids, flatten_ids = gs.isect_tiles(means2d.detach().float(), r, depths.detach().float(), tile_size, tw, th, **kw)
    offsets = gs.isect_offset_encode(isect_ids, means2d.shape[0], tw, th)
    return offsets, flatten_ids


def rasterize_to_pixels_gsplat(
    proj,
    colors: Tensor,
    width: int,
    height: int,
    *,
    background: Tensor | None = None,
    return_stats: StatsRequest = False,
    tile_size: int = 16,
) -> tuple[Tensor, Tensor, GaussianStats | None]:
    """Composite a :class:`render.projection.Projection` with gsplat (CUDA tensors).

    colors [C,N,D], background [C,D] or None. Returns colours [C,H,W,D], alphas [C,H,W,1]
    and, if asked, per-Gaussian stats summed over cameras (``return_stats`` as in
    :func:`render.rasterize.stats_wanted`). Differentiable w.r.t. the projection's
    means2d, conics, opacities and the colours (gsplat's own backward). The alpha clamp
    is :func:`render.gsplat_compat.gsplat_max_alpha` of the installed version.
    """
    gs = gsplat_module()
    want = stats_wanted(return_stats)
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
    if want:
        stats = _stats(gs, proj, means2d, conics, opac, offsets, flatten_ids, width, height, tile_size, dtype,
                       "hit_count" in want)
    return img, alpha, stats


def _stats(gs, proj, means2d, conics, opac, offsets, flatten_ids, width, height, tile_size, dtype,
           hit_counts: bool) -> GaussianStats:
    C, N = opac.shape
    with torch.enable_grad():
        probe = torch.zeros(C, N, 1, device=opac.device, requires_grad=True)
        img, _ = gs.rasterize_to_pixels(
            means2d.detach(), conics.detach(), probe, opac.detach(), width, height, tile_size, offsets, flatten_ids
        )
        (blend,) = torch.autograd.grad(img.sum(), probe)
    blend = blend[..., 0].sum(0).to(dtype)
    if not hit_counts:
        return GaussianStats(hit_count=None, blend_weight=blend)
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
            max_alpha=gsplat_max_alpha(gs.__version__),
        )
        hits = cpu_stats.hit_count.to(opac.device)
    return GaussianStats(hit_count=hits, blend_weight=blend)


def _camera_slice(flatten_ids: Tensor, offsets: Tensor, c: int, n: int) -> tuple[Tensor, Tensor]:
    """Camera c's tile offsets and intersections, re-based as if it were the only camera."""
    start = int(offsets[c].reshape(-1)[0])
    end = int(offsets[c + 1].reshape(-1)[0]) if c + 1 < offsets.shape[0] else flatten_ids.shape[0]
    return offsets[c : c + 1] - start, flatten_ids[start:end] - c * n
