"""Adapter from the image codec's ``ImageGaussians`` (``compress.image``) to the viewer's
:class:`viewer.image_view.ImageModel`."""
from __future__ import annotations

import os

import numpy as np


class GsiImageModel:
    """A decoded ``.gsi`` image: renders through the codec's renderer at any size and LOD.

    The codec's conventions: means [N,2] in pixels (x right, y down), scales [N,2] pixel
    standard deviations, rotations [N] radians, Gaussians in importance order.
    """

    def __init__(self, gaussians) -> None:
        self.g = gaussians
        self.width, self.height = int(gaussians.width), int(gaussians.height)
        self.channels = int(gaussians.channels)

    def __len__(self) -> int:
        return len(self.g)

    def _count(self, lod: float) -> int:
        return max(1, int(round(min(max(lod, 0.0), 1.0) * len(self.g))))

    def render(self, width: int, height: int, lod: float) -> np.ndarray:
        from compress.image.model import render_gaussians

        out = render_gaussians(self.g, width=width, lod=min(max(lod, 1e-6), 1.0)).numpy()
        if out.shape[0] != height:  # rounding of the height at this scale: pad or trim a row
            out = out[:height] if out.shape[0] > height else np.pad(out, ((0, height - out.shape[0]), (0, 0), (0, 0)), mode="edge")
        return out

    def ellipses(self, width: int, height: int, lod: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        n = self._count(lod)
        sx, sy = width / self.width, height / self.height
        s = np.array([sx, sy])
        means = self.g.means[:n].detach().cpu().numpy() * s
        axes = self.g.scales[:n].detach().cpu().numpy() * np.sqrt(sx * sy)
        return means, axes, self.g.rotations[:n].detach().cpu().numpy()


def decode_gsi(data: bytes, path: str | os.PathLike | None = None) -> GsiImageModel:
    """Decode ``.gsi`` bytes (raises splat.FormatError on a bad file)."""
    from compress.image.gsi import decode

    return GsiImageModel(decode(data, path=path))
