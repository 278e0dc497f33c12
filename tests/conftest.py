"""Shared fixtures: the real test data in ../shared/data (skipped with a clear message when absent)."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

import splat  # noqa: F401  (first: it sets the threading layer and OpenMP wait policy before torch loads)
import torch  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))

torch.set_num_threads(2)


def shared_file(*parts: str) -> Path:
    """Path to a file under ../shared/data, or skip the test saying what is missing."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"shared test data not found: {p} (clone the project with ../shared beside it)")
    return p


@pytest.fixture
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.skip(f"shared test data folder not found: {SHARED}")
    return SHARED


@pytest.fixture
def one_torch_thread():
    """torch on one thread for the test (restored after): tests made of thousands of tiny tensor
    ops only wait on a thread pool when the shared machine is loaded."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
