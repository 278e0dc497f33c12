"""`splat render` and the Python API behind it."""
from __future__ import annotations

import json

import imageio.v3 as iio
import numpy as np
import pytest
import torch
import typer
from typer.testing import CliRunner

import splat.io
from render.cli import register
from render.demo import procedural_scene
from render.views import make_cameras, parse_background, render_to_pngs, scene_up_axis
from splat import UsageError
from splat.camera import save_inria_cameras


@pytest.fixture
def scene_file(tmp_path, monkeypatch):
    """A small scene on disk (through splat.io when its writers exist, else an in-memory stand-in)."""
    scene = procedural_scene(3000, seed=1)
    path = tmp_path / "knot.splat"
    if hasattr(splat.io, "write_scene"):
        splat.io.write_scene(scene, path)
    else:
        path.write_bytes(b"stand-in")
        monkeypatch.setattr(splat.io, "read_scene", lambda p, *a, **k: scene, raising=False)
    return path, scene


def _app():
    app = typer.Typer()
    register(app)

    @app.command("noop", hidden=True)
    def _noop():  # a second command keeps typer from collapsing the app into 'render'
        pass

    return app


def test_render_orbit_writes_centred_views(scene_file, tmp_path):
    path, _ = scene_file
    out = tmp_path / "views"
    res = CliRunner().invoke(_app(), ["render", str(path), "--cameras", "orbit", "-n", "3", "--width", "96", "--height", "64", "-o", str(out)])
    assert res.exit_code == 0, res.output
    files = sorted(out.glob("*.png"))
    assert len(files) == 3
    for f in files:
        img = iio.imread(f)
        assert img.shape == (64, 96, 3)
        lit = img.max(axis=-1) > 20
        ys, xs = np.nonzero(lit)
        assert 0.05 < lit.mean() < 0.9  # the object covers a reasonable part of the frame
        assert abs(xs.mean() - 48) < 12 and abs(ys.mean() - 32) < 10  # and is centred
    assert "splat render" in res.output
    # refuses to overwrite without --force
    again = CliRunner().invoke(_app(), ["render", str(path), "-n", "3", "--width", "96", "--height", "64", "-o", str(out)])
    assert again.exit_code != 0 and isinstance(again.exception, UsageError)
    forced = CliRunner().invoke(_app(), ["render", str(path), "-n", "3", "--width", "96", "--height", "64", "-o", str(out), "--force"])
    assert forced.exit_code == 0, forced.output


def test_render_with_camera_file_and_background(scene_file, tmp_path):
    path, scene = scene_file
    cams = make_cameras(scene, "orbit", n=4, width=80, height=60)
    cam_file = tmp_path / "cameras.json"
    save_inria_cameras(cams, cam_file)
    out = tmp_path / "v"
    res = CliRunner().invoke(_app(), ["render", str(path), "-c", str(cam_file), "-n", "2", "-b", "white", "-o", str(out)])
    assert res.exit_code == 0, res.output
    files = sorted(out.glob("*.png"))
    assert len(files) == 2
    img = iio.imread(files[0])
    assert img.shape == (60, 80, 3) and (img[0, 0] == 255).all()  # white background in the corner


@pytest.mark.parametrize(
    "args,match",
    [
        (["--cameras", "nope.json"], "expected 'orbit'"),
        (["--background", "purple"], "background"),
        (["--sh-degree", "7"], "sh-degree"),
        (["-n", "0"], "at least 1"),
    ],
)
def test_render_bad_options(scene_file, tmp_path, args, match):
    path, _ = scene_file
    res = CliRunner().invoke(_app(), ["render", str(path), "-o", str(tmp_path / "o"), *args])
    assert res.exit_code != 0
    assert isinstance(res.exception, UsageError) and match in str(res.exception)
    assert not (tmp_path / "o").exists()  # no partial output


def test_parse_background_and_up_axis(tmp_path):
    assert parse_background("white") == (1.0, 1.0, 1.0)
    assert parse_background("#ff0000") == (1.0, 0.0, 0.0)
    assert parse_background("0.1,0.2,0.3") == (0.1, 0.2, 0.3)
    scene = tmp_path / "plant.splat"
    assert scene_up_axis(scene) == "-y"
    (tmp_path / "plant.meta.json").write_text(json.dumps({"geometry": {"up_axis": "+z"}}))
    assert scene_up_axis(scene) == "+z"


def test_render_views_api(tmp_path):
    scene = procedural_scene(2000)
    cams = make_cameras(scene, "hemisphere", n=2, width=40, height=30)
    views = render_to_pngs(scene, cams, tmp_path / "api", backend="cpu")
    assert [v.path.exists() for v in views] == [True, True]
    assert all(0.02 < v.coverage < 0.9 for v in views)


def test_plant_orbit_views_frame_the_object():
    from conftest import shared_file

    path = shared_file("scenes", "plant.splat")
    if not hasattr(splat.io, "read_scene"):
        pytest.skip("splat.io.read_scene has not landed yet")
    scene = splat.io.read_scene(path)
    cams = make_cameras(scene, "orbit", n=3, width=160, height=120, up=scene_up_axis(path))
    from render import rasterize

    for cam in cams:
        a = rasterize(scene, cam, backend="cpu").alphas[0, ..., 0]
        ys, xs = torch.nonzero(a > 0.5, as_tuple=True)
        assert len(ys) > 0.03 * a.numel()
        assert abs(xs.float().mean() - 80) < 20 and abs(ys.float().mean() - 60) < 20  # centred
        assert ys.max() - ys.min() > 0.4 * 120  # tall object fills a good part of the frame height
