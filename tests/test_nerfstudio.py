"""nerfstudio interop: ns-export PLYs in both colour modes, splatfacto checkpoints (read, write)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import splat.io as sio
from splat import GaussianScene
from splat.errors import FormatError
from splat.io import nerfstudio

from conftest import shared_file
from nerfstudio_fixtures import SH_C0, ns_export_ply, splatfacto_checkpoint


@pytest.fixture(scope="module")
def fruit() -> GaussianScene:
    return sio.read_scene(shared_file("scenes", "fruit_drops_sh3.ply")).replace(extras={})


# ---------------------------------------------------------------------------------- ns-export PLY
def test_ns_export_sh_mode_is_exact(tmp_path, fruit):
    p = tmp_path / "splat.ply"
    p.write_bytes(ns_export_ply(fruit, "sh_coeffs"))
    back = sio.read_scene(p)
    assert back.equal(fruit)


def test_ns_export_rgb_mode_reads_colour_within_a_byte(tmp_path, fruit):
    p = tmp_path / "splat.ply"
    p.write_bytes(ns_export_ply(fruit, "rgb"))
    back = sio.read_scene(p)
    assert back.sh_degree == 0 and not back.extras  # red/green/blue are the colour, not extras
    for name in ("means", "log_scales", "opacity_logits", "quats"):
        assert torch.equal(getattr(back, name), getattr(fruit, name)), name
    want = (fruit.sh_dc.double() * SH_C0 + 0.5).clamp(0, 1)
    got = back.sh_dc.double() * SH_C0 + 0.5
    err = want - got
    assert float(err.min()) >= -1e-6 and float(err.max()) < 1 / 255 + 1e-6  # the exporter truncates


def test_ply_without_any_colour_is_refused(tmp_path, fruit):
    data = ns_export_ply(fruit[:10], "rgb").replace(b"property uchar red", b"property uchar ruby")
    (tmp_path / "x.ply").write_bytes(data)
    with pytest.raises(FormatError, match="f_dc_0"):
        sio.read_scene(tmp_path / "x.ply")


# ---------------------------------------------------------------------------------- checkpoints
def test_checkpoint_sh3_read_from_run_folder(tmp_path, fruit):
    ckpt = splatfacto_checkpoint(fruit, tmp_path / "run", sh_degree=3)
    assert sio.detect_format(ckpt) == "splatfacto"
    assert sio.detect_format(tmp_path / "run") == "splatfacto"
    for src in (ckpt, tmp_path / "run", ckpt.parent):
        back = sio.read_scene(src)
        assert back.sh_degree == 3
        for name in ("means", "log_scales", "opacity_logits", "sh_dc", "sh_rest"):
            assert torch.equal(getattr(back, name), getattr(fruit, name)), name
        assert torch.allclose(back.unit_quats, fruit.unit_quats, atol=1e-6)


def test_checkpoint_sh0_holds_colour_logits(tmp_path, fruit):
    s = fruit.with_sh_degree(0)
    ckpt = splatfacto_checkpoint(s, tmp_path / "run", sh_degree=0, ddp=True)
    back = sio.read_scene(ckpt)
    assert back.sh_degree == 0
    want = (s.sh_dc.double() * SH_C0 + 0.5).clamp(1e-3, 1 - 1e-3)
    assert torch.allclose(back.colors.double(), want, atol=1e-5)


@pytest.mark.parametrize("degree", [0, 3])
def test_checkpoint_write_read_round_trip(tmp_path, fruit, degree):
    s = fruit.with_sh_degree(degree)
    if degree == 0:  # splatfacto's colour is a sigmoid: in-gamut colours survive
        s = s.replace(sh_dc=(s.sh_dc * SH_C0 + 0.5).clamp(0.01, 0.99).sub(0.5).div(SH_C0))
    out = tmp_path / "step-000000000.ckpt"
    sio.write_scene(s, out)
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert {"step", "pipeline", "optimizers", "schedulers", "scalers"} <= set(ckpt)  # what ns-train resumes from
    torch.amp.GradScaler("cpu").load_state_dict(ckpt["scalers"])
    state = ckpt["pipeline"]
    assert state["_model.gauss_params.opacities"].shape == (len(s), 1)
    assert state["_model.gauss_params.features_rest"].shape == (len(s), 15 if degree else 0, 3)
    back = sio.read_scene(out)
    for name in ("means", "log_scales", "opacity_logits", "quats", "sh_rest"):
        assert torch.equal(getattr(back, name), getattr(s, name)), name
    tol = 1e-5 if degree == 0 else 0.0
    assert torch.allclose(back.sh_dc, s.sh_dc, atol=tol, rtol=0)
    # and the reader agrees with the layout nerfstudio itself writes
    ref = sio.read_scene(splatfacto_checkpoint(s, tmp_path / "run", sh_degree=degree))
    assert torch.allclose(ref.colors, back.colors, atol=1e-5)


def test_checkpoint_with_pickled_objects_is_refused(tmp_path):
    import argparse

    p = tmp_path / "evil.ckpt"
    torch.save({"pipeline": {}, "cfg": argparse.Namespace(a=1)}, p)  # a class unpickling would construct
    with pytest.raises(FormatError, match="refused"):
        sio.read_scene(p)


def test_checkpoint_errors(tmp_path, fruit):
    ckpt = splatfacto_checkpoint(fruit[:20], tmp_path / "run", sh_degree=3)
    (tmp_path / "run" / "config.yml").write_text("    sh_degree: 1\n")
    with pytest.raises(FormatError, match="sh_degree 1"):
        sio.read_scene(tmp_path / "run")
    state = torch.load(ckpt, weights_only=True)
    state["pipeline"]["_model.gauss_params.quats"] = torch.zeros(20, 3)
    torch.save(state, tmp_path / "bad.ckpt")
    with pytest.raises(FormatError, match="quats has shape"):
        sio.read_scene(tmp_path / "bad.ckpt")
    (tmp_path / "trunc.ckpt").write_bytes(ckpt.read_bytes()[:500])
    with pytest.raises(FormatError):
        sio.read_scene(tmp_path / "trunc.ckpt", "splatfacto")
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="nerfstudio_models"):
        nerfstudio.read(tmp_path / "empty")


def test_viewer_and_cli_take_a_run_folder(tmp_path, fruit, capsys):
    import viewer
    from splat.cli import main

    run = tmp_path / "run"
    splatfacto_checkpoint(fruit, run, sh_degree=3)
    with viewer.serve(run, port=0, log=False) as srv:  # a run folder is served as SPZ
        assert len(sio.read_scene(srv.assets[0].path)) == len(fruit)
    assert main(["info", str(run)]) in (0, None)
    assert "splatfacto" in capsys.readouterr().out
    assert main(["convert", str(run), str(tmp_path / "out.spz")]) in (0, None)
    assert len(sio.read_scene(tmp_path / "out.spz")) == len(fruit)
