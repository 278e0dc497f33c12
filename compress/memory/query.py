"""Queries on a distilled memory: feature maps, similarity heatmaps, picking, text.

Pixel-space functions render the query map and run the memory attention per pixel.
Gaussian-space functions decode each Gaussian's own query (no rendering) -- what a
viewer wants to recolour the scene by similarity at interactive rates.
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor

from render import rasterize
from splat.camera import Camera
from splat.errors import UsageError

from .attention import memory_attention
from .memory import Memory, ModelMemory

TextEncoder = Callable[[str], Tensor]
"""A user-supplied text encoder: text -> vector [D] in a model's feature space (e.g. CLIP's text tower)."""


def load_text_encoder(spec: str) -> TextEncoder:
    """The text encoder named ``package.module:function`` (the ``--encoder`` plug-in); UsageError if it cannot load."""
    import importlib

    mod, _, fn = spec.partition(":")
    if not mod or not fn:
        raise UsageError("--encoder must be 'package.module:function' (a callable str -> vector [D])")
    try:
        enc = getattr(importlib.import_module(mod), fn)
    except (ImportError, AttributeError) as e:
        raise UsageError(f"cannot load text encoder {spec!r}: {e}") from None
    if not callable(enc):
        raise UsageError(f"text encoder {spec!r} is not callable")
    return enc


def render_queries(memory: Memory, camera: Camera, *, backend: str = "auto") -> Tensor:
    """The rendered query map [H,W,Q_total] (every model's channels) for one camera."""
    out = rasterize(memory.scene, camera, mode="features", features=memory.queries, backend=backend)
    return out.colors[0].to(torch.float32)


def _decode(model: ModelMemory, q: Tensor) -> Tensor:
    return memory_attention(q, model.projection.float(), model.bank.float(), model.temperature)


@torch.no_grad()
def render_features(memory: Memory, camera: Camera, model: str | None = None, *, backend: str = "auto") -> Tensor:
    """Features [H,W,D] in the foundation model's own space for one camera."""
    m = memory.model(model)
    qmap = render_queries(memory, camera, backend=backend)[..., m.slice]
    return _decode(m, qmap)


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def _vector(m: ModelMemory, vector: Tensor) -> Tensor:
    v = torch.as_tensor(vector, dtype=torch.float32).reshape(-1)
    if v.numel() != m.dim:
        raise UsageError(f"query vector has {v.numel()} dims, model {m.name!r} has {m.dim}")
    return v


@torch.no_grad()
def similarity(memory: Memory, camera: Camera, vector: Tensor, model: str | None = None, *,
               backend: str = "auto", features: Tensor | None = None) -> Tensor:
    """Cosine similarity [H,W] in [-1,1] between each pixel's feature and ``vector`` [D].

    Pass ``features`` (from :func:`render_features` for the same camera) to skip re-rendering.
    """
    m = memory.model(model)
    v = _vector(m, vector)
    f = render_features(memory, camera, m.name, backend=backend) if features is None else features
    return _unit(f) @ _unit(v)


def pick_feature(features: Tensor, x: int, y: int) -> Tensor:
    """The feature [D] at pixel column ``x``, row ``y`` of a feature map [H,W,D] (the query vector)."""
    h, w = features.shape[:2]
    if not (0 <= x < w and 0 <= y < h):
        raise UsageError(f"pixel ({x}, {y}) is outside the {w}x{h} image")
    return features[y, x].clone()


@torch.no_grad()
def pick_pixel_feature(memory: Memory, camera: Camera, x: int, y: int, model: str | None = None, *,
                       backend: str = "auto") -> Tensor:
    """The feature [D] at pixel (x, y) of ``camera``: renders only the cheap query map and
    decodes that one pixel (what a viewer's click handler wants)."""
    m = memory.model(model)
    if not (0 <= x < camera.width and 0 <= y < camera.height):
        raise UsageError(f"pixel ({x}, {y}) is outside the {camera.width}x{camera.height} image")
    q = render_queries(memory, camera, backend=backend)[y, x, m.slice]
    return _decode(m, q[None])[0]


@torch.no_grad()
def gaussian_features(memory: Memory, model: str | None = None) -> Tensor:
    """Each Gaussian's own decoded feature [N,D] (its query through the memory attention)."""
    m = memory.model(model)
    return _decode(m, memory.queries[:, m.slice].float())


@torch.no_grad()
def gaussian_similarity(memory: Memory, vector: Tensor, model: str | None = None, *,
                        features: Tensor | None = None, unit_features: bool = False) -> Tensor:
    """Cosine similarity [N] of each Gaussian's decoded feature to ``vector`` [D].

    ``features``: the result of :func:`gaussian_features` to reuse across clicks;
    ``unit_features``: its rows are already unit length (skips normalising N x D values per query).
    """
    m = memory.model(model)
    v = _vector(m, vector)
    f = gaussian_features(memory, m.name) if features is None else features
    return (f if unit_features and features is not None else _unit(f)) @ _unit(v)


def similarity_colors(scores: Tensor, threshold: float | None = None, *, low: float | None = None) -> Tensor:
    """Map similarity scores [...] to RGB [...,3] in [0,1] with a blue-to-red ramp.

    Scores are rescaled from [low, max] (low defaults to the minimum) to [0,1]; with a
    ``threshold``, everything below it is dark grey so the matching region stands out.
    """
    s = scores.float()
    lo = float(s.min()) if low is None else float(low)
    hi = float(s.max())
    t = ((s - lo) / max(hi - lo, 1e-8)).clamp(0, 1)
    rgb = torch.stack([t, 1.0 - (2 * t - 1).abs(), 1.0 - t], dim=-1)
    if threshold is not None:
        rgb = torch.where((s >= threshold)[..., None], rgb, torch.full_like(rgb, 0.15))
    return rgb


@torch.no_grad()
def text_similarity(memory: Memory, camera: Camera, text: str, encoder: TextEncoder, model: str | None = None, *,
                    backend: str = "auto") -> Tensor:
    """Heatmap [H,W] for a text prompt, through a user-supplied ``encoder`` (str -> [D])."""
    return similarity(memory, camera, encoder(text), model, backend=backend)
