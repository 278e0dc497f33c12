"""Feature memory: bank, attention, features IO, .m3 container, queries, errors (no CNN needed)."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from compress.memory import (
    DistillConfig,
    Memory,
    ModelMemory,
    QUERY_EXTRA,
    attention_reference,
    build_bank,
    distill,
    gaussian_similarity,
    load_features,
    memory_attention,
    pick_feature,
    pick_pixel_feature,
    read_m3,
    render_features,
    similarity,
    write_features,
    write_m3,
)
from compress.memory.bank import greedy_dedup
from compress.memory.features import read_array, write_array
from compress.memory.fit import FitConfig
from compress.memory.m3file import decode_m3, encode_m3, export_ply, read_ply_queries
from render import rasterize
from splat import FormatError, GaussianScene, UsageError, orbit_cameras


def _clusters(k=5, d=32, per=200, noise=0.05, seed=0):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=g)
    centers = centers / centers.norm(dim=1, keepdim=True) * (1.0 + torch.arange(k)[:, None])  # distinct norms
    labels = torch.arange(k).repeat_interleave(per)
    x = centers[labels] * (1 + noise * torch.randn(k * per, 1, generator=g))
    x = x + noise * centers.norm(dim=1, keepdim=True)[labels] * torch.randn(k * per, d, generator=g) / d**0.5
    perm = torch.randperm(k * per, generator=g)
    return x[perm], labels[perm], centers


def _best_cos(a, b):
    an = a / a.norm(dim=1, keepdim=True)
    bn = b / b.norm(dim=1, keepdim=True)
    return (an @ bn.T).max(dim=1).values


# ---------------------------------------------------------------------- bank
def test_bank_dedup_finds_known_clusters():
    x, _, centers = _clusters()
    bank, st = build_bank(x.split(137), threshold=0.9, max_size=64)
    assert st.size == 5 and not st.capped and st.seen == x.shape[0]
    assert bool((_best_cos(centers, bank) > 0.95).all())  # every cluster represented
    # the greedy rule: kept vectors are pairwise below the threshold, every input is covered
    bn = bank / bank.norm(dim=1, keepdim=True)
    s = bn @ bn.T - 2 * torch.eye(len(bank))
    assert float(s.max()) < 0.9
    assert bool((_best_cos(x, bank) >= 0.9).all())


def test_greedy_dedup_order_and_threshold():
    v = torch.tensor([[1.0, 0.0], [0.99, 0.05], [0.0, 1.0], [0.7, 0.7]])
    assert greedy_dedup(v, 0.95).tolist() == [0, 2, 3]
    assert greedy_dedup(v, 0.5).tolist() == [0, 2]


def test_bank_cap_refines_with_kmeans():
    x, labels, centers = _clusters(k=6, noise=0.08)
    bank, st = build_bank(x.split(100), threshold=0.9995, max_size=6)
    assert st.capped and st.size == 6 and st.deduplicated > 12  # de-dup alone would keep far more
    # each centroid sits on one true cluster (raw-space mean: direction and norm)
    cos = (bank / bank.norm(dim=1, keepdim=True)) @ (centers / centers.norm(dim=1, keepdim=True)).T
    match = cos.argmax(dim=1)
    assert sorted(match.tolist()) == list(range(6))
    assert bool((cos.max(dim=1).values > 0.99).all())
    means = torch.stack([x[labels == j].mean(0) for j in range(6)])
    assert torch.allclose(bank, means[match], rtol=0.02, atol=0.02 * float(means.norm(dim=1).max()))


def test_bank_rejects_bad_input():
    with pytest.raises(ValueError, match="no valid"):
        build_bank([torch.zeros(4, 3)])
    with pytest.raises(ValueError, match="dimension"):
        build_bank([torch.randn(4, 3), torch.randn(4, 5)], threshold=0.999)


# ---------------------------------------------------------------------- attention
def test_attention_matches_float64_reference_with_gradients():
    g = torch.Generator().manual_seed(0)
    q = torch.randn(64, 6, generator=g)
    P = torch.randn(6, 20, generator=g)
    B = torch.randn(30, 20, generator=g) * 3
    q32, P32 = q.clone().requires_grad_(True), P.clone().requires_grad_(True)
    out = memory_attention(q32, P32, B, 0.05)
    q64, P64 = q.double().requires_grad_(True), P.double().requires_grad_(True)
    ref = attention_reference(q64, P64, B.double(), 0.05)
    assert torch.allclose(out.double(), ref, rtol=1e-4, atol=1e-4)
    w = torch.randn(64, 20, generator=g)
    (out * w).sum().backward()
    (ref * w.double()).sum().backward()
    for a, b in [(q32.grad, q64.grad), (P32.grad, P64.grad)]:
        assert torch.allclose(a.double(), b, rtol=1e-3, atol=1e-3 * float(b.abs().max()))


def test_attention_chunked_equals_direct():
    g = torch.Generator().manual_seed(1)
    q, P, B = torch.randn(1000, 4, generator=g), torch.randn(4, 8, generator=g), torch.randn(16, 8, generator=g)
    with torch.no_grad():
        a = memory_attention(q, P, B, chunk=128)
        b = memory_attention(q, P, B, chunk=10**6)
    assert torch.allclose(a, b, atol=1e-6)
    with pytest.raises(ValueError, match="channels"):
        memory_attention(torch.randn(3, 5), P, B)


# ---------------------------------------------------------------------- features IO
@pytest.mark.parametrize("suffix", [".npy", ".pt", ".safetensors"])
def test_feature_arrays_round_trip_memory_mapped(tmp_path, suffix):
    a = np.random.default_rng(0).standard_normal((5, 7, 3)).astype(np.float16)
    write_array(tmp_path / f"a{suffix}", a)
    b = read_array(tmp_path / f"a{suffix}")
    assert b.dtype == np.float16 and np.array_equal(np.asarray(b), a)
    if suffix != ".pt":
        assert isinstance(b, np.memmap) or isinstance(getattr(b, "base", None), np.memmap)


def _tiny_setup(tmp_path, d=12, n=300, views=6, hold=(2,)):
    scene = GaussianScene.random(n, extent=1.0, scale_range=(0.05, 0.2), seed=1)
    cams = orbit_cameras(scene, views, width=48, height=36)
    g = torch.Generator().manual_seed(2)
    centers = torch.randn(4, d, generator=g) * 3
    feat = centers[torch.randint(0, 4, (n,), generator=g)] + 0.1 * torch.randn(n, d, generator=g)
    maps, masks = [], []
    for c in cams:
        o = rasterize(scene, c.resized(16, 12), mode="features", features=feat, backend="reference")
        maps.append(o.colors[0].float())
        masks.append(o.alphas[0, ..., 0] > 0.5)
    write_features(tmp_path / "feats", "toy", maps, [c.name for c in cams], (36, 48), masks=masks,
                   holdout=[cams[h].name for h in hold])
    return scene, cams, load_features(tmp_path / "feats")


def test_distill_raises_heldout_cosine_synthetic(tmp_path):
    scene, cams, fs = _tiny_setup(tmp_path)
    cfg = DistillConfig(query_dim=4, bank_max=32, fit=FitConfig(backend="reference", max_epochs=25, render_scale=1))
    mem, rep = distill(scene, cams, fs, cfg)
    cfg0 = DistillConfig(query_dim=4, bank_max=32, fit=FitConfig(backend="reference", max_steps=0, render_scale=1))
    _, rep0 = distill(scene, cams, fs, cfg0)
    assert rep.holdout_views == [2] and 2 not in rep.train_views
    assert rep.heldout["toy"]["cos"] > rep0.heldout["toy"]["cos"] + 0.2
    assert rep.heldout["toy"]["cos"] > 0.8
    assert rep.fit.epoch_losses[-1] < rep.fit.epoch_losses[0]
    # queries API on the result
    f = render_features(mem, cams[2], backend="reference")
    assert f.shape == (36, 48, 12)
    v = pick_feature(f, 20, 18)
    s = similarity(mem, cams[2], v, features=f)
    assert s.shape == (36, 48) and abs(float(s[18, 20]) - 1.0) < 1e-5 and float(s.max()) <= 1 + 1e-5
    assert gaussian_similarity(mem, v).shape == (len(scene),)
    assert torch.allclose(pick_pixel_feature(mem, cams[2], 20, 18, backend="reference"), v, atol=1e-5)
    with pytest.raises(UsageError, match="dims"):
        similarity(mem, cams[2], torch.zeros(5), features=f)
    with pytest.raises(UsageError, match="outside"):
        pick_feature(f, 48, 0)


def test_feature_errors_are_clear(tmp_path):
    scene, cams, fs = _tiny_setup(tmp_path, views=4, hold=())
    idx = tmp_path / "feats" / "features.json"
    doc = json.loads(idx.read_text())
    # a view naming a camera that does not exist
    bad = json.loads(json.dumps(doc))
    bad["models"][0]["views"][1]["camera"] = "nope"
    idx.write_text(json.dumps(bad))
    with pytest.raises(FormatError, match="nope"):
        distill(scene, cams, load_features(idx))
    # dimension mismatch between the index and the files
    bad = json.loads(json.dumps(doc))
    bad["models"][0]["dim"] = 13
    idx.write_text(json.dumps(bad))
    with pytest.raises(FormatError, match=r"shape .* index says"):
        load_features(idx).models[0].load(0)
    # fewer cameras than views: the view for camera 3 has no camera
    idx.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="not among the 3 cameras"):
        load_features(idx).match(cams[:3])
    # image aspect ratio disagreeing with the cameras
    wide = [c.resized(96, 36) for c in cams]
    with pytest.raises(FormatError, match="aspect"):
        distill(scene, wide, load_features(idx))
    # not JSON / missing index / corrupt array file
    idx.write_text("{")
    with pytest.raises(FormatError, match="not valid JSON"):
        load_features(idx)
    with pytest.raises(FormatError, match="not found"):
        load_features(tmp_path / "missing")
    (tmp_path / "x.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(FormatError, match="x.npy"):
        read_array(tmp_path / "x.npy")
    (tmp_path / "x.safetensors").write_bytes(b"\xff" * 12)
    with pytest.raises(FormatError, match="safetensors"):
        read_array(tmp_path / "x.safetensors")


# ---------------------------------------------------------------------- .m3 container
def _memory(n=500, seed=0):
    g = torch.Generator().manual_seed(seed)
    scene = GaussianScene.random(n, sh_degree=1, seed=seed)
    q = torch.randn(n, 10, generator=g)
    models = [
        ModelMemory("clip", 0, 6, torch.randn(40, 24, generator=g), torch.randn(6, 24, generator=g), 0.05, True, (480, 640), (30, 40)),
        ModelMemory("dino", 6, 4, torch.randn(25, 16, generator=g), torch.randn(4, 16, generator=g), 0.1, False, (480, 640), (60, 80)),
    ]
    return Memory(scene.with_extras(**{QUERY_EXTRA: q}), models, meta={"note": "test"})


def test_m3_round_trip(tmp_path):
    mem = _memory()
    n = write_m3(mem, tmp_path / "a.m3")
    assert n == (tmp_path / "a.m3").stat().st_size
    back = read_m3(tmp_path / "a.m3")
    core = mem.scene.replace(extras={})
    assert back.scene.replace(extras={}).equal(core)  # geometry is lossless (float32)
    step = (mem.queries.max(0).values - mem.queries.min(0).values) / 255
    assert bool(((back.queries - mem.queries).abs() <= step / 2 + 1e-6).all())
    for a, b in zip(mem.models, back.models):
        assert (a.name, a.offset, a.query_dim, a.temperature, a.learnable) == (b.name, b.offset, b.query_dim, b.temperature, b.learnable)
        assert torch.equal(b.bank, a.bank.half().float()) and torch.equal(b.projection, a.projection)
        assert tuple(b.feature_size) == a.feature_size
    assert back.meta["note"] == "test"
    # 12 bits: finer
    back12 = decode_m3(encode_m3(mem, query_bits=12))
    assert float((back12.queries - mem.queries).abs().max()) < float(step.max()) / 8
    # by reference: geometry comes from the scene passed in
    data = encode_m3(mem, embed_scene=False, scene_ref="scene.ply", scene_sha256="0" * 64)
    assert len(data) < n
    with pytest.raises(FormatError, match="references its scene"):
        decode_m3(data)
    assert decode_m3(data, scene=mem.scene).scene.replace(extras={}).equal(core)
    with pytest.raises(FormatError, match="Gaussians"):
        decode_m3(data, scene=mem.scene[:10])


def test_m3_corrupt_files_raise_format_error(tmp_path):
    data = encode_m3(_memory(n=200))
    p = tmp_path / "c.m3"
    rng = np.random.default_rng(0)
    for i in range(40):
        b = bytearray(data)
        pos = int(rng.integers(0, len(b)))
        b[pos] ^= 1 << int(rng.integers(0, 8))
        p.write_bytes(bytes(b))
        with pytest.raises(FormatError):
            read_m3(p)
    for cut in (0, 3, 20, len(data) // 2, len(data) - 1):
        p.write_bytes(data[:cut])
        with pytest.raises(FormatError, match="truncated|shorter"):
            read_m3(p)
    p.write_bytes(b"LGS1" + data[4:])
    with pytest.raises(FormatError, match="magic"):
        read_m3(p)


def test_ply_export_carries_f_emb(tmp_path):
    mem = _memory(n=50)
    export_ply(mem, tmp_path / "m.ply")
    q = read_ply_queries(tmp_path / "m.ply")
    assert torch.equal(q, mem.queries)
    from plyfile import PlyData

    names = [p.name for p in PlyData.read(str(tmp_path / "m.ply"))["vertex"].properties]
    assert names[:3] == ["x", "y", "z"] and "f_rest_8" in names and names[-1] == "f_emb_9"


# ---------------------------------------------------------------------- frozen-geometry operator
def test_blend_operator_matches_renderer_with_gradients():
    from compress.memory.operator import BlendOperator

    scene = GaussianScene.random(400, extent=1.0, scale_range=(0.02, 0.3), seed=3)
    g = torch.Generator().manual_seed(4)
    for cam in orbit_cameras(scene, 2, width=37, height=29):  # odd sizes: partial tiles
        op = BlendOperator(scene, cam, tile=8)
        v = torch.randn(len(scene), 5, generator=g)
        v1 = v.clone().requires_grad_(True)
        img = op.apply(v1)
        v2 = v.double().requires_grad_(True)
        ref = rasterize(scene, cam, mode="features", features=v2, backend="reference").colors[0]
        assert torch.allclose(img.double(), ref, atol=2e-6)
        w = torch.randn(29, 37, 5, generator=g)
        (img * w).sum().backward()
        (ref * w.double()).sum().backward()
        assert torch.allclose(v1.grad.double(), v2.grad, atol=1e-5)


def test_two_models_get_their_own_query_slices(tmp_path):
    scene, cams, fs = _tiny_setup(tmp_path, d=12, views=5, hold=(1,))
    g = torch.Generator().manual_seed(7)
    feat2 = torch.randn(len(scene), 6, generator=g)
    maps = [rasterize(scene, c.resized(8, 6), mode="features", features=feat2, backend="reference").colors[0].float()
            for c in cams]
    write_features(tmp_path / "feats", "second", maps, [c.name for c in cams], (36, 48), suffix=".safetensors")
    fs = load_features(tmp_path / "feats")
    assert [m.name for m in fs.models] == ["toy", "second"] and fs.holdout == [cams[1].name]
    cfg = DistillConfig(query_dim=3, bank_max=16, fit=FitConfig(backend="reference", max_epochs=3, render_scale=1))
    mem, rep = distill(scene, cams, fs, cfg)
    assert mem.queries.shape == (len(scene), 6)
    assert [(m.name, m.offset, m.dim, m.feature_size) for m in mem.models] == [("toy", 0, 12, (12, 16)), ("second", 3, 6, (6, 8))]
    assert set(rep.heldout) == {"toy", "second"}
    back = decode_m3(encode_m3(mem))
    assert render_features(back, cams[0], "second", backend="reference").shape == (36, 48, 6)


def test_fine_grid_targets_interpolate_bilinearly(tmp_path):
    from compress.memory.fit import _ViewSampler

    h, w = 4, 6
    yy, xx = torch.meshgrid(torch.arange(h, dtype=torch.float32), torch.arange(w, dtype=torch.float32), indexing="ij")
    ramp = torch.stack([xx, yy, torch.ones_like(xx)], -1)  # feature = (column, row, 1)
    mask = torch.ones(h, w, dtype=torch.bool)
    mask[0, 0] = False
    write_features(tmp_path, "ramp", [ramp], ["c0"], (8, 12), masks=[mask], dtype="float32")
    s = _ViewSampler(load_features(tmp_path).models[0])
    pix, t = s.sample_scaled(0, 10**6, 2, np.random.default_rng(0))
    assert len(pix) == 4 * (h * w - 1)  # every fine pixel of every valid cell
    fy, fx = pix // (2 * w), pix % (2 * w)
    assert not bool(((fy < 2) & (fx < 2)).any())  # the masked cell's fine pixels are skipped
    u = np.clip((fx + 0.5) / 2 - 0.5, 0, w - 1)
    v = np.clip((fy + 0.5) / 2 - 0.5, 0, h - 1)
    assert np.allclose(t[:, 0].numpy(), u, atol=1e-6) and np.allclose(t[:, 1].numpy(), v, atol=1e-6)
    pix1, t1 = s.sample_scaled(0, 5, 1, np.random.default_rng(0))
    assert len(pix1) == 5 and torch.equal(t1, ramp.reshape(-1, 3)[torch.from_numpy(pix1)])
