"""Integer attribute streams: per-channel entropy coding, optionally predicted from the previous
Gaussian in storage (Morton) order, whichever is smaller.

Layout of one stream (see ``docs/formats/lgs.md``): ``pack_arrays`` of C channel records;
a record is one mode byte (0 = values, 1 = differences to the previous value, the first
against 0) followed by a :func:`compress.entropy.encode_ints` stream.
"""
from __future__ import annotations

import numpy as np

from compress.entropy import decode_ints, encode_ints, pack_arrays, unpack_arrays
from splat.errors import FormatError

DIRECT, DELTA = 0, 1


def encode_channels(q: np.ndarray, *, allow_delta: bool = True) -> bytes:
    """Encode integers q [N] or [N,C] channel by channel."""
    q = np.asarray(q, dtype=np.int64)
    q2 = q.reshape(q.shape[0], int(np.prod(q.shape[1:]))) if q.ndim > 1 else q[:, None]
    records = []
    for c in range(q2.shape[1]):
        col = np.ascontiguousarray(q2[:, c])
        best = bytes([DIRECT]) + encode_ints(col)
        if allow_delta and len(col) > 1:
            cand = bytes([DELTA]) + encode_ints(np.diff(col, prepend=np.int64(0)))
            if len(cand) < len(best):
                best = cand
        records.append(best)
    return pack_arrays(*records)


def decode_channels(data: bytes, n: int, channels: int, *, lo: int = 0, hi: int | None = None, what: str = "stream") -> np.ndarray:
    """Inverse of :func:`encode_channels`: int64 [n, channels]; checks every value is in [lo, hi]."""
    records = unpack_arrays(data, channels)
    out = np.empty((n, channels), dtype=np.int64)
    for c, rec in enumerate(records):
        if not rec or rec[0] not in (DIRECT, DELTA):
            raise FormatError(f"{what}: channel {c} has an unknown prediction mode")
        v = decode_ints(rec[1:], max_count=n)
        if v.size != n:
            raise FormatError(f"{what}: channel {c} holds {v.size} values, expected {n}")
        if rec[0] == DELTA:
            v = np.cumsum(v)
        out[:, c] = v
    if n and (out.min() < lo or (hi is not None and out.max() > hi)):
        raise FormatError(f"{what}: values outside [{lo}, {hi}]")
    return out
