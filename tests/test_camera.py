import json
import math

import pytest
import torch

from splat import Camera, FormatError, GaussianScene, load_cameras, orbit_cameras
from splat.camera import hemisphere_cameras, save_inria_cameras


def _project(cam: Camera, p):
    pc = cam.world_to_camera @ torch.tensor([*p, 1.0], dtype=torch.float64)
    return cam.fx * pc[0] / pc[2] + cam.cx, cam.fy * pc[1] / pc[2] + cam.cy, pc[2]


def test_look_at_centres_target_and_up_is_image_up():
    cam = Camera.look_at([0, -1, -5], [0, 0, 0], up=[0, -1, 0], width=200, height=100)
    u, v, z = _project(cam, [0, 0, 0])
    assert abs(u - 100) < 1e-9 and abs(v - 50) < 1e-9 and z > 0
    # a point "up" in the world (-y) appears above the centre (smaller v)
    _, v_up, _ = _project(cam, [0, -0.5, 0])
    assert v_up < 50


def test_orbit_frames_the_scene():
    s = GaussianScene.random(2000, extent=3.0)
    for cam in orbit_cameras(s, 6, width=160, height=120) + hemisphere_cameras(s, 5, width=160, height=120):
        pts = s.means.double()
        pc = (cam.world_to_camera[:3, :3] @ pts.T).T + cam.world_to_camera[:3, 3]
        u = cam.fx * pc[:, 0] / pc[:, 2] + cam.cx
        v = cam.fy * pc[:, 1] / pc[:, 2] + cam.cy
        assert (pc[:, 2] > 0).all()
        inside = ((u >= 0) & (u < 160) & (v >= 0) & (v < 120)).float().mean()
        assert inside > 0.97


def test_inria_round_trip(tmp_path):
    cams = orbit_cameras(GaussianScene.random(100), 3, width=64, height=48)
    save_inria_cameras(cams, tmp_path / "cameras.json")
    back = load_cameras(tmp_path / "cameras.json")
    for a, b in zip(cams, back):
        assert torch.allclose(a.world_to_camera, b.world_to_camera, atol=1e-9)
        assert (a.fx, a.width, a.height) == (b.fx, b.width, b.height)


def test_transforms_json_opengl_convention(tmp_path):
    # a camera at +z looking down -z (OpenGL identity rotation) sees the origin in the centre
    c2w = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]
    data = {"w": 100, "h": 80, "camera_angle_x": math.radians(60), "frames": [{"file_path": "a.png", "transform_matrix": c2w}]}
    (tmp_path / "transforms.json").write_text(json.dumps(data))
    (cam,) = load_cameras(tmp_path / "transforms.json")
    u, v, z = _project(cam, [0, 0, 0])
    assert abs(u - 50) < 1e-9 and abs(v - 40) < 1e-9 and abs(z - 4) < 1e-9
    # OpenGL +y (up) must appear above the centre
    assert _project(cam, [0, 1, 0])[1] < 40


@pytest.mark.parametrize(
    "content,msg",
    [("{not json", "not valid JSON"), ("[]", "non-empty"), ('[{"width": 10}]', "lacks"), ('{"a": 1}', "unrecognised"),
     ('{"frames": [{"transform_matrix": [[1]]}], "w": 4, "h": 4, "fl_x": 3}', "must be 4x4")],
)
def test_bad_camera_files(tmp_path, content, msg):
    p = tmp_path / "cams.json"
    p.write_text(content)
    with pytest.raises(FormatError, match=msg) as e:
        load_cameras(p)
    assert str(p) in str(e.value)
