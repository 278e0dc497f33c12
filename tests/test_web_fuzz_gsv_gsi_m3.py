"""Mutation fuzzing of the TypeScript `.gsv`, `.gsi` and `.m3` decoders in Node: the Python fuzz
corpus's mutation kinds (bit flips, truncation, overwritten words, inserted/deleted bytes, edited
header fields and chunk payloads behind fixed checksums, nested segments included), 1,000 cases
per format (``SPLAT_FUZZ_CASES`` overrides) in one Node process each. Every case must decode or
raise FormatError, within a time cap per case and a capped heap."""
from __future__ import annotations

import os

import numpy as np
import pytest

from compress.image import decode as gsi_decode
from compress.memory.m3file import decode_m3
from compress.video import VideoReader, VideoSettings, encode_video
from splat.errors import FormatError
from splat.scene import GaussianScene
from test_decode_hardening import _clip_frames, mutate, seeds  # noqa: F401  (seeds is a fixture)
from test_web_gsi_m3 import _v1_file, _gaussians
from web_harness import node_decode, node_fuzz

CASES = int(os.environ.get("SPLAT_FUZZ_CASES", "1000"))
CASE_MS = 2000.0  # per case (typical: well under a millisecond)
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
