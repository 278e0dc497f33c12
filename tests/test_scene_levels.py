"""``.lgs`` quantisers with any number of levels (version 4) and the files before them.

* frozen files of versions 2 and 3 (``tests/data/scene_v*_golden.lgs``) decode to the same
  arrays, bit for bit, as the decoder that wrote them; a frozen version-4 file likewise;
* the writer uses the oldest version that holds the file;
* fractional bits give quantizers with round(2^b) - 1 steps: decoded values are the quantizer's
  grid values (checked against a direct quantization) and within half a step of the input;
* precision classes with grid factors (not only powers of two) round-trip as specified;
* malformed version-4 header fields give a ``FormatError``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from compress.container import pack_container, unpack_container
from compress.scene.codec import MAGIC, QuantConfig, decode, encode, read_lgs
from compress.uniform import levels_for_bits
from splat.errors import FormatError

DATA = Path(__file__).parent / "data"
sys.path.insert(0, str(DATA))
from make_scene_v2_golden import scene_digest, synthetic  # noqa: E402
from make_scene_v4_golden import CONFIG as V4_CONFIG  # noqa: E402

V3_DIGEST = "eacfaa9859c691f0ac4bcbe0b5c6fd5b456172e912dec706370adaaae34ca8e4"  # encoder/decoder of commit 48706d4
V4_DIGEST = "9054d46eef46a6ad805993b3b41a765ccf8c362bafbe36aad6a520f19edd3b06"  # the first version-4 encoder


def _version(data: bytes) -> int:
    return int.from_bytes(data[4:6], "little")


def test_a_version_3_file_decodes_to_the_same_arrays_as_before():
    path = DATA / "scene_v3_golden.lgs"
    data = path.read_bytes()
    assert _version(data) == 3
    scene = read_lgs(path)
    assert len(scene) == 2000 and scene.sh_degree == 2
    assert scene_digest(scene) == V3_DIGEST
    assert scene_digest(decode(data)) == V3_DIGEST


def test_the_version_4_golden_file_decodes_to_the_same_arrays_and_is_reproduced():
    data = (DATA / "scene_v4_golden.lgs").read_bytes()
    assert _version(data) == 4
    assert scene_digest(decode(data)) == V4_DIGEST
    scene, w = synthetic()
    again, _ = encode(scene, w, QuantConfig(**V4_CONFIG))
    assert scene_digest(decode(again)) == V4_DIGEST


def test_the_writer_uses_the_oldest_version_that_holds_the_file():
    scene, w = synthetic(300, seed=3)
    small = dict(sh_codebook_fraction=0.5, kmeans_iters=2)
    assert _version(encode(scene, w, QuantConfig(context_coding=False, **small))[0]) == 1
    assert _version(encode(scene, w, QuantConfig(**small))[0]) == 2
    assert _version(encode(scene, w, QuantConfig(max_drop=2, **small))[0]) == 3
    assert _version(encode(scene, w, QuantConfig(scale_bits=7.5, **small))[0]) == 4
    assert _version(encode(scene, w, QuantConfig(position_bits=15.5, context_coding=False, **small))[0]) == 4
    assert _version(encode(scene, w, QuantConfig(max_drop=2, class_step=0.6, **small))[0]) == 4
    # whole bits written as fractions stay version 2
    assert _version(encode(scene, w, QuantConfig(scale_bits=8.0, rotation_bits=8.0, **small))[0]) == 2


@pytest.mark.parametrize("context_coding", [True, False])
def test_fractional_bits_give_any_number_of_levels(context_coding):
    scene, w = synthetic(500, seed=5)
    cfg = QuantConfig(position_bits=13.3, scale_bits=6.4, rotation_bits=7.7, opacity_bits=4.6, dc_bits=5.3,
                      sh_codebook_bits=6.2, sh_direct_bits=7.1, sh_codebook_fraction=0.5, kmeans_iters=2,
                      context_coding=context_coding)
    data, rep = encode(scene, w, cfg)
    h = unpack_container(data, magic=MAGIC).header
    assert h["log_scales"]["levels"] == levels_for_bits(6.4) == 83
    assert h["rotation"]["levels"] == levels_for_bits(7.7) == 207
    assert h["positions"]["levels"] == levels_for_bits(13.3)
    dec = decode(data)
    perm = rep.permutation
    for name, b in (("log_scales", 6.4), ("sh_dc", 5.3)):
        x = getattr(scene, name).double().numpy()[perm].reshape(len(perm), -1)
        lo, hi = x.min(0).astype(np.float32).astype(np.float64), x.max(0).astype(np.float32).astype(np.float64)
        step = (hi - lo) / levels_for_bits(b)
        want = (lo + np.clip(np.rint((x - lo) / step), 0, levels_for_bits(b)) * step).astype(np.float32)
        got = getattr(dec, name).numpy().reshape(len(perm), -1)
        assert np.array_equal(got, want), name
        assert (np.abs(got - x) <= step / 2 + 1e-6).all()
    op = scene.opacities.double().numpy()[perm]
    assert np.abs(dec.opacities.double().numpy() - op).max() <= (op.max() - op.min()) / levels_for_bits(4.6) / 2 + 1e-6
    pos_step = (scene.means.double().numpy().max(0) - scene.means.double().numpy().min(0)) / levels_for_bits(13.3)
    assert (np.abs(dec.means.double().numpy() - scene.means.double().numpy()[perm]) <= pos_step / 2 + 1e-6).all()


def test_class_grid_factors_round_trip():
    scene, w = synthetic(600, seed=7)
    cfg = QuantConfig(scale_bits=9, rotation_bits=9, dc_bits=9, max_drop=4, class_step=0.6, drop_reference=0.5,
                      sh_codebook_fraction=0.5, kmeans_iters=2)
    data, rep = encode(scene, w, cfg)
    h = unpack_container(data, magic=MAGIC).header
    factors = h["precision"]["factors"]
    assert factors == [1, 2, 2, 3, 5] and _version(data) == 4
    dec = decode(data)
    from compress.scene.precision import significance_classes

    cls = significance_classes(w.double().numpy()[rep.permutation], 4, 0.5)
    f = np.asarray(factors)[cls]
    x = scene.log_scales.double().numpy()[rep.permutation]
    lo, hi = x.min(0).astype(np.float32).astype(np.float64), x.max(0).astype(np.float32).astype(np.float64)
    step = (hi - lo) / 511
    q = np.clip(np.rint((x - lo) / step), 0, 511).astype(np.int64)
    stored = (q + (f[:, None] >> 1)) // f[:, None]
    want = (lo + np.where(f[:, None] > 1, np.minimum(stored * f[:, None], 511), stored) * step).astype(np.float32)
    assert np.array_equal(dec.log_scales.numpy(), want)
    assert len(set(cls.tolist())) >= 3  # several classes really used


def _rewritten(data: bytes, edit, version: int | None = None) -> bytes:
    box = unpack_container(data, magic=MAGIC)
    h = json.loads(json.dumps(box.header))
    edit(h)
    return pack_container(MAGIC, box.version if version is None else version, h, [(c.tag, c.data) for c in box.chunks])


@pytest.mark.parametrize("edit, match", [
    (lambda h: h["log_scales"].update(levels=0), "out of range"),
    (lambda h: h["log_scales"].update(levels=65536), "out of range"),
    (lambda h: h["log_scales"].update(levels=83.5), "malformed"),
    (lambda h: h["log_scales"].update(bits=8), "malformed"),  # both bits and levels
    (lambda h: h["positions"].update(levels=1 << 21), "out of range"),
    (lambda h: h["rotation"].update(levels=70000), "rotation"),
    (lambda h: h["rotation"].update(bits=8), "rotation"),
    (lambda h: h["precision"].update(factors=[1, 0]), "factors"),
    (lambda h: h["precision"].update(factors=[1, 300]), "factors"),
    (lambda h: h["precision"].update(factors=[1]), "factors"),
    (lambda h: h["precision"].update(factors=[1, 2.0]), "factors"),
])
def test_bad_version_4_fields_are_refused(edit, match):
    data = (DATA / "scene_v4_golden.lgs").read_bytes()
    with pytest.raises(FormatError, match=match):
        decode(_rewritten(data, edit), "v4.lgs")


def _whole_bits_but_factors(h: dict) -> None:
    """Every quantizer of ``h`` back to whole bits; the precision classes keep their grid factors."""
    for q in (h["log_scales"], h["sh_dc"], h["opacity"], h["positions"], h["rotation"], h["sh_rest"]["codebook"],
              h["sh_rest"]["direct"]):
        q.pop("levels")
        q["bits"] = 9


def test_version_4_fields_in_an_older_file_are_refused():
    data = (DATA / "scene_v4_golden.lgs").read_bytes()
    with pytest.raises(FormatError, match="malformed"):  # levels in a version-3 file
        decode(_rewritten(data, lambda h: None, version=3), "old.lgs")
    with pytest.raises(FormatError, match="factors needs"):
        decode(_rewritten(data, _whole_bits_but_factors, version=3), "old.lgs")
