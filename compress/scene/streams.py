"""Integer attribute streams: per-channel entropy coding, optionally predicted from the previous
Gaussian in storage (Morton) order, or context-modelled (whichever is smallest).

Layout of one stream (see ``docs/formats/lgs.md``): ``pack_arrays`` of C channel records;
a record is one mode byte followed by the channel's data:

* 0 (values) / 1 (differences to the previous value, the first against 0): a
  :func:`compress.entropy.encode_ints` stream;
* 2 (context-modelled, ``.lgs`` version 2): ``lo`` as a zigzag varint, then a
  :func:`compress.context.encode_ctx` stream of ``value - lo``, whose caller contexts come
  from ``context(c, decoded[:, :c])`` (the channel index and the channels decoded before it).
"""
from __future__ import annotations

from typing import Callable, Optional

import numpy as np

from compress.context import MAX_BITS, decode_ctx, encode_ctx, int_range, read_ctx_header
from compress.entropy import decode_ints, encode_ints, pack_arrays, read_varint, unpack_arrays, write_varint
from splat.errors import FormatError

DIRECT, DELTA, CONTEXT = 0, 1, 2
# a context-modelled record decodes several times slower than a static one (one adaptive
# binary decision per bit): keep it only when it saves at least this fraction of the channel
CONTEXT_MIN_GAIN = 0.03

# context(c, earlier) -> (contexts [N] int64, n_contexts) for channel c, given channels 0..c-1 [N, c]
ContextFn = Callable[[int, np.ndarray], "tuple[np.ndarray, int]"]
# on_record(channel, record, values [N], contexts [N] or None, n_contexts): a decoded channel
RecordFn = Callable[[int, bytes, np.ndarray, Optional[np.ndarray], int], None]


def _zz(x: int) -> int:
    return (x << 1) if x >= 0 else ((-x << 1) - 1)


def _unzz(u: int) -> int:
    return (u >> 1) if not u & 1 else -((u + 1) >> 1)


def _contexts(context: Optional[ContextFn], c: int, earlier: np.ndarray, n: int) -> tuple[np.ndarray, int]:
    if context is None:
        return np.zeros(n, dtype=np.int64), 1
    return context(c, earlier)


def outside_range(v: np.ndarray, lo: int, hi: int | None) -> bool:
    """True when a value of v [N] (int64) lies outside [lo, hi] (hi None: no upper bound)."""
    vmin, vmax = int_range(v)
    return vmin < lo or (hi is not None and vmax > hi)


def encode_channels(q: np.ndarray, *, allow_delta: bool = True, context: Optional[ContextFn] = None,
                    allow_context: bool = False) -> bytes:
    """Encode integers q [N] or [N,C] channel by channel. ``allow_context``: also try the
    context-modelled record (mode 2), with caller contexts from ``context`` (None: the
    coder's own previous-value context only), kept when it saves >= ``CONTEXT_MIN_GAIN``."""
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
        if allow_context and len(col):
            lo = int(col.min())
            bits = max(1, int(col.max() - lo).bit_length())
            if bits <= MAX_BITS:
                ctx, n_ctx = _contexts(context, c, q2[:, :c], len(col))
                cand = bytes([CONTEXT]) + write_varint(_zz(lo)) + encode_ctx(col - lo, bits, ctx, n_ctx)
                if len(cand) < (1.0 - CONTEXT_MIN_GAIN) * len(best):
                    best = cand
        records.append(best)
    return pack_arrays(*records)


def decode_channels(data: bytes, n: int, channels: int, *, lo: int = 0, hi: int | None = None, what: str = "stream",
                    context: Optional[ContextFn] = None, allow_context: bool = False,
                    on_record: Optional[RecordFn] = None) -> np.ndarray:
    """Inverse of :func:`encode_channels`: int64 [n, channels]; checks every value is in [lo, hi].
    ``allow_context``: accept mode-2 records (files of a version that has them). ``on_record``:
    called after each channel with (channel, record bytes, values [n], contexts [n] or None,
    context count), e.g. to account bits per Gaussian (:mod:`compress.scene.bit_split`)."""
    records = unpack_arrays(data, channels)
    out = np.empty((n, channels), dtype=np.int64)
    modes = (DIRECT, DELTA, CONTEXT) if allow_context else (DIRECT, DELTA)
    for c, rec in enumerate(records):
        if not rec or rec[0] not in modes:
            raise FormatError(f"{what}: channel {c} has an unknown prediction mode")
        if rec[0] == CONTEXT:
            z, pos = read_varint(rec, 1)
            base = _unzz(z)
            if abs(base) >= 1 << 62:
                raise FormatError(f"{what}: channel {c} has an out-of-range offset")
            bits = read_ctx_header(rec[pos:])["bits"]
            ctx, n_ctx = _contexts(context, c, out[:, :c], n)
            try:
                v = decode_ctx(rec[pos:], n, bits, ctx, n_ctx) + base
            except FormatError as e:
                raise FormatError(f"{what}: channel {c}: {e.reason}") from None
        else:
            v = decode_ints(rec[1:], max_count=n)
            if v.size != n:
                raise FormatError(f"{what}: channel {c} holds {v.size} values, expected {n}")
            if rec[0] == DELTA:
                v = np.cumsum(v)
        if n and outside_range(v, lo, hi):  # checked before it feeds later contexts
            raise FormatError(f"{what}: values outside [{lo}, {hi}]")
        out[:, c] = v
        if on_record is not None:
            on_record(c, rec, v, ctx if rec[0] == CONTEXT else None, n_ctx if rec[0] == CONTEXT else 1)
    return out
