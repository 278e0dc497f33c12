"""World covariances for the viewer's wire buffer: one fused, single-threaded numba pass.

``cov_triu`` computes the upper triangle (xx, xy, xz, yy, yz, zz) of R diag(s²) Rᵀ from
wxyz quaternions (normalised here) and log-scales, the quantity
:func:`render.projection.covariance_3d` computes with torch. A video frame needs it for
every Gaussian at the clip's frame rate; the torch version costs ~6 ms for 50k Gaussians
on one core, this pass well under 1 ms. Single-threaded for the reason given in
:mod:`viewer._sh_kernel`. Tests compare it with ``covariance_3d`` in float64.
"""
from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, fastmath=True, nogil=True)
def _cov_triu(quats, log_scales, out):
    n = quats.shape[0]
    for i in range(n):
        w, x, y, z = quats[i, 0], quats[i, 1], quats[i, 2], quats[i, 3]
        norm = np.sqrt(w * w + x * x + y * y + z * z)
        if norm < 1e-12:
            norm = 1e-12
        w, x, y, z = w / norm, x / norm, y / norm, z / norm
        r00 = 1 - 2 * (y * y + z * z)
        r01 = 2 * (x * y - w * z)
        r02 = 2 * (x * z + w * y)
        r10 = 2 * (x * y + w * z)
        r11 = 1 - 2 * (x * x + z * z)
        r12 = 2 * (y * z - w * x)
        r20 = 2 * (x * z - w * y)
        r21 = 2 * (y * z + w * x)
        r22 = 1 - 2 * (x * x + y * y)
        s0 = np.exp(2 * log_scales[i, 0])
        s1 = np.exp(2 * log_scales[i, 1])
        s2 = np.exp(2 * log_scales[i, 2])
        out[i, 0] = r00 * r00 * s0 + r01 * r01 * s1 + r02 * r02 * s2
        out[i, 1] = r00 * r10 * s0 + r01 * r11 * s1 + r02 * r12 * s2
        out[i, 2] = r00 * r20 * s0 + r01 * r21 * s1 + r02 * r22 * s2
        out[i, 3] = r10 * r10 * s0 + r11 * r11 * s1 + r12 * r12 * s2
        out[i, 4] = r10 * r20 * s0 + r11 * r21 * s1 + r12 * r22 * s2
        out[i, 5] = r20 * r20 * s0 + r21 * r21 * s1 + r22 * r22 * s2


def cov_triu(quats: np.ndarray, log_scales: np.ndarray) -> np.ndarray:
    """Upper triangle [N,6] float32 of R(q) diag(exp(2·log_s)) R(q)ᵀ for quats [N,4] (wxyz) and
    log_scales [N,3]."""
    q = np.ascontiguousarray(quats, dtype=np.float32)
    ls = np.ascontiguousarray(log_scales, dtype=np.float32)
    if q.ndim != 2 or q.shape[1] != 4 or ls.shape != (q.shape[0], 3):
        raise ValueError(f"need quats [N,4] and log_scales [N,3], got {q.shape} and {ls.shape}")
    out = np.empty((q.shape[0], 6), np.float32)
    _cov_triu(q, ls, out)
    return out


F16_MAX = 65504.0


@njit(cache=True, inline="always")
def _f32_bits_to_f16(x):
    """IEEE binary32 bits -> binary16 bits, round to nearest even (as numpy's astype)."""
    sign = (x >> 16) & 0x8000
    x = x & 0x7FFFFFFF
    if x >= 0x7F800000:  # inf / nan
        return sign | 0x7C00 | (0x200 if x > 0x7F800000 else 0)
    if x >= 0x477FF000:  # rounds past the largest half
        return sign | 0x7C00
    if x >= 0x38800000:  # a normal half: rebias the exponent, round at bit 13
        m = x - 0x38000000
        return sign | ((m + 0x0FFF + ((m >> 13) & 1)) >> 13)
    if x >= 0x33000000:  # a subnormal half (2^-25 .. 2^-14)
        e = x >> 23
        mant = (x & 0x7FFFFF) | 0x800000
        shift = 126 - e
        h = mant >> shift
        rem = mant & ((1 << shift) - 1)
        half = 1 << (shift - 1)
        if rem > half or (rem == half and (h & 1) == 1):
            h += 1
        return sign | h
    return sign


@njit(cache=True, nogil=True)
def _halves(bits, out):
    flat = bits.reshape(-1)
    o = out.reshape(-1)
    for i in range(flat.shape[0]):
        o[i] = _f32_bits_to_f16(flat[i])


def to_float16_bits(x: np.ndarray) -> np.ndarray:
    """``x.astype(np.float16).view(np.uint16)`` computed without numpy's slow path for
    subnormal halves (~15x faster on covariances of small Gaussians); same shape as ``x``."""
    f = np.ascontiguousarray(x, dtype=np.float32)
    out = np.empty(f.shape, np.uint16)
    _halves(f.view(np.uint32), out)
    return out
