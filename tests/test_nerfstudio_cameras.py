"""nerfstudio cameras: dataparser_transforms.json (both directions), ns-export cameras, distortion warnings."""
from __future__ import annotations

import json
import math
import warnings

import numpy as np
import pytest
import torch
from conftest import shared_file
from nerfstudio_fixtures import dataparser_transforms, splatfacto_checkpoint

import splat.io as sio
from compress.video.motion import matrix_to_quat, quat_multiply
from render import rasterize
from splat import FormatError, GaussianScene, load_cameras, orbit_cameras
from splat.camera import CameraWarning, load_dataparser_transforms

# COLMAP -> nerfstudio axes swap that ns-process-data records as applied_transform
APPLIED = np.array([[0, 1, 0, 0], [1, 0, 0, 0], [0, 0, -1, 0]], np.float64)


def _rot(axis, deg) -> np.ndarray:
    a = np.asarray(axis, np.float64) / np.linalg.norm(axis)
    k = np.array([[0, -a[2], a[1]], [a[2], 0, -a[0]], [-a[1], a[0], 0]])
    t = math.radians(deg)
    return np.eye(3) + math.sin(t) * k + (1 - math.cos(t)) * k @ k


def _moved(scene: GaussianScene, m: np.ndarray) -> GaussianScene:
    """A degree-0 scene under the similarity m [4,4] (centres, scales, rotations)."""
    s = np.cbrt(np.linalg.det(m[:3, :3]))
    r = torch.from_numpy(m[:3, :3] / s)
    means = scene.means.double() @ r.T * s + torch.from_numpy(m[:3, 3])
    q = quat_multiply(matrix_to_quat(r[None]).expand(len(scene), 4), scene.unit_quats.double())
    return scene.replace(means=means.float(), quats=q.float(), log_scales=scene.log_scales + float(np.log(s)))


def _transforms_json(cams, path, pose_map: np.ndarray, **extra) -> None:
    """A nerfstudio transforms.json: OpenGL camera-to-world, poses mapped by pose_map [4,4]."""
    frames = []
    for i, c in enumerate(cams):
        c2w = pose_map @ c.camera_to_world.numpy()
        c2w[:3, 1:3] *= -1  # OpenCV -> OpenGL
        frames.append({"file_path": f"images/frame_{i:05d}.png", "transform_matrix": c2w.tolist()})
    c = cams[0]
    path.write_text(json.dumps({"camera_model": "OPENCV", "fl_x": c.fx, "fl_y": c.fy, "cx": c.cx, "cy": c.cy,
                                "w": c.width, "h": c.height, "k1": 0.0, "k2": 0.0, "p1": 0.0, "p2": 0.0,
                                "frames": frames, **extra}))


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """A dataset in COLMAP coordinates, its transforms.json (with applied_transform), the
    dataparser transform nerfstudio would save, and a checkpoint trained in that frame."""
    tmp = tmp_path_factory.mktemp("ns")
    donut = sio.read_scene(shared_file("scenes", "donut_sh0.ply"))[::6]
    cams = orbit_cameras(donut, 4, width=96, height=72)  # centred on the donut, COLMAP frame
    a4 = np.vstack([APPLIED, [0, 0, 0, 1]])
    _transforms_json(cams, tmp / "transforms.json", a4, applied_transform=APPLIED.tolist())
    # as nerfstudio's dataparser: orient + centre the (applied-frame) poses, scale to the unit cube
    t_json = np.eye(4)
    t_json[:3, :3] = _rot([1, 2, 0.5], 35)
    centres = np.stack([(a4 @ c.camera_to_world.numpy())[:3, 3] for c in cams])
    t_json[:3, 3] = -t_json[:3, :3] @ centres.mean(0)
    scale = 1.0 / np.abs(centres @ t_json[:3, :3].T + t_json[:3, 3]).max()
    dataparser_transforms(tmp / "dataparser_transforms.json", t_json @ a4, scale)  # stored with applied_transform
    sim = np.diag([scale, scale, scale, 1.0]) @ t_json @ a4  # COLMAP -> dataparser frame
    trained = _moved(donut, sim)
    splatfacto_checkpoint(trained, tmp / "run", sh_degree=0)
    return tmp, cams, trained


def _centre_and_coverage(scene, cams):
    r = rasterize(scene, cams, backend="cpu")
    a = r.alphas.reshape(len(cams), cams[0].height, cams[0].width).double()
    ys, xs = torch.meshgrid(torch.arange(a.shape[1]) + 0.5, torch.arange(a.shape[2]) + 0.5, indexing="ij")
    w = a.sum((1, 2)).clamp_min(1e-9)
    cx = (a * xs).sum((1, 2)) / w / cams[0].width
    cy = (a * ys).sum((1, 2)) / w / cams[0].height
    return torch.stack([cx, cy], 1), a.mean((1, 2))


def test_dataparser_cameras_render_the_checkpoint_centred(setup):
    tmp, cams, _ = setup
    scene = sio.read_scene(tmp / "run")
    dp_cams = load_cameras(tmp / "transforms.json", dataparser=tmp / "dataparser_transforms.json")
    centre, cover = _centre_and_coverage(scene, dp_cams)
    assert float((centre - 0.5).abs().max()) < 0.05, centre
    assert float(cover.min()) > 0.05
    # the raw transforms.json cameras miss the checkpointed splats (the test can fail)
    raw_centre, raw_cover = _centre_and_coverage(scene, load_cameras(tmp / "transforms.json"))
    assert float((raw_centre - 0.5).abs().max()) > 0.1 or float(raw_cover.max()) < 0.01


def test_dataparser_both_directions_are_inverse(setup):
    tmp, _, _ = setup
    dp = load_dataparser_transforms(tmp / "dataparser_transforms.json")
    raw = load_cameras(tmp / "transforms.json")
    back = dp.cameras(dp.cameras(raw), inverse=True)
    for a, b in zip(raw, back):
        assert torch.allclose(a.world_to_camera, b.world_to_camera, atol=1e-9)


def test_ns_export_cameras_match_dataparser_cameras(setup):
    tmp, _, _ = setup
    dp_cams = load_cameras(tmp / "transforms.json", dataparser=tmp / "dataparser_transforms.json")
    frames = []
    for i, c in enumerate(dp_cams):  # ns-export cameras: dataparser-frame OpenGL [3,4], no intrinsics
        c2w = c.camera_to_world.numpy().copy()
        c2w[:3, 1:3] *= -1
        frames.append({"file_path": f"/data/images/frame_{i:05d}.png", "transform": c2w[:3].tolist()})
    (tmp / "transforms_train.json").write_text(json.dumps(frames))
    with pytest.raises(FormatError, match="intrinsics"):
        load_cameras(tmp / "transforms_train.json")
    ns = load_cameras(tmp / "transforms_train.json", intrinsics=tmp / "transforms.json")
    for a, b in zip(dp_cams, ns):
        assert torch.allclose(a.world_to_camera, b.world_to_camera, atol=1e-9) and a.fx == b.fx
    # already in the dataparser frame: a dataparser file leaves them there
    same = load_cameras(tmp / "transforms_train.json", intrinsics=tmp / "transforms.json",
                        dataparser=tmp / "dataparser_transforms.json")
    assert all(torch.equal(a.world_to_camera, b.world_to_camera) for a, b in zip(ns, same))
    # moved back to data coordinates: the frame of the (applied) transforms.json poses
    dp = load_dataparser_transforms(tmp / "dataparser_transforms.json").composed(torch.from_numpy(APPLIED))
    for a, b in zip(load_cameras(tmp / "transforms.json"), dp.cameras(ns, inverse=True)):
        assert torch.allclose(a.world_to_camera, b.world_to_camera, atol=1e-9)


def test_distortion_and_camera_models_warn(tmp_path, setup):
    tmp, cams, _ = setup
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        load_cameras(tmp / "transforms.json")  # OPENCV with zero distortion: silent
    _transforms_json(cams, tmp_path / "fish.json", np.eye(4), camera_model="OPENCV_FISHEYE")
    with pytest.warns(CameraWarning, match="OPENCV_FISHEYE"):
        load_cameras(tmp_path / "fish.json")
    _transforms_json(cams, tmp_path / "dist.json", np.eye(4), k1=-0.12, p2=0.001)
    with pytest.warns(CameraWarning, match="k1, p2"):
        load_cameras(tmp_path / "dist.json")


def test_bad_dataparser_file(tmp_path):
    (tmp_path / "d.json").write_text(json.dumps({"transform": np.eye(4)[:3].tolist(), "scale": -1}))
    with pytest.raises(FormatError, match="scale must be positive"):
        load_dataparser_transforms(tmp_path / "d.json")
    (tmp_path / "d.json").write_text(json.dumps({"transform": (2 * np.eye(4))[:3].tolist(), "scale": 1}))
    with pytest.raises(FormatError, match="not a rotation"):
        load_dataparser_transforms(tmp_path / "d.json")


def test_render_cli_finds_the_run_folders_dataparser_transforms(setup, tmp_path):
    import imageio.v3 as iio

    from splat.cli import main

    tmp, _, _ = setup
    run = tmp / "run"
    (run / "dataparser_transforms.json").write_bytes((tmp / "dataparser_transforms.json").read_bytes())
    try:
        rc = main(["render", str(run), "--cameras", str(tmp / "transforms.json"), "-n", "2", "-o", str(tmp_path / "v")])
        assert rc in (0, None)
    finally:
        (run / "dataparser_transforms.json").unlink()
    pngs = sorted((tmp_path / "v").glob("*.png"))
    assert len(pngs) == 2
    img = iio.imread(pngs[0]).astype(np.float64).sum(2)
    ys, xs = np.nonzero(img > 0)
    assert abs(xs.mean() / img.shape[1] - 0.5) < 0.08 and abs(ys.mean() / img.shape[0] - 0.5) < 0.08
