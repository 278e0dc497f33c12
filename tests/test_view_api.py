"""The local JSON API of `splat view` (viewer/view_api.py behind viewer/web_server.py):
render this view and the contribution order, with the server's Host/Origin/body checks.

The camera convention is checked on its own (a point straight ahead of a three.js camera
lands at the image centre, one above it above the centre), and each endpoint's answer equals
a direct call of the toolkit's renderer with the camera it should have built.
"""
from __future__ import annotations

import http.client
import io
import json
import math

import numpy as np
import pytest
import torch

from splat.scene import GaussianScene
from viewer.view_api import (MAX_BODY, ViewRequest, camera_from_three, contribution_cameras, contribution_scores,
                             render_view, shown_indices)
from viewer.web_server import serve_web


def blob_scene(n: int = 600, seed: int = 0) -> GaussianScene:
    """A ball of Gaussians at the origin (radius ~1), with SH degree 1."""
    g = torch.Generator().manual_seed(seed)
    means = torch.randn(n, 3, generator=g) * 0.4
    rgb = torch.rand(n, 3, generator=g) * 0.8 + 0.1
    scales = 0.03 + 0.05 * torch.rand(n, 3, generator=g)
    quats = torch.randn(n, 4, generator=g)
    op = 0.2 + 0.8 * torch.rand(n, generator=g)
    return GaussianScene.from_activated(means, quats, scales, op, rgb, sh_rest=0.1 * torch.randn(n, 3, 3, generator=g))


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    from splat.io import write_scene

    path = tmp_path_factory.mktemp("api") / "ball.ply"
    write_scene(blob_scene(), path)
    return path


# A three.js camera 4 units in front of the ball on +z, looking down -z (identity rotation).
CAMERA = {"position": [0.0, 0.0, 4.0], "quaternion": [0.0, 0.0, 0.0, 1.0], "fov": 50.0, "width": 96, "height": 64}


def test_camera_from_three_looks_down_minus_z_with_y_up():
    cam = camera_from_three([0, 0, 4], [0, 0, 0, 1], 50.0, 96, 64)
    w2c = cam.world_to_camera.double()

    def project(p):
        x = w2c[:3, :3] @ torch.tensor(p, dtype=torch.float64) + w2c[:3, 3]
        return float(cam.fx * x[0] / x[2] + cam.cx), float(cam.fy * x[1] / x[2] + cam.cy), float(x[2])

    u, v, z = project([0, 0, 0])
    assert (u, v, z) == pytest.approx((48, 32, 4))
    _, v_up, _ = project([0, 1, 0])
    assert v_up < 32  # three.js's y is up: above the centre in the image
    u_right, _, _ = project([1, 0, 0])
    assert u_right > 48
    # the vertical fov: a point at the top edge of the view
    _, v_top, _ = project([0, 4 * math.tan(math.radians(25)), 0])
    assert v_top == pytest.approx(0, abs=1e-6)
    # a rotated camera: 90 degrees about y puts the camera's back (+z) on world +x
    s = math.sqrt(0.5)
    cam = camera_from_three([4, 0, 0], [0, s, 0, s], 50.0, 96, 64)
    x = cam.world_to_camera.double()[:3, :3] @ torch.zeros(3, dtype=torch.float64) + cam.world_to_camera.double()[:3, 3]
    assert float(x[2]) == pytest.approx(4)  # the origin is 4 ahead


def test_selection_matches_the_pages_budget_rules():
    scene = blob_scene()
    n = len(scene)
    base = ViewRequest(asset="a", position=(0, 0, 4), quaternion=(0, 0, 0, 1), fov=50, width=8, height=8)
    assert len(shown_indices(scene, base)) == n
    op = scene.opacities.numpy()
    thr = ViewRequest(**{**base.__dict__, "opacity_threshold": 0.5})
    assert np.array_equal(shown_indices(scene, thr), np.flatnonzero(op >= 0.5))
    bud = ViewRequest(**{**base.__dict__, "budget": 100})
    kept = shown_indices(scene, bud)
    sig = op * np.exp(scene.log_scales.numpy().mean(1) * 2)
    assert len(kept) == 100 and sig[kept].min() >= np.sort(sig)[-100]
    w = np.random.default_rng(0).random(n).astype(np.float32)
    con = ViewRequest(**{**base.__dict__, "budget": 50, "keep": "contribution"})
    assert set(shown_indices(scene, con, w)) == set(np.argsort(-w)[:50])


def post(srv, path: str, body, *, origin: str | None = None, host: str | None = None, raw: bytes | None = None):
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=120)
    data = raw if raw is not None else json.dumps(body).encode()
    headers = {"Content-Type": "application/json", "Host": host or f"127.0.0.1:{srv.port}"}
    if origin:
        headers["Origin"] = origin
    c.request("POST", path, body=data, headers=headers)
    r = c.getresponse()
    out = r.status, dict(r.getheaders()), r.read()
    c.close()
    return out


def test_render_endpoint_saves_and_returns_the_toolkits_render(scene_file, tmp_path):
    from PIL import Image

    from splat.io import read_scene

    renders = tmp_path / "renders"
    with serve_web([scene_file], port=0, render_dir=renders) as srv:
        body = {**CAMERA, "asset": "ball.ply", "splatScale": 1.5, "opacityThreshold": 0.3, "budget": 300,
                "sh": False, "background": "#102030"}
        status, headers, png = post(srv, "/api/render", body, origin=srv.url.rstrip("/"))
        assert status == 200, png
        assert headers["Content-Type"] == "image/png" and "attachment" in headers["Content-Disposition"]
        img = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        assert img.shape == (64, 96, 3)
        req = ViewRequest(asset="ball.ply", position=(0, 0, 4), quaternion=(0, 0, 0, 1), fov=50, width=96, height=64,
                          splat_scale=1.5, opacity_threshold=0.3, budget=300, sh=False, background=(16, 32, 48))
        direct = render_view(read_scene(scene_file), req)
        assert np.array_equal(img, direct)
        # the ball is centred: drawn pixels around the image centre, background at the corners
        drawn = np.abs(img.astype(int) - [16, 32, 48]).sum(-1) > 24
        ys, xs = np.nonzero(drawn)
        assert 0.05 < drawn.mean() < 0.9
        assert abs(xs.mean() - 47.5) < 4 and abs(ys.mean() - 31.5) < 4
        assert tuple(img[0, 0]) == (16, 32, 48)
        # saved, never overwritten: a second render is a second file
        status2, headers2, png2 = post(srv, "/api/render", body)
        assert status2 == 200
        files = sorted(p.name for p in renders.iterdir())
        assert files == ["ball_001.png", "ball_002.png"] == [headers["X-Saved-As"], headers2["X-Saved-As"]]
        assert (renders / "ball_001.png").read_bytes() == png


def test_contribution_endpoint_returns_one_float32_weight_per_gaussian(scene_file):
    from splat.io import read_scene

    scene = read_scene(scene_file)
    with serve_web([scene_file], port=0) as srv:
        status, headers, data = post(srv, "/api/contribution", {})
        assert status == 200, data
        w = np.frombuffer(data, "<f4")
        assert len(w) == len(scene) == int(headers["X-Gaussians"])
        expected = contribution_scores(scene, contribution_cameras(scene))
        assert np.allclose(w, expected, rtol=1e-5, atol=1e-6)
        assert (w > 0).mean() > 0.5  # most of a ball's Gaussians are seen from some view
        # a render that keeps the largest contribution uses these weights
        body = {**CAMERA, "budget": 50, "keep": "contribution"}
        status, _, png = post(srv, "/api/render", body)
        assert status == 200, png


@pytest.mark.parametrize("body, status, words", [
    ({**CAMERA, "fov": "wide"}, 400, "'fov'"),
    ({k: v for k, v in CAMERA.items() if k != "width"}, 400, "'width' is missing"),
    ({**CAMERA, "width": 100000}, 400, "'width'"),
    ({**CAMERA, "quaternion": [0, 0, 0, 0]}, 400, "unit quaternion"),
    ({**CAMERA, "position": [0, "x", 0]}, 400, "'position'"),
    ({**CAMERA, "background": "red"}, 400, "'background'"),
    ({**CAMERA, "keep": "random"}, 400, "'keep'"),
    ({**CAMERA, "asset": "../etc/passwd"}, 404, "'asset'"),
    ({**CAMERA, "frame": 3}, 400, "'frame'"),
    ([1, 2], 400, "JSON object"),
])
def test_render_refuses_bad_requests_with_one_line(scene_file, tmp_path, body, status, words):
    with serve_web([scene_file], port=0, render_dir=tmp_path / "r") as srv:
        got, headers, text = post(srv, "/api/render", body)
        assert got == status
        line = text.decode()
        assert words in line and line.count("\n") == 1 and "Traceback" not in line
        assert not (tmp_path / "r").exists() or not any((tmp_path / "r").iterdir())


def test_api_checks_origin_host_size_and_json(scene_file):
    with serve_web([scene_file], port=0) as srv:
        assert post(srv, "/api/contribution", {}, origin="http://evil.example")[0] == 403
        assert post(srv, "/api/contribution", {}, host="evil.example")[0] == 403
        status, _, text = post(srv, "/api/render", None, raw=b"{" + b" " * (MAX_BODY + 1) + b"}")
        assert status == 413 and b"too large" in text
        status, _, text = post(srv, "/api/render", None, raw=b"{not json")
        assert status == 400 and b"not JSON" in text
        assert post(srv, "/api/render", None, raw=b'{"fov": NaN}')[0] == 400
        assert post(srv, "/api/nothing", {})[0] == 405
        assert post(srv, "/assets/ball.ply", {})[0] == 405
        assert srv.refused["origin"] == 1 and srv.refused["host"] == 1
    # the page gets the api attribute only when the API is there
    with serve_web([scene_file], port=0, api=False) as srv:
        assert post(srv, "/api/render", CAMERA)[0] == 405
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        c.request("GET", "/")
        assert b'api="' not in c.getresponse().read()
    with serve_web([scene_file], port=0) as srv:
        c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=30)
        c.request("GET", "/")
        assert b'api="api/"' in c.getresponse().read()
