"""splat: the Gaussian data model, file formats, cameras and the `splat` CLI."""
from .threads import configure as _configure_threads

_configure_threads()  # before torch or numba load OpenMP (see splat/threads.py)

from .camera import Camera, hemisphere_cameras, load_cameras, orbit_cameras
from .errors import FormatError, SplatError, UsageError
from .scene import SH_C0, ActivatedGaussians, GaussianScene

__all__ = [
    "SH_C0",
    "ActivatedGaussians",
    "Camera",
    "FormatError",
    "GaussianScene",
    "SplatError",
    "UsageError",
    "hemisphere_cameras",
    "load_cameras",
    "orbit_cameras",
]
