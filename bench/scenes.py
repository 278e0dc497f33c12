"""Loading the shared benchmark scenes (../shared/data/scenes), shared by the bench scripts."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from splat import GaussianScene

ROOT = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def read_dotsplat(path: Path) -> GaussianScene:
    """antimatter15 .splat with numpy (32-byte records), used when splat.io has no reader yet."""
    raw = np.fromfile(path, dtype=np.uint8).reshape(-1, 32)
    f = raw[:, :24].copy().view(np.float32)
    rgba = raw[:, 24:28].astype(np.float64) / 255.0
    quats = (raw[:, 28:32].astype(np.float64) - 128.0) / 128.0
    t = lambda a: torch.from_numpy(np.ascontiguousarray(a)).double()  # noqa: E731
    s = GaussianScene.from_activated(t(f[:, :3]), t(quats), t(f[:, 3:6]), t(rgba[:, 3]), t(rgba[:, :3]))
    return s.to(dtype=torch.float32)


def load_scene(name: str) -> GaussianScene | None:
    """A shared scene as float32, or None (with a message) when it or its reader is missing."""
    path = SHARED / "scenes" / name
    if not path.exists():
        print(f"skip {name}: {path} not found")
        return None
    try:
        from splat.io import read_scene

        return read_scene(path).to(dtype=torch.float32)
    except (ImportError, AttributeError):
        if path.suffix == ".splat":
            return read_dotsplat(path)
        print(f"skip {name}: splat.io has no reader for it yet")
        return None


def load_plant() -> GaussianScene | None:
    return load_scene("plant.splat")
