"""A byte-wise rANS coder with a static, integer-exact model (numba).

The model is a frequency table ``freq`` of non-negative integers summing to
``2**SCALE_BITS`` (65,536). Every encoder and decoder that uses the same table
produces and reads the same bytes: there is no floating point anywhere, so an
independent implementation only has to follow ``docs/formats/entropy.md``.

State: one unsigned 32-bit integer x in [L, 256 L) with L = 2**23.

* encode symbols in *reverse* order, starting from x = L: while
  x >= ((L >> 16) << 8) * f[s], emit the low byte of x and shift x right by 8; then
  x = (x // f[s]) * 2**16 + x % f[s] + c[s] (c = exclusive prefix sum of f).
  Finally emit x as 4 bytes, least significant first. The emitted byte sequence is
  reversed, so the stream begins with the final state (big-endian) followed by
  the renormalisation bytes in the order the decoder reads them.
* decode: x = first 4 bytes (big-endian); per symbol: slot = x mod 2**16,
  s = the symbol with c[s] <= slot < c[s] + f[s], x = f[s] * (x >> 16) + slot - c[s],
  then while x < L: x = (x << 8) | next byte.
  After the last symbol x must equal L and every byte must be consumed.
"""
from __future__ import annotations

import numba
import numpy as np

from splat.errors import FormatError

SCALE_BITS = 16
SCALE = 1 << SCALE_BITS
RANS_L = 1 << 23


def normalize_freqs(counts: np.ndarray) -> np.ndarray:
    """Integer counts -> frequencies summing to 2**16; every present symbol keeps >= 1.

    Deterministic integer procedure (also in the spec): f = max(1, floor(c * 2^16 / S))
    for c > 0; the difference to 2^16 is then added to (or taken from) the symbols in
    order of decreasing f (ties: lower index first), never taking a symbol below 1.
    """
    c = np.asarray(counts, dtype=np.int64)
    if c.ndim != 1 or c.size == 0 or (c < 0).any() or c.sum() <= 0:
        raise ValueError("counts must be a non-empty 1-D array of non-negative integers with a positive sum")
    if int((c > 0).sum()) > SCALE:
        raise ValueError(f"alphabet too large for {SCALE_BITS}-bit frequencies")
    total = int(c.sum())
    f = np.where(c > 0, np.maximum(1, (c * SCALE) // total), 0).astype(np.int64)
    diff = SCALE - int(f.sum())
    order = np.lexsort((np.arange(f.size), -f))  # decreasing f, then increasing index
    if diff > 0:
        f[order[0]] += diff
    else:
        i = 0
        while diff < 0:
            j = order[i % f.size]
            take = min(-diff, int(f[j]) - 1)
            if take > 0:
                f[j] -= take
                diff += take
            i += 1
    return f


@numba.njit(cache=True, nogil=True)
def put_state(x, out, pos):
    """Write the final rANS state ``x`` as four bytes before ``pos`` in ``out`` (the payload is
    built backwards); returns the new start of the payload. Shared with ``compress.context``."""
    for _ in range(4):
        pos -= 1
        out[pos] = np.uint8(x & np.uint64(0xFF))
        x >>= np.uint64(8)
    return pos


@numba.njit(cache=True, nogil=True)
def _encode(symbols, freq, cum, out):
    x = np.uint64(RANS_L)
    pos = out.size
    for i in range(symbols.size - 1, -1, -1):
        s = symbols[i]
        f = np.uint64(freq[s])
        x_max = np.uint64((RANS_L >> SCALE_BITS) << 8) * f
        while x >= x_max:
            pos -= 1
            out[pos] = np.uint8(x & np.uint64(0xFF))
            x >>= np.uint64(8)
        x = (x // f << np.uint64(SCALE_BITS)) + (x % f) + np.uint64(cum[s])
    return put_state(x, out, pos)


@numba.njit(cache=True, nogil=True)
def _decode(data, n, freq, cum, lookup, out):
    """Returns 0 on success, 1 if the data ran out, 2 if the final state is wrong,
    3 if bytes are left over."""
    if data.size < 4:
        return 1
    x = np.uint64(0)
    for k in range(4):
        x = (x << np.uint64(8)) | np.uint64(data[k])
    pos = 4
    mask = np.uint64(SCALE - 1)
    for i in range(n):
        slot = x & mask
        s = lookup[slot]
        out[i] = s
        x = np.uint64(freq[s]) * (x >> np.uint64(SCALE_BITS)) + slot - np.uint64(cum[s])
        while x < np.uint64(RANS_L):
            if pos >= data.size:
                return 1
            x = (x << np.uint64(8)) | np.uint64(data[pos])
            pos += 1
    if x != np.uint64(RANS_L):
        return 2
    if pos != data.size:
        return 3
    return 0


def _tables(freq: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    f = np.asarray(freq, dtype=np.int64)
    if f.ndim != 1 or f.size == 0 or (f < 0).any() or int(f.sum()) != SCALE:
        raise FormatError(f"rANS frequency table must sum to {SCALE}")
    cum = np.zeros(f.size, dtype=np.int64)
    cum[1:] = np.cumsum(f)[:-1]
    return f, cum


def rans_encode(symbols: np.ndarray, freq: np.ndarray) -> bytes:
    """Encode symbols (ints in [0, len(freq)), each with freq > 0) into bytes."""
    f, cum = _tables(freq)
    s = np.ascontiguousarray(symbols, dtype=np.int64)
    if s.size and (s.min() < 0 or s.max() >= f.size or (f[s] == 0).any()):
        raise ValueError("symbol outside the model's support")
    out = np.empty(4 + 4 * s.size + 16, dtype=np.uint8)  # <= 2 bytes/symbol in practice
    pos = _encode(s, f, cum, out)
    return out[pos:].tobytes()


def rans_decode(data: bytes | memoryview, n: int, freq: np.ndarray) -> np.ndarray:
    """Decode ``n`` symbols; FormatError if the stream is inconsistent with the model."""
    f, cum = _tables(freq)
    lookup = np.repeat(np.arange(f.size, dtype=np.int64), f)
    buf = np.frombuffer(bytes(data), dtype=np.uint8)
    out = np.empty(n, dtype=np.int64)
    check_end_status(_decode(buf, n, f, cum, lookup, out), "rANS stream")
    return out


def check_end_status(status: int, what: str, corrupt_hint: str = "") -> None:
    """Turn a decode kernel's end status into a FormatError naming ``what``: 0 ok, 1 the data
    ran out, 2 the final state check failed (``corrupt_hint`` says what that points to), 3 bytes
    are left over."""
    if status == 1:
        raise FormatError(f"truncated {what}")
    if status == 2:
        raise FormatError(f"corrupt {what} (final state check failed{corrupt_hint})")
    if status == 3:
        raise FormatError(f"{what} has trailing bytes")
