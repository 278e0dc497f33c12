"""Mutation fuzzing of the TypeScript `.gsv`, `.gsi` and `.m3` decoders in Node: the Python fuzz
corpus's mutation kinds (bit flips, truncation, overwritten words, inserted/deleted bytes, edited
header fields and chunk payloads behind fixed checksums, nested segments included), 1,000 cases
per format (``SPLAT_FUZZ_CASES`` overrides) in one Node process each. Every case must decode or
raise FormatError, within a time cap per case and a capped heap."""
from __future__ import annotations

import os

import numpy as np
import pytest
import torch

from compress.image import decode as gsi_decode
from compress.memory.m3file import decode_m3
from compress.video import VideoReader, VideoSettings, encode_video
from splat.errors import FormatError
from splat.scene import GaussianScene
from test_decode_hardening import _clip_frames, mutate, seeds  # noqa: F401  (seeds is a fixture)
from test_web_gsi_m3 import _v1_file, _gaussians
from web_harness import node_decode, node_fuzz

CASES = int(os.environ.get("SPLAT_FUZZ_CASES", "1000"))
CASE_MS = 5000.0  # per case: typical well under 1 ms, slowest tens of ms; the cap tells a hang from a busy machine
HEAP_MIB = 256


@pytest.fixture(scope="module")
def resorted_seed() -> bytes:
    """A small re-sorted clip whose tracked segment has deaths and births."""
    fr = _clip_frames(24, 4)
    extra = fr[0][:5]
    extra = extra.replace(means=extra.means + 0.3)
    seq = [fr[0], fr[1][:20], GaussianScene.cat([fr[2][:20], extra]), fr[3][2:]]
    g = np.random.default_rng(0)
    seq = [s[g.permutation(len(s))] for s in seq]
    data = encode_video(seq, VideoSettings(gop=4, fps=10.0, mode="resorted")).data
    r = VideoReader(data)
    assert r.segment(0).mode == "tracked" and r.segment(0).u.born is not None
    return data


def _python_verdict(fmt: str, data: bytes) -> bool:
    """True when the Python reader decodes the case."""
    try:
        if fmt.startswith("gsv"):
            with VideoReader(data) as r:
                for i in range(len(r)):
                    r.frame(i)
        elif fmt.startswith("gsi"):
            gsi_decode(data)
        else:
            decode_m3(data)
        return True
    except FormatError:
        return False


@pytest.mark.parametrize("fmt", ["gsv", "gsv-intra", "gsv-resorted", "gsi", "gsi-v1", "m3"])
def test_fuzz_only_format_error(seeds, resorted_seed, fmt):  # noqa: F811
    base = {"gsv-resorted": resorted_seed, "gsi-v1": _v1_file(_gaussians(80, 20, 16, 3, 3, True), ["sa", "c1"])}
    data = base.get(fmt) or seeds[fmt]
    kind = fmt.split("-")[0]
    rng = np.random.default_rng(23)
    cases = [mutate(data, rng) for _ in range(CASES)]
    out = node_fuzz(kind, [data] + cases, case_ms=CASE_MS, heap_mib=HEAP_MIB)
    assert out["n_failures"] == 0, out["failures"]
    assert out["cases"] == CASES + 1
    assert out["counts"]["FormatError"] > CASES // 2, out["counts"]  # the mutations reach the checks
    assert out["counts"]["ok"] >= 1  # the seed itself decodes
    # on a sample, the TypeScript reader accepts nothing the Python reader refuses
    sample = cases[: min(len(cases), 200)]
    py_ok = [_python_verdict(fmt, c) for c in sample]
    ts_ok = [r.error is None for r in node_decode([(kind, c, {}) for c in sample])]
    lax = [i for i, (p, t) in enumerate(zip(py_ok, ts_ok)) if t and not p]
    assert not lax, f"{fmt}: the TypeScript reader accepts cases {lax[:10]} that the Python reader refuses"
    print(f"{fmt}: {out['counts']} slowest {out['slowest']['ms']:.1f} ms, rss {out['max_rss_mib']:.0f} MiB; "
          f"of the first {len(sample)}: Python decodes {sum(py_ok)}, TypeScript {sum(ts_ok)}")


def test_crafted_bombs_refused_fast_and_small(seeds):  # noqa: F811
    """The Python hardening suite's bombs (counts a few bytes can claim), plus segments with too
    many joints, coincident joints, or a pile of joints in one grid cell (whose binding would cost
    N x J): each one FormatError in Node, within the time cap and a 256 MiB heap."""
    import json

    from compress.container import pack_container, unpack_container
    from compress.entropy import encode_ints, pack_arrays
    from test_decode_hardening import _lgs_bomb, _parts, channels, one_symbol_stream

    bombs = {}
    blob = seeds["gsi"]
    h = unpack_container(blob, magic=b"GSI1").header
    n = 1 << 24
    bombs["gsi"] = [pack_container(b"GSI1", 2, {**h, "count": n, "layers": [n]},
                                   [("GAUS", pack_arrays(*[one_symbol_stream(n) for _ in range(7)]))]),
                    pack_container(b"GSI1", 2, {**h, "width": 65536, "height": 65536},
                                   [("GAUS", unpack_container(blob, magic=b"GSI1").get("GAUS"))])]
    idx, chunks = _parts(seeds["m3"])
    bombs["m3"] = [pack_container(b"GSM3", idx.version, {**idx.header, "n": n},
                                  [(t, one_symbol_stream(n * 4) if t == "QRYS" else d) for t, d in chunks])
                   for n in (1 << 27, 1 << 20)]
    idx, chunks = _parts(seeds["gsv"])
    h = json.loads(json.dumps(idx.header))
    first = h["segments"][0]["frames"]
    h["segments"] = [{"first": 0, "frames": 10 ** 8, "mode": h["segments"][0]["mode"]}] + [
        {**s, "first": s["first"] - first + 10 ** 8} for s in h["segments"][1:]]
    h["frames"] = h["frames"] - first + 10 ** 8
    gsv = [pack_container(idx.magic, idx.version, h, chunks)]
    seg_idx, seg_chunks = _parts(chunks[0][1])
    assert seg_idx.header["mode"] == "tracked" and seg_idx.header["frames"] == 2
    from compress.scene.codec import QuantConfig, encode as lgs_encode
    deg = seeds_sh_degree(seg_chunks)
    coincident = _lgs_bomb(70000)  # 70,000 Gaussians at one point, in a few hundred bytes
    # 5,000 distinct positions inside one cell of the joint grid (one far Gaussian sets its size)
    pile = GaussianScene.random(5000, sh_degree=deg, seed=1)
    pile = pile.replace(means=torch.cat([torch.rand(4999, 3) * 1e-3, torch.ones(1, 3)]))
    piled = lgs_encode(pile, None, QuantConfig(kmeans_iters=1, sh_codebook=4, position_bits=21))[0]
    joints = lambda key, j: {"KEYF": key, "JIDX": encode_ints(np.concatenate([[0], np.ones(j - 1, np.int64)])),  # noqa: E731
                             "JTRF": channels(j, 6)}  # segment 0 holds 2 frames: one row of transforms per joint
    for change, extra in (({"frames": 10 ** 8}, {}), ({"sh_codebook": 10 ** 12}, {}),
                          ({"joints": 65537, "count": 70000, "sh_degree": 0}, joints(coincident, 65537)),  # over the cap
                          ({"joints": 8000, "count": 70000, "sh_degree": 0}, joints(coincident, 8000)),  # coincident
                          ({"joints": 5000, "count": 5000}, joints(piled, 5000))):  # a pile: N x J work
        seg = pack_container(seg_idx.magic, seg_idx.version, {**seg_idx.header, **change},
                             [(t, extra.get(t, d)) for t, d in seg_chunks])
        outer = {**idx.header, "sh_degree": change.get("sh_degree", idx.header["sh_degree"])}
        gsv.append(pack_container(idx.magic, idx.version, outer, [(chunks[0][0], seg)] + chunks[1:]))
    bombs["gsv"] = gsv
    for kind, cases in bombs.items():
        # the crowded-joints case costs ~0.25 s idle (its search budget)
        out = node_fuzz(kind, cases, case_ms=2 * CASE_MS, heap_mib=HEAP_MIB)
        assert out["n_failures"] == 0, out["failures"]
        assert out["counts"] == {"ok": 0, "FormatError": len(cases)}, (kind, out["counts"])
        assert out["max_rss_mib"] < 400, (kind, out["max_rss_mib"])
    reasons = ["frame count", "'frames'", "SH codebook", "joints exceed", "share one position", "too crowded"]
    for reason, r in zip(reasons, node_decode([("gsv", c, {}) for c in bombs["gsv"]])):
        assert r.error is not None and reason in r.error, (reason, r.error)


def seeds_sh_degree(seg_chunks) -> int:
    """The SH degree of a tracked segment's keyframe."""
    from compress.scene.codec import decode as lgs_decode
    return lgs_decode(dict(seg_chunks)["KEYF"]).sh_degree
