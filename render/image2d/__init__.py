"""2D Gaussian image rendering (Image-GS top-K normalized and GaussianImage accumulated sum)."""
from .raster import (DEFAULT_K, DEFAULT_MODE, MAX_CHANNELS, conics_from_scale_rotation, contribution, output_size, place,
                     rasterize_conics, render_image)

__all__ = [
    "DEFAULT_K",
    "DEFAULT_MODE",
    "MAX_CHANNELS",
    "conics_from_scale_rotation",
    "contribution",
    "output_size",
    "place",
    "rasterize_conics",
    "render_image",
]
