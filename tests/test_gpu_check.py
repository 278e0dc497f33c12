"""bench/gpu_check.py's CPU-side logic: arguments, the plan, timeouts, budget, result writing."""
from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path

import pytest

from conftest import ROOT, shared_file


def _load():
    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "bench" / "gpu_check.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


gc = _load()


def test_arguments():
    a = gc.parse_args(["--data", "/d", "--timeout", "compile=90", "--stages", "env,render", "--scenes", "playbot"])
    assert a.stages == ["env", "render"] and a.scenes == ["playbot"] and a.data == Path("/d")
    assert a.timeouts["compile"] == 90 and a.timeouts["render"] == gc.STAGES["render"]
    assert a.output == ROOT / "bench" / "results" / "gpu_check.json" and a.device == "cuda" and a.budget == 480
    for bad in (["--stages", "env,nope"], ["--scenes", "kitchen"], ["--timeout", "compile"], ["--timeout", "x=5"],
                ["--budget", "0"]):
        with pytest.raises(SystemExit):
            gc.parse_args(bad)


def test_dry_run_writes_the_plan(tmp_path, capsys):
    out = tmp_path / "r" / "gpu_check.json"
    assert gc.main(["--dry-run", "-o", str(out), "--data", str(tmp_path)]) == 0
    res = json.loads(out.read_text())
    assert list(res["stages"]) == list(gc.STAGES) and res["scenes"] == ["biker", "playbot"]
    assert all(r["status"] == "planned" for r in res["stages"].values())
    assert "--run-stage compile" in capsys.readouterr().out
    assert not list(out.parent.glob(".*.part"))  # written atomically


def test_budget_spent_skips_and_still_writes(tmp_path):
    out = tmp_path / "gpu_check.json"
    assert gc.main(["--budget", "1", "--device", "cpu", "-o", str(out)]) == 1
    res = json.loads(out.read_text())
    assert all(r["status"] == "skipped" and r["reason"] == "budget spent" for r in res["stages"].values())


def test_timeout_kills_the_stage_process_group(tmp_path):
    marker = tmp_path / "grandchild_alive"
    grandchild = tmp_path / "grandchild.py"
    grandchild.write_text(f"import time\ntime.sleep(3)\nopen({str(marker)!r}, 'w').close()\n")
    child = tmp_path / "child.py"
    child.write_text(f"import subprocess, sys, time\nsubprocess.Popen([sys.executable, {str(grandchild)!r}])\n"
                     "time.sleep(30)\n")
    t0 = time.monotonic()
    status, _ = gc.run_with_timeout([sys.executable, str(child)], 1.0)
    assert status == "timeout" and time.monotonic() - t0 < 10
    time.sleep(3.5)
    assert not marker.exists()  # the grandchild died with the stage
    assert gc.run_with_timeout([sys.executable, "-c", "raise SystemExit(3)"], 10)[0] == "error"


def test_image_fit_stage_on_cpu(tmp_path):
    """The image-fit stage (the torch path of render/image2d) runs and improves on its start."""
    shared_file("images", "kodak", "kodim01.png")
    a = gc.parse_args(["--device", "cpu", "--quick", "--data", str(shared_file())])
    rec = gc.stage_image_fit(a)
    assert rec["device"] == "cpu" and rec["steps"] == 5 and rec["step_ms"] > 0
    assert 5.0 < rec["psnr_db"] < 60.0


def test_scene_stages_on_cpu():
    """render and significance stages on a small real scene (cpu backend, tiny sizes)."""
    data = shared_file()
    shared_file("scenes", "fruit_drops_sh3.ply")
    a = gc.parse_args(["--device", "cpu", "--quick", "--scenes", "fruit", "--data", str(data)])
    rec = gc.stage_render(a)["fruit"]
    assert rec["backend"] == "cpu" and rec["gaussians"] == 3000 and rec["forward_ms"] > 0
    assert rec["forward_backward_ms"] > 0 and max(rec["width"], rec["height"]) == 96
    sig = gc.stage_significance(a)["fruit"]
    assert sig["views"] == 4 and sig["seconds"] > 0
    with pytest.raises(FileNotFoundError, match="--data"):
        gc.stage_render(gc.parse_args(["--device", "cpu", "--scenes", "fruit", "--data", "/nonexistent"]))


def test_failed_compile_skips_the_gsplat_stages(tmp_path, monkeypatch):
    """A build that times out leaves the later gsplat stages skipped, the others run; results stay valid JSON."""
    ran = []

    def fake(argv, limit):
        stage = argv[argv.index("--run-stage") + 1]
        ran.append(stage)
        return ("timeout", "killed") if stage == "compile" else ("ok", "")

    monkeypatch.setattr(gc, "run_with_timeout", fake)
    out = tmp_path / "gpu_check.json"
    assert gc.main(["-o", str(out), "--data", str(tmp_path)]) == 1
    res = json.loads(out.read_text())["stages"]
    assert ran == ["env", "image_fit", "compile"]
    assert res["compile"]["status"] == "timeout" and res["compile"]["log_tail"] == "killed"
    assert all(res[s]["status"] == "skipped" and res[s]["reason"] == "gsplat did not compile" for s in gc.NEEDS_GSPLAT)
