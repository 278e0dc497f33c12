"""Precision where it is seen: significance classes with their own bit depths.

Every Gaussian has a class c in [0, K) and each class a number of dropped bits ``drops[c]``.
Its scales, rotation values and colour are stored ``d = drops[c]`` bits coarser: a value q
on the attribute's grid [0, levels] is stored as ``(q + 2^(d-1)) >> d`` and decoded as
``min(stored << d, levels)`` (d = 0: unchanged). From ``.lgs`` version 4 a class has any integer
grid factor f >= 1 instead of 2^d: stored ``(q + f // 2) // f``, decoded ``min(stored * f, levels)``.
Specified in ``docs/formats/lgs.md``.

Two ways to form classes:

* :func:`precision_classes` (``.lgs`` v2): the least significant fraction in class 1;
* :func:`significance_classes` (``.lgs`` v3): class = dropped bits, one more bit per factor 4
  less significance. A Gaussian's share of the render error grows with its significance w
  times the squared quantization step, so equal error per stored bit wants step ~ w^(-1/2).
"""
from __future__ import annotations

import numba
import numpy as np

MAX_DROP = 8


def precision_classes(weights: np.ndarray, fraction: float) -> np.ndarray:
    """Class per Gaussian [N] int64: 1 for the floor(fraction * N) lowest ``weights`` (stable), else 0."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    cls = np.zeros(w.size, dtype=np.int64)
    k = int(fraction * w.size)
    if k:
        cls[np.argsort(w, kind="stable")[:k]] = 1
    return cls


def significance_classes(weights: np.ndarray, max_drop: int, reference: float = 0.99) -> np.ndarray:
    """Dropped bits per Gaussian [N] int64 in [0, max_drop]: round(0.5 * log2(w_ref / w)),
    w_ref the ``reference`` quantile of the weights (Gaussians at or above it keep every bit;
    weight 0 gets ``max_drop``)."""
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    if w.size == 0 or max_drop <= 0:
        return np.zeros(w.size, dtype=np.int64)
    ref = float(np.quantile(w, reference))
    if not ref > 0:
        return np.zeros(w.size, dtype=np.int64)
    with np.errstate(divide="ignore"):
        d = np.round(0.5 * np.log2(ref / np.maximum(w, ref * 2.0 ** (-2 * max_drop - 2))))
    return np.clip(d, 0, max_drop).astype(np.int64)


def coarsen_by(q: np.ndarray, drops: np.ndarray | None) -> np.ndarray:
    """Stored values: row i rounded to a grid ``drops[i]`` bits coarser (int64, same shape as q [N] or [N,C])."""
    return coarsen_by_factor(q, None if drops is None else drop_factors(drops))


def refine_by(stored: np.ndarray, drops: np.ndarray | None, levels: int) -> np.ndarray:
    """Inverse of :func:`coarsen_by` up to the rounding: grid values in [0, levels] (int64)."""
    return refine_by_factor(stored, None if drops is None else drop_factors(drops), levels)


def drop_factors(drops: np.ndarray) -> np.ndarray:
    """Grid factor per row for ``drops`` dropped bits: 2^d (int64)."""
    return np.left_shift(1, np.asarray(drops, dtype=np.int64))


def coarsen_by_factor(q: np.ndarray, factors: np.ndarray | None) -> np.ndarray:
    """Stored values on a grid ``factors[i]`` times coarser: floor((q + floor(f / 2)) / f) (int64,
    same shape as q [N] or [N,C]; f = 2^d gives :func:`coarsen_by`)."""
    q = np.asarray(q, dtype=np.int64)
    if factors is None:
        return q.copy()
    f = np.asarray(factors, dtype=np.int64).reshape((-1,) + (1,) * (q.ndim - 1))
    return (q + (f >> 1)) // f


def refine_by_factor(stored: np.ndarray, factors: np.ndarray | None, levels: int) -> np.ndarray:
    """Grid values of stored values: min(s * f, levels) where f > 1, s itself where f = 1 (int64)."""
    s = np.asarray(stored, dtype=np.int64)
    if factors is None:
        return s.copy()
    f = np.asarray(factors, dtype=np.int64).reshape((-1,) + (1,) * (s.ndim - 1))
    return np.where(f > 1, np.minimum(s * f, levels), s)


def coarsen(q: np.ndarray, cls: np.ndarray, drop: int) -> np.ndarray:
    """:func:`coarsen_by` with two classes: class 1 ``drop`` bits coarser."""
    return coarsen_by(q, None if cls is None or drop == 0 else np.asarray(cls, dtype=np.int64) * drop)


def refine(stored: np.ndarray, cls: np.ndarray, drop: int, levels: int) -> np.ndarray:
    """:func:`refine_by` with two classes: class 1 ``drop`` bits coarser."""
    return refine_by(stored, None if cls is None or drop == 0 else np.asarray(cls, dtype=np.int64) * drop, levels)


def refine_dequantize(stored: np.ndarray, drops: np.ndarray | None, levels: int, lo: np.ndarray,
                      step: np.ndarray, *, factors: np.ndarray | None = None) -> np.ndarray:
    """float32 [N,C] ``lo + refine_by(stored, drops, levels) * step`` in one pass (float64 inside,
    bit-identical with :func:`refine_by` followed by ``compress.uniform.dequantize_uniform``).
    ``lo``, ``step``: float64 [C]; ``drops``: bits per row [N] or None; or ``factors`` [N] instead
    (:func:`refine_by_factor`)."""
    s = np.ascontiguousarray(stored, dtype=np.int64)
    if factors is None:
        factors = np.ones(len(s), dtype=np.int64) if drops is None else drop_factors(drops)
    f = np.ascontiguousarray(factors, dtype=np.int64).reshape(-1)
    out = np.empty(s.shape, dtype=np.float32)
    _refine_dequantize(s, f, levels, np.ascontiguousarray(lo, dtype=np.float64).reshape(-1),
                       np.ascontiguousarray(step, dtype=np.float64).reshape(-1), out)
    return out


@numba.njit(cache=True, nogil=True)
def _refine_dequantize(s, f, levels, lo, step, out):
    for i in range(s.shape[0]):
        fi = f[i]
        for c in range(s.shape[1]):
            q = s[i, c]
            if fi > 1:
                q = min(q * fi, levels)
            out[i, c] = np.float32(lo[c] + np.float64(q) * step[c])
