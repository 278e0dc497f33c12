"""Position coding: grid quantization fitted to the bounds, Morton order, delta + entropy coding.

encode: x [N,3] float -> q = round((x - lo) / step) in [0, L] per axis, where
step = (hi - lo) / L (L = 2^bits - 1 for whole bits, any number of steps from ``.lgs`` version 4); Morton code m = interleave(qx, qy, qz) (x in the lowest
bit of each triple); sort by m; the sorted codes are delta-coded (first value kept) and
entropy-coded. The permutation is returned so every other attribute can follow the same
order: Gaussians are stored (and decoded) in Morton order.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from compress.entropy import decode_ints, encode_ints
from compress.uniform import dequantize_uniform, is_power_of_two_levels, quantize_uniform, uniform_step
from splat.errors import FormatError
from splat.morton import MAX_BITS as _MORTON_BITS
from splat.morton import morton_decode, morton_encode

from .quantize import MAX_BOUND, parse_range_and_size

MAX_BITS = _MORTON_BITS[3]  # 3 x 21 = 63 bits fit one uint64 Morton code


@dataclass
class PositionGrid:
    """Grid of ``levels`` + 1 cells per axis over [lo, hi] (world units, float64 [3] each);
    ``levels`` = 2^bits - 1 for whole bits. Morton codes use ``bits`` = bit length of ``levels``
    bits per axis."""

    lo: np.ndarray
    hi: np.ndarray
    levels: int

    @property
    def bits(self) -> int:
        return int(self.levels).bit_length()

    @property
    def whole_bits(self) -> bool:
        return is_power_of_two_levels(self.levels)

    @property
    def step(self) -> np.ndarray:
        return uniform_step(self.lo, self.hi, levels=self.levels)

    @staticmethod
    def fit(x: np.ndarray, bits: float) -> "PositionGrid":
        """Bounds from ``x`` [N,3]; round(2^bits) - 1 steps per axis (``bits`` may be fractional)."""
        if not 1 <= bits <= MAX_BITS:
            raise ValueError(f"position bits must be 1..{MAX_BITS}, got {bits}")
        levels = min(int(round(2.0 ** float(bits))) - 1, (1 << MAX_BITS) - 1)
        x = np.asarray(x, dtype=np.float64)
        if len(x) == 0:
            return PositionGrid(np.zeros(3), np.zeros(3), levels)
        # the float32 values of the bounds, so the header's JSON numbers round-trip exactly
        lo = x.min(0).astype(np.float32).astype(np.float64)
        hi = x.max(0).astype(np.float32).astype(np.float64)
        return PositionGrid(lo, hi, levels)

    def quantize(self, x: np.ndarray) -> np.ndarray:
        return quantize_uniform(x, self.lo, self.hi, levels=self.levels).astype(np.uint64)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """Grid coordinates -> float32 positions (computed in float64, then rounded)."""
        return dequantize_uniform(q, self.lo, self.hi, levels=self.levels).astype(np.float32)

    def to_json(self) -> dict:
        """``bits`` for a whole-bit grid, ``levels`` otherwise (``.lgs`` version 4)."""
        size = {"bits": self.bits} if self.whole_bits else {"levels": int(self.levels)}
        return {"lo": [float(v) for v in self.lo], "hi": [float(v) for v in self.hi], **size}

    @staticmethod
    def from_json(d: dict, *, allow_levels: bool = False) -> "PositionGrid":
        """From ``{lo, hi, bits}`` (1..21), or with ``allow_levels`` also ``{lo, hi, levels}`` (1..2^21 - 1)."""
        lo, hi, has_bits, size = parse_range_and_size(d, allow_levels, "position grid")
        if lo.shape != (3,) or hi.shape != (3,):
            raise FormatError("position grid in the header is malformed")
        ok_size = 1 <= size <= (MAX_BITS if has_bits else (1 << MAX_BITS) - 1)
        if not ok_size or not (np.abs(lo) <= MAX_BOUND).all() or not (np.abs(hi) <= MAX_BOUND).all() \
                or (hi < lo).any():
            raise FormatError("position grid in the header is out of range")
        return PositionGrid(lo, hi, (1 << size) - 1 if has_bits else size)


def morton_order(x: np.ndarray, grid: PositionGrid) -> tuple[np.ndarray, np.ndarray]:
    """(permutation [N] int64 into Morton order, sorted Morton codes [N] uint64). Stable for ties."""
    codes = morton_encode(grid.quantize(x))
    perm = np.argsort(codes, kind="stable")
    return perm, codes[perm]


def encode_positions(sorted_codes: np.ndarray) -> bytes:
    """Delta-code sorted Morton codes and entropy-code the (non-negative) gaps."""
    c = np.asarray(sorted_codes, dtype=np.uint64)
    if c.size > 1 and (c[1:] < c[:-1]).any():
        raise ValueError("Morton codes must be sorted")
    gaps = np.diff(c, prepend=np.uint64(0)) if c.size else c
    return encode_ints(gaps.astype(np.uint64))


def decode_positions(data: bytes, n: int, grid: PositionGrid) -> tuple[np.ndarray, np.ndarray]:
    """(positions [n,3] float32, Morton codes [n] uint64) from :func:`encode_positions` bytes."""
    gaps = decode_ints(data, max_count=n)
    if gaps.size != n:
        raise FormatError(f"position stream holds {gaps.size} values, expected {n}")
    if (gaps < 0).any():
        raise FormatError("position stream holds negative gaps")
    codes = np.cumsum(gaps.astype(np.uint64), dtype=np.uint64)
    if n and (int(codes[-1]) >> (3 * grid.bits)) != 0:
        raise FormatError("position codes exceed the grid declared in the header")
    q = morton_decode(codes, 3)
    if n and not grid.whole_bits and int(q.max()) > grid.levels:
        raise FormatError("position codes exceed the grid declared in the header")
    return grid.dequantize(q), codes
