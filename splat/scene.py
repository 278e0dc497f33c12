"""The Gaussian scene data model.

Conventions follow the INRIA 3D Gaussian Splatting code, which nearly every
trainer and file format shares:

* ``means``           [N,3]   world-space centres.
* ``quats``           [N,4]   rotation quaternions, (w, x, y, z) order, not necessarily unit
                               length (renderers normalise).
* ``log_scales``      [N,3]   natural log of the per-axis standard deviations;
                               ``scales = exp(log_scales)``.
* ``opacity_logits``  [N]     ``opacity = sigmoid(opacity_logits)``.
* ``sh_dc``           [N,3]   degree-0 SH coefficient per RGB channel; the base colour
                               is ``SH_C0 * sh_dc + 0.5``.
* ``sh_rest``         [N,K,3] higher-order SH coefficients, K = (d+1)^2 - 1 for degree d
                               (0, 3, 8 or 15). Coefficient index runs fastest over
                               channels: ``sh_rest[n, k, c]``. In INRIA PLY files the
                               properties are stored channel-major (``f_rest_{c*K+k}``).
* ``extras``          name -> [N, ...] per-Gaussian channels that ride along
                               (feature queries, normals, anything a file carried).

All tensors share one device and dtype (float32 by default). The class is a plain
container: every method returns a new scene and never mutates in place.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from typing import Iterator, Mapping, Sequence

import torch
from torch import Tensor

SH_C0 = 0.28209479177387814
"""Degree-0 real spherical-harmonic constant 1 / (2 sqrt(pi))."""

_SH_REST_COUNTS = {0: 0, 1: 3, 2: 8, 3: 15}
_CORE_FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


def sh_rest_count(degree: int) -> int:
    """Number of non-DC SH coefficients per channel for an SH degree (0-3)."""
    if degree not in _SH_REST_COUNTS:
        raise ValueError(f"SH degree must be 0..3, got {degree}")
    return _SH_REST_COUNTS[degree]


def sh_degree_from_rest(k: int) -> int:
    """SH degree for K rest coefficients per channel (0, 3, 8 or 15)."""
    for d, n in _SH_REST_COUNTS.items():
        if n == k:
            return d
    raise ValueError(f"{k} rest coefficients per channel is not a valid SH layout (0, 3, 8 or 15)")


def rgb_to_sh_dc(rgb: Tensor) -> Tensor:
    """Base colour in [0,1] -> degree-0 SH coefficient."""
    return (rgb - 0.5) / SH_C0


def sh_dc_to_rgb(dc: Tensor) -> Tensor:
    """Degree-0 SH coefficient -> base colour (not clamped)."""
    return dc * SH_C0 + 0.5


def _logit(p: Tensor, eps: float = 1e-6) -> Tensor:
    p = p.clamp(eps, 1.0 - eps)
    return torch.log(p) - torch.log1p(-p)


@dataclass(frozen=True)
class ActivatedGaussians:
    """Gaussians in 'activated' units, as renderers and most file formats want them.

    means [N,3]; quats [N,4] unit wxyz; scales [N,3] standard deviations (world units);
    opacities [N] in (0,1); colors [N,3] base RGB (= SH_C0*dc + 0.5, unclamped);
    sh_rest [N,K,3] raw higher-order coefficients.
    """

    means: Tensor
    quats: Tensor
    scales: Tensor
    opacities: Tensor
    colors: Tensor
    sh_rest: Tensor


def check_finite(arrays: Mapping[str, object], row: str = "Gaussian") -> None:
    """Raise ValueError naming the first array (and ``row`` index along dim 0) that holds NaN or Inf.

    Every writer calls this before encoding, so a file we write always reads back.
    """
    for name, t in arrays.items():
        t = torch.as_tensor(t)
        if t.is_floating_point() and t.numel() and not bool(torch.isfinite(t).all()):
            bad = int((~torch.isfinite(t)).reshape(t.shape[0], -1).any(dim=1).nonzero()[0, 0]) if t.ndim else 0
            raise ValueError(f"{name} holds a non-finite value (NaN or Inf; first at {row} {bad})")


@dataclass
class GaussianScene:
    """A set of 3D Gaussians in INRIA conventions (see module docstring)."""

    means: Tensor
    quats: Tensor
    log_scales: Tensor
    opacity_logits: Tensor
    sh_dc: Tensor
    sh_rest: Tensor
    extras: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = self.means.shape[0] if self.means.ndim == 2 else -1
        shapes = {
            "means": (n, 3),
            "quats": (n, 4),
            "log_scales": (n, 3),
            "opacity_logits": (n,),
            "sh_dc": (n, 3),
        }
        for name, shape in shapes.items():
            t = getattr(self, name)
            if not isinstance(t, Tensor):
                raise TypeError(f"GaussianScene.{name} must be a torch.Tensor, got {type(t).__name__}")
            if tuple(t.shape) != shape:
                raise ValueError(f"GaussianScene.{name} must have shape {shape}, got {tuple(t.shape)}")
        r = self.sh_rest
        if not isinstance(r, Tensor) or r.ndim != 3 or r.shape[0] != n or r.shape[2] != 3:
            raise ValueError(f"GaussianScene.sh_rest must have shape [N,K,3], got {tuple(getattr(r, 'shape', ()))}")
        sh_degree_from_rest(r.shape[1])
        for k, v in self.extras.items():
            if not isinstance(v, Tensor) or v.ndim < 1 or v.shape[0] != n:
                raise ValueError(f"extra channel {k!r} must be a tensor with leading dimension {n}")

    # ------------------------------------------------------------------ construction
    @classmethod
    def empty(cls, sh_degree: int = 0, dtype: torch.dtype = torch.float32) -> "GaussianScene":
        k = sh_rest_count(sh_degree)
        z = lambda *s: torch.zeros(*s, dtype=dtype)  # noqa: E731
        return cls(z(0, 3), z(0, 4), z(0, 3), z(0), z(0, 3), z(0, k, 3))

    @classmethod
    def from_activated(
        cls,
        means: Tensor,
        quats: Tensor,
        scales: Tensor,
        opacities: Tensor,
        colors: Tensor,
        sh_rest: Tensor | None = None,
        extras: dict[str, Tensor] | None = None,
    ) -> "GaussianScene":
        """Build from activated values (see :class:`ActivatedGaussians`).

        Scales are clamped to >= 1e-12 and opacities to [1e-6, 1-1e-6] before the log/logit.
        """
        n = means.shape[0]
        if sh_rest is None:
            sh_rest = means.new_zeros(n, 0, 3)
        q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
        return cls(
            means=means,
            quats=q,
            log_scales=torch.log(scales.clamp_min(1e-12)),
            opacity_logits=_logit(opacities),
            sh_dc=rgb_to_sh_dc(colors),
            sh_rest=sh_rest,
            extras=dict(extras or {}),
        )

    @classmethod
    def random(
        cls,
        n: int,
        *,
        sh_degree: int = 0,
        extent: float = 1.0,
        scale_range: tuple[float, float] = (0.01, 0.1),
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ) -> "GaussianScene":
        """A reproducible random scene in the cube [-extent, extent]^3 (tests, demos)."""
        g = torch.Generator().manual_seed(seed)
        r = lambda *s: torch.rand(*s, generator=g, dtype=torch.float64)  # noqa: E731
        means = (r(n, 3) * 2 - 1) * extent
        lo, hi = math.log(scale_range[0]), math.log(scale_range[1])
        log_scales = lo + (hi - lo) * r(n, 3)
        quats = torch.randn(n, 4, generator=g, dtype=torch.float64)
        quats = quats / quats.norm(dim=-1, keepdim=True)
        opacity_logits = torch.randn(n, generator=g, dtype=torch.float64) * 1.5 + 1.0
        sh_dc = (r(n, 3) - 0.5) * 3.0
        k = sh_rest_count(sh_degree)
        sh_rest = torch.randn(n, k, 3, generator=g, dtype=torch.float64) * 0.2
        t = lambda x: x.to(dtype)  # noqa: E731
        return cls(t(means), t(quats), t(log_scales), t(opacity_logits), t(sh_dc), t(sh_rest))

    # ------------------------------------------------------------------ basic properties
    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def num_gaussians(self) -> int:
        return len(self)

    @property
    def sh_degree(self) -> int:
        return sh_degree_from_rest(self.sh_rest.shape[1])

    @property
    def device(self) -> torch.device:
        return self.means.device

    @property
    def dtype(self) -> torch.dtype:
        return self.means.dtype

    @property
    def scales(self) -> Tensor:
        """Activated per-axis standard deviations [N,3]."""
        return torch.exp(self.log_scales)

    @property
    def opacities(self) -> Tensor:
        """Activated opacities [N] in (0,1)."""
        return torch.sigmoid(self.opacity_logits)

    @property
    def colors(self) -> Tensor:
        """Base (view-independent) RGB [N,3], unclamped."""
        return sh_dc_to_rgb(self.sh_dc)

    @property
    def unit_quats(self) -> Tensor:
        """Normalised quaternions [N,4] (wxyz)."""
        return self.quats / self.quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)

    @property
    def sh_coeffs(self) -> Tensor:
        """All SH coefficients [N,(d+1)^2,3]: DC first, then the rest."""
        return torch.cat([self.sh_dc[:, None, :], self.sh_rest], dim=1)

    def activated(self) -> ActivatedGaussians:
        return ActivatedGaussians(
            means=self.means,
            quats=self.unit_quats,
            scales=self.scales,
            opacities=self.opacities,
            colors=self.colors,
            sh_rest=self.sh_rest,
        )

    def fields(self) -> dict[str, Tensor]:
        """The six core tensors by name (no extras)."""
        return {name: getattr(self, name) for name in _CORE_FIELDS}

    # ------------------------------------------------------------------ transforms
    def _map(self, fn) -> "GaussianScene":
        core = {name: fn(t) for name, t in self.fields().items()}
        return GaussianScene(**core, extras={k: fn(v) for k, v in self.extras.items()})

    def __getitem__(self, index) -> "GaussianScene":
        """Select Gaussians by slice, integer index tensor or boolean mask [N]."""
        if isinstance(index, int):
            index = slice(index, index + 1 if index != -1 else None)
        if isinstance(index, Tensor) and index.dtype == torch.bool and index.shape != (len(self),):
            raise IndexError(f"boolean mask must have shape ({len(self)},), got {tuple(index.shape)}")
        return self._map(lambda t: t[index])

    def to(self, device: torch.device | str | None = None, dtype: torch.dtype | None = None) -> "GaussianScene":
        """Move to a device and/or cast floating tensors to dtype."""

        def conv(t: Tensor) -> Tensor:
            if dtype is not None and t.is_floating_point():
                t = t.to(dtype)
            return t.to(device) if device is not None else t

        return self._map(conv)

    def detach(self) -> "GaussianScene":
        return self._map(lambda t: t.detach())

    def clone(self) -> "GaussianScene":
        return self._map(lambda t: t.clone())

    def requires_grad_(self, flag: bool = True, *, extras: bool = False) -> "GaussianScene":
        """Return a detached copy whose core tensors (and optionally extras) require grad."""
        out = self.detach().clone()
        for t in out.fields().values():
            t.requires_grad_(flag)
        if extras:
            for t in out.extras.values():
                if t.is_floating_point():
                    t.requires_grad_(flag)
        return out

    def replace(self, **changes) -> "GaussianScene":
        """A copy with some fields replaced (dataclasses.replace with validation)."""
        return dataclasses.replace(self, **changes)

    def with_sh_degree(self, degree: int) -> "GaussianScene":
        """Truncate (or zero-pad) the SH coefficients to ``degree``."""
        k = sh_rest_count(degree)
        cur = self.sh_rest.shape[1]
        if k <= cur:
            rest = self.sh_rest[:, :k]
        else:
            pad = self.sh_rest.new_zeros(len(self), k - cur, 3)
            rest = torch.cat([self.sh_rest, pad], dim=1)
        return self.replace(sh_rest=rest.contiguous())

    def with_extras(self, **extras: Tensor) -> "GaussianScene":
        merged = dict(self.extras)
        merged.update(extras)
        return self.replace(extras=merged)

    # ------------------------------------------------------------------ geometry
    def bounds(self, quantile: float = 0.0) -> tuple[Tensor, Tensor]:
        """Axis-aligned bounds of the centres: (min [3], max [3]).

        ``quantile`` > 0 ignores that fraction of outliers on each side (robust bounds
        for framing cameras: trained scenes often have far-away floaters).
        """
        if len(self) == 0:
            z = self.means.new_zeros(3)
            return z, z
        m = self.means.detach().float()
        if quantile <= 0:
            return m.min(dim=0).values, m.max(dim=0).values
        if len(self) > 2_000_000:  # torch.quantile has an input-size limit
            idx = torch.randperm(len(self), generator=torch.Generator().manual_seed(0))[:2_000_000]
            m = m[idx.to(m.device)]
        q = torch.tensor([quantile, 1.0 - quantile], dtype=m.dtype, device=m.device)
        lohi = torch.quantile(m, q, dim=0)
        return lohi[0], lohi[1]

    def check_finite(self) -> None:
        """Raise ValueError naming the first field that holds NaN or Inf."""
        check_finite({**self.fields(), **{f"extras[{k!r}]": v for k, v in self.extras.items()}})

    # ------------------------------------------------------------------ combination
    @staticmethod
    def cat(scenes: Sequence["GaussianScene"]) -> "GaussianScene":
        """Concatenate scenes; SH degrees are padded to the largest one.

        Extras are kept only where every scene has them with compatible shapes.
        """
        if not scenes:
            raise ValueError("cat() needs at least one scene")
        deg = max(s.sh_degree for s in scenes)
        scenes = [s.with_sh_degree(deg) for s in scenes]
        core = {name: torch.cat([getattr(s, name) for s in scenes], dim=0) for name in _CORE_FIELDS}
        keys = set(scenes[0].extras)
        for s in scenes[1:]:
            keys &= set(s.extras)
        extras = {}
        for k in sorted(keys):
            parts = [s.extras[k] for s in scenes]
            if all(p.shape[1:] == parts[0].shape[1:] for p in parts):
                extras[k] = torch.cat(parts, dim=0)
        return GaussianScene(**core, extras=extras)

    def __iter__(self) -> Iterator[tuple[str, Tensor]]:
        yield from self.fields().items()

    def __repr__(self) -> str:
        ex = f", extras={sorted(self.extras)}" if self.extras else ""
        return f"GaussianScene(n={len(self)}, sh_degree={self.sh_degree}, device={self.device}, dtype={self.dtype}{ex})"

    def equal(self, other: "GaussianScene") -> bool:
        """Bit-exact equality of every core tensor and extra."""
        if len(self) != len(other) or self.sh_degree != other.sh_degree or set(self.extras) != set(other.extras):
            return False
        pairs = [(getattr(self, n), getattr(other, n)) for n in _CORE_FIELDS]
        pairs += [(self.extras[k], other.extras[k]) for k in self.extras]
        return all(a.shape == b.shape and torch.equal(a.cpu(), b.cpu()) for a, b in pairs)
