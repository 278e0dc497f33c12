"""The web client in Node (no browser): the shipped bundle is what the lockfile builds, and
the TypeScript SPZ v4 reader matches the Python one bit for bit.

Skipped with a message when Node or the npm packages are missing (`make web` installs both).
"""
from __future__ import annotations

import json
import shutil
import subprocess
import textwrap
from pathlib import Path

import numpy as np
import pytest

from conftest import ROOT, shared_file
from splat.io import spz
from splat.scene import GaussianScene
from viewer.site import CLIENT_DIR, CLIENT_FILES

WEB = ROOT / "viewer" / "web"


@pytest.fixture(scope="module")
def fresh_build(tmp_path_factory) -> Path:
    """The client rebuilt from the sources and the pinned packages into a temporary folder."""
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: `make web` installs Node from Debian and builds the client")
    if not (WEB / "node_modules" / "esbuild").is_dir():
        pytest.skip("viewer/web/node_modules is missing: run `make web` (npm ci from package-lock.json)")
    out = tmp_path_factory.mktemp("client")
    r = subprocess.run([node, "build.mjs", "--out", str(out)], cwd=WEB, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    return out


def test_shipped_bundle_matches_a_fresh_build(fresh_build):
    """viewer/client/ (package data: a pip install without Node gets these) is reproducible."""
    for name in CLIENT_FILES:
        shipped = CLIENT_DIR / name
        assert shipped.is_file(), f"{shipped} is missing: run `make client` and commit viewer/client/"
        assert shipped.read_bytes() == (fresh_build / name).read_bytes(), (
            f"{shipped} differs from a fresh build of viewer/web/: run `make client` and commit viewer/client/")


def test_bundle_loads_nothing_from_outside(fresh_build):
    """No CDN: the bundle names no remote script, stylesheet, font or WASM URL."""
    import re

    for name in CLIENT_FILES:
        text = (fresh_build / name).read_text(encoding="utf-8")
        urls = set(re.findall(r"""(?:import\s*\(|from\s*|fetch\(|importScripts\()\s*["'](https?://[^"']+)""", text))
        assert urls == set(), f"{name} loads {urls}"


def ts_decode_spz(data: bytes, tmp_path: Path) -> dict[str, np.ndarray]:
    """Decode SPZ v4 ``data`` with the TypeScript reader (dist/formats.mjs, built above) in Node."""
    src = tmp_path / "in.spz"
    src.write_bytes(data)
    script = tmp_path / "decode.mjs"
    script.write_text(textwrap.dedent(f"""
        import {{ readFileSync, writeFileSync }} from "node:fs";
        import {{ decodeSpzV4 }} from {json.dumps((WEB / "dist" / "formats.mjs").as_uri())};
        const a = decodeSpzV4(new Uint8Array(readFileSync({json.dumps(str(src))})), "in.spz");
        const meta = {{ count: a.count, shDegree: a.shDegree }};
        for (const k of ["means", "quats", "logScales", "opacityLogits", "shDc", "shRest"]) {{
          writeFileSync({json.dumps(str(tmp_path))} + "/" + k + ".f32", new Uint8Array(a[k].buffer));
        }}
        console.log(JSON.stringify(meta));
    """))
    r = subprocess.run(["node", str(script)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    meta = json.loads(r.stdout)
    out = {k: np.fromfile(tmp_path / f"{k}.f32", dtype="<f4") for k in
           ("means", "quats", "logScales", "opacityLogits", "shDc", "shRest")}
    out.update(meta)
    return out


def assert_same_as_python(data: bytes, tmp_path: Path) -> None:
    py = spz.decode(data)
    ts = ts_decode_spz(data, tmp_path)
    n = len(py)
    assert ts["count"] == n and ts["shDegree"] == py.sh_degree
    pairs = {"means": py.means, "quats": py.quats, "logScales": py.log_scales, "opacityLogits": py.opacity_logits,
             "shDc": py.sh_dc, "shRest": py.sh_rest}
    for k, ref in pairs.items():
        ref = ref.numpy().reshape(-1)
        # both compute in float64 with the same operations and round once to float32: bit for bit
        assert np.array_equal(ts[k].view(np.uint32), ref.astype(np.float32).view(np.uint32)), k


def test_ts_spz_v4_matches_python_on_biker(fresh_build, tmp_path):
    assert_same_as_python(shared_file("scenes", "biker.spz").read_bytes(), tmp_path)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_ts_spz_v4_matches_python_every_sh_degree(fresh_build, tmp_path, degree):
    s = GaussianScene.random(500, sh_degree=degree, seed=degree)
    assert_same_as_python(spz.encode(s, version=4), tmp_path)


@pytest.mark.parametrize("mutate,match", [
    (lambda d: d[:20], "truncated SPZ header"),
    (lambda d: d[:4] + (5).to_bytes(4, "little") + d[8:], "unsupported SPZ version 5"),
    (lambda d: d[:8] + (2**31).to_bytes(4, "little") + d[12:], "more than this file can hold"),
    (lambda d: d[:12] + bytes([7]) + d[13:], "unsupported SH degree 7"),
    (lambda d: d[:15] + bytes([5]) + d[16:], "declares 5 streams"),
    (lambda d: d + b"junk", "trailing bytes"),
    (lambda d: d[:-10], "truncated"),
    (lambda d: d[:32 + 16 * 6] + b"\xff" * 8 + d[32 + 16 * 6 + 8:], "stream 0"),
])
def test_ts_spz_v4_bad_input_is_one_format_error(fresh_build, tmp_path, mutate, match):
    data = mutate(spz.encode(GaussianScene.random(50, sh_degree=1, seed=1), version=4))
    with pytest.raises(AssertionError, match=match):
        ts_decode_spz(data, tmp_path)
    r = subprocess.run(["node", str(tmp_path / "decode.mjs")], capture_output=True, text=True, timeout=60)
    assert "FormatError" in r.stderr and "in.spz: " in r.stderr, r.stderr[-500:]
