"""Meshes from splats: TSDF fusion of rendered RGB-D views with open3d (the optional ``[open3d]`` extra).

As 2DGS and SuGaR export meshes: render colour and expected depth from many views,
fuse them into an open3d TSDF volume and extract the zero level set with marching
cubes. The volume is open3d's ``UniformTSDFVolume`` over a cube around the scene's
robust bounds (at most ``MAX_RESOLUTION`` voxels a side, about 20 bytes a voxel):
``ScalableTSDFVolume`` and the tensor ``VoxelBlockGrid`` integrate nothing in the
open3d-cpu 0.20.0 wheel (a flat depth image at 2 m fused into either gives an empty
mesh; the uniform volume gives the plane), so the hashed volumes are not used. Depth is kept only where a view is nearly opaque (alpha >= ``min_alpha``),
so soft edges do not smear the surface. Vertex colours come from the renders.

Units: ``voxel_size``, ``sdf_trunc`` and ``depth_trunc`` are world units (the scene's);
by default the voxel is 1/256 of the robust scene diagonal, the SDF truncation four
voxels, and depth is cut at the far side of the scene's bounding sphere as the views see it.

Also :func:`to_open3d` / :func:`from_open3d` for point clouds (centres, colours, normals
along each Gaussian's shortest axis).
"""
from __future__ import annotations

import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from splat.atomic import atomic_path
from splat.camera import Camera
from splat.errors import UsageError
from splat.scene import GaussianScene

from .rasterize import Backend, rasterize


def require_open3d():
    """The open3d module, or a UsageError saying how to install it."""
    try:
        import open3d  # noqa: PLC0415
    except ImportError:
        raise UsageError("this needs open3d: pip install 'splatkit[open3d]' (open3d-cpu, about 105 MB)") from None
    return open3d


@dataclass(frozen=True)
class MeshResult:
    """The fused mesh (an ``open3d.geometry.TriangleMesh``) and what it took."""

    mesh: object
    voxel_size: float
    sdf_trunc: float
    depth_trunc: float
    views: int


MAX_RESOLUTION = 512


def default_voxel_size(scene: GaussianScene, quantile: float = 0.02) -> float:
    """1/256 of the diagonal of the scene's robust bounds (world units)."""
    lo, hi = scene.bounds(quantile=quantile)
    return max(float((hi - lo).double().norm()) / 256.0, 1e-6)


def tsdf_mesh(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    *,
    voxel_size: float | None = None,
    sdf_trunc: float | None = None,
    depth_trunc: float | None = None,
    min_alpha: float = 0.5,
    backend: Backend = "auto",
    on_view: Callable[[int], None] | None = None,
) -> MeshResult:
    """Fuse RGB-D renders of ``scene`` from ``cameras`` into a triangle mesh (see the module docstring)."""
    o3d = require_open3d()
    if not cameras:
        raise UsageError("no cameras to render from")
    voxel = float(voxel_size) if voxel_size is not None else default_voxel_size(scene)
    trunc = float(sdf_trunc) if sdf_trunc is not None else 4.0 * voxel
    if not (voxel > 0 and trunc > 0 and math.isfinite(voxel) and math.isfinite(trunc)):
        raise UsageError(f"voxel size and SDF truncation must be positive, got {voxel} and {trunc}")
    lo, hi = scene.bounds(quantile=0.02)
    centre, radius = ((lo + hi) / 2).double(), float((hi - lo).double().norm()) / 2
    if depth_trunc is None:
        depth_trunc = max(float((c.position - centre).norm()) for c in cameras) + 1.5 * radius
    if not depth_trunc > 0:
        raise UsageError(f"depth truncation must be positive, got {depth_trunc}")
    length = float((hi - lo).max()) * 1.1 + 4 * trunc
    resolution = math.ceil(length / voxel)
    if resolution > MAX_RESOLUTION:
        raise UsageError(f"a {voxel:.4g} voxel needs {resolution} voxels across this scene (at most {MAX_RESOLUTION}); "
                         "choose a larger voxel size")
    origin = (centre.numpy() - length / 2).reshape(3, 1)
    volume = o3d.pipelines.integration.UniformTSDFVolume(
        length=length, resolution=resolution, sdf_trunc=trunc,
        color_type=o3d.pipelines.integration.TSDFVolumeColorType.RGB8, origin=origin)
    voxel = length / resolution
    with torch.no_grad():
        for i, cam in enumerate(cameras):
            r = rasterize(scene, cam, mode="RGB+D", backend=backend)
            alpha = r.alphas[0, ..., 0].cpu().numpy()
            depth = r.depths[0, ..., 0].cpu().numpy().astype(np.float32)
            depth = np.where(alpha >= min_alpha, depth, 0.0).astype(np.float32)
            rgb = (r.colors[0].clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)
            rgbd = o3d.geometry.RGBDImage.create_from_color_and_depth(
                o3d.geometry.Image(np.ascontiguousarray(rgb)), o3d.geometry.Image(np.ascontiguousarray(depth)),
                depth_scale=1.0, depth_trunc=float(depth_trunc), convert_rgb_to_intensity=False)
            intr = o3d.camera.PinholeCameraIntrinsic(cam.width, cam.height, cam.fx, cam.fy, cam.cx - 0.5, cam.cy - 0.5)
            volume.integrate(rgbd, intr, cam.world_to_camera.numpy())
            if on_view:
                on_view(i)
    mesh = volume.extract_triangle_mesh()
    mesh.compute_vertex_normals()
    return MeshResult(mesh, voxel, trunc, float(depth_trunc), len(cameras))


def write_mesh(mesh, path: str | os.PathLike) -> None:
    """Write an open3d mesh (format by extension: .ply, .obj, .glb ...) atomically."""
    o3d = require_open3d()
    path = Path(path)
    with atomic_path(path) as tmp:
        staged = tmp.with_name(tmp.name + path.suffix)  # open3d picks the format by extension
        try:
            if not o3d.io.write_triangle_mesh(str(staged), mesh, write_ascii=False):
                raise UsageError(f"open3d could not write a mesh as {path.suffix!r}")
            os.replace(staged, tmp)
        finally:
            if staged.exists():
                staged.unlink()


def mesh_stats(mesh) -> dict[str, float]:
    """Vertices, triangles, and the share of edges on a boundary (one triangle) or non-manifold (3+)."""
    tris = np.asarray(mesh.triangles, dtype=np.int64)
    if len(tris) == 0:
        return {"vertices": len(mesh.vertices), "triangles": 0, "boundary_edges": 0.0, "nonmanifold_edges": 0.0}
    e = np.sort(np.concatenate([tris[:, [0, 1]], tris[:, [1, 2]], tris[:, [2, 0]]]), axis=1)
    _, counts = np.unique(e, axis=0, return_counts=True)
    return {"vertices": len(mesh.vertices), "triangles": len(tris),
            "boundary_edges": float((counts == 1).mean()), "nonmanifold_edges": float((counts > 2).mean())}


# ---------------------------------------------------------------------- point clouds
def shortest_axes(scene: GaussianScene) -> np.ndarray:
    """Unit world direction of each Gaussian's shortest axis [N,3] (float64): its normal."""
    from .projection import quat_to_rotmat

    r = quat_to_rotmat(scene.unit_quats.double())  # [N,3,3], columns are the local axes
    k = scene.log_scales.argmin(1)
    return r[torch.arange(len(scene)), :, k].numpy()


def to_open3d(scene: GaussianScene):
    """An ``open3d.geometry.PointCloud``: centres, base colours (clamped to [0,1]), normals along
    each Gaussian's shortest axis (sign arbitrary)."""
    o3d = require_open3d()
    pc = o3d.geometry.PointCloud()
    pc.points = o3d.utility.Vector3dVector(scene.means.double().numpy())
    pc.colors = o3d.utility.Vector3dVector(scene.colors.double().clamp(0, 1).numpy())
    pc.normals = o3d.utility.Vector3dVector(shortest_axes(scene))
    return pc


def from_open3d(pc, *, opacity: float = 0.9, flatness: float = 0.1) -> GaussianScene:
    """Gaussians from an ``open3d.geometry.PointCloud``: one per point.

    The size is the distance to the nearest other point (open3d's KD-tree); colours default
    to grey; with normals, each Gaussian is a disc whose shortest axis (that size times
    ``flatness``) lies along the normal, else a sphere.
    """
    require_open3d()
    pts = np.asarray(pc.points, dtype=np.float64)
    n = len(pts)
    if n == 0:
        return GaussianScene.empty()
    rgb = np.asarray(pc.colors, dtype=np.float64) if pc.has_colors() else np.full((n, 3), 0.5)
    size = np.asarray(pc.compute_nearest_neighbor_distance(), dtype=np.float64) if n > 1 else np.ones(1)
    size = np.where(np.isfinite(size) & (size > 0), size, max(float(np.median(size)), 1e-6) if n > 1 else 1e-3)
    scales = np.repeat(size[:, None], 3, axis=1)
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (n, 1))
    if pc.has_normals():
        nrm = np.asarray(pc.normals, dtype=np.float64)
        nrm = nrm / np.maximum(np.linalg.norm(nrm, axis=1, keepdims=True), 1e-12)
        # rotation taking +z to the normal: axis z x n, angle acos(z . n)
        axis = np.stack([-nrm[:, 1], nrm[:, 0], np.zeros(n)], 1)
        s = np.linalg.norm(axis, axis=1)
        half = np.arctan2(s, nrm[:, 2]) / 2
        axis = np.where(s[:, None] > 1e-12, axis / np.maximum(s, 1e-12)[:, None], [1.0, 0.0, 0.0])
        quats = np.concatenate([np.cos(half)[:, None], axis * np.sin(half)[:, None]], 1)
        scales[:, 2] *= flatness
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
    return GaussianScene.from_activated(t(pts), t(quats), t(scales), t(np.full(n, opacity)), t(rgb))
