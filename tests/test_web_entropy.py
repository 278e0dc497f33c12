"""The TypeScript container, integer-stream and context-modelled decoders (viewer/web) against
the Python encoders: every method, bit for bit, and the same refusals of corrupt streams."""
from __future__ import annotations

import json
import zlib

import numpy as np
import pytest

from compress.container import pack_container
from compress.context import encode_ctx
from compress.entropy import RAW, RANS, RANS_EG, ZSTD, encode_bytes, encode_ints
from web_harness import assert_bits_equal, node_decode


def _arrays() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(5)
    return {
        "empty": np.zeros(0, np.int64),
        "small": rng.integers(0, 7, 3000),
        "signed": rng.integers(-300, 300, 2000),
        "laplace": np.round(rng.laplace(0, 40, 5000)).astype(np.int64),
        "wide": rng.integers(0, 1 << 31, 500),
        "constant": np.full(10000, 3),
        "int32-edges": np.array([0, -1, 2**31 - 1, -2**31, 12, -7]),
    }


def test_int_streams_every_method_match_python():
    jobs, want = [], []
    for name, v in _arrays().items():
        for m in (RAW, ZSTD, RANS, RANS_EG):
            if m == RANS and v.size and int(np.abs(v).max()) * 2 >= 4096:
                continue
            jobs.append(("ints", encode_ints(v, methods=(m,)), {"maxCount": max(v.size, 1)}))
            want.append((f"{name}/method {m}", v))
    for (name, v), r in zip(want, node_decode(jobs)):
        assert r.error is None, f"{name}: {r.error}"
        assert_bits_equal(r.arrays["values"], v.astype(np.float64), name)


def test_64_bit_values_match_python():
    """Values beyond 2^53 (Morton codes of 21-bit grids) come back exact as two 32-bit halves."""
    rng = np.random.default_rng(1)
    u = np.concatenate([rng.integers(0, 1 << 63, 400, dtype=np.uint64), np.array([0, 1, (1 << 63) - 1], np.uint64),
                        (np.uint64(1) << rng.integers(0, 63, 300).astype(np.uint64))])
    s = rng.integers(-(1 << 62), 1 << 62, 300)
    jobs = [("intsraw", encode_ints(u, methods=(m,)), {}) for m in (RAW, ZSTD, RANS_EG)]
    jobs += [("intsraw", encode_ints(s, methods=(m,)), {}) for m in (RAW, RANS_EG)]
    res = node_decode(jobs)
    for r in res[:3]:
        assert r.error is None, r.error
        got = r.arrays["lo"].astype(np.uint64) | (r.arrays["hi"].astype(np.uint64) << np.uint64(32))
        assert_bits_equal(got.view(np.int64), u.view(np.int64), "u64")
    for r in res[3:]:
        assert r.error is None and r.values["signed"]
        z = r.arrays["lo"].astype(np.uint64) | (r.arrays["hi"].astype(np.uint64) << np.uint64(32))
        v = (z >> np.uint64(1)).astype(np.int64) ^ -(z & np.uint64(1)).astype(np.int64)
        assert_bits_equal(v, s, "zigzag i64")


@pytest.mark.parametrize("bits", [1, 5, 8, 12, 16])
def test_context_streams_match_python(bits):
    rng = np.random.default_rng(bits)
    n = 4000
    ctx = rng.integers(0, 24, n)
    v = np.clip((ctx * (1 << bits) // 24) + rng.integers(-3, 4, n), 0, (1 << bits) - 1)
    jobs = []
    for modes, prev in (((0,), (0,)), ((1,), (2,)), ((0, 1), (0, 2))):
        jobs.append(("ctx", encode_ctx(v, bits, ctx, 24, modes=modes, prev_bits=prev),
                     {"n": n, "bits": bits, "contexts": ctx.tolist(), "nContexts": 24}))
    jobs.append(("ctx", encode_ctx(v, bits), {"n": n, "bits": bits}))
    for r in node_decode(jobs):
        assert r.error is None, r.error
        assert_bits_equal(r.arrays["values"], v, f"ctx {bits} bits")


def test_byte_streams_and_container_match_python():
    payload = bytes(range(256)) * 37
    chunks = [("AAAA", b""), ("BBBB", payload), ("AAAA", b"x" * 1000)]
    header = {"count": 3, "name": "t", "nested": {"a": [1, 2.5, None]}}
    blob = pack_container(b"TST1", 2, header, chunks)
    res = node_decode([("bytes", encode_bytes(payload), {}), ("container", blob, {"magic": "TST1", "maxVersion": 2}),
                       ("containerRange", blob, {"magic": "TST1"})])
    assert res[0].error is None and res[0].arrays["values"].tobytes() == payload
    box = res[1]
    assert box.error is None and box.values["version"] == 2 and json.loads(box.values["header"]) == header
    assert box.values["tags"] == "AAAA,BBBB,AAAA"
    ranged = res[2]
    assert ranged.error is None and ranged.values["prefixBytes"] == ranged.values["payloadStart"]
    for i, (_, data) in enumerate(chunks):
        assert box.arrays[f"chunk{i}"].tobytes() == data
        assert ranged.arrays[f"chunk{i}"].tobytes() == data


def _bad_containers() -> dict[str, bytes]:
    good = pack_container(b"TST1", 1, {"a": 1}, [("DATA", b"hello")])
    hl = int.from_bytes(good[8:12], "little")

    def refix(head: bytes) -> bytes:  # a header with a valid CRC
        raw = head
        prefix = good[:8] + len(raw).to_bytes(4, "little") + raw
        return prefix + zlib.crc32(prefix).to_bytes(4, "little") + good[16 + hl:]

    return {
        "trailing": good + b"\0",
        "truncated": good[:-1],
        "header crc": good[:12] + b"[" + good[13:],
        "table crc": good[:16 + hl + 4] + b"X" + good[16 + hl + 5:],
        "payload crc": good[:-1] + b"!",
        "magic": b"XXX1" + good[4:],
        "newer": good[:4] + b"\x09\x00" + good[6:],
        "not an object": refix(b"[1]"),
        "NaN": refix(b'{"a":NaN}'),
        "overflow": refix(b'{"a":1e999}'),
        "long int": refix(b'{"a":123456789012345678901}'),
        "deep": refix(b'{"a":' + b"[" * 40 + b"]" * 40 + b"}"),
        "NUL": refix(b'{"a":"\\u0000"}'),
        "not utf-8": refix(b'{"a":"\xff"}'),
    }


def test_corrupt_containers_give_format_errors_as_in_python():
    from compress.container import unpack_container
    from splat.errors import FormatError

    bad = _bad_containers()
    res = node_decode([("container", b, {"magic": "TST1", "maxVersion": 1}) for b in bad.values()])
    for (name, b), r in zip(bad.items(), res):
        with pytest.raises(FormatError):
            unpack_container(b, magic=b"TST1", max_version=1)
        assert r.error is not None, f"{name}: the TypeScript reader accepted it"


def test_corrupt_streams_give_format_errors():
    v = np.arange(1000) % 17
    streams = {m: encode_ints(v, methods=(m,)) for m in (RAW, ZSTD, RANS, RANS_EG)}
    jobs = []
    for m, s in streams.items():
        jobs += [("ints", s[:-1], {"maxCount": 1000}), ("ints", s + b"\0", {"maxCount": 1000}),
                 ("ints", s, {"maxCount": 999})]
    res = node_decode(jobs)
    assert all(r.error for r in res), [r.error for r in res]
