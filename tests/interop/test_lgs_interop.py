"""A .lgs file decompressed to PLY opens in PlayCanvas splat-transform, and in our reader,
with identical values. Uses the pinned splat-transform install and fixtures of
tests/interop/test_splat_transform.py (skipped, with a message, where that is absent or
Node/npm is missing)."""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.interop

try:  # the shared Node 22 + splat-transform install (tests/interop/package.json)
    from test_splat_transform import _same, st  # noqa: F401  (st is a fixture)
except ImportError as e:  # pragma: no cover - depends on the interop suite being present
    pytest.skip(f"splat-transform interop helpers unavailable ({e})", allow_module_level=True)

import splat.io as sio  # noqa: E402
from compress.scene.codec import QuantConfig, decode, encode  # noqa: E402
from conftest import shared_file  # noqa: E402


def test_decompressed_lgs_opens_in_splat_transform(st, tmp_path):
    scene = sio.read_scene(shared_file("scenes", "fruit_drops_sh3.ply")).replace(extras={})[:1500]
    data, _ = encode(scene, None, QuantConfig(sh_codebook=64))
    (tmp_path / "x.lgs").write_bytes(data)
    dec = decode(data)
    out = tmp_path / "x.ply"
    sio.write_scene(sio.read_scene(tmp_path / "x.lgs"), out)  # what `splat decompress` writes
    ours = sio.read_scene(out)
    _same(ours, dec, tol=0.0)
    st(out, tmp_path / "x.st.ply")  # splat-transform reads our decompressed PLY and writes its own
    _same(sio.read_scene(tmp_path / "x.st.ply"), ours, tol=1e-6)
