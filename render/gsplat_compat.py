"""Which gsplat is installed and how it differs from our rules, without importing it.

Pure Python: reads the installed distribution's metadata, so it works on machines
without CUDA (where ``import gsplat`` works too for 1.5.x, but is not needed here).

Differences that matter for rendering (read from gsplat's CUDA sources):

* alpha clamp: ``min(0.999, opacity * exp(-sigma))`` in 1.4.0-1.5.3
  (``RasterizeToPixels3DGSFwd.cu``, ``_torch_impl.accumulate``), 0.99 from 1.6.0;
* radii: one scalar radius per Gaussian ([C,N], 3-sigma of the largest eigenvalue) in
  1.4.x, per axis ([C,N,2], opacity-aware when ``opacities`` is passed) from 1.5.0.
"""
from __future__ import annotations

from importlib import metadata

MIN_SUPPORTED = (1, 4)
CLAMP_CHANGED = (1, 6)  # first version clamping alpha at 0.99
PER_AXIS_RADII = (1, 5)  # first version with [C,N,2] radii


def parse_version(version: str) -> tuple[int, int, int]:
    """(major, minor, patch) of a version string such as "1.5.3" or "1.6.0+pt24cu121"."""
    core = version.strip().split("+")[0]
    parts: list[int] = []
    for piece in core.split(".")[:3]:
        digits = ""
        for ch in piece:
            if not ch.isdigit():
                break
            digits += ch
        if not digits:
            break
        parts.append(int(digits))
    if not parts:
        raise ValueError(f"not a version: {version!r}")
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def installed_gsplat_version() -> str | None:
    """The installed gsplat's version string, or None when it is not installed."""
    try:
        return metadata.version("gsplat")
    except metadata.PackageNotFoundError:
        return None


def check_supported(version: str | None) -> tuple[int, int, int]:
    """Parsed version, or RuntimeError when gsplat is missing or older than 1.4."""
    if version is None:
        raise RuntimeError("gsplat is not installed (pip install 'splatkit[cuda]')")
    v = parse_version(version)
    if v[:2] < MIN_SUPPORTED:
        raise RuntimeError(f"gsplat {version} is too old: splatkit needs gsplat >= 1.4")
    return v


def gsplat_max_alpha(version: str | None) -> float:
    """The clamp gsplat ``version`` puts on one Gaussian's alpha: 0.999 before 1.6, else 0.99."""
    return 0.999 if check_supported(version)[:2] < CLAMP_CHANGED else 0.99


def per_axis_radii(version: str | None) -> bool:
    """Whether gsplat ``version`` takes and returns radii [C,N,2] (else [C,N])."""
    return check_supported(version)[:2] >= PER_AXIS_RADII
