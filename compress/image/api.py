"""The Python API of image fitting.

    g = fit_image(pixels, bpp=0.5)          # [H,W] / [H,W,C] array -> ImageGaussians
    data = encode(g)                        # -> bytes (.gsi)
    g = decode(data)                        # -> ImageGaussians (exact)
    img = render_gaussians(g, scale=2.0, lod=0.25)  # -> [H',W',C] tensor in [0,1]

``compress_image`` does the same as ``fit_image`` + ``encode`` and returns the file bytes,
PSNR and timing together (what ``splat fit-image`` prints).
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np
import torch

from splat.errors import UsageError
from splat.progress import Progress

from .fit import FitConfig
from .fit import schedule as fit_schedule
from .gsi import decode, encode, read_gsi, write_gsi
from .imageio import WHOLE_MAX_PIXELS, check_pixels
from .model import ImageGaussians, render_gaussians
from .rate import RateResult, fit_rate
from .tiles import fit_tiled, use_tiles


def compress_image(pixels: np.ndarray | torch.Tensor, *, bpp: float | None = None, gaussians: int | None = None,
                   psnr: float | None = None, steps: int | None = None, mode: str | None = None, k: int | None = None,
                   init: str | None = None, schedule: str | None = None,
                   config: FitConfig | None = None, device: str = "cpu", max_gaussians: int | None = None,
                   tile: int | None = None, meta: dict | None = None, progress: Progress | None = None
                   ) -> RateResult:
    """Fit an image ([H,W] or [H,W,C], C <= 16; integers scaled by their maximum, floats taken
    as [0,1]) to one target (``bpp`` from the real file size, ``gaussians``, or ``psnr`` dB).
    ``init``: "gradient" (default) or "structure" (see :class:`FitConfig`); ``schedule``:
    "fast", "thorough" or "best" (``schedules.py``; default: ``FitConfig``'s), applied before ``steps``.
    ``tile``: fit in tiles of about this many px square (``tiles.py``: memory bounded by one
    tile); 0: never; None: tiles of ``DEFAULT_TILE`` above ``TILED_ABOVE`` pixels (bpp and
    Gaussian-count targets)."""
    if sum(x is not None for x in (bpp, gaussians, psnr)) == 0:
        bpp = 0.5
    arr = pixels.detach().cpu().numpy() if isinstance(pixels, torch.Tensor) else pixels
    target = torch.from_numpy(check_pixels(arr))
    if device not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device!r}")
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' requested but torch sees no CUDA GPU")
    cfg = config or FitConfig()
    if schedule is not None:
        cfg = fit_schedule(cfg, schedule)
    if steps is not None:
        cfg = replace(cfg, steps=int(steps))
    if mode is not None:
        cfg = replace(cfg, mode=mode)
    if k is not None:
        cfg = replace(cfg, k=int(k))
    if init is not None:
        if init not in ("structure", "gradient"):
            raise ValueError(f"init must be structure or gradient, got {init!r}")
        cfg = replace(cfg, init=init)
    pixels = target.shape[0] * target.shape[1]
    tiles = use_tiles(pixels, tile, psnr is not None, cfg.mode)
    if not tiles and pixels > WHOLE_MAX_PIXELS:
        raise UsageError(f"image: {target.shape[1]}x{target.shape[0]} is {pixels / 1e6:.1f} MP, more than the "
                         f"{WHOLE_MAX_PIXELS / 1e6:.0f} MP fitted whole in memory; fit it in tiles (a bpp or "
                         "Gaussian-count target, sum rule) or downscale it")
    if tiles:
        if max_gaussians is not None and gaussians is None:
            raise ValueError("max_gaussians is not supported by tiled fitting")
        return fit_tiled(target, bpp=bpp, gaussians=gaussians, cfg=cfg, tile=tiles, meta=meta, progress=progress)
    # The 2D kernels run on the CPU; on CUDA only the loss and optimiser would move, which
    # does not pay at these sizes, so fitting stays on the CPU either way.
    return fit_rate(target, bpp=bpp, gaussians=gaussians, psnr_db=psnr, cfg=cfg, max_gaussians=max_gaussians,
                    meta=meta, progress=progress)


def fit_image(pixels: np.ndarray | torch.Tensor, **kwargs) -> ImageGaussians:
    """Fit and return the Gaussians (exactly what their ``.gsi`` file decodes to)."""
    return compress_image(pixels, **kwargs).gaussians


__all__ = ["FitConfig", "ImageGaussians", "RateResult", "compress_image", "decode", "encode", "fit_image", "read_gsi",
           "render_gaussians", "write_gsi"]
