"""Scene -> viser splat buffer: per-Gaussian arrays prepared once, then selected and packed.

viser draws Gaussians from one ``uint32 [N, 8]`` buffer (32 bytes a Gaussian, the
antimatter15 layout): centre as 3 float32, one reserved word, the 6 upper-triangular
covariance terms as float16, and RGBA as 4 uint8. It carries RGB only, so
view-dependent colour is evaluated here (with the toolkit's own SH code) for a camera
position and written into the RGBA word.

Everything here is a pure function of arrays; :class:`PreparedSplats` holds what does
not change while a scene is on screen (it is shared by every client).
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import torch

from splat.scene import GaussianScene
from splat.threads import threads

from ._cov_kernel import cov_triu, to_float16_bits

BYTES_PER_SPLAT = 32
"""Size of one Gaussian in viser's wire buffer."""

Ranking = Literal["significance", "contribution"]
F16_MAX = np.float32(65504.0)


@dataclass
class PreparedSplats:
    """Per-Gaussian arrays in the form the viewer needs (all float32, N Gaussians).

    means [N,3]; cov_triu [N,6] world covariance (xx, xy, xz, yy, yz, zz) at splat scale 1;
    opacities [N] in (0,1); base_rgb [N,3] view-independent colour (SH degree 0, clamped to
    [0,1]); sh_coeffs [N,(d+1)^2,3] (None for degree 0); significance [N]
    opacity x projected-area proxy (opacity * geometric-mean-scale^2), larger = more visible.
    contribution [N] or None: blend weight summed over rendered views (filled on demand).
    """

    means: np.ndarray
    cov_triu: np.ndarray
    opacities: np.ndarray
    base_rgb: np.ndarray
    sh_degree: int
    sh_coeffs: np.ndarray | None
    significance: np.ndarray
    contribution: np.ndarray | None = None
    _orders: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @functools.cached_property
    def center(self) -> np.ndarray:
        """Robust centre of the centres [3] (median), the pivot for 'camera moved' tests."""
        if len(self) == 0:
            return np.zeros(3, np.float32)
        return np.median(self.means, axis=0)

    @functools.cached_property
    def radius(self) -> float:
        """Robust radius: half the diagonal of the 2%..98% quantile box (>= 1e-6)."""
        if len(self) == 0:
            return 1.0
        lo, hi = np.quantile(self.means, [0.02, 0.98], axis=0)
        return max(float(np.linalg.norm(hi - lo)) / 2, 1e-6)

    def order(self, ranking: Ranking) -> np.ndarray:
        """Indices [N] from most to least important under ``ranking`` (cached)."""
        if ranking == "contribution" and self.contribution is None:
            raise ValueError("contribution scores have not been computed (see contribution_scores)")
        if ranking not in self._orders:
            score = self.significance if ranking == "significance" else self.contribution
            self._orders[ranking] = np.argsort(-score, kind="stable")
        return self._orders[ranking]

    def set_contribution(self, scores: np.ndarray) -> None:
        if scores.shape != (len(self),):
            raise ValueError(f"contribution scores must have shape ({len(self)},), got {scores.shape}")
        self.contribution = scores.astype(np.float32)
        self._orders.pop("contribution", None)


def prepare_splats(scene: GaussianScene) -> PreparedSplats:
    """Compute the arrays every client view draws from (covariances, colours, significance)."""
    s = scene.detach().to(device="cpu", dtype=torch.float32)
    triu = cov_triu(s.quats.numpy(), s.log_scales.numpy())  # == covariance_3d's upper triangle
    # one thread: the viewer's tensor work is small and element-wise; beside a web server and a
    # browser on a busy 2-core machine a 2-thread pool was measured 20x slower (152k covariances:
    # 1.1 s vs 52 ms)
    with torch.no_grad(), threads(1):
        opac = s.opacities.numpy()
        base = s.colors.clamp(0.0, 1.0).numpy()
        gm = torch.exp(s.log_scales.mean(dim=1)).numpy()  # geometric-mean scale
    coeffs = None
    if s.sh_degree > 0:
        coeffs = np.concatenate([s.sh_dc.numpy()[:, None, :], s.sh_rest.numpy()], axis=1)
    return PreparedSplats(
        means=np.array(s.means.numpy(), dtype=np.float32),
        cov_triu=np.ascontiguousarray(triu, dtype=np.float32),
        opacities=np.array(opac, dtype=np.float32),
        base_rgb=np.array(base, dtype=np.float32),
        sh_degree=s.sh_degree,
        sh_coeffs=coeffs,
        significance=np.nan_to_num(opac * gm * gm, nan=0.0, posinf=0.0).astype(np.float32),
    )


def select_indices(
    prep: PreparedSplats,
    *,
    opacity_threshold: float = 0.0,
    budget: int | None = None,
    ranking: Ranking = "significance",
) -> np.ndarray:
    """Indices of the Gaussians to draw, ascending.

    Keeps those with opacity >= ``opacity_threshold``; of these, at most ``budget``
    (None = all), the most important first under ``ranking``.
    """
    n = len(prep)
    keep = prep.opacities >= opacity_threshold if opacity_threshold > 0 else None
    if budget is None or budget >= n:
        idx = np.arange(n) if keep is None else np.flatnonzero(keep)
        return idx
    order = prep.order(ranking)
    if keep is not None:
        order = order[keep[order]]
    return np.sort(order[: max(int(budget), 0)])


def take(arr: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``arr[idx]`` for ascending unique ``idx`` (what :func:`select_indices` returns); ``arr``
    itself, uncopied, when ``idx`` selects every row (prepared arrays are never written)."""
    if len(idx) == len(arr):
        return arr
    return arr[idx]


class ShSubset:
    """The SH coefficients of a fixed set of Gaussians, gathered once for repeated refreshes.

    Colours come from one fused single-threaded numba pass (:mod:`viewer._sh_kernel`) with
    the toolkit's SH basis, so they equal :func:`render.sh.sh_colors` (clamped to [0,1]).
    """

    def __init__(self, prep: PreparedSplats, idx: np.ndarray) -> None:
        self.degree = prep.sh_degree
        self.means = np.ascontiguousarray(take(prep.means, idx))
        self.coeffs = np.ascontiguousarray(take(prep.sh_coeffs, idx))

    def colors_uint8(self, campos: np.ndarray) -> np.ndarray:
        """8-bit RGB [M,3] seen from ``campos`` [3]."""
        from ._sh_kernel import sh_rgb_uint8

        return sh_rgb_uint8(self.means, self.coeffs, campos, self.degree)

    def colors(self, campos: np.ndarray) -> np.ndarray:
        """RGB [M,3] in [0,1] (8-bit precision): ``clamp(SH(dir) + 0.5, 0, 1)``, dir = mean - campos."""
        return self.colors_uint8(campos).astype(np.float32) / 255.0


def view_colors(prep: PreparedSplats, idx: np.ndarray, campos: np.ndarray | None, sh: bool = True) -> np.ndarray:
    """RGB [M,3] in [0,1] of Gaussians ``idx`` seen from ``campos`` [3].

    With ``sh`` and an SH degree > 0 this is gsplat's ``max(SH(dir) + 0.5, 0)``
    (then clipped to 1), else the view-independent base colour.
    """
    if not sh or prep.sh_coeffs is None or campos is None:
        return prep.base_rgb[idx]
    return ShSubset(prep, idx).colors(campos)


def to_uint8(x: np.ndarray) -> np.ndarray:
    """[0,1] floats -> uint8 with rounding (values outside are clipped)."""
    return np.clip(np.asarray(x, dtype=np.float32) * 255.0 + 0.5, 0.0, 255.0).astype(np.uint8)


def pack_buffer(
    prep: PreparedSplats,
    idx: np.ndarray,
    rgb: np.ndarray,
    *,
    splat_scale: float = 1.0,
) -> np.ndarray:
    """viser's splat buffer ``uint32 [M,8]`` for Gaussians ``idx`` with colours ``rgb`` [M,3].

    ``splat_scale`` multiplies every Gaussian's standard deviations (covariance x scale^2).
    """
    m = len(idx)
    buf = np.zeros((m, 8), dtype=np.uint32)
    buf[:, 0:3] = np.ascontiguousarray(take(prep.means, idx), dtype=np.float32).view(np.uint32)
    cov = take(prep.cov_triu, idx) * np.float32(splat_scale * splat_scale)
    np.clip(cov, -F16_MAX, F16_MAX, out=cov)  # float16 on the wire: no infinities
    buf[:, 4:7] = to_float16_bits(cov).view(np.uint32)  # == cov.astype(np.float16), fast for subnormals
    set_rgba(buf, rgb, take(prep.opacities, idx))
    return buf


def set_rgba(buf: np.ndarray, rgb: np.ndarray, opacities: np.ndarray | None = None) -> None:
    """Write colours [M,3] (floats in [0,1], or uint8) and opacities [M] (if given) into the
    RGBA word of ``buf`` in place."""
    rgba = buf[:, 7:8].copy().view(np.uint8).reshape(-1, 4)
    rgba[:, :3] = rgb if rgb.dtype == np.uint8 else to_uint8(rgb)
    if opacities is not None:
        rgba[:, 3] = to_uint8(opacities)
    buf[:, 7] = rgba.reshape(-1).view(np.uint32)


def contribution_scores(
    scene: GaussianScene,
    cameras,
    *,
    backend: str = "auto",
    chunk: int = 4,
) -> np.ndarray:
    """Blend weight (sum of alpha x transmittance over every pixel) per Gaussian [N].

    Summed over ``cameras`` (all one size) with the toolkit's renderer; the ranking the
    Gaussian budget uses when 'largest contribution' is chosen.
    """
    from render import rasterize

    cams = list(cameras)
    total = np.zeros(len(scene), dtype=np.float64)
    with torch.no_grad():
        for i in range(0, len(cams), chunk):
            out = rasterize(scene, cams[i : i + chunk], sh_degree=0, backend=backend, return_stats="blend_weight")
            total += out.stats.blend_weight.detach().double().cpu().numpy()
    return total.astype(np.float32)


def camera_moved(
    last: np.ndarray | None,
    now: np.ndarray,
    center: np.ndarray,
    radius: float,
    *,
    angle_deg: float = 1.0,
    rel_dist: float = 0.02,
) -> bool:
    """Has the camera moved enough that view-dependent colour should be refreshed?

    True when the direction from the scene centre to the camera turned by more than
    ``angle_deg`` or the camera moved by more than ``rel_dist`` x the scene radius.
    """
    if last is None:
        return True
    now = np.asarray(now, np.float64)
    last = np.asarray(last, np.float64)
    if np.linalg.norm(now - last) > rel_dist * radius:
        return True
    a, b = last - center, now - center
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    if na < 1e-9 or nb < 1e-9:
        return bool(na != nb)
    cosang = float(np.clip(a @ b / (na * nb), -1.0, 1.0))
    return np.degrees(np.arccos(cosang)) > angle_deg
