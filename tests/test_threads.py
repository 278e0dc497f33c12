"""The package's threading set-up (issue 13) and the scoped thread helper (issue 17)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numba
import pytest
import torch

from splat.threads import THREADING_LAYER, WAIT_POLICY, threading_info, threads

ROOT = Path(__file__).resolve().parents[1]


def test_threading_layer_and_wait_policy_in_effect():
    """A fresh process that imports the package and runs a parallel kernel uses the omp layer
    with the passive wait policy (configured before OpenMP loaded)."""
    code = ("import splat, json, torch\n"
            "from render.image2d import render_image\n"
            "from splat.threads import threading_info\n"
            "m = torch.rand(50, 2) * 300; s = torch.full((50, 2), 4.0)\n"
            "render_image(m, s, torch.zeros(50), torch.rand(50, 3), 300, 300, mode='sum')\n"
            "print(json.dumps(threading_info()))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("NUMBA_THREADING_LAYER", "OMP_WAIT_POLICY")}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    info = json.loads(out.stdout.strip().splitlines()[-1])
    assert THREADING_LAYER == "omp" and WAIT_POLICY == "PASSIVE"
    assert info["numba_layer_configured"] == "omp"
    assert info["numba_layer_active"] == "omp"
    assert info["omp_wait_policy"] == "PASSIVE"
    assert info["wait_policy_effective"] is True


def test_user_choice_is_kept():
    code = "import splat, numba, os; print(numba.config.THREADING_LAYER, os.environ['OMP_WAIT_POLICY'])"
    env = {**os.environ, "NUMBA_THREADING_LAYER": "workqueue", "OMP_WAIT_POLICY": "ACTIVE"}
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["workqueue", "ACTIVE"]


def test_this_process_is_configured():
    info = threading_info()
    assert info["numba_layer_configured"] == "omp" and info["omp_wait_policy"] == "PASSIVE"
    assert info["wait_policy_effective"] is True  # conftest imports splat before torch


def test_threads_sets_and_restores_both():
    t0, n0 = torch.get_num_threads(), numba.get_num_threads()
    with threads(1):
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == 1
    assert (torch.get_num_threads(), numba.get_num_threads()) == (t0, n0)
    with pytest.raises(RuntimeError):
        with threads(1):
            raise RuntimeError("boom")
    assert (torch.get_num_threads(), numba.get_num_threads()) == (t0, n0)
    with threads(10_000):  # numba's pool is capped at its size
        assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS
    with threads(None):
        assert (torch.get_num_threads(), numba.get_num_threads()) == (t0, n0)
    with threads(1, numba_too=False):
        assert torch.get_num_threads() == 1 and numba.get_num_threads() == n0
    with pytest.raises(ValueError, match="at least 1"):
        with threads(0):
            pass


def test_library_code_leaves_thread_counts_alone():
    from compress.image.fit import FitConfig, fit_gaussians

    torch.set_num_threads(2)
    target = torch.rand(24, 32, 3)
    fit_gaussians(target, 20, FitConfig(steps=3))  # a small image fits on one thread...
    assert torch.get_num_threads() == 2  # ...and the caller's setting is back
