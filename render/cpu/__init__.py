"""The CPU backend: tile-based, multi-threaded numba kernels with a hand-written backward.

See ``docs/renderer.md`` for the design and ``render/cpu/kernels.py`` for the rules.
"""
from .autograd import rasterize_to_pixels
from .binning import TileBins, bin_gaussians, depth_order

__all__ = ["TileBins", "bin_gaussians", "depth_order", "rasterize_to_pixels"]
