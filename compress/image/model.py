"""`ImageGaussians`: an image as a set of 2D Gaussians, and how to render it."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import Tensor

from render.image2d import DEFAULT_K, DEFAULT_MODE, render_image
from splat.limits import check_pixels


@dataclass
class ImageGaussians:
    """An image of ``width`` x ``height`` pixels and C channels as N 2D Gaussians.

    means [N,2] pixels (x right, y down; pixel (i, j) centred at (i + 0.5, j + 0.5)),
    scales [N,2] pixel standard deviations, rotations [N] radians, colors [N,C] (values in
    [0,1] image units). ``mode``/``k`` select the render rule (Image-GS "topk" normalised
    or GaussianImage "sum"). Gaussians are ordered by importance: any prefix is a coarser
    version of the image (level of detail). ``meta`` carries the source bit depth etc.
    """

    means: Tensor
    scales: Tensor
    rotations: Tensor
    colors: Tensor
    width: int
    height: int
    mode: str = DEFAULT_MODE
    k: int = DEFAULT_K
    meta: dict = field(default_factory=dict)
    spec: Any = None  # the QuantSpec these Gaussians were trained for / decoded with (or None)

    def __len__(self) -> int:
        return int(self.means.shape[0])

    @property
    def channels(self) -> int:
        return int(self.colors.shape[1])

    def prefix(self, n: int) -> "ImageGaussians":
        """The first ``n`` Gaussians (a coarser level of detail)."""
        n = max(0, min(int(n), len(self)))
        return ImageGaussians(self.means[:n], self.scales[:n], self.rotations[:n], self.colors[:n], self.width,
                              self.height, self.mode, self.k, dict(self.meta), self.spec)

    def lod(self, fraction: float) -> "ImageGaussians":
        """The prefix holding ``fraction`` (0..1] of the Gaussians (at least one)."""
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"LOD fraction must be in (0, 1], got {fraction}")
        return self.prefix(max(1, int(round(fraction * len(self)))))

    def detach(self) -> "ImageGaussians":
        return ImageGaussians(self.means.detach().clone(), self.scales.detach().clone(),
                              self.rotations.detach().clone(), self.colors.detach().clone(), self.width, self.height,
                              self.mode, self.k, dict(self.meta), self.spec)

    def render(self, *, scale: float = 1.0, crop: tuple[int, int, int, int] | None = None,
               backend: str = "auto") -> Tensor:
        """[H',W',C] float32 image (not clamped). See :func:`render.image2d.render_image`."""
        return render_image(self.means, self.scales, self.rotations, self.colors, self.width, self.height,
                            mode=self.mode, k=self.k, scale=scale, crop=crop, backend=backend)


BAND_PIXELS = 1 << 21  # output pixels rendered at once by render_to_array (a float32 RGB band: 24 MiB)


def output_size(g: ImageGaussians, scale: float, width: int | None) -> tuple[float, int, int]:
    """(scale, width, height) of a render of ``g`` at ``scale``, or ``width`` pixels wide if given."""
    if width is not None:
        if width <= 0:
            raise ValueError("width must be positive")
        scale = width / g.width
    if not 0 < scale < float("inf"):
        raise ValueError("scale must be positive and finite")
    return scale, max(1, round(g.width * scale)), max(1, round(g.height * scale))


def render_to_array(g: ImageGaussians, *, scale: float = 1.0, width: int | None = None, lod: float = 1.0,
                    crop: tuple[int, int, int, int] | None = None, dtype: np.dtype | type = np.uint8,
                    band_pixels: int = BAND_PIXELS, max_pixels: int | None = None) -> np.ndarray:
    """Render like :func:`render_gaussians` into a numpy array [H',W',C] of ``dtype`` (uint8:
    round(255 v), uint16: round(65535 v), float32: v, with v clamped to [0,1]), one band of
    rows (about ``band_pixels`` output pixels) at a time: memory beyond the output array is
    one float32 band, whatever the scale, so a 4K (or larger) render stays bounded."""
    dtype = np.dtype(dtype)
    if dtype not in (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32)):
        raise ValueError(f"dtype must be uint8, uint16 or float32, got {dtype}")
    scale, ow, oh = output_size(g, scale, width)
    x0, y0, cw, ch = (int(v) for v in crop) if crop is not None else (0, 0, ow, oh)
    if cw <= 0 or ch <= 0 or x0 < 0 or y0 < 0 or x0 + cw > ow or y0 + ch > oh:
        raise ValueError(f"crop {x0},{y0},{cw},{ch} is not inside the {ow}x{oh} output")
    check_pixels(cw, ch, max_pixels, what="output image")
    out = np.empty((ch, cw, g.channels), dtype)
    rows = max(1, int(band_pixels) // cw)
    top = 255.0 if dtype == np.uint8 else 65535.0
    for r in range(0, ch, rows):
        h = min(rows, ch - r)
        band = render_gaussians(g, scale=scale, lod=lod, crop=(x0, y0 + r, cw, h), max_pixels=max_pixels).numpy()
        if dtype == np.float32:
            out[r:r + h] = band
        else:
            out[r:r + h] = np.round(band * np.float32(top)).astype(dtype)
    return out


def render_gaussians(g: ImageGaussians, *, scale: float = 1.0, width: int | None = None, lod: float = 1.0,
                     crop: tuple[int, int, int, int] | None = None, backend: str = "auto",
                     max_pixels: int | None = None) -> Tensor:
    """Render ``g`` clamped to [0,1]: at ``scale`` (or to ``width`` pixels wide), with the first
    ``lod`` fraction of the Gaussians, optionally only the ``crop`` = (x, y, w, h) window of the
    output. Returns [H',W',C] float32. An output over ``max_pixels`` (default
    ``splat.limits.MAX_PIXELS``) raises FormatError before anything is allocated."""
    scale, ow, oh = output_size(g, scale, width)
    if crop is not None:
        x, y, w, h = (int(v) for v in crop)
        if w <= 0 or h <= 0 or x < 0 or y < 0 or x + w > ow or y + h > oh:
            raise ValueError(f"crop {x},{y},{w},{h} is not inside the {ow}x{oh} output")
        crop = (x, y, w, h)
    check_pixels(crop[2] if crop else ow, crop[3] if crop else oh, max_pixels, what="output image")
    src = g.lod(lod) if lod < 1.0 else g
    with torch.no_grad():
        return src.render(scale=scale, crop=crop, backend=backend).clamp_(0.0, 1.0)
