"""Render a scene from a set of cameras to PNG files (the Python API behind ``splat render``)."""
from __future__ import annotations

import io
import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import imageio.v3 as iio
import numpy as np
import torch

from splat.atomic import atomic_write_bytes, check_output_path
from splat.camera import Camera, hemisphere_cameras, load_cameras, orbit_cameras
from splat.errors import FormatError, UsageError
from splat.scene import GaussianScene

from .rasterize import Backend, rasterize


@dataclass
class RenderedView:
    """One written view: its file, camera name, alpha coverage (mean alpha) and render time (s)."""

    path: Path
    name: str
    coverage: float
    seconds: float


def parse_background(text: str | Sequence[float]) -> tuple[float, float, float]:
    """'black', 'white', 'gray', '0.1,0.2,0.3' or '#rrggbb' -> RGB in [0,1]."""
    if not isinstance(text, str):
        vals = [float(v) for v in text]
    else:
        t = text.strip().lower()
        named = {"black": (0.0, 0.0, 0.0), "white": (1.0, 1.0, 1.0), "gray": (0.5, 0.5, 0.5), "grey": (0.5, 0.5, 0.5)}
        if t in named:
            return named[t]
        try:
            if t.startswith("#") and len(t) == 7:
                vals = [int(t[i : i + 2], 16) / 255.0 for i in (1, 3, 5)]
            else:
                vals = [float(v) for v in t.split(",")]
        except ValueError:
            raise UsageError(f"background {text!r}: expected black, white, gray, #rrggbb or r,g,b in [0,1]") from None
    if len(vals) != 3 or not all(0.0 <= v <= 1.0 for v in vals):
        raise UsageError(f"background {text!r}: expected three values in [0,1]")
    return tuple(vals)  # type: ignore[return-value]


def scene_up_axis(path: Path, default: str = "-y") -> str:
    """World up axis from ``<stem>.meta.json`` beside a scene file (geometry.up_axis), else ``default``."""
    from splat.bounded import read_regular
    from splat.header import parse_json

    names = {path.with_suffix(".meta.json").name, path.name.split(".")[0] + ".meta.json"}
    for name in sorted(names):
        if os.path.lexists(path.parent / name):
            try:  # a regular file inside the scene's folder, at most 1 MiB; anything else is ignored
                up = parse_json(read_regular(name, 1 << 20, root=path.parent), path.parent / name)["geometry"]["up_axis"]
            except (FormatError, KeyError, TypeError):
                continue
            if isinstance(up, str):
                return up
    return default


def make_cameras(
    scene: GaussianScene,
    spec: str,
    *,
    n: int | None = None,
    width: int | None = None,
    height: int | None = None,
    up: str = "-y",
    dataparser: str | Path | None = None,
    intrinsics: str | Path | None = None,
) -> list[Camera]:
    """Cameras from 'orbit', 'hemisphere' or a cameras.json / transforms.json / ns-export cameras path.

    Generated views default to 8 at 640x480; file cameras keep their own size unless
    width/height are given, and ``n`` picks that many evenly spaced ones. ``dataparser``
    and ``intrinsics`` are passed to :func:`splat.camera.load_cameras` (nerfstudio frames).
    """
    if spec in ("orbit", "hemisphere"):
        if len(scene) == 0:
            raise UsageError("cannot fit generated cameras to an empty scene")
        gen = orbit_cameras if spec == "orbit" else hemisphere_cameras
        try:
            return gen(scene, n or 8, width=width or 640, height=height or 480, up=up)
        except ValueError as e:
            raise UsageError(str(e)) from None
    path = Path(spec)
    if not path.exists():
        raise UsageError(f"--cameras {spec!r}: expected 'orbit', 'hemisphere' or an existing cameras.json / transforms.json")
    cams = load_cameras(path, dataparser=dataparser, intrinsics=intrinsics)
    if n is not None and n < len(cams):
        idx = np.linspace(0, len(cams) - 1, n).round().astype(int)
        cams = [cams[i] for i in idx]
    if width or height:
        cams = [c.resized(width or round(c.width * height / c.height), height or round(c.height * width / c.width)) for c in cams]
    return cams


def to_uint8(img: torch.Tensor) -> np.ndarray:
    """[H,W,3] float in [0,1] -> uint8 (clamped, rounded)."""
    return (img.detach().clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def render_to_pngs(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    out_dir: str | Path,
    *,
    sh_degree: int | None = None,
    background: Sequence[float] = (0.0, 0.0, 0.0),
    backend: Backend = "auto",
    force: bool = False,
    on_view: Callable[[RenderedView], None] | None = None,
) -> list[RenderedView]:
    """Render each camera to ``out_dir/NNN_<name>.png`` (atomic writes; existing files need ``force``)."""
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} exists and is not a directory")
    paths = [out / f"{i:03d}_{_safe(c.name or 'view')}.png" for i, c in enumerate(cameras)]
    for p in paths:
        check_output_path(p, force=force)
    out.mkdir(parents=True, exist_ok=True)
    views = []
    with torch.no_grad():
        for cam, path in zip(cameras, paths):
            t0 = time.perf_counter()
            r = rasterize(scene, cam, sh_degree=sh_degree, background=list(background), backend=backend)
            buf = io.BytesIO()
            iio.imwrite(buf, to_uint8(r.colors[0]), extension=".png")
            atomic_write_bytes(path, buf.getvalue())
            v = RenderedView(path, cam.name, float(r.alphas.mean()), time.perf_counter() - t0)
            views.append(v)
            if on_view:
                on_view(v)
    return views


def _safe(name: str) -> str:
    keep = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in Path(name).stem)
    return keep[:60] or "view"
