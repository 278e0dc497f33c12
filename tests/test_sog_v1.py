"""SOG v1 (meta.json without 'version'): a fixture written in the v1 layout that
splat-transform's reader (src/lib/readers/read-sog-v1.ts) decodes, read back here."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
from conftest import shared_file
from io_helpers import max_errors, zip_files

import splat.io as sio
from splat import FormatError, GaussianScene
from splat.io import sog


def _q8(x: np.ndarray, lo, hi) -> np.ndarray:
    lo, hi = np.asarray(lo, np.float64), np.asarray(hi, np.float64)
    return np.clip(np.rint((x - lo) / np.where(hi > lo, hi - lo, 1.0) * 255), 0, 255).astype(np.uint8)


def sog_v1_files(scene: GaussianScene) -> dict[str, bytes]:
    """v1 files: means/quats as in v2, per-channel min/max bytes for scales and sh0 (alpha =
    opacity logit), one palette entry per Gaussian for shN with scalar mins/maxs."""
    n, k = len(scene), scene.sh_rest.shape[1]
    v2 = sog.encode_files(scene, sort=False)
    w, h = sog.texture_size(n)
    ls = scene.log_scales.double().numpy()
    c = np.concatenate([scene.sh_dc.double().numpy(), scene.opacity_logits.double().numpy()[:, None]], 1)
    ones = np.full((n, 1), 255, np.uint8)
    v2meta = json.loads(v2["meta.json"])
    meta = {
        "means": {"shape": [n, 3], "dtype": "float32", "mins": v2meta["means"]["mins"],
                  "maxs": v2meta["means"]["maxs"], "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"shape": [n, 3], "dtype": "float32", "mins": ls.min(0).tolist(), "maxs": ls.max(0).tolist(),
                   "files": ["scales.webp"]},
        "quats": {"shape": [n, 4], "dtype": "uint8", "encoding": "quaternion_packed", "files": ["quats.webp"]},
        "sh0": {"shape": [n, 1, 4], "dtype": "float32", "mins": c.min(0).tolist(), "maxs": c.max(0).tolist(),
                "files": ["sh0.webp"]},
    }
    files = {name: v2[name] for name in ("means_l.webp", "means_u.webp", "quats.webp")}
    files["scales.webp"] = sog._webp(np.concatenate([_q8(ls, meta["scales"]["mins"], meta["scales"]["maxs"]), ones], 1),
                                     w, h, 80)
    files["sh0.webp"] = sog._webp(_q8(c, meta["sh0"]["mins"], meta["sh0"]["maxs"]), w, h, 80)
    if k:
        rest = scene.sh_rest.double().numpy()  # [n, k, 3]
        lo, hi = float(rest.min()), float(rest.max())
        rows = math.ceil(n / 64)
        cen = np.zeros((rows * 64, k, 4), np.uint8)
        cen[:n, :, :3] = _q8(rest, lo, hi)
        cen[:, :, 3] = 255
        files["shN_centroids.webp"] = sog._webp(cen.reshape(-1, 4), 64 * k, rows, 80)
        lab = np.arange(n)
        files["shN_labels.webp"] = sog._webp(
            np.stack([lab & 255, lab >> 8, np.zeros(n, np.int64), np.full(n, 255)], 1).astype(np.uint8), w, h, 80)
        meta["shN"] = {"shape": [n, 3 * k], "dtype": "float32", "mins": lo, "maxs": hi, "quantization": 8,
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}
    files["meta.json"] = json.dumps(meta).encode()
    return files


@pytest.fixture(scope="module")
def fruit() -> GaussianScene:
    return sio.read_scene(shared_file("scenes", "fruit_drops_sh3.ply")).replace(extras={})


def _half_steps(scene: GaussianScene) -> dict[str, float]:
    """Half a quantisation step per field (the largest error v1 bytes allow)."""
    span = lambda t: float((t.amax(0) - t.amin(0)).max()) / 255 / 2 + 1e-5  # noqa: E731
    return {"log_scales": span(scene.log_scales.double()), "dc": span(scene.sh_dc.double()),
            "sh_rest": float(scene.sh_rest.max() - scene.sh_rest.min()) / 255 / 2 + 1e-5 if scene.sh_rest.numel() else 0.0}


@pytest.mark.parametrize("degree", [0, 3])
def test_sog_v1_folder_and_zip_read_within_a_quantisation_step(tmp_path, fruit, degree):
    s = fruit.with_sh_degree(degree)
    files = sog_v1_files(s)
    (tmp_path / "v1.sog").write_bytes(zip_files(files))
    d = tmp_path / "loose"
    d.mkdir()
    for name, data in files.items():
        (d / name).write_bytes(data)
    assert sio.detect_format(d / "meta.json") == "sog"
    a, b = sio.read_scene(tmp_path / "v1.sog"), sio.read_scene(d)
    assert a.equal(b) and a.sh_degree == degree
    e, tol = max_errors(s, a), _half_steps(s)
    assert e["log_scales"] <= tol["log_scales"] and e["dc"] <= tol["dc"] and e["sh_rest"] <= tol["sh_rest"]
    logits = s.opacity_logits.double()
    assert float((a.opacity_logits.double() - logits).abs().max()) <= float(logits.max() - logits.min()) / 510 + 1e-5
    assert e["quat"] < 0.01
    assert float((a.means.double() - s.means.double()).abs().max()) < 1e-3


def test_sog_v1_bad_meta_is_a_clear_error(tmp_path, fruit):
    files = sog_v1_files(fruit[:100].with_sh_degree(1))
    meta = json.loads(files["meta.json"])
    meta["means"]["shape"] = ["many", 3]
    (tmp_path / "a.sog").write_bytes(zip_files({**files, "meta.json": json.dumps(meta).encode()}))
    with pytest.raises(FormatError, match="means.shape"):
        sio.read_scene(tmp_path / "a.sog")
    meta = json.loads(files["meta.json"])
    del meta["sh0"]["maxs"]
    (tmp_path / "b.sog").write_bytes(zip_files({**files, "meta.json": json.dumps(meta).encode()}))
    with pytest.raises(FormatError, match="maxs"):
        sio.read_scene(tmp_path / "b.sog")
    meta = json.loads(files["meta.json"])
    meta["shN"]["maxs"] = float("nan")
    (tmp_path / "c.sog").write_bytes(zip_files({**files, "meta.json": json.dumps(meta).encode()}))
    with pytest.raises(FormatError, match="non-finite|shN.mins"):
        sio.read_scene(tmp_path / "c.sog")
