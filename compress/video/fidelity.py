"""Clip fidelity helpers: renders of decoded frames against renders of the original frames.

Views are orbit cameras around the first original frame at an elevation and phase the
encoder never sees (the codec fits no views, so every view is held out). Used by
``splat video eval`` (``eval.py``), the fidelity line of ``splat video encode`` and
tracking by rendering (``tracking.py``); imports nothing else of the video package.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from splat.scene import GaussianScene

EVAL_VIEWS = 4
EVAL_SIZE = 192


@dataclass
class FrameFidelity:
    """One frame: PSNR (dB) and SSIM of decoded against original renders, averaged over the
    views; Gaussian counts of both."""

    frame: int
    psnr: float
    ssim: float
    original: int
    decoded: int


def eval_cameras(first: GaussianScene, views: int = EVAL_VIEWS, size: int = EVAL_SIZE):
    """Held-out orbit views (elevation 35 degrees, phase 17 degrees) of ``size`` pixels square."""
    from splat.camera import orbit_cameras

    return orbit_cameras(first, views, width=size, height=size, elevation_deg=35.0, phase_deg=17.0)


def _render(scene: GaussianScene, cams) -> torch.Tensor:
    from render.rasterize import rasterize

    return rasterize(scene, cams, backend="cpu").colors.clamp(0, 1)


def render_views(scene: GaussianScene, cams) -> torch.Tensor:
    """Renders of ``scene`` from ``cams``, clamped to [0, 1]: [V,H,W,3]."""
    return _render(scene, cams)


def held_psnr(scene: GaussianScene, ref: torch.Tensor, cams) -> float:
    """PSNR (dB, mean over the views, at most 99) of ``scene``'s renders from ``cams``
    against ``ref`` (the original frame's :func:`render_views`), as :func:`frame_fidelity`
    measures it, without rendering the original again."""
    from render.metrics import psnr

    return float(psnr(_render(scene, cams), ref).clamp(max=99.0).mean())


def frame_fidelity(original: GaussianScene, decoded: GaussianScene, cams, index: int = 0) -> FrameFidelity:
    """PSNR/SSIM of one decoded frame against its original over ``cams``."""
    from render.metrics import psnr, ssim

    a, b = _render(decoded, cams), _render(original, cams)
    p = psnr(a, b).clamp(max=99.0)
    return FrameFidelity(index, float(p.mean()), float(ssim(a, b).mean()), len(original), len(decoded))


def clip_fidelity(originals: Sequence[GaussianScene | str | os.PathLike], decode: Callable[[int], GaussianScene],
                  frames: Sequence[int], views: int = EVAL_VIEWS, size: int = EVAL_SIZE,
                  progress: Callable[[], None] | None = None) -> list[FrameFidelity]:
    """Fidelity of ``frames`` (indices): originals (scenes or paths) against ``decode(i)``."""
    from splat.io import read_scene

    def orig(i: int) -> GaussianScene:
        o = originals[i]
        return o if isinstance(o, GaussianScene) else read_scene(o)

    cams = eval_cameras(orig(0), views, size)
    out = []
    for i in frames:
        out.append(frame_fidelity(orig(i), decode(i), cams, i))
        if progress is not None:
            progress()
    return out


def sample_frames(n_frames: int, count: int) -> list[int]:
    """Up to ``count`` frame indices spread evenly over the clip (first and last included)."""
    return sorted({int(round(x)) for x in np.linspace(0, n_frames - 1, min(count, n_frames))})
