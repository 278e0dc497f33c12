"""Entropy coding as a layer: integer arrays in, self-describing byte streams out.

Every stream starts with a method byte and the element count, so a decoder needs
nothing but the bytes. The encoder tries the applicable methods and keeps the smallest
(deterministic for the same input):

* ``RAW``      (0): little-endian fixed width (1, 2, 4 or 8 bytes, zigzag for signed).
* ``ZSTD``     (1): the RAW payload compressed with zstd (level 19).
* ``RANS``     (2): static categorical model over the (zigzag) alphabet: frequencies
                    normalised to 2^16 are stored in the stream, symbols are coded
                    with the byte-wise rANS of ``compress/rans.py``.
* ``RANS_EG``  (3): Elias-gamma style buckets: bucket b = bit length of the value,
                    rANS-coded with a static model; the b-1 bits below the leading one
                    are stored raw, grouped per bucket. Suits heavy-tailed residuals.

Signed arrays are mapped with zigzag (0,-1,1,-2,... -> 0,1,2,3,...). The byte layout
is specified in ``docs/formats/entropy.md``.
"""
from __future__ import annotations



import numba
import numpy as np

from splat.bounded import zstd_decompress_bounded
from splat.errors import FormatError

from .rans import normalize_freqs, rans_decode, rans_encode

RAW, ZSTD, RANS, RANS_EG = 0, 1, 2, 3
MAX_RANS_ALPHABET = 4096


# ---------------------------------------------------------------------- varints / helpers
def write_varint(x: int) -> bytes:
    if x < 0:
        raise ValueError("varint must be non-negative")
    out = bytearray()
    while True:
        b = x & 0x7F
        x >>= 7
        if x:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def read_varint(buf: bytes | memoryview, pos: int) -> tuple[int, int]:
    x, shift = 0, 0
    while True:
        if pos >= len(buf):
            raise FormatError("truncated varint in entropy stream")
        b = buf[pos]
        pos += 1
        x |= (b & 0x7F) << shift
        if not b & 0x80:
            return x, pos
        shift += 7
        if shift > 63:
            raise FormatError("varint too long in entropy stream")


def zigzag(v: np.ndarray) -> np.ndarray:
    v = v.astype(np.int64)
    return ((v << 1) ^ (v >> 63)).astype(np.uint64)


def unzigzag(u: np.ndarray) -> np.ndarray:
    u = u.astype(np.uint64)
    return ((u >> np.uint64(1)).astype(np.int64)) ^ (-(u & np.uint64(1)).astype(np.int64))


def _zstd():
    import zstandard

    return zstandard


def zstd_compress(data: bytes, level: int = 19) -> bytes:
    return _zstd().ZstdCompressor(level=level).compress(data)


def zstd_decompress(data: bytes, max_size: int) -> bytes:
    """At most ``max_size`` bytes from one zstd frame, streamed (a frame's claimed size is not trusted)."""
    return zstd_decompress_bounded(data, max_size, what="entropy stream")


def _width(umax: int) -> int:
    for w in (1, 2, 4, 8):
        if umax < (1 << (8 * w)):
            return w
    return 8


_DT = {1: "<u1", 2: "<u2", 4: "<u4", 8: "<u8"}


# ---------------------------------------------------------------------- bit packing
def pack_bits(values: np.ndarray, width: int) -> bytes:
    """Pack unsigned values (< 2^width) MSB-first into bytes."""
    if width == 0 or values.size == 0:
        return b""
    v = values.astype(np.uint64)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    bits = ((v[:, None] >> shifts[None, :]) & np.uint64(1)).astype(np.uint8)
    return np.packbits(bits.reshape(-1)).tobytes()


def unpack_bits(buf: bytes | memoryview, count: int, width: int) -> np.ndarray:
    if width == 0 or count == 0:
        return np.zeros(count, dtype=np.uint64)
    need = (count * width + 7) // 8
    if len(buf) < need:
        raise FormatError("truncated bit-packed data in entropy stream")
    bits = np.unpackbits(np.frombuffer(bytes(buf[:need]), dtype=np.uint8))[: count * width]
    bits = bits.reshape(count, width).astype(np.uint64)
    shifts = np.arange(width - 1, -1, -1, dtype=np.uint64)
    return (bits << shifts[None, :]).sum(axis=1, dtype=np.uint64)


@numba.njit(cache=True, nogil=True)
def _eg_values(b, data, n_buckets, out):
    """Exp-Golomb-style values from bucket indices ``b`` [N] and the bucket-major bit-packed
    tails in ``data`` (bucket k >= 2: the values of that bucket in order, k - 1 bits each, MSB
    first, padded to a byte): ``out`` [N] uint64 gets 0, 1 or 2^(k-1) + tail. Returns the
    bytes used, or -1 when ``data`` is too short. One pass; same result as unpacking per bucket."""
    counts = np.zeros(n_buckets, dtype=np.int64)
    for i in range(b.size):
        counts[b[i]] += 1
    cursor = np.zeros(n_buckets, dtype=np.int64)  # next bit of each bucket's tail
    nbytes = 0
    for k in range(2, n_buckets):
        cursor[k] = 8 * nbytes
        nbytes += (counts[k] * (k - 1) + 7) // 8
    if nbytes > data.size:
        return -1
    for i in range(b.size):
        k = b[i]
        if k < 2:
            out[i] = np.uint64(k)
            continue
        c = cursor[k]
        v = np.uint64(1)
        for _ in range(k - 1):
            v = (v << np.uint64(1)) | np.uint64((data[c >> 3] >> (7 - (c & 7))) & 1)
            c += 1
        cursor[k] = c
        out[i] = v
    return nbytes


# ---------------------------------------------------------------------- rANS core
def _model_freqs(symbols: np.ndarray) -> np.ndarray:
    """Static model: symbol counts normalised to 2**16 (see compress/rans.py)."""
    return normalize_freqs(np.bincount(symbols.astype(np.int64)))


def _pack_counts(counts: np.ndarray) -> bytes:
    body = b"".join(write_varint(int(c)) for c in counts)
    z = zstd_compress(body, 19)
    return write_varint(len(counts)) + write_varint(len(body)) + write_varint(len(z)) + z


def _unpack_counts(buf, pos: int, limit_alphabet: int) -> tuple[np.ndarray, int]:
    k, pos = read_varint(buf, pos)
    raw_len, pos = read_varint(buf, pos)
    zlen, pos = read_varint(buf, pos)
    if k == 0 or k > limit_alphabet or raw_len > 10 * k or pos + zlen > len(buf):
        raise FormatError("corrupt rANS model header")
    body = zstd_decompress(bytes(buf[pos:pos + zlen]), raw_len)
    pos += zlen
    counts, p = [], 0
    for _ in range(k):
        c, p = read_varint(body, p)
        counts.append(c)
    return np.asarray(counts, dtype=np.int64), pos


# ---------------------------------------------------------------------- methods
def _enc_raw(u: np.ndarray) -> tuple[bytes, int]:
    w = _width(int(u.max()) if u.size else 0)
    return bytes([w]) + u.astype(_DT[w]).tobytes(), w


def _enc_rans(u: np.ndarray) -> bytes:
    freqs = _model_freqs(u)
    return _pack_counts(freqs) + rans_encode(u, freqs)


def _buckets(u: np.ndarray) -> np.ndarray:
    b = np.zeros(u.shape, dtype=np.int64)
    nz = u > 0
    # bit length; float64 log2 is exact enough below 2^52, fix up rounding by checks
    bl = np.floor(np.log2(u[nz].astype(np.float64))).astype(np.int64) + 1
    lo = np.left_shift(np.uint64(1), (bl - 1).astype(np.uint64))
    bl = np.where(u[nz] < lo, bl - 1, bl)
    lo = np.left_shift(np.uint64(1), (bl - 1).astype(np.uint64))
    bl = np.where(u[nz] >= (lo << np.uint64(1)), bl + 1, bl)
    b[nz] = bl
    return b


def _enc_rans_eg(u: np.ndarray) -> bytes:
    b = _buckets(u)
    counts = _model_freqs(b)
    parts = [_pack_counts(counts)]
    coded = rans_encode(b, counts)
    parts.append(write_varint(len(coded)) + coded)
    for bk in range(2, len(counts)):
        sel = u[b == bk]
        if sel.size:
            parts.append(pack_bits(sel - (np.uint64(1) << np.uint64(bk - 1)), bk - 1))
    return b"".join(parts)


def encode_ints(values: np.ndarray, *, methods: tuple[int, ...] = (RAW, ZSTD, RANS, RANS_EG)) -> bytes:
    """Encode a 1-D integer array (any sign) into a self-describing stream."""
    v = np.ascontiguousarray(np.asarray(values).reshape(-1))
    if v.size and not np.issubdtype(v.dtype, np.integer):
        raise TypeError(f"encode_ints needs integers, got {v.dtype}")
    signed = bool(v.size) and bool((v < 0).any()) if np.issubdtype(v.dtype, np.signedinteger) else False
    u = zigzag(v) if signed else v.astype(np.uint64)
    head = write_varint(v.size) + bytes([1 if signed else 0])
    if v.size == 0:
        return bytes([RAW]) + head + bytes([1])
    raw, _w = _enc_raw(u)
    candidates = {}
    if RAW in methods:
        candidates[RAW] = raw
    if ZSTD in methods:
        candidates[ZSTD] = write_varint(len(raw)) + zstd_compress(raw)
    umax = int(u.max())
    if RANS in methods and umax < MAX_RANS_ALPHABET:
        candidates[RANS] = _enc_rans(u)
    if RANS_EG in methods:
        candidates[RANS_EG] = _enc_rans_eg(u)
    best = min(candidates, key=lambda m: (len(candidates[m]), m))
    return bytes([best]) + head + candidates[best]


def decode_ints(data: bytes | memoryview, *, max_count: int) -> np.ndarray:
    """Inverse of :func:`encode_ints`; returns int64. Raises FormatError on corrupt input.

    ``max_count`` is the most values the caller can use (usually the exact count its header
    declares, itself capped by the file size, see ``splat/limits.py``): a rANS stream with a
    one-symbol model decodes any count from 4 bytes, so the stream's own count is not trusted.
    A RAW or ZSTD stream must also hold its values (count x width bytes).
    """
    buf = memoryview(data)
    if len(buf) < 3:
        raise FormatError("truncated entropy stream")
    method = buf[0]
    n, pos = read_varint(buf, 1)
    if n > max_count:
        raise FormatError(f"entropy stream declares {n:,} values, more than the {max_count:,} expected")
    if method == RAW and n > len(buf):
        raise FormatError(f"entropy stream declares {n:,} values, its {len(buf):,} bytes cannot hold them")
    if pos >= len(buf):
        raise FormatError("truncated entropy stream")
    signed = buf[pos]
    pos += 1
    if signed not in (0, 1):
        raise FormatError("corrupt entropy stream (sign flag)")
    if method in (RAW, ZSTD):
        if method == ZSTD:
            raw_len, pos = read_varint(buf, pos)
            if raw_len > 9 * n + 1:
                raise FormatError("corrupt entropy stream (declared size)")
            body = zstd_decompress(bytes(buf[pos:]), raw_len)
        else:
            body = bytes(buf[pos:])
        if not body:
            raise FormatError("truncated entropy stream")
        w = body[0]
        if w not in _DT:
            raise FormatError("corrupt entropy stream (width)")
        if len(body) - 1 != n * w:
            raise FormatError(f"entropy stream holds {len(body) - 1} bytes, expected {n * w}")
        u = np.frombuffer(body[1:], dtype=_DT[w]).astype(np.uint64)
    elif method == RANS:
        counts, pos = _unpack_counts(buf, pos, MAX_RANS_ALPHABET)
        u = rans_decode(buf[pos:], n, counts).astype(np.uint64)
    elif method == RANS_EG:
        counts, pos = _unpack_counts(buf, pos, 65)
        clen, pos = read_varint(buf, pos)
        if pos + clen > len(buf):
            raise FormatError("truncated entropy stream (rANS payload)")
        b = rans_decode(buf[pos:pos + clen], n, counts)
        pos += clen
        if (b < 0).any() or (b >= len(counts)).any():
            raise FormatError("corrupt entropy stream (bucket)")
        u = np.empty(n, dtype=np.uint64)
        used = _eg_values(np.ascontiguousarray(b, dtype=np.int64), np.frombuffer(buf[pos:], dtype=np.uint8),
                          len(counts), u)
        if used < 0:
            raise FormatError("truncated bit-packed data in entropy stream")
        pos += used
        if pos != len(buf):
            raise FormatError("entropy stream has trailing bytes")
    else:
        raise FormatError(f"unknown entropy coding method {method}")
    return unzigzag(u) if signed else u.astype(np.int64)


def encode_bytes(data: bytes, level: int = 19) -> bytes:
    """zstd with a size prefix (for opaque byte payloads such as float16 banks)."""
    return write_varint(len(data)) + zstd_compress(data, level)


def decode_bytes(data: bytes | memoryview, max_size: int) -> bytes:
    """Inverse of :func:`encode_bytes`; ``max_size`` is the most bytes the caller expects."""
    n, pos = read_varint(data, 0)
    if n > max_size:
        raise FormatError("byte stream larger than allowed")
    out = zstd_decompress(bytes(data[pos:]), n)
    if len(out) != n:
        raise FormatError(f"byte stream decoded to {len(out)} bytes, expected {n}")
    return out


def pack_arrays(*streams: bytes) -> bytes:
    """Concatenate streams with varint length prefixes."""
    return b"".join(write_varint(len(s)) + s for s in streams)


def unpack_arrays(data: bytes | memoryview, count: int) -> list[bytes]:
    buf = memoryview(data)
    out, pos = [], 0
    for _ in range(count):
        n, pos = read_varint(buf, pos)
        if pos + n > len(buf):
            raise FormatError("truncated stream list")
        out.append(bytes(buf[pos:pos + n]))
        pos += n
    if pos != len(buf):
        raise FormatError("stream list has trailing bytes")
    return out


