"""The uniform scalar quantiser every codec shares (``.lgs`` attributes and positions, ``.gsi``).

``levels`` L steps over [lo, hi] (L + 1 values; ``bits`` b means L = 2^b - 1): index =
round((x - lo) / step) clipped to [0, L] (round half to even), value = lo + index * step, in
float64, with step = (hi - lo) / L, or 1 where hi <= lo. ``lo``/``hi`` are scalars or
per-channel arrays broadcast against ``x``. Decoders depend on this exact arithmetic
(docs/formats/).
"""
from __future__ import annotations

import math

import numpy as np

MAX_LEVELS = 65535
"""Most steps a quantiser may have (16 bits)."""


def levels_for_bits(bits: float) -> int:
    """Steps of a quantiser of ``bits`` (possibly fractional) bits: round(2^bits) - 1, at least 1."""
    return max(1, min(MAX_LEVELS, int(round(2.0 ** float(bits))) - 1))


def bits_for_levels(levels: int) -> float:
    """Effective bits of a quantiser with ``levels`` steps: log2(levels + 1)."""
    return math.log2(levels + 1)


def is_power_of_two_levels(levels: int) -> bool:
    """Whether ``levels`` = 2^b - 1 for an integer b (what versions before step sizes hold)."""
    return levels >= 1 and (levels + 1) & levels == 0


def _levels(bits: int | None, levels: int | None) -> int:
    if levels is not None:
        return int(levels)
    return (1 << int(bits)) - 1


def uniform_step(lo: np.ndarray | float, hi: np.ndarray | float, bits: int | None = None, *,
                 levels: int | None = None) -> np.ndarray:
    """Step size (float64): (hi - lo) / L (L = ``levels``, or 2^bits - 1), or 1 where the range is empty."""
    ext = np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64)
    return np.where(ext > 0, ext / float(_levels(bits, levels)), 1.0)


def quantize_uniform(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float, bits: int | None = None, *,
                     levels: int | None = None) -> np.ndarray:
    """Values -> indices in [0, L] (int64)."""
    n = _levels(bits, levels)
    q = np.rint((np.asarray(x, dtype=np.float64) - np.asarray(lo, dtype=np.float64)) / uniform_step(lo, hi, levels=n))
    return np.clip(q, 0, n).astype(np.int64)


def dequantize_uniform(q: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float, bits: int | None = None, *,
                       levels: int | None = None) -> np.ndarray:
    """Indices -> values lo + q * step (float64)."""
    return np.asarray(lo, dtype=np.float64) + np.asarray(q).astype(np.float64) * uniform_step(lo, hi, bits,
                                                                                               levels=levels)
