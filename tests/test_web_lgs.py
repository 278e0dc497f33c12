"""The TypeScript `.lgs` decoder (viewer/web/src/formats/lgs.ts) against the Python reader:
every version and precision mode the Python encoder writes, and the frozen golden file, decode
to the same float32 arrays bit for bit.

No tolerance anywhere: both decoders do the spec's float64 arithmetic (dequantization
lo + q * step, the smallest-three reconstruction, the opacity logit) in the same order and
round once to float32; ``Math.log``/``Math.log1p`` against numpy's ``log``/``log1p`` is the
one place where two float64 libraries meet, and the logit test below checks every 16-bit
opacity level, so a last-bit difference there would show up after the float32 rounding.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

import torch

from compress.scene.codec import QuantConfig, decode, encode
from splat.scene import GaussianScene
from web_harness import assert_bits_equal, assert_splat_equal, node_decode

DATA = Path(__file__).with_name("data")


def _synthetic(n: int, seed: int):
    """The golden file's clustered, correlated scene (most streams take the context mode)."""
    spec = importlib.util.spec_from_file_location("make_scene_v2_golden", DATA / "make_scene_v2_golden.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.synthetic(n, seed)


def _with_degree(scene: GaussianScene, deg: int) -> GaussianScene:
    k = (deg + 1) ** 2 - 1
    rest = scene.sh_rest[:, :k] if k <= scene.sh_rest.shape[1] else torch.cat(
        [scene.sh_rest, 0.02 * torch.randn(len(scene), k - scene.sh_rest.shape[1], 3, generator=torch.Generator().manual_seed(deg))], 1)
    return scene.replace(sh_rest=rest.contiguous())


def assert_scene_parity(result, data: bytes, name: str) -> None:
    """The Node decode of ``data`` equals ``compress.scene.codec.decode(data)`` bit for bit."""
    assert_splat_equal(result, decode(data), name)


def _cases() -> dict[str, bytes]:
    scene, w = _synthetic(3000, 3)
    small = dict(sh_codebook_fraction=0.5, kmeans_iters=3)
    cases = {
        "v1 (no context records), SH 1": encode(_with_degree(scene, 1), w, QuantConfig(context_coding=False, **small))[0],
        "v2 plain, SH 0": encode(_with_degree(scene, 0), w, QuantConfig())[0],
        "v2 two classes, SH 2": encode(scene, w, QuantConfig(low_fraction=0.4, low_drop=3, **small))[0],
        "v3 significance classes, SH 3": encode(_with_degree(scene, 3), w, QuantConfig(max_drop=3, drop_reference=0.7, **small))[0],
        "v3 odd bit widths, 21-bit positions": encode(_with_degree(scene, 1), w, QuantConfig(
            position_bits=21, scale_bits=11, rotation_bits=10, opacity_bits=16, dc_bits=9, sh_codebook_bits=6,
            sh_direct_bits=12, max_drop=5, **small))[0],
        "v2 12-bit positions, 1-bit channels": encode(_with_degree(scene, 1), None, QuantConfig(
            position_bits=12, scale_bits=2, rotation_bits=2, opacity_bits=1, dc_bits=2, sh_codebook=1, low_drop=1, **small))[0],
        "v1 uniform random scene": encode(GaussianScene.random(2000, sh_degree=2, seed=4), None,
                                          QuantConfig(context_coding=False, sh_codebook=64, kmeans_iters=2))[0],
        "v4 any number of steps, SH 2": encode(scene, w, QuantConfig(
            position_bits=13.6, scale_bits=7.3, rotation_bits=8.6, opacity_bits=5.5, dc_bits=9.2, sh_codebook_bits=6.6,
            sh_direct_bits=7.4, **small))[0],
        "v4 class grid factors, SH 1": encode(_with_degree(scene, 1), w, QuantConfig(
            scale_bits=8.5, rotation_bits=9.3, dc_bits=7.7, max_drop=4, class_step=0.6, drop_reference=0.6, **small))[0],
        "v4 whole-bit steps, factor classes, no context records": encode(_with_degree(scene, 0), w, QuantConfig(
            max_drop=3, class_step=1.4, context_coding=False, **small))[0],
        "v4 tiny grids": encode(_with_degree(scene, 1), None, QuantConfig(
            position_bits=12.2, scale_bits=1.6, rotation_bits=1.3, opacity_bits=1.6, dc_bits=2.4, sh_codebook=1, low_drop=0,
            **small))[0],
        "one Gaussian": encode(GaussianScene.random(1, sh_degree=1, seed=1), None, QuantConfig())[0],
        "empty scene": encode(GaussianScene.random(0, sh_degree=0, seed=1), None, QuantConfig())[0],
    }
    return cases


def _coverage(cases: dict[str, bytes]) -> tuple[set, set, set]:
    """(colour transforms, channel record modes, integer-stream methods) the files use."""
    from compress.container import unpack_container
    from compress.entropy import unpack_arrays

    transforms, modes, methods = set(), set(), set()
    for data in cases.values():
        box = unpack_container(data, magic=b"LGS1")
        d = 3 * ((box.header["sh_degree"] + 1) ** 2 - 1)
        transforms.add(box.header["sh_dc"].get("transform", "none"))
        channels = {"PCLS": 1, "OPAC": 1, "SCAL": 3, "ROTI": 1, "ROTV": 3, "COLR": 3, "SHIX": 1, "SHCB": d, "SHDR": d}
        for c in box.chunks:
            if c.tag == "POSN":
                methods.add(c.data[0])
                continue
            for rec in unpack_arrays(c.data, channels[c.tag]):
                modes.add(rec[0])
                if rec[0] < 2:
                    methods.add(rec[1])
    return transforms, modes, methods


def test_lgs_every_version_and_precision_mode_bit_exact():
    cases = _cases()
    versions = {int.from_bytes(d[4:6], "little") for d in cases.values()}
    assert versions == {1, 2, 3, 4}
    # the files exercise both colour transforms, every record mode and every stream method
    assert _coverage(cases) == ({"none", "g,r-g,b-g"}, {0, 1, 2}, {0, 1, 2, 3})
    results = node_decode([("lgs", d, {}) for d in cases.values()])
    for (name, data), r in zip(cases.items(), results):
        assert_scene_parity(r, data, name)


def test_lgs_golden_files_bit_exact():
    names = ["scene_v2_golden.lgs", "scene_v3_golden.lgs", "scene_v4_golden.lgs"]
    files = [(DATA / n).read_bytes() for n in names]
    for name, data, r in zip(names, files, node_decode([("lgs", d, {}) for d in files])):
        assert_scene_parity(r, data, name)


def test_lgs_opacity_logit_every_16_bit_level():
    """Every opacity level of a 16-bit quantizer over (0, 1): the float64 log/log1p of Node and
    numpy round to the same float32 logit."""
    n = 1 << 16
    scene = GaussianScene.random(n, seed=2)
    op = torch.linspace(-14.0, 14.0, n, dtype=torch.float64).float()
    data = encode(scene.replace(opacity_logits=op), None, QuantConfig(opacity_bits=16, context_coding=False,
                                                                       position_bits=12))[0]
    r = node_decode([("lgs", data, {})])[0]
    assert r.error is None, r.error
    assert_bits_equal(r.arrays["opacityLogits"], decode(data).opacity_logits.numpy(), "opacity logits")


def test_lgs_count_cap_and_override():
    data = encode(GaussianScene.random(50, seed=1), None, QuantConfig())[0]
    from compress.container import pack_container, unpack_container

    box = unpack_container(data, magic=b"LGS1")
    header = dict(box.header, count=10**6)
    bomb = pack_container(b"LGS1", box.version, header, [(c.tag, c.data) for c in box.chunks])
    r = node_decode([("lgs", bomb, {}), ("lgs", data, {"maxGaussians": 49})])
    assert "exceeds the limit" in (r[0].error or "") and "maxGaussians" in r[0].error
    assert "exceeds the limit" in (r[1].error or "")


def test_lgs_real_scene_bit_exact():
    """A real SH-3 scene (../shared/data), encoded with the default settings and with
    significance classes from opacity x area."""
    from conftest import shared_file
    from splat.io import read_scene

    scene = read_scene(shared_file("scenes", "fruit_drops_sh3.ply"))
    w = scene.opacities.reshape(-1).double() * torch.exp(scene.log_scales.double()).prod(-1) ** (2 / 3)
    cases = {"fruit_drops default": encode(scene, None, QuantConfig())[0],
             "fruit_drops v3 classes": encode(scene, w, QuantConfig(max_drop=3, drop_reference=0.7))[0]}
    for (name, data), r in zip(cases.items(), node_decode([("lgs", d, {}) for d in cases.values()])):
        assert_scene_parity(r, data, name)
