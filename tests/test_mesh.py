"""`splat mesh` (TSDF fusion with open3d) and open3d point clouds; skipped without the [open3d] extra."""
from __future__ import annotations

import sys

import numpy as np
import pytest
import torch
from conftest import shared_file

import splat.io as sio
from splat import GaussianScene, UsageError
from splat.cli import main

o3d = pytest.importorskip("open3d", reason="needs the [open3d] extra (make test installs it)")

from render.mesh import from_open3d, mesh_stats, shortest_axes, to_open3d  # noqa: E402


def test_splat_mesh_on_a_shared_scene(tmp_path):
    src = shared_file("scenes", "donut_sh0.ply")
    out = tmp_path / "donut_mesh.ply"
    args = ["mesh", str(src), "-o", str(out), "-n", "16", "--width", "128", "--height", "128", "--voxel-size", "0.003"]
    assert main(args) in (0, None)
    mesh = o3d.io.read_triangle_mesh(str(out))
    st = mesh_stats(mesh)
    assert 5_000 < st["triangles"] < 200_000, st
    assert st["boundary_edges"] < 0.03 and st["nonmanifold_edges"] < 0.01, st  # watertight-ish
    scene = sio.read_scene(src)
    lo, hi = scene.bounds()
    v = np.asarray(mesh.vertices)
    margin = 0.05 * float((hi - lo).max())
    assert (v >= lo.numpy() - margin).all() and (v <= hi.numpy() + margin).all()
    # the surface is the donut's: a hole in the middle, so (nearly) no vertex near the centre of its bounds
    centre = ((lo + hi) / 2).numpy()
    near = np.linalg.norm(v - centre, axis=1) < 0.1 * float((hi - lo).max())
    assert near.mean() < 0.01, near.mean()
    c = np.asarray(mesh.vertex_colors)
    assert c.shape == v.shape and 0.05 < c.mean() < 0.95 and c.std() > 0.02  # colours from the renders
    assert main(args) == 2  # no overwrite without --force


def test_point_cloud_round_trip():
    s = GaussianScene.random(500, seed=2)
    s = s.replace(log_scales=s.log_scales + torch.tensor([0.0, 0.0, -2.0]))  # flat along local z
    pc = to_open3d(s)
    assert np.allclose(np.asarray(pc.points), s.means.double().numpy())
    assert np.allclose(np.asarray(pc.colors), s.colors.double().clamp(0, 1).numpy())
    back = from_open3d(pc)
    assert torch.allclose(back.means, s.means)
    assert torch.allclose(back.colors, s.colors.clamp(0, 1), atol=1e-5)
    dots = np.abs((shortest_axes(back) * shortest_axes(s)).sum(1))
    assert dots.min() > 1 - 1e-4  # normals along the shortest axis survive both ways
    nn = np.asarray(pc.compute_nearest_neighbor_distance())
    assert np.allclose(back.scales[:, :2].double().numpy().max(1), nn, rtol=1e-4)


def test_without_open3d_the_error_says_how_to_install(monkeypatch):
    from render.mesh import require_open3d

    monkeypatch.setitem(sys.modules, "open3d", None)
    with pytest.raises(UsageError, match=r"splatkit\[open3d\]"):
        require_open3d()
