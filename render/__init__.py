"""Differentiable Gaussian rasterization: CPU (numba) and gsplat (CUDA) backends, metrics."""
from .projection import Projection, project_gaussians
from .rasterize import GaussianStats, RenderOutput, rasterize, rasterize_projected, resolve_backend
from .sh import eval_sh, sh_basis, sh_colors

__all__ = [
    "GaussianStats",
    "Projection",
    "RenderOutput",
    "eval_sh",
    "project_gaussians",
    "rasterize",
    "rasterize_projected",
    "resolve_backend",
    "sh_basis",
    "sh_colors",
]
