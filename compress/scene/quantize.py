"""Quantizers for the per-Gaussian attributes.

* :class:`UniformQuant` - per-channel uniform scalar quantization over [lo, hi] with any number of
  steps (2^bits - 1 for whole bits)
  (opacity, log-scales, SH DC, codebook entries, direct SH coefficients).
* smallest-three rotations - the largest-magnitude quaternion component is dropped
  (its index kept, its sign made positive) and the other three, which lie in
  [-1/sqrt2, 1/sqrt2], are quantized uniformly.
* :func:`vectree_sh` - the VecTree-style SH coder: a significance-weighted k-means codebook
  for most Gaussians, direct coefficients for the most significant fraction.

All functions take and return numpy arrays; bounds are rounded to float32 so that the
JSON header reproduces them exactly.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import torch

from compress.uniform import (MAX_LEVELS, dequantize_uniform, is_power_of_two_levels, levels_for_bits, quantize_uniform,
                             uniform_step)
from splat.errors import FormatError
from splat.kmeans import assign, weighted_kmeans

_INV_SQRT2 = 1.0 / math.sqrt(2.0)


def _as_2d(v) -> np.ndarray:
    v = np.asarray(v, dtype=np.float64)
    return v[:, None] if v.ndim == 1 else v.reshape(v.shape[0], int(np.prod(v.shape[1:])))


MAX_BOUND = 1e30
"""Largest quantizer bound a decoder accepts: values stay finite in float32 (a header's 1e308 would not)."""



def parse_range_and_size(d: dict, allow_levels: bool, what: str) -> tuple[np.ndarray, np.ndarray, bool, int]:
    """``(lo, hi, has_bits, size)`` of a header's ``{lo, hi, bits}`` or ``{lo, hi, levels}`` (levels
    only with ``allow_levels``): bounds as flat float64 arrays, ``size`` an int not yet range-checked.
    Raises FormatError("WHAT in the header is malformed") on missing, doubled or mistyped fields."""
    try:
        lo = np.asarray(d["lo"], dtype=np.float64).reshape(-1)
        hi = np.asarray(d["hi"], dtype=np.float64).reshape(-1)
        has_bits, has_levels = "bits" in d, "levels" in d
        if has_bits == has_levels or (has_levels and not allow_levels):
            raise KeyError
        size = d["bits"] if has_bits else d["levels"]
        if type(size) is not int:
            raise TypeError
    except (KeyError, TypeError, ValueError):
        raise FormatError(f"{what} in the header is malformed") from None
    return lo, hi, has_bits, size

@dataclass
class UniformQuant:
    """Uniform quantizer per channel: lo [C], hi [C] (float32-exact), ``levels`` steps (L + 1
    values; 2^bits - 1 for a quantizer of whole bits)."""

    lo: np.ndarray
    hi: np.ndarray
    levels: int

    @property
    def bits(self) -> int:
        """Bits an index needs (exact for whole-bit quantizers)."""
        return int(self.levels).bit_length()

    @property
    def step(self) -> np.ndarray:
        return uniform_step(self.lo, self.hi, levels=self.levels)

    @staticmethod
    def fit(v: np.ndarray, bits: float, lo=None, hi=None) -> "UniformQuant":
        """Bounds from the data (min/max per channel of v [N,C]) unless given; round(2^bits) - 1
        steps (``bits`` may be fractional: any number of levels)."""
        if not 1 <= bits <= 16:
            raise ValueError(f"quantizer bits must be 1..16, got {bits}")
        v = _as_2d(v)
        c = v.shape[1]
        if lo is None:
            lo = v.min(0) if len(v) else np.zeros(c)
        if hi is None:
            hi = v.max(0) if len(v) else np.zeros(c)
        lo = np.broadcast_to(np.asarray(lo, dtype=np.float64), (c,)).astype(np.float32).astype(np.float64)
        hi = np.broadcast_to(np.asarray(hi, dtype=np.float64), (c,)).astype(np.float32).astype(np.float64)
        return UniformQuant(lo, np.maximum(hi, lo), levels_for_bits(bits))

    @property
    def whole_bits(self) -> bool:
        """Whether the quantizer has 2^b - 1 steps (what ``.lgs`` before version 4 can hold)."""
        return is_power_of_two_levels(self.levels)

    def quantize(self, v: np.ndarray) -> np.ndarray:
        return quantize_uniform(_as_2d(v), self.lo, self.hi, levels=self.levels)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        return dequantize_uniform(q, self.lo, self.hi, levels=self.levels).astype(np.float32)

    def to_json(self) -> dict:
        """``bits`` for a whole-bit quantizer, ``levels`` otherwise (``.lgs`` version 4)."""
        size = {"bits": self.bits} if self.whole_bits else {"levels": int(self.levels)}
        return {"lo": [float(x) for x in self.lo], "hi": [float(x) for x in self.hi], **size}

    @staticmethod
    def from_json(d: dict, channels: int, what: str, *, allow_levels: bool = False) -> "UniformQuant":
        """From ``{lo, hi, bits}`` (1..16), or with ``allow_levels`` also ``{lo, hi, levels}`` (1..65535)."""
        lo, hi, has_bits, size = parse_range_and_size(d, allow_levels, f"quantizer for {what}")
        if lo.shape != (channels,) or hi.shape != (channels,):
            raise FormatError(f"quantizer for {what} has {lo.size} channels, expected {channels}")
        ok_size = 1 <= size <= (16 if has_bits else MAX_LEVELS)
        if not ok_size or not (np.abs(lo) <= MAX_BOUND).all() or not (np.abs(hi) <= MAX_BOUND).all() \
                or (hi < lo).any():
            raise FormatError(f"quantizer for {what} is out of range (bits 1..16 or levels 1..{MAX_LEVELS}, "
                              f"finite bounds within +-{MAX_BOUND:g})")
        return UniformQuant(lo, hi, (1 << size) - 1 if has_bits else size)


# ---------------------------------------------------------------------- rotations
def encode_rotations(quats: np.ndarray, bits: int, *, levels: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Smallest-three: wxyz quats [N,4] -> (index of the dropped component [N] in 0..3,
    the other three components quantized [N,3] in 0..L, L = ``levels`` or 2^bits - 1)."""
    q = np.asarray(quats, dtype=np.float64)
    q = q / np.maximum(np.linalg.norm(q, axis=1, keepdims=True), 1e-12)
    idx = np.argmax(np.abs(q), axis=1)
    sign = np.where(q[np.arange(len(q)), idx] < 0, -1.0, 1.0)
    q = q * sign[:, None]
    keep = np.array([[j for j in range(4) if j != i] for i in range(4)])[idx]  # [N,3]
    rest = np.take_along_axis(q, keep, axis=1)
    levels = (1 << bits) - 1 if levels is None else int(levels)
    vals = np.rint((rest / _INV_SQRT2 + 1.0) * 0.5 * levels)
    return idx.astype(np.int64), np.clip(vals, 0, levels).astype(np.int64)


def decode_rotations(idx: np.ndarray, vals: np.ndarray, bits: int, *, levels: int | None = None) -> np.ndarray:
    """Inverse of :func:`encode_rotations`: unit wxyz quats [N,4] float32 (one fused pass,
    bit-identical with :func:`decode_rotations_reference`)."""
    idx = np.ascontiguousarray(idx, dtype=np.int64).reshape(-1)
    if idx.size and (idx.min() < 0 or idx.max() > 3):
        raise FormatError("rotation stream holds a component index outside 0..3")
    out = np.empty((len(idx), 4), dtype=np.float32)
    levels = (1 << bits) - 1 if levels is None else int(levels)
    _rotations_kernel(idx, np.ascontiguousarray(vals, dtype=np.int64).reshape(len(idx), 3), float(levels), out)
    return out


@numba.njit(cache=True, nogil=True)
def _rotations_kernel(idx, vals, levels, out):
    """Per row: the float64 steps of :func:`decode_rotations_reference` in the same order."""
    r = np.empty(3)
    q = np.empty(4)
    for i in range(idx.size):
        ss = 0.0
        for j in range(3):
            r[j] = (vals[i, j] / levels * 2.0 - 1.0) * _INV_SQRT2
            ss += r[j] * r[j]
        big = math.sqrt(min(max(1.0 - ss, 0.0), 1.0))
        k = 0
        for j in range(4):
            if j == idx[i]:
                q[j] = big
            else:
                q[j] = r[k]
                k += 1
        nn = 0.0
        for j in range(4):
            nn += q[j] * q[j]
        d = max(math.sqrt(nn), 1e-12)
        for j in range(4):
            out[i, j] = np.float32(q[j] / d)


def decode_rotations_reference(idx: np.ndarray, vals: np.ndarray, bits: int, *, levels: int | None = None) -> np.ndarray:
    """The readable numpy form of :func:`decode_rotations` (tests compare the two)."""
    idx = np.asarray(idx, dtype=np.int64)
    if idx.size and (idx.min() < 0 or idx.max() > 3):
        raise FormatError("rotation stream holds a component index outside 0..3")
    levels = (1 << bits) - 1 if levels is None else int(levels)
    rest = (np.asarray(vals, dtype=np.float64) / levels * 2.0 - 1.0) * _INV_SQRT2
    big = np.sqrt(np.clip(1.0 - (rest * rest).sum(1), 0.0, 1.0))
    n = len(idx)
    out = np.empty((n, 4), dtype=np.float64)
    keep = np.array([[j for j in range(4) if j != i] for i in range(4)])[idx]
    out[np.arange(n), idx] = big
    np.put_along_axis(out, keep, rest, axis=1)
    out /= np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)
    return out.astype(np.float32)


# ---------------------------------------------------------------------- SH (VecTree)
@dataclass
class SHCode:
    """labels [N] in 0..K (K = 'direct'); codebook [K,D] quantized; direct [M,D] quantized,
    in the order of the Gaussians whose label is K."""

    labels: np.ndarray
    codebook_q: np.ndarray
    codebook_quant: UniformQuant
    direct_q: np.ndarray
    direct_quant: UniformQuant

    @property
    def codebook_size(self) -> int:
        return int(self.codebook_q.shape[0])


def vectree_sh(
    sh: np.ndarray,
    weights: np.ndarray,
    *,
    codebook_size: int,
    direct_fraction: float,
    codebook_bits: int = 8,
    direct_bits: int = 8,
    iters: int = 10,
    seed: int = 0,
    rows: np.ndarray | None = None,
) -> SHCode:
    """Code SH rest coefficients sh [N,D] (D = 3K flattened).

    The ``direct_fraction`` of Gaussians with the largest ``weights`` keep their own
    coefficients (quantized with ``direct_bits``); the others point into a codebook of at
    most ``codebook_size`` entries, fitted by k-means weighted by ``weights`` and stored
    with ``codebook_bits`` per coefficient. ``rows`` [N] (a permutation): code ``sh[rows]``
    without materialising it (only the codebook and direct rows are gathered, in float32).
    """
    n = len(sh) if rows is None else len(rows)
    d = int(np.prod(sh.shape[1:]))
    rows = np.arange(n) if rows is None else np.asarray(rows)

    def gather(i: np.ndarray) -> np.ndarray:
        return np.asarray(sh[rows[i]], dtype=np.float32).reshape(len(i), d)

    w = np.asarray(weights, dtype=np.float64).reshape(n)
    n_direct = int(round(float(np.clip(direct_fraction, 0.0, 1.0)) * n))
    order = np.argsort(-w, kind="stable")
    is_direct = np.zeros(n, dtype=bool)
    is_direct[order[:n_direct]] = True
    del order
    rest_idx = np.nonzero(~is_direct)[0]
    k = int(min(max(codebook_size, 0), len(rest_idx)))
    labels = np.full(n, k, dtype=np.int64)
    if k > 0:
        x = torch.from_numpy(gather(rest_idx))
        centroids = weighted_kmeans(x, k, torch.from_numpy(w[rest_idx]), iters=iters, seed=seed).centroids
        centroids = centroids.numpy().astype(np.float64)
        cq = UniformQuant.fit(centroids, codebook_bits)
        codebook_q = cq.quantize(centroids)
        # re-assign against the quantized codebook the decoder will see
        lab, _ = assign(x, torch.from_numpy(cq.dequantize(codebook_q)))
        del x
        labels[rest_idx] = lab.numpy()
    else:
        cq = UniformQuant.fit(np.zeros((0, d)), codebook_bits)
        codebook_q = np.zeros((0, d), dtype=np.int64)
    direct = gather(np.nonzero(is_direct)[0])
    dq = UniformQuant.fit(direct, direct_bits)
    return SHCode(labels, codebook_q, cq, dq.quantize(direct), dq)


def decode_vectree_sh(code: SHCode) -> np.ndarray:
    """SH coefficients [N,D] float32 from an :class:`SHCode`."""
    k = code.codebook_size
    labels = code.labels
    if labels.size and (labels.min() < 0 or labels.max() > k):
        raise FormatError(f"SH index stream points outside the codebook of {k} entries")
    d = code.codebook_q.shape[1] if code.codebook_q.ndim == 2 else code.direct_q.shape[1]
    is_direct = labels == k
    if int(is_direct.sum()) != len(code.direct_q):
        raise FormatError(f"{int(is_direct.sum())} Gaussians are marked direct but {len(code.direct_q)} direct SH rows are stored")
    table = code.codebook_quant.dequantize(code.codebook_q) if k else np.zeros((0, d), dtype=np.float32)
    direct = code.direct_quant.dequantize(code.direct_q) if len(code.direct_q) else np.zeros((0, d), dtype=np.float32)
    out = np.empty((len(labels), d), dtype=np.float32)
    _gather_sh(np.ascontiguousarray(labels, dtype=np.int64), np.ascontiguousarray(table, dtype=np.float32).reshape(k, d),
               np.ascontiguousarray(direct, dtype=np.float32).reshape(-1, d), out)
    return out


@numba.njit(cache=True, nogil=True)
def _gather_sh(labels, table, direct, out):
    """Row i of ``out``: ``table[labels[i]]``, or the next ``direct`` row where the label is the codebook size."""
    k = table.shape[0]
    j = 0
    for i in range(labels.size):
        if labels[i] == k:
            out[i] = direct[j]
            j += 1
        else:
            out[i] = table[labels[i]]
