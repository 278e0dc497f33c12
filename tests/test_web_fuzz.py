"""Hostile input for the TypeScript decoders: the Python fuzz corpus's mutation kinds (bit
flips, truncations, inserted bytes, overwritten words, absurd header values, payload edits
behind re-computed checksums; ``tests/test_decode_hardening.py``), 1,000 cases per seed file,
all through one Node process per format. Only FormatError or a decoded result is allowed,
each case within a time cap, the process within a heap cap (``--max-old-space-size``) and an
RSS cap. A new format adds its seeds to ``SEEDS`` and a dumper in ``viewer/web/cli/dump.mjs``.
"""
from __future__ import annotations

import os

import numpy as np
import pytest

from compress.context import encode_ctx
from compress.entropy import RAW, RANS, RANS_EG, ZSTD, encode_ints
from compress.scene import codec as lgs
from splat.scene import GaussianScene
from test_decode_hardening import mutate
from test_io_fuzz import generic
from web_harness import node_fuzz

CASES = int(os.environ.get("SPLAT_FUZZ_CASES", "1000"))
CASE_MS = 2000.0  # per case, wall clock on a loaded 2-core machine; typical is well under 1 ms
HEAP_MIB = 256    # V8 heap cap for the whole run
RSS_MIB = 768     # resident memory cap (typed arrays live outside the V8 heap)


def _lgs_seeds() -> dict[str, bytes]:
    scene = GaussianScene.random(150, sh_degree=1, seed=0)
    w = np.random.default_rng(0).random(150)
    small = dict(sh_codebook=16, kmeans_iters=2)
    return {
        "lgs v1": lgs.encode(scene, None, lgs.QuantConfig(context_coding=False, **small))[0],
        "lgs v2": lgs.encode(scene, w, lgs.QuantConfig(low_fraction=0.3, **small))[0],
        "lgs v3": lgs.encode(scene, w, lgs.QuantConfig(max_drop=2, **small))[0],
        "lgs v4": lgs.encode(scene, w, lgs.QuantConfig(position_bits=13.5, scale_bits=6.6, rotation_bits=7.3,
                                                       opacity_bits=5.5, dc_bits=6.2, sh_codebook_bits=5.8,
                                                       max_drop=3, class_step=0.7, **small))[0],
    }


# name -> (dumper kind, seed bytes, dumper options, mutator, least fraction of cases refused)
def _seeds():
    # a mutated container almost always fails a check; a raw integer stream often still decodes
    out = {name: ("lgs", data, {}, mutate, 0.5) for name, data in _lgs_seeds().items()}
    rng = np.random.default_rng(3)
    v = np.round(rng.laplace(0, 20, 3000)).astype(np.int64)
    for m in (RAW, ZSTD, RANS, RANS_EG):
        out[f"int stream method {m}"] = ("ints", encode_ints(v if m != RANS else v % 50, methods=(m,)),
                                         {"maxCount": 3000}, lambda d, r: generic(d, r, header=32), 0.1)
    ctx = rng.integers(0, 8, 3000)
    out["context stream"] = ("ctx", encode_ctx((ctx * 30 + rng.integers(0, 9, 3000)) % 256, 8, ctx, 8),
                             {"n": 3000, "bits": 8, "contexts": ctx.tolist(), "nContexts": 8},
                             lambda d, r: generic(d, r, header=32), 0.5)
    return out


SEEDS = _seeds()


@pytest.mark.parametrize("name", list(SEEDS))
def test_ts_decoders_fuzz_only_format_error(name):
    kind, data, options, mutator, refused = SEEDS[name]
    rng = np.random.default_rng(17)
    cases = [data] + [mutator(data, rng) for _ in range(CASES)]
    res = node_fuzz(kind, cases, case_ms=CASE_MS, heap_mib=HEAP_MIB, options=options)
    assert res["n_failures"] == 0, res["failures"]
    assert res["cases"] == len(cases)
    assert res["counts"]["FormatError"] > refused * len(cases), res  # the mutations really reach the checks
    assert res["counts"]["ok"] >= 1  # the seed itself decodes
    assert res["max_rss_mib"] < RSS_MIB, res


@pytest.mark.parametrize("name", [n for n in SEEDS if n.startswith("lgs")])
def test_mutants_both_decoders_accept_decode_identically(name):
    """Mutated files that the Python reader and the TypeScript decoder both accept (edited
    header settings, other quantizer bounds or bit widths, still-consistent streams) decode to
    the same bits; and the two refuse the same files (a few leniencies of the Python reader,
    e.g. a bare number for a one-channel quantizer bound, are allowed for)."""
    from compress.scene.codec import decode
    from splat.errors import FormatError
    from web_harness import assert_splat_equal, node_decode

    kind, data, options, mutator, _ = SEEDS[name]
    rng = np.random.default_rng(29)
    cases = [mutator(data, rng) for _ in range(300)]
    agree = both_ok = 0
    for i, (case, r) in enumerate(zip(cases, node_decode([(kind, c, options) for c in cases]))):
        try:
            want = decode(case)
        except FormatError:
            want = None
        agree += (want is None) == (r.error is not None)
        if want is not None and r.error is None:
            both_ok += 1
            assert_splat_equal(r, want, f"{name} mutant {i}")
    assert both_ok >= 10 and agree >= 0.97 * len(cases), (both_ok, agree)
