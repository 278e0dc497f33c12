"""The one rendering entry point: :func:`rasterize`.

    out = rasterize(scene, cameras, sh_degree=None, background=None,
                    mode="RGB" | "RGB+D" | "features", backend="auto")

Backends share one contract (:func:`rasterize_projected`): screen-space Gaussians in,
composited images out, differentiable w.r.t. means2d, conics, colours and opacities.

* ``"cpu"``: tile-based numba kernels with a hand-written backward (``render/cpu/``).
* ``"gsplat"``: gsplat's CUDA kernels (projection, SH and compositing), used when tensors
  live on a CUDA device.
* ``"reference"``: the dense float64 brute force of ``render/_torch_impl.py`` (tests, tiny scenes).
* ``"auto"``: gsplat for CUDA tensors when it is installed, else cpu.

Alpha clamp: one Gaussian's alpha is ``min(max_alpha, opacity * exp(-sigma))``. gsplat
1.4-1.5 clamp at 0.999, gsplat >= 1.6 at 0.99 (``render/gsplat_compat.py``). The cpu and
reference backends take ``max_alpha`` (default 0.99); the gsplat backend uses the
installed version's clamp and refuses any other.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Sequence

import torch
from torch import Tensor

from splat.camera import Camera, stack_cameras
from splat.scene import GaussianScene

from .projection import MAX_ALPHA, Projection, check_max_alpha, project_gaussians
from .sh import sh_colors_split

Mode = Literal["RGB", "RGB+D", "features"]
CPU_TILE_SIZE = 8  # measured: 8x8 tiles halve the cpu blend time of 16x16 (more, tighter pairs)
Backend = Literal["auto", "cpu", "gsplat", "reference"]
StatsRequest = bool | Literal["all", "blend_weight"]
_STAT_SETS = {"all": frozenset({"blend_weight", "hit_count"}), "blend_weight": frozenset({"blend_weight"})}


@dataclass
class GaussianStats:
    """Per-Gaussian statistics accumulated over every pixel of every camera.

    hit_count [N] int64: pixels where the Gaussian contributed (alpha >= 1/255, before
    the pixel saturated); None when only blend weights were asked for. blend_weight [N]:
    sum over those pixels of alpha * T, the accumulated blend weight (opacity x falloff x
    transmittance) that significance pruning ranks by.
    """

    hit_count: Tensor | None
    blend_weight: Tensor


def stats_wanted(return_stats: StatsRequest) -> frozenset[str]:
    """The stats a ``return_stats`` value asks for: False -> none, True or "all" -> blend
    weights and hit counts, "blend_weight" -> blend weights only."""
    if return_stats is False or return_stats is None:
        return frozenset()
    if return_stats is True:
        return _STAT_SETS["all"]
    if isinstance(return_stats, str) and return_stats in _STAT_SETS:
        return _STAT_SETS[return_stats]
    raise ValueError(f"return_stats must be False, True, 'all' or 'blend_weight', got {return_stats!r}")


def resolve_max_alpha(backend: str, max_alpha: float | None) -> float:
    """The alpha clamp a backend renders with: gsplat's own (an explicit other value is an
    error), else ``max_alpha`` or 0.99."""
    if backend == "gsplat":
        from .gsplat_compat import gsplat_max_alpha, installed_gsplat_version

        version = installed_gsplat_version()
        own = gsplat_max_alpha(version)
        if max_alpha is not None and float(max_alpha) != own:
            raise ValueError(f"gsplat {version} clamps alpha at {own}; max_alpha={max_alpha} needs backend='cpu'")
        return own
    return check_max_alpha(MAX_ALPHA if max_alpha is None else max_alpha)


@dataclass
class RenderOutput:
    """colors [C,H,W,D] (background composited), alphas [C,H,W,1],
    depths [C,H,W,1] expected camera-space depth (only for mode "RGB+D"; 0 where alpha is 0),
    stats (only when requested), radii [C,N,2] int32 (0 = culled in that view)."""

    colors: Tensor
    alphas: Tensor
    depths: Tensor | None = None
    stats: GaussianStats | None = None
    radii: Tensor | None = None
    meta: dict = field(default_factory=dict)


def _as_cameras(cameras: Camera | Sequence[Camera]) -> list[Camera]:
    cams = [cameras] if isinstance(cameras, Camera) else list(cameras)
    if not cams:
        raise ValueError("rasterize() needs at least one camera")
    w, h = cams[0].width, cams[0].height
    if any(c.width != w or c.height != h for c in cams):
        raise ValueError("all cameras in one rasterize() call must share width and height")
    return cams


def _gsplat_available(device: torch.device) -> bool:
    if device.type != "cuda" or not torch.cuda.is_available():
        return False
    try:
        import gsplat  # noqa: F401  (imported only with CUDA: without it, gsplat tries to JIT-compile)
    except Exception:
        return False
    return True


def resolve_backend(backend: Backend, device: torch.device) -> str:
    if backend == "auto":
        return "gsplat" if _gsplat_available(device) else "cpu"
    if backend == "gsplat" and not _gsplat_available(device):
        raise RuntimeError("backend='gsplat' needs CUDA tensors and the gsplat package (pip install 'splatkit[cuda]')")
    if backend not in ("cpu", "gsplat", "reference"):
        raise ValueError(f"unknown backend {backend!r} (auto, cpu, gsplat, reference)")
    return backend


def rasterize_projected(
    proj: Projection,
    colors: Tensor,
    width: int,
    height: int,
    *,
    background: Tensor | None = None,
    backend: str = "cpu",
    return_stats: StatsRequest = False,
    tile_size: int | None = None,
    max_alpha: float | None = None,
) -> tuple[Tensor, Tensor, GaussianStats | None]:
    """Composite projected Gaussians.

    colors [C,N,D]; background [C,D] or None (black). Returns colours [C,H,W,D],
    alphas [C,H,W,1] and, if asked, per-Gaussian stats summed over the C cameras
    (see :func:`stats_wanted`). tile_size: None picks the backend's best (cpu 8,
    gsplat 16); the image does not depend on it. max_alpha: see :func:`resolve_max_alpha`.
    """
    amax = resolve_max_alpha(backend, max_alpha)
    want = stats_wanted(return_stats)
    if backend == "reference":
        from ._torch_impl import composite_reference

        outs, alphas, blends, hits = [], [], [], []
        for i in range(colors.shape[0]):
            o, a, b, h = composite_reference(
                proj.means2d[i], proj.conics[i], colors[i], proj.opacities[i], proj.depths[i], proj.radii[i],
                width, height, None if background is None else background[i], max_alpha=amax,
            )
            outs.append(o), alphas.append(a), blends.append(b), hits.append(h)
        stats = None
        if want:
            hit = torch.stack(hits).sum(0) if "hit_count" in want else None
            stats = GaussianStats(hit, torch.stack(blends).sum(0))
        return torch.stack(outs), torch.stack(alphas), stats
    if backend == "cpu":
        from .cpu import rasterize_to_pixels

        return rasterize_to_pixels(
            proj.means2d, proj.conics, colors, proj.opacities, proj.depths, proj.radii, width, height,
            background=background, return_stats=return_stats, tile_size=tile_size or CPU_TILE_SIZE, max_alpha=amax,
        )
    if backend == "gsplat":
        from .gsplat_backend import rasterize_to_pixels_gsplat

        return rasterize_to_pixels_gsplat(
            proj, colors, width, height, background=background, return_stats=return_stats, tile_size=tile_size or 16
        )
    raise ValueError(f"unknown backend {backend!r}")


def rasterize(
    scene: GaussianScene,
    cameras: Camera | Sequence[Camera],
    *,
    sh_degree: int | None = None,
    background: Tensor | Sequence[float] | None = None,
    mode: Mode = "RGB",
    features: Tensor | None = None,
    backend: Backend = "auto",
    return_stats: StatsRequest = False,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    antialiased: bool = False,
    tile_size: int | None = None,
    max_alpha: float | None = None,
) -> RenderOutput:
    """Render ``scene`` from one or more cameras (all of one size).

    mode "RGB": view-dependent colour from SH (degree ``min(sh_degree, scene.sh_degree)``),
    ``max(SH + 0.5, 0)`` as gsplat does. "RGB+D": the same plus expected depth.
    "features": composite ``features`` [N,D] (any D >= 1) or [C,N,D] instead of colour.
    background: [D] or [C,D], default black. Differentiable w.r.t. every scene tensor
    (and ``features``) on the cpu, gsplat and reference backends.
    return_stats: False, True / "all" (blend weights and hit counts) or "blend_weight"
    (cheaper: on gsplat < 1.6 hit counts need a CPU render). max_alpha: the alpha clamp,
    default 0.99 on cpu/reference and the installed gsplat's own on gsplat.
    """
    cams = _as_cameras(cameras)
    width, height = cams[0].width, cams[0].height
    dev, dtype = scene.means.device, scene.means.dtype
    backend_name = resolve_backend(backend, dev)
    if backend_name == "reference":
        scene = scene.to(dtype=torch.float64)
        if features is not None:
            features = features.to(torch.float64)
        dtype = torch.float64
    viewmats, Ks = stack_cameras(cams, dtype=dtype, device=dev)
    C, N = len(cams), len(scene)

    fused = backend_name == "gsplat"  # gsplat's own projection and SH kernels
    if fused:
        from .gsplat_backend import gsplat_module, project_gsplat, sh_colors_gsplat
    if mode in ("RGB", "RGB+D"):
        deg = scene.sh_degree if sh_degree is None else min(int(sh_degree), scene.sh_degree)
        campos = torch.linalg.inv(viewmats)[:, :3, 3]
        if not fused:
            colors = sh_colors_split(deg, scene.sh_dc, scene.sh_rest, scene.means, campos)  # [C,N,3]
    elif mode == "features":
        if features is None:
            raise ValueError("mode='features' needs features [N,D] or [C,N,D]")
        colors = features.to(dtype=dtype) if features.ndim == 3 else features.to(dtype=dtype)[None].expand(C, -1, -1)
        if colors.shape[:2] != (C, N):
            raise ValueError(f"features must be [N,D] or [C,N,D] with N={N}, C={C}; got {tuple(features.shape)}")
    else:
        raise ValueError(f"unknown mode {mode!r} (RGB, RGB+D, features)")

    if fused:
        proj = project_gsplat(
            gsplat_module(), scene.means, scene.quats, scene.scales, scene.opacities, viewmats, Ks, width, height,
            eps2d=eps2d, near_plane=near_plane, far_plane=far_plane, antialiased=antialiased,
        )
        if mode in ("RGB", "RGB+D"):
            colors = sh_colors_gsplat(gsplat_module(), deg, scene.sh_coeffs, scene.means, campos, proj.radii)
    elif backend_name == "cpu" and not antialiased and dev.type == "cpu":
        from .cpu.projection import project_gaussians_fused

        proj = project_gaussians_fused(
            scene.means, scene.quats, scene.scales, scene.opacities, viewmats, Ks, width, height,
            eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
        )
    else:
        proj = project_gaussians(
            scene.means, scene.quats, scene.scales, scene.opacities, viewmats, Ks, width, height,
            eps2d=eps2d, near_plane=near_plane, far_plane=far_plane, antialiased=antialiased,
        )
    if mode == "RGB+D":
        colors = torch.cat([colors, proj.depths[..., None]], dim=-1)

    D = colors.shape[-1]
    bg = None
    if background is not None:
        bg = torch.as_tensor(background, dtype=dtype, device=dev)
        if bg.ndim == 1:
            bg = bg[None].expand(C, -1)
        if mode == "RGB+D":
            bg = torch.cat([bg, torch.zeros(C, 1, dtype=dtype, device=dev)], dim=-1)
        if tuple(bg.shape) != (C, D):
            raise ValueError(f"background must have {D if mode != 'RGB+D' else D - 1} channels")

    img, alpha, stats = rasterize_projected(
        proj, colors.contiguous(), width, height, background=bg, backend=backend_name,
        return_stats=return_stats, tile_size=tile_size, max_alpha=max_alpha,
    )
    depths = None
    if mode == "RGB+D":
        depth_acc = img[..., -1:]
        img = img[..., :-1]
        depths = torch.where(alpha > 0, depth_acc / alpha.clamp_min(1e-10), torch.zeros_like(depth_acc))
    return RenderOutput(colors=img, alphas=alpha, depths=depths, stats=stats, radii=proj.radii, meta={"backend": backend_name})
