"""Context-modelled entropy coding: integers plus context indices in, bytes out.

Shared by every codec (scene, image, video keyframes). A caller hands over

* ``values`` [N]: integers in [0, 2^bits),
* ``contexts`` [N] (optional): integers in [0, n_contexts) that the *decoder* can rebuild
  before it decodes value i (e.g. a bucket of an earlier channel of the same Gaussian:
  scale given opacity, chroma given luma),

and the coder adds its own context from the previous value of the same stream (the
neighbour in storage order, e.g. Morton order), so contexts may depend on what was just
decoded. Each value is binarised MSB first along a binary tree (the top ``TREE_BITS`` bits;
lower bits get one model per bit position) and every binary decision is coded with an
adaptive probability, chosen by (context, tree node), by a binary rANS coder. Models start
at 1/2 and adapt with integer-only updates, so the decoder rebuilds them exactly: there
are no tables in the stream and decoding is deterministic on every platform.

The encoder tries a few configurations (value or difference to the previous value; with
or without the previous-value and caller contexts; fast or slow adaptation) and keeps the
smallest. Byte layout: ``docs/formats/entropy.md`` ("Context-modelled streams").

    data = encode_ctx(q, bits=8, contexts=luma_bucket, n_contexts=4)
    q2 = decode_ctx(data, n=len(q), bits=8, contexts=luma_bucket, n_contexts=4)
"""
from __future__ import annotations

import itertools

import numba
import numpy as np

from splat.errors import FormatError

from .entropy import read_varint, write_varint
from .rans import check_end_status, put_state

CTX_MAGIC = 0xC1           # first byte of every context-modelled stream (version 1 of this layout)
PROB_BITS = 12             # probabilities are integers in [PMIN, 2^12 - PMIN]
PROB_ONE = 1 << PROB_BITS
PMIN = 16
TREE_BITS = 10             # tree-binarised high bits; below that, one model per bit position
MAX_BITS = 16
MAX_PREV_BITS = 4
MAX_EXT_CONTEXTS = 4096
MAX_MODELS = 1 << 22       # contexts x models per context, a bound on the decoder's memory
RANS_L = 1 << 23
DIRECT, DELTA = 0, 1
RATES = (30, 254)          # adaptation limits the encoder tries: ~1/32 (fast), ~1/256 (slow)
SELECT_SAMPLE = 16384      # the encoder ranks configurations on this many leading values


def _recip(limit: int) -> np.ndarray:
    """Update weights: after k observations a model moves (target - p) * RECIP[k] / 2^16 (k capped)."""
    k = np.minimum(np.arange(256), limit)
    return (65536 // (k + 2)).astype(np.int64)


@numba.njit(cache=True, nogil=True)
def _model_index(ext, prev, bits, prev_bits, per_ctx):
    ctx = ext
    if prev_bits > 0:
        ctx = (ext << prev_bits) | (prev >> (bits - prev_bits))
    return ctx * per_ctx


@numba.njit(cache=True, nogil=True)
def _fresh_models(bits, n_models):
    """(tree bits, low bits, models per context, probabilities at 1/2, zero counts)."""
    tb = min(bits, TREE_BITS)
    low = bits - tb
    return tb, low, (1 << tb) + low, np.full(n_models, PROB_ONE // 2, dtype=np.int64), np.zeros(n_models, dtype=np.int64)


@numba.njit(cache=True, nogil=True)
def _update(p, cnt, m, bit, recip):
    k = cnt[m]
    p[m] += (((bit << PROB_BITS) - p[m]) * recip[k]) >> 16
    if p[m] < PMIN:
        p[m] = PMIN
    elif p[m] > PROB_ONE - PMIN:
        p[m] = PROB_ONE - PMIN
    if k < 255:
        cnt[m] = k + 1


@numba.njit(cache=True, nogil=True)
def _model_bins(values, ext, bits, prev_bits, mode, n_models, recip, bin_bits, bin_probs):
    """Forward pass: the bit and the probability of a 1 for every binary decision."""
    tb, low, per_ctx, p, cnt = _fresh_models(bits, n_models)
    mask = (1 << bits) - 1
    prev = 0
    j = 0
    for i in range(values.size):
        v = values[i]
        base = _model_index(ext[i], prev, bits, prev_bits, per_ctx)
        s = v if mode == 0 else (v - prev) & mask
        node = 1
        for b in range(bits - 1, low - 1, -1):
            bit = (s >> b) & 1
            m = base + node
            bin_bits[j] = bit
            bin_probs[j] = p[m]
            j += 1
            _update(p, cnt, m, bit, recip)
            node = 2 * node + bit
        for b in range(low - 1, -1, -1):
            bit = (s >> b) & 1
            m = base + (1 << tb) + b
            bin_bits[j] = bit
            bin_probs[j] = p[m]
            j += 1
            _update(p, cnt, m, bit, recip)
        prev = v
    return j


@numba.njit(cache=True, nogil=True)
def _rans_bins(bin_bits, bin_probs, nb, out):
    """Binary rANS, symbols coded in reverse; returns the start of the payload in ``out``."""
    x = np.uint64(RANS_L)
    pos = out.size
    for i in range(nb - 1, -1, -1):
        p1 = bin_probs[i]
        if bin_bits[i]:
            f = p1
            c = PROB_ONE - p1
        else:
            f = PROB_ONE - p1
            c = 0
        x_max = np.uint64((RANS_L >> PROB_BITS) << 8) * np.uint64(f)
        while x >= x_max:
            pos -= 1
            out[pos] = np.uint8(x & np.uint64(0xFF))
            x >>= np.uint64(8)
        x = ((x // np.uint64(f)) << np.uint64(PROB_BITS)) + (x % np.uint64(f)) + np.uint64(c)
    return put_state(x, out, pos)


@numba.njit(cache=True, nogil=True)
def _decode(data, n, ext, bits, prev_bits, mode, n_models, recip, out):
    """Returns 0 on success, 1 truncated, 2 bad final state, 3 trailing bytes.
    The state stays below 2^31, so plain int64 arithmetic is exact."""
    if data.size < 4:
        return 1
    x = 0
    for k in range(4):
        x = (x << 8) | np.int64(data[k])
    pos = 4
    size = data.size
    tb, low, per_ctx, p, cnt = _fresh_models(bits, n_models)
    mask = (1 << bits) - 1
    prev = 0
    for i in range(n):
        base = _model_index(ext[i], prev, bits, prev_bits, per_ctx)
        s = 0
        node = 1
        for b in range(bits - 1, -1, -1):
            m = base + node if b >= low else base + (1 << tb) + b
            p1 = p[m]
            p0 = PROB_ONE - p1
            slot = x & (PROB_ONE - 1)
            if slot >= p0:
                bit = 1
                x = p1 * (x >> PROB_BITS) + slot - p0
            else:
                bit = 0
                x = p0 * (x >> PROB_BITS) + slot
            while x < RANS_L:
                if pos >= size:
                    return 1
                x = (x << 8) | np.int64(data[pos])
                pos += 1
            _update(p, cnt, m, bit, recip)
            if b >= low:
                node = 2 * node + bit
            s = (s << 1) | bit
        v = s if mode == 0 else (s + prev) & mask
        out[i] = v
        prev = v
    if x != RANS_L:
        return 2
    if pos != size:
        return 3
    return 0


# ---------------------------------------------------------------- fast decoder
# Same arithmetic as ``_decode`` (which stays the readable reference; tests check they agree
# bit for bit): models as int32 with uint8 counts (a quarter of the memory, so they stay in
# cache), branch-free bit decisions, and the tree and low-bit loops split.

@numba.njit(cache=True, nogil=True, inline='always')
def _step(x, p, cnt, rc, m, data, pos):
    """Decode one binary decision with model ``m``, renormalise from ``data[pos:]`` and adapt
    the model: (new state, bit, next position; -1 when the payload ran out)."""
    p1 = np.int64(p[m])
    p0 = PROB_ONE - p1
    slot = x & (PROB_ONE - 1)
    bit = np.int64(slot >= p0)
    x = (p0 + bit * (p1 - p0)) * (x >> PROB_BITS) + slot - bit * p0
    while x < RANS_L:
        if pos >= data.size:
            return x, bit, -1
        x = (x << 8) | np.int64(data[pos])
        pos += 1
    k = cnt[m]
    p[m] = min(max(p1 + ((((bit << PROB_BITS) - p1) * rc[k]) >> 16), PMIN), PROB_ONE - PMIN)
    cnt[m] = k + (k < 255)
    return x, bit, pos


@numba.njit(cache=True, nogil=True)
def _decode_fast(data, n, ext, bits, prev_bits, mode, n_models, recip, out):
    """Drop-in for :func:`_decode` (same arguments, same status codes, same output)."""
    size = data.size
    if size < 4:
        return 1
    x = np.int64(0)
    for k in range(4):
        x = (x << 8) | np.int64(data[k])
    pos = 4
    tb = min(bits, TREE_BITS)
    low = bits - tb
    per_ctx = (1 << tb) + low
    p = np.full(n_models, PROB_ONE // 2, dtype=np.int32)
    cnt = np.zeros(n_models, dtype=np.uint8)
    rc = recip.astype(np.int32)
    mask = (1 << bits) - 1
    shift = bits - prev_bits
    prev = np.int64(0)
    for i in range(n):
        ctx = ext[i]
        if prev_bits > 0:
            ctx = (ctx << prev_bits) | (prev >> shift)
        base = ctx * per_ctx
        node = np.int64(1)
        for _ in range(tb):
            x, bit, pos = _step(x, p, cnt, rc, base + node, data, pos)
            if pos < 0:
                return 1
            node = 2 * node + bit
        s = node - (1 << tb)
        lb = base + (1 << tb)
        for b in range(low - 1, -1, -1):
            x, bit, pos = _step(x, p, cnt, rc, lb + b, data, pos)
            if pos < 0:
                return 1
            s = (s << 1) | bit
        prev = s if mode == 0 else (s + prev) & mask
        out[i] = prev
    return _end_status(x, pos, size)


@numba.njit(cache=True, nogil=True, inline='always')
def _end_status(x, pos, size):
    """0 when the stream ended exactly (final state RANS_L, every byte read), else 2 or 3."""
    return 2 if x != RANS_L else (3 if pos != size else 0)


@numba.njit(cache=True, nogil=True)
def _int_range(a):
    lo = a[0]
    hi = a[0]
    for i in range(1, a.size):
        v = a[i]
        if v < lo:
            lo = v
        elif v > hi:
            hi = v
    return lo, hi


def int_range(a: np.ndarray) -> tuple[int, int]:
    """(min, max) of a non-empty int64 array in one pass (decoders' range checks)."""
    a = np.asarray(a)
    if a.dtype != np.int64 or a.ndim != 1 or not a.flags.c_contiguous:
        return int(a.min()), int(a.max())
    lo, hi = _int_range(a)
    return int(lo), int(hi)


def _n_models(bits: int, n_ext: int, prev_bits: int) -> int:
    tb = min(bits, TREE_BITS)
    return (n_ext << prev_bits) * ((1 << tb) + bits - tb)


def _check_contexts(contexts, n: int, n_contexts: int) -> np.ndarray:
    if contexts is None:
        return np.zeros(n, dtype=np.int64)
    c = np.ascontiguousarray(np.asarray(contexts).reshape(-1), dtype=np.int64)
    if c.size != n:
        raise ValueError(f"contexts has {c.size} entries for {n} values")
    if n and (c.min() < 0 or c.max() >= n_contexts):
        raise ValueError(f"contexts must lie in [0, {n_contexts})")
    return c


def _encode_one(v: np.ndarray, ext: np.ndarray, bits: int, n_ext: int, prev_bits: int, mode: int, rate: int) -> bytes:
    n = v.size
    n_models = _n_models(bits, n_ext, prev_bits)
    bin_bits = np.empty(n * bits, dtype=np.int64)
    bin_probs = np.empty(n * bits, dtype=np.int64)
    nb = _model_bins(v, ext, bits, prev_bits, mode, n_models, _recip(rate), bin_bits, bin_probs)
    out = np.empty(nb + 16, dtype=np.uint8)  # a decision costs at most log2(4096/16) = 8 bits
    pos = _rans_bins(bin_bits, bin_probs, nb, out)
    head = bytes([CTX_MAGIC, bits, prev_bits, mode, rate]) + write_varint(n_ext) + write_varint(n)
    return head + out[pos:].tobytes()


def encode_ctx(values: np.ndarray, bits: int, contexts: np.ndarray | None = None, n_contexts: int = 1, *,
               modes: tuple[int, ...] = (DIRECT, DELTA), prev_bits: tuple[int, ...] = (0, 2),
               rates: tuple[int, ...] = RATES) -> bytes:
    """Code ``values`` [N] (ints in [0, 2^bits)) given ``contexts`` [N] in [0, n_contexts).

    Tries every combination of ``modes`` x ``prev_bits`` x (caller contexts used or not) x
    ``rates`` (ranked on the first ``SELECT_SAMPLE`` values when the stream is long) and
    returns the shortest stream (deterministic)."""
    if not 1 <= bits <= MAX_BITS:
        raise ValueError(f"bits must be 1..{MAX_BITS}, got {bits}")
    if not 1 <= n_contexts <= MAX_EXT_CONTEXTS:
        raise ValueError(f"n_contexts must be 1..{MAX_EXT_CONTEXTS}")
    v = np.ascontiguousarray(np.asarray(values).reshape(-1), dtype=np.int64)
    if v.size and (v.min() < 0 or v.max() >= (1 << bits)):
        raise ValueError(f"values must lie in [0, 2^{bits})")
    ext = _check_contexts(contexts, v.size, n_contexts)
    configs = [(use_ext, min(pb, bits), mode, rate)
               for use_ext, pb, mode, rate in itertools.product((True, False) if n_contexts > 1 else (False,),
                                                                 prev_bits, modes, rates)
               if _n_models(bits, n_contexts if use_ext else 1, min(pb, bits)) <= MAX_MODELS]
    if not configs:
        raise ValueError("no configuration fits the model-count bound; use fewer contexts or bits")

    def run(cfg, m: int) -> bytes:
        use_ext, pb, mode, rate = cfg
        e = ext[:m] if use_ext else np.zeros(m, dtype=np.int64)
        return _encode_one(v[:m], e, bits, n_contexts if use_ext else 1, pb, mode, rate)

    if len(configs) > 1 and v.size > 2 * SELECT_SAMPLE:
        # rank the configurations on a prefix, code the whole stream with the two best
        ranked = sorted(configs, key=lambda c: (len(run(c, SELECT_SAMPLE)), configs.index(c)))
        configs = ranked[:2]
    return min((run(c, v.size) for c in configs), key=len)


def read_ctx_header(data: bytes | memoryview) -> dict:
    """The header fields of a context-modelled stream (validated)."""
    buf = memoryview(data)
    if len(buf) < 7:
        raise FormatError("truncated context-modelled stream")
    if buf[0] != CTX_MAGIC:
        raise FormatError(f"not a context-modelled stream (first byte {buf[0]:#x})")
    bits, prev_bits, mode, rate = buf[1], buf[2], buf[3], buf[4]
    if not 1 <= bits <= MAX_BITS:
        raise FormatError(f"context-modelled stream: bits {bits} out of range 1..{MAX_BITS}")
    if prev_bits > min(bits, MAX_PREV_BITS):
        raise FormatError(f"context-modelled stream: previous-value context bits {prev_bits} out of range")
    if mode not in (DIRECT, DELTA):
        raise FormatError(f"context-modelled stream: unknown mode {mode}")
    if rate < 1:
        raise FormatError("context-modelled stream: adaptation limit must be >= 1")
    n_ext, pos = read_varint(buf, 5)
    n, pos = read_varint(buf, pos)
    if not 1 <= n_ext <= MAX_EXT_CONTEXTS:
        raise FormatError(f"context-modelled stream: {n_ext} contexts, allowed 1..{MAX_EXT_CONTEXTS}")
    if _n_models(bits, n_ext, prev_bits) > MAX_MODELS:
        raise FormatError("context-modelled stream: too many models")
    return dict(bits=bits, prev_bits=prev_bits, mode=mode, rate=rate, n_contexts=n_ext, count=n, payload=pos)


def decode_ctx(data: bytes | memoryview, n: int, bits: int, contexts: np.ndarray | None = None,
               n_contexts: int = 1) -> np.ndarray:
    """Inverse of :func:`encode_ctx`: int64 [n] in [0, 2^bits). The caller states what it expects
    (count, bits, context count) and rebuilds the contexts; any mismatch with the stream, a
    context index out of range or an inconsistent payload raises FormatError."""
    h = read_ctx_header(data)
    if h["count"] != n:
        raise FormatError(f"context-modelled stream holds {h['count']} values, expected {n}")
    if h["bits"] != bits:
        raise FormatError(f"context-modelled stream has {h['bits']}-bit values, expected {bits}")
    if h["n_contexts"] not in (1, n_contexts):
        raise FormatError(f"context-modelled stream declares {h['n_contexts']} contexts, expected {n_contexts} (or 1)")
    if h["n_contexts"] == 1:
        ext = np.zeros(n, dtype=np.int64)
    else:
        ext = np.ascontiguousarray(np.asarray(contexts).reshape(-1), dtype=np.int64) if contexts is not None else None
        if ext is None or ext.size != n:
            raise FormatError("context-modelled stream needs one context per value")
        if n:
            lo, hi = int_range(ext)
            if lo < 0 or hi >= h["n_contexts"]:
                raise FormatError(f"context index out of range [0, {h['n_contexts']})")
    payload = np.frombuffer(bytes(memoryview(data)[h["payload"]:]), dtype=np.uint8)
    out = np.empty(n, dtype=np.int64)
    status = _decode_fast(payload, n, ext, bits, h["prev_bits"], h["mode"], _n_models(bits, h["n_contexts"], h["prev_bits"]),
                          _recip(h["rate"]), out)
    check_end_status(status, "context-modelled stream", ": wrong contexts or data")
    return out


def bucket(q: np.ndarray, bits: int, n_buckets: int) -> np.ndarray:
    """Context bucket of quantised values q in [0, 2^bits): floor(q * n_buckets / 2^bits), int64 [N]."""
    q = np.asarray(q, dtype=np.int64)
    if q.ndim != 1:
        return np.clip((q * n_buckets) >> bits, 0, n_buckets - 1)
    out = np.empty(q.size, dtype=np.int64)
    _bucket(q, bits, n_buckets, out)
    return out


@numba.njit(cache=True, nogil=True)
def _bucket(q, bits, n_buckets, out):
    """One pass of :func:`bucket` for a 1-D (possibly strided) array."""
    for i in range(q.size):
        out[i] = min(max((q[i] * n_buckets) >> bits, 0), n_buckets - 1)
