"""The TypeScript `.gsi` and `.m3` decoders (viewer/web) against the Python readers, bit for bit,
on files the Python encoders write in the test (and a frozen version-1 `.gsi`)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from compress.container import pack_container
from compress.entropy import encode_ints, pack_arrays
from compress.image import BitDepths, decode, encode
from compress.image.gsi import MAGIC as GSI_MAGIC
from compress.image.model import ImageGaussians
from compress.image.quant import attribute_names, quantize
from compress.memory import Memory, ModelMemory
from compress.memory.m3file import decode_m3, encode_m3
from compress.memory.memory import QUERY_EXTRA
from compress.memory.query import gaussian_features, gaussian_similarity
from splat.morton import morton_encode
from splat.scene import GaussianScene
from test_image_streams import V1_FILE
from web_harness import assert_bits_equal, node_decode

DATA = Path(__file__).with_name("data")


# ---------------------------------------------------------------------- .gsi
def _gaussians(n: int, w: int, h: int, c: int, seed: int, clustered: bool) -> ImageGaussians:
    g = torch.Generator().manual_seed(seed)
    if clustered:  # dense clusters: the quadtree coding wins
        centres = torch.rand(6, 2, generator=g) * torch.tensor([w, h])
        means = centres[torch.randint(0, 6, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 3
        means = means.clamp(torch.zeros(2), torch.tensor([w, h], dtype=torch.float32))
    else:
        means = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
    return ImageGaussians(means, torch.rand(n, 2, generator=g) * 3 + 0.3, torch.rand(n, generator=g) * 6 - 3,
                          torch.rand(n, c, generator=g), w, h, mode="topk" if seed % 2 else "sum", k=3 + seed)


def _v1_file(g: ImageGaussians, delta: list[str]) -> bytes:
    """A version-1 file (plain/delta integer streams, Morton-delta positions) of ``g``'s decoded Gaussians."""
    d = decode(encode(g, bits=BitDepths()))
    spec = d.spec
    q = quantize(spec, d.means.numpy(), d.scales.numpy(), d.rotations.numpy(), d.colors.numpy())
    sizes = [int(s) for s in json.loads(json.dumps(_layers(encode(g, bits=BitDepths()))))]
    code = morton_encode(np.stack([q["px"], q["py"]], 1)).astype(np.int64)
    starts = np.cumsum([0] + sizes[:-1])
    first = np.zeros(len(code), bool)
    first[starts] = True

    def gaps(v):
        out = v.copy()
        out[1:] = v[1:] - v[:-1]
        out[first] = v[first]
        return out

    streams = [encode_ints(gaps(code))]
    for name in attribute_names(d.channels):
        streams.append(encode_ints(gaps(q[name]) if name in delta else q[name]))
    header = {"width": d.width, "height": d.height, "channels": d.channels, "count": len(d), "mode": d.mode, "k": d.k,
              "layers": sizes, "delta": delta, "quant": spec.to_json()}
    return pack_container(GSI_MAGIC, 1, header, [("GAUS", pack_arrays(*streams))])


def _layers(data: bytes) -> list[int]:
    from compress.container import unpack_container
    return unpack_container(data, magic=GSI_MAGIC).header["layers"]


def _gsi_files() -> list[tuple[str, bytes]]:
    files = []
    for i, (n, w, h, c, clustered, bits) in enumerate([
        (1500, 64, 48, 3, True, BitDepths()),                                   # quadtree, YCoCg
        (60, 300, 200, 3, False, BitDepths(pos_step=0.5)),                      # Morton deltas
        (400, 33, 17, 1, True, BitDepths(size_bits=5, aniso_bits=9, color_bits=10)),  # gray, no transform
        (300, 40, 30, 4, False, BitDepths(pos_step=0.125, chroma_bits=4)),      # RGBA
        (200, 2, 3, 5, True, BitDepths(pos_step=1.0)),                          # tiny grid, 5 channels
    ]):
        files.append((f"v2 #{i} ({n} Gaussians, {c} channels)", encode(_gaussians(n, w, h, c, i, clustered), bits=bits)))
    files.append(("v1 frozen", V1_FILE))
    files.append(("v2 frozen", (DATA / "image_golden.gsi").read_bytes()))
    files.append(("v1 delta", _v1_file(_gaussians(250, 50, 40, 3, 7, True), ["sa", "c0", "c2"])))
    files.append(("v1 rgba", _v1_file(_gaussians(120, 20, 70, 4, 8, False), [])))
    return files


def test_gsi_matches_python_bit_for_bit():
    """Every dequantised value is float64 maths rounded once to float32 (gsi.md section 4), so
    means, scales, rotations and colours must agree bit for bit, including exp/atan2 results."""
    files = _gsi_files()
    kinds = {json.loads(data[12:12 + int.from_bytes(data[8:12], "little")]).get("positions") for _, data in files}
    assert {"tree", "delta"} <= kinds  # both version-2 position codings are exercised
    res = node_decode([("gsi", data, {}) for _, data in files])
    for (name, data), r in zip(files, res):
        assert r.error is None, f"{name}: {r.error}"
        want = decode(data)
        assert r.values["count"] == len(want) and r.values["channels"] == want.channels, name
        assert (r.values["width"], r.values["height"], r.values["mode"], r.values["k"]) == \
            (want.width, want.height, want.mode, want.k), name
        for key in ("means", "scales", "rotations", "colors"):
            assert_bits_equal(r.arrays[key], getattr(want, key).numpy(), f"{name}: {key}")


def test_gsi_refusals_match_python():
    """Corrupt files: the TypeScript decoder refuses what the Python reader refuses."""
    data = _gsi_files()[0][1]
    hl = int.from_bytes(data[8:12], "little")
    cases = [data[:-1], data + b"\0", data[:40], b"GSIX" + data[4:], data[:4] + b"\x03\x00" + data[6:]]
    res = node_decode([("gsi", c, {}) for c in cases])
    for c, r in zip(cases, res):
        with pytest.raises(Exception):
            decode(c)
        assert r.error is not None, "TS decoder accepted a corrupt file"
    # a header that does not add up, CRCs recomputed
    from compress.container import unpack_container
    box = unpack_container(data, magic=GSI_MAGIC)
    bad = []
    for change in ({"count": box.header["count"] + 1}, {"layers": [1] + box.header["layers"]}, {"k": 0},
                   {"width": 0}, {"mode": "max"}, {"positions": "tree"}, {"tree_nodes": 5}):
        h = dict(box.header, **change)
        bad.append(pack_container(GSI_MAGIC, 2, h, [("GAUS", box.get("GAUS"))]))
    for c, r in zip(bad, node_decode([("gsi", c, {}) for c in bad])):
        with pytest.raises(Exception):
            decode(c)
        assert r.error is not None and hl > 0


# ---------------------------------------------------------------------- .m3
def _memory(n: int, models: int, seed: int) -> Memory:
    g = torch.Generator().manual_seed(seed)
    scene = GaussianScene.random(n, sh_degree=2 if models == 2 else 0, seed=seed)
    specs = [("clip", 6, 24, 40, 0.05, True), ("dino", 4, 16, 25, 0.1, False)][:models]
    q = torch.randn(n, sum(s[1] for s in specs), generator=g) * 3
    q[:, 0] = 1.5  # a constant channel (step 1.0)
    out, off = [], 0
    for name, qd, dim, k, temp, learn in specs:
        bank = torch.randn(k, dim, generator=g)
        bank[0] = 0.0  # a zero bank row: its unit vector is 0
        out.append(ModelMemory(name, off, qd, bank, torch.randn(qd, dim, generator=g), temp, learn, (480, 640), (30, 40)))
        off += qd
    return Memory(scene.with_extras(**{QUERY_EXTRA: q}), out, meta={"note": "test"})


def _attention64(q: np.ndarray, P: np.ndarray, B: np.ndarray, temperature: float) -> np.ndarray:
    """The spec's formula in float64; a zero vector's unit vector is 0 (norms clamped at 1e-12, as the reader)."""
    def unit(x):
        return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)
    s = unit(q.astype(np.float64) @ P.astype(np.float64)) @ unit(B.astype(np.float64)).T / temperature
    w = np.exp(s - s.max(1, keepdims=True))
    return (w / w.sum(1, keepdims=True)) @ B.astype(np.float64)


def test_m3_matches_python_bit_for_bit():
    """Queries are float32 maths (code * step, then + lo, each rounded to float32, m3.md), banks
    float16 -> float32, projections and the embedded scene float32: all bit for bit. The features
    of the similarity formula are computed in float64 by the TypeScript code and in float32 by
    torch: they agree with the float64 reference to 1e-5 of the bank's scale (softmax at
    temperature 0.05 amplifies float32 rounding of the cosines about 20-fold)."""
    cases = []
    for models, bits, embed in ((1, 8, True), (2, 12, True), (2, 16, False)):
        mem = _memory(700, models, seed=models + bits)
        data = encode_m3(mem, query_bits=bits, embed_scene=embed, scene_ref=None if embed else "scene.ply",
                         scene_sha256=None if embed else "0" * 64)
        cases.append((mem, data, embed))
    vec = [float(x) for x in np.random.default_rng(0).normal(size=24)]
    jobs = [("m3", data, {"features": True, "vector": vec, **({} if embed else {"refCount": len(mem.scene)})})
            for mem, data, embed in cases]
    golden = (DATA / "memory_golden.m3").read_bytes()  # frozen (tests/data/make_web_goldens.py)
    cases.append((decode_m3(golden), golden, True))
    jobs.append(("m3", golden, {"features": True, "vector": vec}))
    jobs.append(("m3", cases[2][1], {}))  # a referenced scene is needed
    res = node_decode(jobs)
    assert res[-1].error is not None and "references its scene" in res[-1].error
    for (mem, data, embed), r in zip(cases, res):
        assert r.error is None, r.error
        want = decode_m3(data, scene=None if embed else mem.scene)
        assert r.values["count"] == len(mem.scene) and r.values["models"] == len(want.models)
        assert_bits_equal(r.arrays["queries"], want.queries.numpy(), "queries")
        if embed:
            s = want.scene
            for key, arr in (("means", s.means), ("quats", s.quats), ("logScales", s.log_scales),
                             ("opacityLogits", s.opacity_logits), ("shDc", s.sh_dc), ("shRest", s.sh_rest)):
                assert_bits_equal(r.arrays[f"scene.{key}"], arr.numpy(), key)
        else:
            assert r.values["sceneRef"] == "scene.ply"
        for i, m in enumerate(want.models):
            assert r.values[f"m{i}.name"] == m.name and r.values[f"m{i}.offset"] == m.offset
            assert r.values[f"m{i}.temperature"] == m.temperature and r.values[f"m{i}.learnable"] == m.learnable
            assert_bits_equal(r.arrays[f"m{i}.bank"], m.bank.numpy(), "bank")
            assert_bits_equal(r.arrays[f"m{i}.projection"], m.projection.numpy(), "projection")
            feats = r.arrays[f"m{i}.features"].reshape(len(mem.scene), m.dim)
            ref = _attention64(want.queries[:, m.slice].numpy(), m.projection.numpy(), m.bank.numpy(), m.temperature)
            scale = float(m.bank.abs().max())
            assert np.abs(feats - ref).max() <= 1e-5 * scale, f"{m.name}: features off the float64 reference"
            torch_f = gaussian_features(want, m.name).numpy()
            assert np.abs(feats - torch_f).max() <= 1e-4 * scale, f"{m.name}: features off torch's float32 result"
            sim = gaussian_similarity(want, torch.tensor(vec[:m.dim]), m.name).numpy()
            assert np.abs(r.arrays[f"m{i}.scores"] - sim).max() <= 1e-4, f"{m.name}: similarity scores"


def test_m3_refusals():
    mem = _memory(200, 2, seed=3)
    data = encode_m3(mem)
    from compress.container import unpack_container
    box = unpack_container(data, magic=b"GSM3")
    h = box.header
    banks, projs = box.all("BANK"), box.all("PROJ")
    body = [("GEOM", box.get("GEOM")), ("QRYS", box.get("QRYS"))]
    per_model = [("BANK", banks[0]), ("PROJ", projs[0]), ("BANK", banks[1]), ("PROJ", projs[1])]
    bad = [
        data[:-3], data + b"x",
        pack_container(b"GSM3", 1, dict(h, n=h["n"] + 1), body + per_model),
        pack_container(b"GSM3", 1, dict(h, query_bits=1), body + per_model),
        pack_container(b"GSM3", 1, h, body + per_model[:2]),
        pack_container(b"GSM3", 1, h, body + [("BANK", banks[0][:-2])] + per_model[1:]),
        pack_container(b"GSM3", 1, h, body + [("BANK", b"\x00\x7c" + banks[0][2:])] + per_model[1:]),  # +inf
        pack_container(b"GSM3", 1, dict(h, models=[dict(h["models"][0], offset=1), h["models"][1]]), body + per_model),
        pack_container(b"GSM3", 1, dict(h, query_lo=h["query_lo"][:-1]), body + per_model),
        pack_container(b"GSM3", 2, h, body + per_model),
    ]
    for i, (c, r) in enumerate(zip(bad, node_decode([("m3", c, {}) for c in bad]))):
        with pytest.raises(Exception):
            decode_m3(c)
        assert r.error is not None, f"case {i}: TS decoder accepted a corrupt file"


# ---------------------------------------------------------------------- the Node CLI
def _cli(*args) -> "subprocess.CompletedProcess":
    import subprocess

    from web_harness import WEB, require_node
    return subprocess.run([require_node(), str(WEB / "cli" / "decode.mjs"), *map(str, args)], capture_output=True,
                          text=True, timeout=120)


def test_cli_m3_writes_the_scene_with_f_emb_queries(tmp_path):
    """decode.mjs on an .m3 file writes what `splat memory build --ply` (export_ply) writes: the
    scene's INRIA properties and the queries as f_emb_*; a referenced .lgs scene is read beside it."""
    from plyfile import PlyData

    from compress.memory.m3file import export_ply, read_m3, write_m3
    from compress.scene.codec import QuantConfig, encode as lgs_encode

    mem = _memory(300, 2, seed=4)
    cases = {"embedded": tmp_path / "a.m3"}
    write_m3(mem, cases["embedded"])
    lgs = tmp_path / "scene.lgs"
    lgs.write_bytes(lgs_encode(mem.scene.replace(extras={}), None, QuantConfig(sh_codebook=16, kmeans_iters=2))[0])
    cases["referenced"] = tmp_path / "b.m3"
    write_m3(mem, cases["referenced"], embed_scene=False, scene_path=lgs)
    for name, path in cases.items():
        out, ref = tmp_path / f"{name}.ply", tmp_path / f"{name}.ref.ply"
        r = _cli(path, out)
        assert r.returncode == 0, r.stderr
        export_ply(read_m3(path), ref)
        got, want = PlyData.read(str(out))["vertex"], PlyData.read(str(ref))["vertex"]
        assert [p.name for p in got.properties] == [p.name for p in want.properties], name
        for p in want.properties:
            assert_bits_equal(np.asarray(got[p.name]), np.asarray(want[p.name]), f"{name}: {p.name}")
    lgs.write_bytes(lgs.read_bytes()[:-1] + b"\0")  # the referenced scene changed
    r = _cli(cases["referenced"], tmp_path / "c.ply")
    assert r.returncode == 2 and "SHA-256" in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_cli_gsi_writes_the_documented_2d_layout(tmp_path):
    from plyfile import PlyData

    data = _gsi_files()[3][1]  # RGBA
    src, out = tmp_path / "img.gsi", tmp_path / "img.ply"
    src.write_bytes(data)
    r = _cli(src, out)
    assert r.returncode == 0, r.stderr
    want = decode(data)
    ply = PlyData.read(str(out))
    v = ply["gaussian2d"]
    assert [p.name for p in v.properties] == ["x", "y", "scale_0", "scale_1", "rot"] + [f"color_{c}" for c in range(4)]
    assert_bits_equal(np.stack([v["x"], v["y"]], 1), want.means.numpy(), "means")
    assert_bits_equal(np.stack([v["scale_0"], v["scale_1"]], 1), want.scales.numpy(), "scales")
    assert_bits_equal(np.asarray(v["rot"]), want.rotations.numpy(), "rotations")
    assert_bits_equal(np.stack([v[f"color_{c}"] for c in range(4)], 1), want.colors.numpy(), "colors")
    assert f"gsi width {want.width}" in ply.comments and f"gsi mode {want.mode}" in ply.comments
