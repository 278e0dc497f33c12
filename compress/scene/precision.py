"""Precision where it is seen: significance classes with their own bit depths.

Class 1 holds the least significant ``fraction`` of the Gaussians (ties by storage index).
Its scales, rotation values and colour are stored ``drop`` bits coarser: a value q on the
attribute's grid [0, levels] is stored as ``(q + 2^(drop-1)) >> drop`` and decoded as
``min(stored << drop, levels)``. Class 0 keeps the full grid. Specified in ``docs/formats/lgs.md``.
"""
from __future__ import annotations

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


def coarsen(q: np.ndarray, cls: np.ndarray, drop: int) -> np.ndarray:
    """Stored values: rows of class 1 rounded to a grid ``drop`` bits coarser (int64, same shape)."""
    q = np.asarray(q, dtype=np.int64)
    if drop == 0:
        return q.copy()
    out = q.copy()
    sel = np.asarray(cls) == 1
    out[sel] = (q[sel] + (1 << (drop - 1))) >> drop
    return out


def refine(stored: np.ndarray, cls: np.ndarray, drop: int, levels: int) -> np.ndarray:
    """Inverse of :func:`coarsen` up to the rounding: grid values in [0, levels] (int64)."""
    s = np.asarray(stored, dtype=np.int64)
    if drop == 0:
        return s.copy()
    sel = (np.asarray(cls) == 1).reshape((-1,) + (1,) * (s.ndim - 1))
    return np.where(sel, np.minimum(s << drop, levels), s)
