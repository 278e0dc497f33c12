"""Image fitting: an image as a compact, resolution-free set of 2D Gaussians (``.gsi``).

See :mod:`compress.image.api` for the Python API and ``docs/formats/gsi.md`` for the file.
"""
from .api import (FitConfig, ImageGaussians, RateResult, compress_image, decode, encode, fit_image, read_gsi,
                  render_gaussians, write_gsi)
from .quant import BitDepths, QuantSpec

__all__ = ["BitDepths", "FitConfig", "ImageGaussians", "QuantSpec", "RateResult", "compress_image", "decode",
           "encode", "fit_image", "read_gsi", "render_gaussians", "write_gsi"]
