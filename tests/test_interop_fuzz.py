"""Mutation fuzzing of the nerfstudio and SOG v1 / streamed-SOG readers (the harness of test_io_fuzz).

Every corrupted variant must decode to a finite scene or raise splat.FormatError naming the file,
within the harness's time and allocation bounds. SPLAT_FUZZ_CASES scales the counts (default 300).
"""
from __future__ import annotations

import io
import json
import os
import zipfile

import numpy as np
import pytest
from conftest import shared_file
from io_helpers import zip_files
from test_io_fuzz import Target, _json_mutate, generic, run_fuzz, sog_mutate
from test_sog_v1 import sog_v1_files

import splat.io as sio
from splat.io import nerfstudio, sog, streamed_sog

CASES = int(os.environ.get("SPLAT_FUZZ_CASES", "1000")) * 3 // 10


def _ckpt_mutate(data: bytes, rng: np.random.Generator) -> bytes:
    """Bytes anywhere, or the pickle / a tensor storage behind the zip frame (re-zipped so CRCs pass)."""
    if rng.random() < 0.4:
        return generic(data, rng, header=1024)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        files = {n: z.read(n) for n in z.namelist()}
    names = sorted(files)
    pick = [n for n in names if n.endswith("data.pkl")] if rng.random() < 0.6 else names
    name = pick[int(rng.integers(len(pick)))]
    files[name] = generic(files[name], rng, header=64)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for n in names:
            z.writestr(n, files[n])
    return buf.getvalue()


def _lod_decode(data: bytes):
    meta, leaves = streamed_sog.parse_meta(data, "fuzz.lod-meta.json")
    return sio.GaussianScene.empty() if leaves or meta else None


def _lod_mutate(data: bytes, rng: np.random.Generator) -> bytes:
    if rng.random() < 0.3:
        return generic(data, rng, header=64)
    meta = json.loads(data)
    for _ in range(int(rng.integers(1, 4))):
        meta = _json_mutate(meta, rng)
    return json.dumps(meta).encode()


@pytest.fixture(scope="module")
def targets():
    fruit = sio.read_scene(shared_file("scenes", "fruit_drops_sh3.ply")).replace(extras={})[:200]
    playbot = shared_file("scenes", "playbot", "lod-meta.json").read_bytes()
    return {
        "splatfacto": Target("splatfacto", lambda d: nerfstudio.decode(d, "fuzz.ckpt"),
                             [nerfstudio.encode(fruit), nerfstudio.encode(fruit.with_sh_degree(0))], _ckpt_mutate),
        "sog-v1": Target("sog-v1", lambda d: sog.decode(d, "fuzz.sog"),
                         [zip_files(sog_v1_files(fruit.with_sh_degree(2)))], sog_mutate),
        "lod-meta": Target("lod-meta", _lod_decode, [playbot], _lod_mutate),
    }


@pytest.mark.parametrize("name", ["splatfacto", "sog-v1", "lod-meta"])
def test_fuzz_interop_readers(targets, name):
    out = run_fuzz(targets[name], CASES, seed=300 + ["splatfacto", "sog-v1", "lod-meta"].index(name))
    assert out["decoded"] + out["format_error"] == CASES
    print(f"\nfuzz {name}: {CASES} cases, {out}")
