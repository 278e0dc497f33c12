"""The uniform scalar quantiser every codec shares (``.lgs`` attributes and positions, ``.gsi``).

``bits`` bits give ``levels = 2^bits - 1`` steps over [lo, hi]: index = round((x - lo) / step)
clipped to [0, levels] (round half to even), value = lo + index * step, in float64, with
step = (hi - lo) / levels, or 1 where hi <= lo. ``lo``/``hi`` are scalars or per-channel
arrays broadcast against ``x``. Decoders depend on this exact arithmetic (docs/formats/).
"""
from __future__ import annotations

import numpy as np


def uniform_step(lo: np.ndarray | float, hi: np.ndarray | float, bits: int) -> np.ndarray:
    """Step size (float64): (hi - lo) / (2^bits - 1), or 1 where the range is empty."""
    ext = np.asarray(hi, dtype=np.float64) - np.asarray(lo, dtype=np.float64)
    return np.where(ext > 0, ext / float((1 << bits) - 1), 1.0)


def quantize_uniform(x: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float, bits: int) -> np.ndarray:
    """Values -> indices in [0, 2^bits - 1] (int64)."""
    q = np.rint((np.asarray(x, dtype=np.float64) - np.asarray(lo, dtype=np.float64)) / uniform_step(lo, hi, bits))
    return np.clip(q, 0, (1 << bits) - 1).astype(np.int64)


def dequantize_uniform(q: np.ndarray, lo: np.ndarray | float, hi: np.ndarray | float, bits: int) -> np.ndarray:
    """Indices -> values lo + q * step (float64)."""
    return np.asarray(lo, dtype=np.float64) + np.asarray(q).astype(np.float64) * uniform_step(lo, hi, bits)
