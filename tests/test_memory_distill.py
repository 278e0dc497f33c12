"""Distillation on a real scene with real CNN features (EfficientNet-Lite0, offline), and the CLI."""
from __future__ import annotations

import json

import pytest
import torch

from compress.memory import DistillConfig, distill, load_features, read_m3
from compress.memory.cli import holdout_indices
from compress.memory.extract import MISSING, available
from compress.memory.fit import FitConfig, ProjectionCache
from splat.camera import orbit_cameras, save_inria_cameras
from conftest import shared_file

needs_extractor = pytest.mark.skipif(not available(), reason=MISSING)


def _read_scene(path):
    io = pytest.importorskip("splat.io", reason="scene readers (splat.io.read_scene) not installed")
    if not hasattr(io, "read_scene"):
        pytest.skip("splat.io.read_scene is not available yet")
    return io.read_scene(path)


@pytest.fixture(scope="module")
def plant_features(tmp_path_factory):
    if not available():
        pytest.skip(MISSING)
    from compress.memory.extract import extract_scene_features

    scene = _read_scene(shared_file("scenes", "plant.splat"))
    cams = orbit_cameras(scene, 12, width=256, height=192, distance_factor=0.75)
    hold = holdout_indices(len(cams), 3)
    out = tmp_path_factory.mktemp("plant_feats")
    extract_scene_features(scene, cams, out, layers=["b4"], holdout=hold)
    save_inria_cameras(cams, out / "cameras.json")
    return scene, cams, out


def test_extractor_loads_offline_weights():
    if not available():
        pytest.skip(MISSING)
    from compress.memory.extract import EfficientNetLite0Features

    ex = EfficientNetLite0Features("b4")
    img = torch.rand(1, 64, 96, 3)
    f = ex(img)
    assert f.shape == (1, 8, 12, 40) and bool(torch.isfinite(f).all())
    # ImageNet weights, not a random init: deterministic across instances and not degenerate
    assert torch.equal(f, EfficientNetLite0Features("b4")(img)) and float(f.std()) > 0.1


@needs_extractor
def test_distillation_raises_heldout_cosine_on_real_scene(plant_features):
    scene, cams, feats = plant_features
    fs = load_features(feats)
    assert fs.models[0].name == "efficientnet-lite0/b4" and fs.models[0].dim == 40
    base = dict(query_dim=8, bank_max=512)
    cache = ProjectionCache(scene)  # both runs share the per-view blend operators
    _, before = distill(scene, cams, fs, DistillConfig(**base, fit=FitConfig(max_steps=0)), cache=cache)
    mem, after = distill(scene, cams, fs, DistillConfig(**base, fit=FitConfig(max_epochs=15, max_seconds=40)),
                         cache=cache)
    name = fs.models[0].name
    c0, c1 = before.heldout[name]["cos"], after.heldout[name]["cos"]
    assert len(after.holdout_views) == 3 and after.heldout[name]["pixels"] > 300
    # EfficientNet's low-level b4 features change a lot between views: the mean feature
    # already scores ~0.36 on these held-out views (bench/memory.py compares baselines)
    assert c1 > c0 + 0.1, (c0, c1)
    assert c1 > 0.25, c1
    assert after.heldout[name]["l2"] < before.heldout[name]["l2"]
    assert after.banks[name].size <= 512


@needs_extractor
def test_cli_build_render_query(plant_features, tmp_path):
    from splat.cli import main

    scene, cams, feats = plant_features
    out = tmp_path / "plant.m3"
    args = ["--cameras", str(feats / "cameras.json"), "--features", str(feats), "--query-dim", "4", "--bank-max", "128",
            "--steps", "6", "-o", str(out), "--ply", str(tmp_path / "plant_emb.ply"), "--scene-ref"]
    # a reference readers would refuse (the scene is outside the .m3's folder): refused before any work
    assert main(["memory", "build", str(shared_file("scenes", "plant.splat"))] + args) == 2
    assert not out.exists()
    import shutil

    shutil.copyfile(shared_file("scenes", "plant.splat"), tmp_path / "plant.splat")
    rc = main(["memory", "build", str(tmp_path / "plant.splat")] + args)
    assert rc == 0 and out.exists() and (tmp_path / "plant_emb.ply").exists()
    mem = read_m3(out)  # the scene comes back through the stored reference
    assert len(mem.scene) == len(scene) and mem.queries.shape == (len(scene), 4)
    assert main(["memory", "render", str(out), "--camera", "1", "--scale", "0.25", "-o", str(tmp_path / "f.npy")]) == 0
    import numpy as np

    f = np.load(tmp_path / "f.npy")
    assert f.shape == (48, 64, 40)
    assert main(["memory", "query", str(out), "--camera", "1", "--scale", "0.25", "--pixel", "32,24",
                 "--threshold", "0.8", "-o", str(tmp_path / "heat.png")]) == 0
    import imageio.v3 as iio

    assert iio.imread(tmp_path / "heat.png").shape == (48, 64, 3)
    # user mistakes: exit code 2, no output left behind
    assert main(["memory", "query", str(out), "--camera", "99", "--pixel", "1,1", "-o", str(tmp_path / "h2.png")]) == 2
    assert main(["memory", "render", str(out), "-o", str(tmp_path / "f.npy")]) == 2  # exists, no --force
    bad = tmp_path / "bad.json"
    doc = json.loads((feats / "features.json").read_text())
    doc["models"][0]["dim"] = 41
    bad.write_text(json.dumps(doc).replace('"file": "', f'"file": "{feats}/').replace('"mask": "', f'"mask": "{feats}/'))
    assert main(["memory", "build", str(shared_file("scenes", "plant.splat")), "--cameras", str(feats / "cameras.json"),
                 "--features", str(bad), "--steps", "1", "-o", str(tmp_path / "x.m3")]) == 2
    assert not (tmp_path / "x.m3").exists()
    corrupt = tmp_path / "corrupt.m3"
    data = bytearray(out.read_bytes())
    data[len(data) // 2] ^= 0xFF
    corrupt.write_bytes(bytes(data))
    assert main(["memory", "render", str(corrupt), "-o", str(tmp_path / "g.npy")]) == 2
