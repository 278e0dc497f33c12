"""The fast ``.lgs`` decode path gives exactly what the decoder before it gave.

* ``compress.context._decode_fast`` (the kernel ``decode_ctx`` uses) against the readable
  ``_decode``: same values and the same status on random streams of every shape, and on
  truncated or corrupted payloads;
* a frozen version-2 file (``tests/data/scene_v2_golden.lgs``, written by the encoder before
  the fast path; ``tests/data/make_scene_v2_golden.py``) decodes to the same arrays, bit for bit.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from compress.context import _decode, _decode_fast, _n_models, _recip, encode_ctx, read_ctx_header
from compress.scene.codec import decode, read_lgs

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from make_scene_v2_golden import scene_digest  # noqa: E402

GOLDEN_DIGEST = "8344b590ed409f4665a818f27c46c289ef152e26d363b522ce7a7d3af8e5f63c"  # decoder of commit 0bff952


def _both(payload: np.ndarray, n: int, ext: np.ndarray, h: dict) -> tuple[tuple, tuple]:
    args = (payload, n, ext, h["bits"], h["prev_bits"], h["mode"], _n_models(h["bits"], h["n_contexts"], h["prev_bits"]),
            _recip(h["rate"]))
    out_ref, out_fast = np.full(n, -1, np.int64), np.full(n, -1, np.int64)
    return (_decode(*args, out_ref), out_ref), (_decode_fast(*args, out_fast), out_fast)


@pytest.mark.parametrize("bits", [1, 3, 8, 10, 11, 14])
def test_fast_kernel_matches_the_reference(bits):
    rng = np.random.default_rng(bits)
    n = 3000
    ctx = rng.integers(0, 6, n)
    walk = np.cumsum(rng.integers(-3, 4, n)) + ctx * (1 << bits) // 8
    v = np.mod(walk, 1 << bits).astype(np.int64)
    for mode in (0, 1):
        for pb in (0, 2):
            for rate in (30, 254):
                data = encode_ctx(v, bits, ctx, 6, modes=(mode,), prev_bits=(pb,), rates=(rate,))
                h = read_ctx_header(data)
                payload = np.frombuffer(data[h["payload"]:], dtype=np.uint8)
                ext = ctx if h["n_contexts"] > 1 else np.zeros(n, np.int64)
                (s_ref, o_ref), (s_fast, o_fast) = _both(payload, n, ext, h)
                assert s_ref == s_fast == 0
                assert np.array_equal(o_fast, v) and np.array_equal(o_ref, v)


def test_fast_kernel_fails_like_the_reference_on_damaged_payloads():
    rng = np.random.default_rng(7)
    n = 2000
    ctx = rng.integers(0, 4, n)
    v = np.clip(ctx * 50 + rng.integers(0, 40, n), 0, 255)
    data = encode_ctx(v, 8, ctx, 4)
    h = read_ctx_header(data)
    payload = np.frombuffer(data[h["payload"]:], dtype=np.uint8)
    ext = ctx if h["n_contexts"] > 1 else np.zeros(n, np.int64)
    damaged = [payload[: len(payload) // 2], payload[:3], np.concatenate([payload, [0, 1]]).astype(np.uint8)]
    for k in range(6):
        flip = payload.copy()
        flip[rng.integers(0, len(flip))] ^= np.uint8(1 << int(rng.integers(0, 8)))
        damaged.append(flip)
    damaged.append(np.zeros_like(payload))
    statuses = set()
    for p in damaged:
        (s_ref, o_ref), (s_fast, o_fast) = _both(np.ascontiguousarray(p), n, ext, h)
        assert s_ref == s_fast
        if s_ref == 0:
            assert np.array_equal(o_ref, o_fast)
        statuses.add(s_ref)
    assert statuses & {1, 2, 3}  # the damage was seen


def test_a_version_2_file_decodes_to_the_same_arrays_as_before():
    path = DATA / "scene_v2_golden.lgs"
    scene = read_lgs(path)
    assert len(scene) == 2000 and scene.sh_degree == 2
    assert scene_digest(scene) == GOLDEN_DIGEST
    assert scene_digest(decode(path.read_bytes())) == GOLDEN_DIGEST


def test_serial_and_two_thread_decodes_agree_and_side_errors_surface(tmp_path):
    from splat.errors import FormatError
    from splat.threads import threads

    data = (DATA / "scene_v2_golden.lgs").read_bytes()
    with threads(1):
        serial = scene_digest(decode(data))
    assert serial == GOLDEN_DIGEST
    # damage the SH codebook stream (which the second thread decodes), with valid checksums
    from compress.container import pack_container, unpack_container

    box = unpack_container(data, magic=b"LGS1", max_version=2)
    chunks = [(tag, box.get(tag)) for tag in ("POSN", "PCLS", "OPAC", "SCAL", "ROTI", "ROTV", "COLR", "SHIX", "SHCB",
                                              "SHDR")]
    shcb = bytearray(chunks[8][1])
    shcb[len(shcb) // 2] ^= 0x5A
    chunks[8] = ("SHCB", bytes(shcb))
    bad = pack_container(b"LGS1", 2, box.header, chunks)
    path = tmp_path / "bad.lgs"
    path.write_bytes(bytes(bad))
    for n_threads in (1, 2):
        with threads(n_threads), pytest.raises(FormatError) as e:
            read_lgs(path)
        assert "bad.lgs" in str(e.value) and "SH codebook" in str(e.value)


@pytest.mark.parametrize("bits", [1, 3, 8, 12, 16])
def test_fused_rotation_decode_matches_numpy_reference(bits):
    from compress.scene.quantize import decode_rotations, decode_rotations_reference

    rng = np.random.default_rng(bits)
    idx, vals = rng.integers(0, 4, 20000), rng.integers(0, 1 << bits, (20000, 3))
    vals[:4] = [[0, 0, 0], [(1 << bits) - 1] * 3, [(1 << bits) // 2] * 3, [0, (1 << bits) - 1, 0]]
    a, b = decode_rotations(idx, vals, bits), decode_rotations_reference(idx, vals, bits)
    assert a.dtype == np.float32 and np.array_equal(a.view(np.uint32), b.view(np.uint32))
    with pytest.raises(Exception, match="component index"):
        decode_rotations(np.array([4]), np.zeros((1, 3), np.int64), bits)


def test_one_pass_exp_golomb_tails_round_trip_and_reject_truncation():
    from compress.entropy import RANS_EG, decode_ints, encode_ints
    from splat.errors import FormatError

    rng = np.random.default_rng(3)
    for v in (rng.geometric(0.01, 50000).astype(np.int64) - 1, rng.integers(-(1 << 40), 1 << 40, 3000),
              np.array([0, 1, 2, 3, (1 << 62) - 1, 0], dtype=np.int64)):
        data = encode_ints(v, methods=(RANS_EG,))
        assert data[0] == RANS_EG
        assert np.array_equal(decode_ints(data, max_count=len(v)), v)
        with pytest.raises(FormatError):
            decode_ints(data[:-1], max_count=len(v))
        with pytest.raises(FormatError, match="trailing"):
            decode_ints(data + b"\0", max_count=len(v))


def test_one_pass_anisotropy_class_matches_numpy():
    from compress.scene.stream_contexts import ANISO_EDGES, anisotropy_class

    rng = np.random.default_rng(5)
    ls = (rng.normal(size=(30000, 3)) * 2).astype(np.float32)
    ls[:len(ANISO_EDGES)] = np.stack([np.zeros_like(ANISO_EDGES), ANISO_EDGES, ANISO_EDGES / 2], 1)  # on the edges
    ref = np.searchsorted(ANISO_EDGES, (ls.max(1) - ls.min(1)).astype(np.float32), side="right")
    assert np.array_equal(anisotropy_class(ls), ref)
    assert anisotropy_class(np.zeros((0, 3), np.float32)).shape == (0,)


def test_one_pass_bucket_matches_numpy_on_strided_columns():
    from compress.context import bucket

    q = np.random.default_rng(6).integers(-5000, 70000, (20000, 3))
    for bits in (1, 8, 16):
        for nb in (1, 4, 8):
            for col in (q[:, 1], q[:, 2] + 7):
                assert np.array_equal(bucket(col, bits, nb), np.clip((col * nb) >> bits, 0, nb - 1))


def test_fused_refine_dequantize_matches_refine_then_dequantize():
    from compress.scene.precision import refine_by, refine_dequantize
    from compress.uniform import dequantize_uniform, uniform_step

    rng = np.random.default_rng(7)
    lo, hi, bits = np.array([-7.5, 0.0, 1e-3]), np.array([2.25, 0.0, 3.0]), 8  # an empty range too
    levels = (1 << bits) - 1
    stored = rng.integers(0, levels + 1, (5000, 3))
    for drops in (None, rng.integers(0, 4, 5000)):
        ref = dequantize_uniform(refine_by(stored, drops, levels), lo, hi, bits).astype(np.float32)
        got = refine_dequantize(stored, drops, levels, lo, uniform_step(lo, hi, bits))
        assert got.dtype == np.float32 and np.array_equal(got.view(np.uint32), ref.view(np.uint32))


class _LazyPool:
    """A one-thread pool stand-in that runs a task only when its result is asked for, and
    whose ``shutdown(cancel_futures=True)`` cancels every task not run yet: the worst
    scheduling a real pool may show. A decoder that takes a result after leaving its
    side-thread block fails here every time instead of once in a while."""

    def __init__(self, *_args, **_kwargs):
        self._pending = []

    def submit(self, fn, *args):
        from concurrent.futures import Future

        fut = Future()
        self._pending.append((fut, fn, args))
        orig = fut.result

        def result(timeout=None):
            for f, g, a in list(self._pending):
                self._pending.remove((f, g, a))
                if f.set_running_or_notify_cancel():
                    try:
                        f.set_result(g(*a))
                    except BaseException as e:  # noqa: BLE001 - handed to the caller, as a pool does
                        f.set_exception(e)
                if f is fut:
                    break
            return orig(timeout)

        fut.result = result
        return fut

    def shutdown(self, wait=True, cancel_futures=False):
        if cancel_futures:
            for f, _g, _a in self._pending:
                f.cancel()
        self._pending.clear()


def test_decode_takes_every_side_thread_result_inside_its_block(monkeypatch):
    """Regression: the opacity logits were taken after the side thread's block had closed, so a
    task still queued then was cancelled (``CancelledError`` from ``decode`` under load)."""
    import numba

    import compress.scene.codec as codec

    if numba.get_num_threads() < 2:
        pytest.skip("numba runs one thread here, so the decoder never uses its side thread")
    data = (DATA / "scene_v2_golden.lgs").read_bytes()
    want = decode(data)
    monkeypatch.setattr(codec, "ThreadPoolExecutor", _LazyPool)
    got = decode(data)
    for name in ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
        assert np.array_equal(getattr(got, name).numpy(), getattr(want, name).numpy()), name
