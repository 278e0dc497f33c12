"""The context-modelled entropy layer (compress/context.py): exact round trips on random and
real streams, a spec-following pure-Python decoder, and hostile streams."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.context import CTX_MAGIC, TREE_BITS, decode_ctx, encode_ctx, read_ctx_header
from compress.entropy import encode_ints, read_varint
from conftest import shared_file
from splat import FormatError


def _reference_decode(data: bytes, n: int, contexts: np.ndarray) -> list[int]:
    """docs/formats/entropy.md, "Context-modelled streams", in plain Python integers."""
    bits, prev_bits, mode, rate = data[1], data[2], data[3], data[4]
    n_ext, pos = read_varint(data, 5)
    _, pos = read_varint(data, pos)
    payload = data[pos:]
    tb = min(bits, TREE_BITS)
    low = bits - tb
    per_ctx = (1 << tb) + low
    p = [2048] * ((n_ext << prev_bits) * per_ctx)
    cnt = [0] * len(p)
    x = int.from_bytes(payload[:4], "big")
    k = 4
    prev, out = 0, []
    for i in range(n):
        ctx = int(contexts[i]) if n_ext > 1 else 0
        if prev_bits:
            ctx = (ctx << prev_bits) | (prev >> (bits - prev_bits))
        s, node = 0, 1
        for b in range(bits - 1, -1, -1):
            m = ctx * per_ctx + (node if b >= low else (1 << tb) + b)
            p1 = p[m]
            slot = x & 4095
            bit = int(slot >= 4096 - p1)
            x = p1 * (x >> 12) + slot - (4096 - p1) if bit else (4096 - p1) * (x >> 12) + slot
            while x < 1 << 23:
                x = (x << 8) | payload[k]
                k += 1
            w = 65536 // (min(cnt[m], rate) + 2)
            p[m] = min(4080, max(16, p[m] + ((((bit << 12) - p[m]) * w) >> 16)))
            cnt[m] = min(cnt[m] + 1, 255)
            node = 2 * node + bit if b >= low else node
            s = (s << 1) | bit
        v = s if mode == 0 else (s + prev) & ((1 << bits) - 1)
        out.append(v)
        prev = v
    assert x == 1 << 23 and k == len(payload)
    return out


@pytest.mark.parametrize("bits", [1, 5, 8, 12, 16])
def test_random_streams_round_trip_exactly(bits):
    rng = np.random.default_rng(bits)
    for n in (0, 1, 7, 3000, 40000):
        ctx = rng.integers(0, 5, n)
        v = np.clip(np.round(rng.normal((ctx + 1) * (1 << bits) / 7, (1 << bits) / 30, n)), 0, (1 << bits) - 1).astype(np.int64)
        data = encode_ctx(v, bits, ctx, 5)
        assert np.array_equal(decode_ctx(data, n, bits, ctx, 5), v)
        assert encode_ctx(v, bits, ctx, 5) == data  # deterministic


def test_a_spec_following_reference_decoder_reads_the_stream():
    rng = np.random.default_rng(3)
    for bits, mode in ((6, 0), (12, 1)):
        ctx = rng.integers(0, 3, 700)
        v = (np.cumsum(rng.integers(-2, 3, 700)) % (1 << bits)).astype(np.int64)
        data = encode_ctx(v, bits, ctx, 3, modes=(mode,), prev_bits=(2,), rates=(30,))
        assert _reference_decode(data, 700, ctx) == v.tolist()


def test_contexts_pay_off_where_channels_depend():
    """Chroma given luma: a stream that depends on its context codes well below order 0."""
    rng = np.random.default_rng(0)
    luma = rng.integers(0, 256, 50000)
    chroma = np.clip(luma // 2 + np.round(rng.normal(0, 3, luma.size)), 0, 255).astype(np.int64)
    ctx = luma >> 5
    with_ctx = encode_ctx(chroma, 8, ctx, 8)
    assert read_ctx_header(with_ctx)["n_contexts"] == 8
    assert len(with_ctx) < 0.75 * len(encode_ints(chroma))
    assert np.array_equal(decode_ctx(with_ctx, chroma.size, 8, ctx, 8), chroma)


def test_hostile_context_streams_raise_format_error():
    rng = np.random.default_rng(1)
    ctx = rng.integers(0, 4, 5000)
    v = np.clip(ctx * 60 + rng.integers(0, 20, 5000), 0, 255)
    data = encode_ctx(v, 8, ctx, 4, prev_bits=(0,))
    assert read_ctx_header(data)["n_contexts"] == 4
    bad_ctx = ctx.copy()
    bad_ctx[10] = 4  # context index out of the stream's range
    wrong = rng.permutation(ctx)  # the decoder rebuilt other contexts: the payload no longer fits
    cases = [
        lambda: decode_ctx(data, 5000, 8, bad_ctx, 4),
        lambda: decode_ctx(data, 5000, 8, wrong, 4),
        lambda: decode_ctx(data, 5000, 8, ctx, 16),             # caller expects another context table
        lambda: decode_ctx(data, 4999, 8, ctx[:4999], 4),       # count mismatch
        lambda: decode_ctx(data, 5000, 9, ctx, 4),              # bit depth mismatch
        lambda: decode_ctx(data[:-3], 5000, 8, ctx, 4),         # truncated
        lambda: decode_ctx(data + b"\0", 5000, 8, ctx, 4),      # trailing byte
        lambda: decode_ctx(bytes([CTX_MAGIC, 40]) + data[2:], 5000, 8, ctx, 4),  # bits out of range
        lambda: decode_ctx(data[:2] + bytes([9]) + data[3:], 5000, 8, ctx, 4),   # previous-value bits
        lambda: decode_ctx(data[:3] + bytes([7]) + data[4:], 5000, 8, ctx, 4),   # unknown mode
        lambda: decode_ctx(data[:5] + b"\xff\xff\x03" + data[6:], 5000, 8, ctx, 4),  # too many contexts
        lambda: decode_ctx(b"\x00" + data[1:], 5000, 8, ctx, 4),  # not a context stream
        lambda: decode_ctx(data[:4], 5000, 8, ctx, 4),
    ]
    for case in cases:
        with pytest.raises(FormatError):
            case()
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0x5A
    with pytest.raises(FormatError):
        decode_ctx(bytes(flipped), 5000, 8, ctx, 4)


def test_real_scene_streams_round_trip_and_shrink():
    """Every attribute stream of a real scene, context-modelled (version 2) vs version 1."""
    from compress.scene.codec import QuantConfig, decode, encode
    from splat.io import read_scene

    scene = read_scene(shared_file("scenes", "fruit_drops_sh3.ply"))
    v2, r2 = encode(scene, None, QuantConfig(context_coding=True, sh_codebook=512))
    v1, r1 = encode(scene, None, QuantConfig(context_coding=False, sh_codebook=512))
    assert int.from_bytes(v2[4:6], "little") == 2 and int.from_bytes(v1[4:6], "little") == 1
    a, b = decode(v2), decode(v1)  # version-1 files keep decoding
    for k in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        assert torch.equal(getattr(a, k), getattr(b, k)), k
    assert len(v2) < len(v1)
    for tag in ("SCAL", "ROTV", "COLR"):
        assert r2.stream_bytes[tag] <= r1.stream_bytes[tag], tag


def test_lgs_with_a_hostile_context_record_raises_format_error():
    from compress.container import pack_container, unpack_container
    from compress.scene.codec import MAGIC, QuantConfig, decode, encode
    from compress.entropy import pack_arrays, unpack_arrays
    from compress.scene.streams import CONTEXT
    from splat.io import read_scene

    scene = read_scene(shared_file("scenes", "fruit_drops_sh3.ply"))
    data, _ = encode(scene, None, QuantConfig(sh_codebook=256))
    box = unpack_container(data, magic=MAGIC)
    tag, c = next((t, c) for t in ("COLR", "SCAL", "ROTV") for c in range(3)
                  if unpack_arrays(box.get(t), 3)[c][0] == CONTEXT)
    recs = unpack_arrays(box.get(tag), 3)
    # claim 5 caller contexts where the decoder rebuilds another number (wrong table)
    z, pos = read_varint(recs[c], 1)
    rec = bytearray(recs[c])
    hpos = pos + 5
    assert rec[hpos] < 128 and rec[hpos] != 5
    rec[hpos] = 5
    recs[c] = bytes(rec)
    tags = [ch.tag for ch in box.chunks]
    chunks = [(t, pack_arrays(*recs) if t == tag else box.get(t)) for t in tags]
    with pytest.raises(FormatError, match="contexts"):
        decode(pack_container(MAGIC, 2, box.header, chunks))
    # a context record inside a version-1 file is not allowed
    with pytest.raises(FormatError, match="prediction mode"):
        decode(pack_container(MAGIC, 1, box.header, [(t, box.get(t)) for t in tags]))
