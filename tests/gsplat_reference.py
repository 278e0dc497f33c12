"""gsplat's rendering pipeline on the CPU, from gsplat's own torch code plus its kernel rules.

``gsplat.cuda._torch_impl`` (plain torch; importable without CUDA) gives the projection and
SH. What it lacks is written here from gsplat 1.5.3's CUDA sources, not from ours:

* :func:`kernel_radii`: ``ProjectionEWA3DGSFused.cu`` (opacity-aware extent, culling);
* :func:`composite`: ``RasterizeToPixels3DGSFwd.cu``, one pixel's loop vectorised over
  pixels (alpha = min(max_alpha, o exp(-sigma)); skip when sigma < 0 or alpha < 1/255;
  stop *before* the Gaussian that takes T to <= 1e-4), Gaussians in depth order;
* :class:`TorchGsplat`: the ``fully_fused_projection`` / ``spherical_harmonics`` API our
  gsplat backend calls, answered by the two above, so the backend's argument conversion
  runs on the CPU.

Everything is differentiable by autograd (the radii are not, as in gsplat).
"""
from __future__ import annotations

import functools
import inspect
import math

import pytest
import torch
from torch import Tensor

gsplat = pytest.importorskip("gsplat", reason="gsplat is not installed (pip install -e '.[test]')")
from gsplat.cuda import _torch_impl as gti  # noqa: E402

ALPHA_THRESHOLD = 1.0 / 255.0


def kernel_radii(means2d: Tensor, cov2d: Tensor, depths: Tensor, opacities: Tensor | None, width: int, height: int,
                 near_plane: float, far_plane: float, radius_clip: float = 0.0) -> Tensor:
    """Radii [C,N,2] int32 by the 1.5.3 kernel's rule; cov2d [C,N,2,2] with eps2d added, opacities [C,N]."""
    with torch.no_grad():
        det = cov2d[..., 0, 0] * cov2d[..., 1, 1] - cov2d[..., 0, 1] * cov2d[..., 1, 0]
        valid = (depths >= near_plane) & (depths <= far_plane) & (det > 0)
        extend = torch.full_like(depths, 3.33)
        if opacities is not None:
            valid &= opacities >= ALPHA_THRESHOLD
            ratio = torch.clamp_min(opacities, ALPHA_THRESHOLD) / ALPHA_THRESHOLD
            extend = torch.minimum(extend, torch.sqrt(2.0 * torch.log(ratio)))
        rx = torch.ceil(extend * torch.sqrt(cov2d[..., 0, 0].clamp_min(0)))
        ry = torch.ceil(extend * torch.sqrt(cov2d[..., 1, 1].clamp_min(0)))
        valid &= ~((rx <= radius_clip) & (ry <= radius_clip))
        mx, my = means2d[..., 0], means2d[..., 1]
        valid &= ~((mx + rx <= 0) | (mx - rx >= width) | (my + ry <= 0) | (my - ry >= height))
        r = torch.stack([rx, ry], -1)
        return torch.where(valid[..., None], r, torch.zeros_like(r)).to(torch.int32)


def project(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, viewmats: Tensor, Ks: Tensor,
            width: int, height: int, *, eps2d: float = 0.3, near_plane: float = 0.01, far_plane: float = 1e10,
            antialiased: bool = False, radius_clip: float = 0.0) -> dict[str, Tensor]:
    """gsplat's projection: means2d, conics, depths, compensations (from ``_fully_fused_projection``),
    torch_radii (its 3.33-sigma radii), radii (the kernel's opacity-aware ones), opacities [C,N]."""
    covars, _ = gti._quat_scale_to_covar_preci(quats, scales, compute_covar=True, compute_preci=False)
    radii_t, means2d, depths, conics, comp = gti._fully_fused_projection(
        means, covars, viewmats, Ks, width, height, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
        calc_compensations=True,
    )
    means_c, covars_c = gti._world_to_cam(means, covars, viewmats)
    _, cov2d = gti._persp_proj(means_c, covars_c, Ks, width, height)
    cov2d = cov2d + eps2d * torch.eye(2, dtype=cov2d.dtype)
    op = opacities[None].expand_as(depths)
    if antialiased:
        op = op * comp
    radii = kernel_radii(means2d.detach(), cov2d.detach(), depths.detach(), op.detach(), width, height, near_plane,
                         far_plane, radius_clip)
    return {"means2d": means2d, "conics": conics, "depths": depths, "compensations": comp, "torch_radii": radii_t,
            "radii": radii, "opacities": op}


def sh_colors(degree: int, coeffs: Tensor, means: Tensor, campos: Tensor) -> Tensor:
    """gsplat's ``rasterization()`` colours: clamp_min(SH(dir) + 0.5, 0) [C,N,3]; coeffs [N,K,3]."""
    C = campos.shape[0]
    dirs = means[None] - campos[:, None]
    nb = (degree + 1) ** 2
    sh = gti._spherical_harmonics(degree, dirs, coeffs[:, :nb][None].expand(C, -1, -1, -1))
    return torch.clamp_min(sh + 0.5, 0.0)


def composite_pixels(px: Tensor, py: Tensor, order: list[int], means2d: Tensor, conics: Tensor, colors: Tensor,
                     opacities: Tensor, max_alpha: float) -> tuple[Tensor, Tensor]:
    """The forward kernel's per-pixel loop over the Gaussians ``order`` (front to back), for
    the pixel centres (px, py) [P] at once. Returns colour [P,D] and final transmittance [P]."""
    T = torch.ones_like(px)
    done = torch.zeros_like(px, dtype=torch.bool)
    out = torch.zeros(px.shape[0], colors.shape[1], dtype=colors.dtype)
    for g in order:
        dx, dy = means2d[g, 0] - px, means2d[g, 1] - py
        c = conics[g]
        sigma = 0.5 * (c[0] * dx * dx + c[2] * dy * dy) + c[1] * dx * dy
        alpha = torch.clamp_max(opacities[g] * torch.exp(-sigma), max_alpha)
        skip = (sigma < 0) | (alpha < ALPHA_THRESHOLD) | done
        next_T = T * (1.0 - alpha)
        stop = ~skip & (next_T <= 1e-4)
        use = ~skip & ~stop
        out = out + torch.where(use, alpha * T, torch.zeros_like(T))[:, None] * colors[g][None]
        T = torch.where(use, next_T, T)
        done = done | stop
    return out, T


def composite(means2d: Tensor, conics: Tensor, colors: Tensor, opacities: Tensor, depths: Tensor, radii: Tensor,
              width: int, height: int, max_alpha: float, background: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """One camera, every pixel at once, Gaussians in depth order. means2d [N,2], conics [N,3],
    colors [N,D], opacities [N], depths [N], radii [N,2]. Returns colours [H,W,D], alphas [H,W,1]."""
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means2d.dtype), torch.arange(width, dtype=means2d.dtype),
                            indexing="ij")
    listed = torch.nonzero((radii > 0).all(-1)).flatten()
    order = listed[torch.argsort(depths.detach()[listed], stable=True)].tolist()
    out, T = composite_pixels(xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5, order, means2d, conics, colors, opacities,
                              max_alpha)
    if background is not None:
        out = out + T[:, None] * background[None]
    return out.reshape(height, width, -1), (1.0 - T).reshape(height, width, 1)


def render(means: Tensor, quats: Tensor, scales: Tensor, opacities: Tensor, coeffs: Tensor, sh_degree: int,
           viewmats: Tensor, Ks: Tensor, width: int, height: int, max_alpha: float,
           background: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """The whole pipeline, like gsplat's ``rasterization()`` (classic mode): [C,H,W,3], [C,H,W,1]."""
    p = project(means, quats, scales, opacities, viewmats, Ks, width, height)
    campos = torch.linalg.inv(viewmats)[:, :3, 3]
    colors = sh_colors(sh_degree, coeffs, means, campos)
    outs = [composite(p["means2d"][c], p["conics"][c], colors[c], p["opacities"][c], p["depths"][c], p["radii"][c],
                      width, height, max_alpha, background) for c in range(viewmats.shape[0])]
    return torch.stack([o[0] for o in outs]), torch.stack([o[1] for o in outs])


def _checked(fn):
    """Bind every call to the installed gsplat's real signature of the same name first, so a
    call the real API would refuse fails here (skipped when mimicking 1.4)."""
    real = inspect.signature(getattr(gsplat, fn.__name__))

    @functools.wraps(fn)
    def call(self, *args, **kwargs):
        if not self.__version__.startswith("1.4."):
            real.bind(*args, **kwargs)
        return fn(self, *args, **kwargs)

    return call


class TorchGsplat:
    """The slice of gsplat's public API that ``render/gsplat_backend.py`` calls, on the CPU:
    projection, SH, tile intersection (``_torch_impl``) and a tile rasteriser following the
    forward kernel. Calls are checked against the installed gsplat's real signatures.

    A version "1.4.x" mimics gsplat 1.4 (projection radii [C,N], no ``opacities`` argument).
    """

    def __init__(self, version: str = gsplat.__version__):
        self.__version__ = version
        if version.startswith("1.4."):
            self.fully_fused_projection = self._projection_1_4

    @_checked
    def fully_fused_projection(self, means, covars, quats, scales, viewmats, Ks, width, height, eps2d=0.3,
                               near_plane=0.01, far_plane=1e10, radius_clip=0.0, packed=False, sparse_grad=False,
                               calc_compensations=False, camera_model="pinhole", opacities=None):
        assert covars is None and not packed and camera_model == "pinhole"
        assert means.dtype == torch.float32 and means.is_contiguous()  # what the CUDA kernels need
        p = project(means, quats, scales, torch.ones(means.shape[0]) if opacities is None else opacities, viewmats,
                    Ks, width, height, eps2d=eps2d, near_plane=near_plane, far_plane=far_plane,
                    antialiased=calc_compensations, radius_clip=radius_clip)
        radii = p["radii"] if opacities is not None else p["torch_radii"]
        return radii, p["means2d"], p["depths"], p["conics"], p["compensations"] if calc_compensations else None

    def _projection_1_4(self, means, covars, quats, scales, viewmats, Ks, width, height, eps2d=0.3,
                        near_plane=0.01, far_plane=1e10, radius_clip=0.0, packed=False, sparse_grad=False,
                        calc_compensations=False, camera_model="pinhole"):
        radii, *rest = TorchGsplat.fully_fused_projection(
            self, means, covars, quats, scales, viewmats, Ks, width, height, eps2d, near_plane, far_plane,
            radius_clip, packed, sparse_grad, calc_compensations, camera_model, None)
        return (radii.max(dim=-1).values, *rest)

    @_checked
    def isect_tiles(self, means2d, radii, depths, tile_size, tile_width, tile_height, sort=True, segmented=False,
                    packed=False, n_images=None, image_ids=None, gaussian_ids=None):
        assert radii.shape == depths.shape + (2,) and radii.dtype == torch.int32 and not packed
        return gti._isect_tiles(means2d, radii, depths, tile_size, tile_width, tile_height, sort)

    @_checked
    def isect_offset_encode(self, isect_ids, n_images, tile_width, tile_height):
        return gti._isect_offset_encode(isect_ids, n_images, tile_width, tile_height)

    @_checked
    def rasterize_to_pixels(self, means2d, conics, colors, opacities, image_width, image_height, tile_size,
                            isect_offsets, flatten_ids, backgrounds=None, masks=None, packed=False, absgrad=False):
        """Tile by tile, each tile's Gaussians in the order isect_tiles sorted them (depth), with
        this version's alpha clamp; differentiable by autograd."""
        C, N, D = colors.shape
        assert D in (1, 2, 3, 4, 5, 8, 9, 16, 17, 32, 33, 64, 65, 128, 129, 256, 257, 512, 513), D
        assert all(t.dtype == torch.float32 for t in (means2d, conics, colors, opacities))
        amax = 0.999 if self.__version__.startswith(("1.4.", "1.5.")) else 0.99
        flat = lambda t: t.reshape(C * N, *t.shape[2:])  # noqa: E731
        m2, con, col, op = flat(means2d), flat(conics), flat(colors), flat(opacities)
        ends = torch.cat([isect_offsets.flatten()[1:], torch.tensor([flatten_ids.numel()])]).tolist()
        th, tw = isect_offsets.shape[1:]
        outs, Ts, pix = [], [], []
        for t, start in enumerate(isect_offsets.flatten().tolist()):
            c, ty, tx = t // (th * tw), (t // tw) % th, t % tw
            ys, xs = torch.meshgrid(torch.arange(ty * tile_size, min((ty + 1) * tile_size, image_height)),
                                    torch.arange(tx * tile_size, min((tx + 1) * tile_size, image_width)), indexing="ij")
            ys, xs = ys.reshape(-1), xs.reshape(-1)
            out, T = composite_pixels(xs.float() + 0.5, ys.float() + 0.5, flatten_ids[start:ends[t]].tolist(), m2, con,
                                      col, op, amax)
            if backgrounds is not None:
                out = out + T[:, None] * backgrounds[c][None]
            outs.append(out), Ts.append(T), pix.append((c * image_height + ys) * image_width + xs)
        order = torch.argsort(torch.cat(pix))
        img = torch.cat(outs)[order].reshape(C, image_height, image_width, D)
        return img, (1.0 - torch.cat(Ts)[order]).reshape(C, image_height, image_width, 1)

    @_checked
    def spherical_harmonics(self, degrees_to_use, dirs, coeffs, masks=None):
        assert dirs.dtype == torch.float32 and coeffs.shape[:-2] == dirs.shape[:-1]
        out = gti._spherical_harmonics(degrees_to_use, dirs, coeffs)
        return out if masks is None else out * masks[..., None]


def random_cameras(n: int, width: int, height: int, seed: int):
    """n look-at cameras around the origin at random distances, heights and fields of view."""
    from splat import Camera

    g = torch.Generator().manual_seed(seed)
    cams = []
    for _ in range(n):
        az, el = float(torch.rand(1, generator=g)) * 2 * math.pi, float(torch.rand(1, generator=g)) * 1.2 - 0.6
        d = 2.0 + 2.0 * float(torch.rand(1, generator=g))
        eye = [d * math.cos(el) * math.cos(az), d * math.sin(el), d * math.cos(el) * math.sin(az)]
        fov = 35.0 + 40.0 * float(torch.rand(1, generator=g))
        cams.append(Camera.look_at(eye, [0.0, 0.0, 0.0], width=width, height=height, fov_y_deg=fov))
    return cams
