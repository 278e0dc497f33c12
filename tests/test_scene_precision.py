"""Precision classes in .lgs v2: the least significant Gaussians store scales, rotations and
colour on a coarser grid; everything else decodes exactly as without classes."""
from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from compress.container import pack_container, unpack_container
from compress.scene.codec import MAGIC, QuantConfig, decode, encode
from compress.scene.precision import coarsen, precision_classes, refine
from compress.scene.rate import level_config
from conftest import shared_file
from splat import FormatError


def test_coarsen_refine_error_is_bounded():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 256, (1000, 3))
    cls = (rng.random(1000) < 0.5).astype(np.int64)
    back = refine(coarsen(q, cls, 3), cls, 3, 255)
    assert np.array_equal(back[cls == 0], q[cls == 0])
    assert np.abs(back[cls == 1] - q[cls == 1]).max() <= 4 and back.max() <= 255
    w = rng.random(1000)
    c = precision_classes(w, 0.25)
    assert c.sum() == 250 and w[c == 1].max() <= w[c == 0].min()


def test_classes_round_trip_and_shrink_on_a_real_scene():
    from splat.io import read_scene

    scene = read_scene(shared_file("scenes", "fruit_drops_sh3.ply"))
    weights = torch.from_numpy(np.random.default_rng(1).random(len(scene)))
    base = replace(level_config(1), sh_codebook=256)
    plain, _ = encode(scene, weights, base)
    data, rep = encode(scene, weights, replace(base, low_fraction=0.75, low_drop=3))
    assert "PCLS" in rep.stream_bytes and len(data) < 0.95 * len(plain)
    a, b = decode(plain), decode(data)
    assert torch.equal(a.means, b.means) and torch.equal(a.opacity_logits, b.opacity_logits)
    # storage order is Morton order in both; class-0 Gaussians keep every value
    box = unpack_container(data, magic=MAGIC)
    assert box.header["precision"] == {"low_count": int(0.75 * len(scene)), "drop": 3}
    from compress.scene.streams import decode_channels

    cls = decode_channels(box.get("PCLS"), len(scene), 1, hi=1, allow_context=True)[:, 0] == 1
    for k in ("log_scales", "sh_dc", "quats"):
        assert torch.equal(getattr(a, k)[~torch.from_numpy(cls)], getattr(b, k)[~torch.from_numpy(cls)]), k
    step = (np.asarray(box.header["log_scales"]["hi"]) - np.asarray(box.header["log_scales"]["lo"])) / 255
    err = (a.log_scales - b.log_scales).abs().numpy()[cls]
    assert (err <= 4.01 * step[None, :]).all() and err.max() > 0


def test_hostile_precision_headers_raise_format_error():
    from splat import GaussianScene

    scene = GaussianScene.random(500, sh_degree=0, seed=2)
    data, _ = encode(scene, torch.rand(500, dtype=torch.float64), replace(QuantConfig(), low_fraction=0.5))
    box = unpack_container(data, magic=MAGIC)
    chunks = [(c.tag, c.data) for c in box.chunks]
    for bad in ({"low_count": 251, "drop": 2}, {"low_count": 250, "drop": 9}, {"low_count": 250}, [1, 2],
                {"low_count": 250, "drop": 2.5}):
        h = json.loads(json.dumps(box.header))
        h["precision"] = bad
        with pytest.raises(FormatError):
            decode(pack_container(MAGIC, 2, h, chunks))
    with pytest.raises(FormatError):  # classes need version 2
        decode(pack_container(MAGIC, 1, box.header, chunks))
    with pytest.raises(FormatError, match="PCLS"):
        decode(pack_container(MAGIC, 2, box.header, [c for c in chunks if c[0] != "PCLS"]))


def test_significance_classes_follow_the_error_model():
    from compress.scene.precision import coarsen_by, refine_by, significance_classes

    w = np.array([1.0, 0.25, 1 / 16, 1 / 64, 0.0, 2.0])
    d = significance_classes(w, 3, reference=5 / 6)  # reference weight 1.0
    assert d.tolist() == [0, 1, 2, 3, 3, 0]  # one bit per factor 4, capped
    q = np.random.default_rng(3).integers(0, 1024, (6, 3))
    back = refine_by(coarsen_by(q, d), d, 1023)
    assert np.array_equal(back[d == 0], q[d == 0])
    assert (np.abs(back - q) <= (1 << d)[:, None] // 2 + (q == 1023)).all()


def _v3(scene, weights, **kw):
    base = replace(level_config(1), sh_codebook=256)
    return encode(scene, weights, replace(base, max_drop=4, **kw))


def test_v3_significance_classes_round_trip_exactly():
    from splat import GaussianScene

    scene = GaussianScene.random(3000, sh_degree=1, seed=4)
    w = torch.from_numpy(np.random.default_rng(5).random(3000) ** 4)
    data, rep = _v3(scene, w)
    box = unpack_container(data, magic=MAGIC)
    assert box.version == 3 and box.header["precision"] == {"drops": [0, 1, 2, 3, 4]} and "PCLS" in rep.stream_bytes
    a, b = decode(data), decode(data)
    assert torch.equal(a.log_scales, b.log_scales) and torch.equal(a.quats, b.quats)
    # classes coarsen scales, rotations and colour only: positions and opacity decode as without them
    plain, _ = encode(scene, w, replace(level_config(1), sh_codebook=256))
    assert len(data) < len(plain)
    full = decode(plain)
    assert torch.equal(a.means, full.means) and torch.equal(a.opacity_logits, full.opacity_logits)


def test_v3_hostile_drops_raise_format_error():
    from splat import GaussianScene

    scene = GaussianScene.random(400, sh_degree=0, seed=6)
    data, _ = _v3(scene, torch.rand(400, dtype=torch.float64))
    box = unpack_container(data, magic=MAGIC)
    chunks = [(c.tag, c.data) for c in box.chunks]
    for bad in ([0], [0, 9], [0, -1], [0, 1.5], "0,1", [0] * 10, [0, 1, 2]):  # [0,1,2]: PCLS holds classes up to 4
        h = json.loads(json.dumps(box.header))
        h["precision"] = {"drops": bad}
        with pytest.raises(FormatError):
            decode(pack_container(MAGIC, 3, h, chunks))
    with pytest.raises(FormatError, match="version 3"):
        decode(pack_container(MAGIC, 2, box.header, chunks))
