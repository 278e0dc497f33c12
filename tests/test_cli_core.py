"""`splat info`, `splat convert`, `splat formats`: exit codes, outputs, one-line errors."""
from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import shared_file

import splat.io as sio
from splat import GaussianScene
from splat.cli import main


@pytest.fixture
def small_ply(tmp_path):
    path = tmp_path / "s.ply"
    sio.write_scene(GaussianScene.random(300, sh_degree=2, seed=1), path)
    return path


def _error_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("error:")]


def test_info_table_and_json(capsys):
    path = shared_file("scenes", "biker.spz")
    assert main(["info", str(path)]) == 0
    out = capsys.readouterr().out
    for text in ("spz", "152,746", "SH degree", "bytes per Gaussian", "14.68", "bounds min"):
        assert text in out
    assert main(["info", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["format"] == "spz" and data["gaussians"] == 152_746 and data["sh_degree"] == 0
    assert data["file_size"] == path.stat().st_size
    assert data["bounds_min"][1] < -3 and len(data["bounds_max"]) == 3


def test_read_option_for_spz_axes(tmp_path, capsys):
    biker = shared_file("scenes", "biker.spz")
    assert main(["convert", str(biker), str(tmp_path / "raw.ply"), "-r", "coordinate_system=rdf"]) == 0
    assert main(["convert", str(biker), str(tmp_path / "ours.ply")]) == 0
    raw, ours = sio.read_scene(tmp_path / "raw.ply"), sio.read_scene(tmp_path / "ours.ply")
    assert float(raw.means[:, 1].min()) >= 0 and float(ours.means[:, 1].max()) <= 0
    assert main(["info", str(biker), "-r", "coordinate_system=rub", "--json"]) == 0


def test_info_on_sog_folder(tmp_path, capsys):
    sio.write_scene(GaussianScene.random(100), tmp_path / "loose" / "meta.json")
    assert main(["info", str(tmp_path / "loose")]) == 0
    assert "sog" in capsys.readouterr().out


@pytest.mark.parametrize("ext,options", [("spz", []), ("spz", ["--set", "version=3"]), ("sog", ["-s", "sort=false"]),
                                         ("splat", []), ("ply", [])])
def test_convert_any_to_any(small_ply, tmp_path, capsys, ext, options):
    out = tmp_path / f"o.{ext}"
    assert main(["convert", str(small_ply), str(out), *options]) == 0
    captured = capsys.readouterr()
    assert "converted 300 Gaussians" in captured.out
    got = sio.read_scene(out)
    assert len(got) == 300
    if ext == "ply":
        assert got.equal(sio.read_scene(small_ply))
    if ext == "splat":
        assert "SH degree 2 dropped" in captured.err
    if options == ["--set", "version=3"]:
        assert out.read_bytes()[:2] == b"\x1f\x8b"


def test_convert_refuses_to_overwrite(small_ply, tmp_path, capsys):
    before = small_ply.read_bytes()
    assert main(["convert", str(small_ply), str(small_ply)]) == 2
    err = capsys.readouterr().err
    assert len(_error_lines(err)) == 1 and "refusing to overwrite the input" in err
    assert small_ply.read_bytes() == before
    # --force allows it, atomically
    assert main(["convert", str(small_ply), str(small_ply), "--force"]) == 0
    assert sio.read_scene(small_ply).equal(sio.read_scene(tmp_path / "s.ply"))
    other = tmp_path / "exists.spz"
    other.write_bytes(b"keep")
    assert main(["convert", str(small_ply), str(other)]) == 2
    assert "exists (pass --force" in capsys.readouterr().err and other.read_bytes() == b"keep"


def test_convert_explicit_format_and_usage_errors(small_ply, tmp_path, capsys):
    assert main(["convert", str(small_ply), str(tmp_path / "x.bin"), "--format", "splat"]) == 0
    assert sio.read_scene(tmp_path / "x.bin", "splat") is not None
    capsys.readouterr()
    cases = [
        (["convert", str(small_ply), str(tmp_path / "y.xyz")], "cannot tell the output format"),
        (["convert", str(small_ply), str(tmp_path / "y.compressed.ply")], "read-only"),
        (["convert", str(small_ply), str(tmp_path / "y.spz"), "--set", "nonsense"], "KEY=VALUE"),
        (["convert", str(small_ply), str(tmp_path / "y.spz"), "-r", "coordinate_system=xyz"], "takes no option"),
        (["convert", str(small_ply), str(tmp_path / "y.spz"), "--set", "bogus=1"], "takes no option 'bogus'"),
        (["convert", str(small_ply), str(tmp_path / "y.spz"), "--format", "nope"], "unknown format 'nope'"),
        (["convert", str(tmp_path / "missing.ply"), str(tmp_path / "y.spz")], "no such file"),
    ]
    for argv, match in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        lines = _error_lines(err)
        assert len(lines) == 1 and match in lines[0], (argv, err)
    assert not (tmp_path / "y.spz").exists() and not (tmp_path / "y.xyz").exists()


def test_corrupt_file_is_one_line_error(tmp_path, capsys):
    bad = tmp_path / "corrupt.spz"
    bad.write_bytes(shared_file("scenes", "biker.spz").read_bytes()[:5000])
    assert main(["info", str(bad)]) == 2
    err = capsys.readouterr().err
    lines = _error_lines(err)
    assert len(lines) == 1 and str(bad) in lines[0] and "truncated" in lines[0]
    assert "Traceback" not in err
    assert main(["convert", str(bad), str(tmp_path / "out.ply")]) == 2
    assert not (tmp_path / "out.ply").exists()


def test_usage_errors_exit_2(capsys):
    assert main(["convert"]) == 2
    assert main(["info", "--bogus"]) == 2
    assert "No such option" in capsys.readouterr().err


def test_help_has_examples(capsys):
    for cmd in ("info", "convert", "formats"):
        assert main([cmd, "--help"]) == 0
        assert "Example" in capsys.readouterr().out
    assert main(["formats"]) == 0
    out = capsys.readouterr().out
    assert "compressed-ply" in out and "sog" in out


def test_cli_subprocess_exit_codes(tmp_path):
    bad = tmp_path / "bad.ply"
    bad.write_bytes(b"ply\nformat ascii 1.0\nelement vertex 3\nproperty float x\nend_header\n1\n2\n")
    r = subprocess.run([sys.executable, "-m", "splat.cli", "info", str(bad)], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2
    lines = _error_lines(r.stderr)
    assert len(lines) == 1 and "bad.ply" in lines[0] and "Traceback" not in r.stderr
    good = tmp_path / "good.splat"
    sio.write_scene(GaussianScene.random(10), good)
    r = subprocess.run([sys.executable, "-m", "splat.cli", "convert", str(good), str(tmp_path / "g.spz")],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert len(sio.read_scene(tmp_path / "g.spz")) == 10


def test_commands_are_registered_once_however_often_main_runs(capsys):
    """Every plugin's ``register(app)`` runs once per process: calling ``main`` again (tests,
    scripts) neither doubles the commands nor makes each call slower than the last."""
    from splat.cli import app, build_app

    build_app()
    before = (len(app.registered_commands), len(app.registered_groups))
    for _ in range(3):
        assert main(["formats"]) == 0
    assert (len(app.registered_commands), len(app.registered_groups)) == before
    capsys.readouterr()
