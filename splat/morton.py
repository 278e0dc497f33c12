"""Morton (Z-order) codes of 2-D and 3-D integer grid coordinates: the project's one copy.

Axis a of a D-dimensional point goes to bits a, a + D, a + 2D, ... of the uint64 code (x in
the lowest bit). Coordinates must be below 2^32 (2-D) or 2^21 (3-D); higher bits are dropped.
"""
from __future__ import annotations

import numpy as np

MAX_BITS = {2: 32, 3: 21}  # bits per axis that fit one uint64 code

_U = np.uint64
_SPREAD = {  # (shift, mask) steps that insert D-1 zero bits above every bit
    2: ((16, 0x0000FFFF0000FFFF), (8, 0x00FF00FF00FF00FF), (4, 0x0F0F0F0F0F0F0F0F), (2, 0x3333333333333333),
        (1, 0x5555555555555555)),
    3: ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F), (4, 0x10C30C30C30C30C3),
        (2, 0x1249249249249249)),
}


def _spread(v: np.ndarray, dims: int) -> np.ndarray:
    x = np.asarray(v).astype(_U) & _U((1 << MAX_BITS[dims]) - 1)
    for shift, mask in _SPREAD[dims]:
        x = (x | (x << _U(shift))) & _U(mask)
    return x


def _compact(x: np.ndarray, dims: int) -> np.ndarray:
    steps = _SPREAD[dims]
    x = np.asarray(x).astype(_U) & _U(steps[-1][1])
    masks = [m for _, m in steps[:-1][::-1]] + [(1 << MAX_BITS[dims]) - 1]
    for (shift, _), mask in zip(steps[::-1], masks):
        x = (x | (x >> _U(shift))) & _U(mask)
    return x


def _dims(q: np.ndarray) -> int:
    if q.ndim != 2 or q.shape[1] not in MAX_BITS:
        raise ValueError(f"expected grid coordinates [N,2] or [N,3], got shape {q.shape}")
    return int(q.shape[1])


def morton_encode(q: np.ndarray) -> np.ndarray:
    """Non-negative integer coordinates [N,2] or [N,3] -> Morton codes [N] (uint64)."""
    q = np.asarray(q)
    d = _dims(q)
    code = np.zeros(len(q), _U)
    for a in range(d):
        code |= _spread(q[:, a], d) << _U(a)
    return code


def morton_decode(codes: np.ndarray, dims: int) -> np.ndarray:
    """Morton codes [N] -> coordinates [N,dims] (uint64); the inverse of :func:`morton_encode`."""
    if dims not in MAX_BITS:
        raise ValueError(f"dims must be 2 or 3, got {dims}")
    c = np.asarray(codes).astype(_U)
    return np.stack([_compact(c >> _U(a), dims) for a in range(dims)], axis=1)
