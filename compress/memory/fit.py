"""Fit per-Gaussian feature fields to per-view features with the geometry frozen.

The generic loop behind distillation (and the benchmark's baselines): each Gaussian
holds C channels ``values`` [N,C]; for each feature model the renderer draws that
model's channel slice at the model's feature-map resolution, a ``decode`` function
maps the rendered channels [M,c] to features [M,D], and the loss

    (1 - cos(pred, target)) + mse_weight * |pred - target|^2 / mean|target|^2

is averaged over ``pixels_per_view`` sampled valid pixels of each view. The MSE term
is divided by the targets' mean squared norm so it is scale-free across models.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from render import rasterize
from splat.camera import Camera
from splat.progress import NullProgress, Progress
from splat.scene import GaussianScene
from splat.threads import threads

from .features import FeatureModel
from .operator import BlendOperator


@dataclass
class FieldTarget:
    """One model's supervision: feature views per camera (None = no features there),
    this model's channel slice of the per-Gaussian values, and the decoder."""

    model: FeatureModel
    views: list[int | None]
    channels: slice
    decode: Callable[[Tensor], Tensor]
    mse_scale: float = 1.0


@dataclass
class FitConfig:
    """Optimisation settings. The stopping rule: stop after ``max_steps`` steps, after
    ``max_seconds``, or when an epoch's mean loss improved by less than
    ``min_rel_improvement`` (relative) on the best of the previous ``patience`` epochs."""

    pixels_per_view: int = 2000
    render_scale: int = 2
    """Supervise on a grid this many times finer than the feature map (targets bilinearly
    interpolated): it constrains each Gaussian at its own footprint, so full-resolution
    renders and per-Gaussian features are not speckled. 1 = the feature map's own grid."""
    views_per_step: int = 2
    lr: float = 0.2
    lr_decoder: float = 0.005
    mse_weight: float = 1.0
    max_steps: int | None = None
    max_epochs: int = 60
    min_epochs: int = 4
    max_seconds: float = 480.0
    min_rel_improvement: float = 0.003
    patience: int = 2
    backend: str = "auto"
    seed: int = 0
    torch_threads: int | None = 1
    """torch intra-op threads while fitting (restored after). The per-step tensors are small,
    and on a loaded machine more threads spin-wait: 1 was up to 100x faster than 2 here.
    The renderer's numba kernels keep their own threads. None leaves torch's setting alone."""


@dataclass
class FitReport:
    steps: int = 0
    epochs: int = 0
    seconds: float = 0.0
    stop_reason: str = ""
    epoch_losses: list[float] = field(default_factory=list)


def feature_camera(cam: Camera, model: FeatureModel, scale: int = 1) -> Camera:
    """The camera resized to ``scale`` x the model's feature-map resolution (pixel centres aligned)."""
    h, w = model.feature_size
    return cam.resized(w * scale, h * scale)


def render_channels(scene: GaussianScene, values: Tensor, cameras: Sequence[Camera], backend: str = "auto") -> Tensor:
    """Composite per-Gaussian channels [N,c] into maps [C,H,W,c] (float32)."""
    out = rasterize(scene, list(cameras), mode="features", features=values, backend=backend)
    return out.colors.to(torch.float32)


class ProjectionCache:
    """Frozen geometry: build each view's blend operator once (``operator.BlendOperator``)
    and re-composite new per-Gaussian channels on every step with sparse products.
    ``backend`` "reference" keeps the dense float64 rasterizer instead (tests)."""

    def __init__(self, scene: GaussianScene, backend: str = "auto") -> None:
        self.scene = scene.detach()
        self.backend = backend
        self._cache: dict[tuple, BlendOperator] = {}

    def operator(self, cam: Camera) -> BlendOperator:
        key = (cam.width, cam.height, cam.fx, cam.fy, cam.cx, cam.cy, tuple(cam.world_to_camera.reshape(-1).tolist()))
        op = self._cache.get(key)
        if op is None:
            op = self._cache[key] = BlendOperator(self.scene, cam)
        return op

    def render(self, values: Tensor, cam: Camera) -> Tensor:
        """Channels [N,c] composited for one camera -> [H,W,c] (float32, differentiable in values)."""
        if self.backend == "reference":
            return render_channels(self.scene, values, [cam], "reference")[0]
        return self.operator(cam).apply(values)


class _ViewSampler:
    """Samples valid pixels of one model's views; masks are cached (tiny), features are not."""

    def __init__(self, model: FeatureModel) -> None:
        self.model = model
        self._masks: dict[int, np.ndarray] = {}

    def valid_flat(self, vi: int) -> np.ndarray:
        if vi not in self._masks:
            _, m = self.model.load(vi)
            h, w = self.model.feature_size
            m = np.ones((h, w), bool) if m is None else m
            self._masks[vi] = np.flatnonzero(m.reshape(-1))
        return self._masks[vi]

    def sample_scaled(self, vi: int, n: int, scale: int, rng: np.random.Generator) -> tuple[np.ndarray, Tensor]:
        """Pixels of the ``scale``x finer grid [h*s, w*s] (flat indices [M]) inside valid feature
        cells, with targets bilinearly interpolated from the feature map [M,D]."""
        if scale == 1:
            return self.sample(vi, n, rng)
        h, w = self.model.feature_size
        cells = self.valid_flat(vi)
        cy, cx = cells // w, cells % w
        # every fine pixel of every valid cell, then a random subset
        sub = np.arange(scale * scale)
        fy = (cy[:, None] * scale + sub[None, :] // scale).reshape(-1)
        fx = (cx[:, None] * scale + sub[None, :] % scale).reshape(-1)
        if n < fy.size:
            pick = np.sort(rng.choice(fy.size, size=n, replace=False))
            fy, fx = fy[pick], fx[pick]
        v = np.clip((fy + 0.5) / scale - 0.5, 0, h - 1)
        u = np.clip((fx + 0.5) / scale - 0.5, 0, w - 1)
        y0, x0 = np.floor(v).astype(np.int64), np.floor(u).astype(np.int64)
        y1, x1 = np.minimum(y0 + 1, h - 1), np.minimum(x0 + 1, w - 1)
        wy, wx = (v - y0)[:, None], (u - x0)[:, None]
        a, _ = self.model.load(vi)
        flat = a.reshape(h * w, -1)
        corners = np.asarray(flat[np.concatenate([y0 * w + x0, y0 * w + x1, y1 * w + x0, y1 * w + x1])], dtype=np.float32)
        c00, c01, c10, c11 = np.split(corners, 4)
        t = ((1 - wy) * ((1 - wx) * c00 + wx * c01) + wy * ((1 - wx) * c10 + wx * c11)).astype(np.float32)
        ok = np.isfinite(t).all(axis=1)
        return (fy * (w * scale) + fx)[ok], torch.from_numpy(t[ok])

    def sample(self, vi: int, n: int, rng: np.random.Generator) -> tuple[np.ndarray, Tensor]:
        """Flat pixel indices [M] and their target features [M,D] (float32, finite rows only)."""
        idx = self.valid_flat(vi)
        if n < idx.size:
            idx = np.sort(rng.choice(idx, size=n, replace=False))
        a, _ = self.model.load(vi)
        h, w = self.model.feature_size
        t = np.asarray(a.reshape(h * w, -1)[idx], dtype=np.float32)
        ok = np.isfinite(t).all(axis=1)
        return idx[ok], torch.from_numpy(t[ok])


def feature_loss(pred: Tensor, target: Tensor, mse_weight: float, mse_scale: float) -> Tensor:
    """Mean of (1 - cos) + mse_weight * squared error * mse_scale over rows [M,D]."""
    cos = torch.nn.functional.cosine_similarity(pred, target, dim=-1, eps=1e-8)
    mse = ((pred - target) ** 2).sum(dim=-1) * mse_scale
    return (1.0 - cos).mean() + mse_weight * mse.mean()


def target_scale(model: FeatureModel, views: Sequence[int], n: int = 512, seed: int = 0) -> float:
    """1 / mean squared norm of a model's feature vectors (sampled from ``views``)."""
    rng = np.random.default_rng(seed)
    s = _ViewSampler(model)
    tot, cnt = 0.0, 0
    for vi in views:
        _, t = s.sample(vi, n, rng)
        tot += float((t.double() ** 2).sum())
        cnt += t.shape[0]
    return cnt / max(tot, 1e-12)


def fit_field(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    train: Sequence[int],
    values: Tensor,
    targets: Sequence[FieldTarget],
    config: FitConfig,
    decoder_params: Sequence[Tensor] = (),
    description: str = "distilling",
    cache: ProjectionCache | None = None,
    progress: Progress | None = None,
) -> FitReport:
    """Optimise ``values`` [N,C] (a leaf that requires grad) and ``decoder_params`` in place.

    ``cache``: per-view blend operators to reuse (built on first use otherwise).
    ``progress``: one stage named ``description``, advanced per step with the loss."""
    with threads(config.torch_threads, numba_too=False):
        return _fit_field(scene, cameras, train, values, targets, config, decoder_params, description, cache,
                          progress or NullProgress())


def _fit_field(scene, cameras, train, values, targets, config, decoder_params, description, cache,
               progress: Progress) -> FitReport:
    rng = np.random.default_rng(config.seed)
    samplers = [_ViewSampler(t.model) for t in targets]
    groups = [{"params": [values], "lr": config.lr}]
    if decoder_params:
        groups.append({"params": list(decoder_params), "lr": config.lr_decoder})
    opt = torch.optim.Adam(groups)
    cache = cache or ProjectionCache(scene, config.backend)
    train = [c for c in train if any(t.views[c] is not None for t in targets)]
    if not train:
        raise ValueError("no training camera has features")
    steps_per_epoch = math.ceil(len(train) / config.views_per_step)
    max_steps = config.max_steps if config.max_steps is not None else steps_per_epoch * config.max_epochs
    report = FitReport()
    t0 = time.perf_counter()
    best_hist: list[float] = []
    progress.start(description, max_steps)
    try:
        while report.steps < max_steps:
            order = rng.permutation(train)
            epoch_loss, epoch_n = 0.0, 0
            for b in range(0, len(order), config.views_per_step):
                if report.steps >= max_steps:
                    break
                batch = [int(c) for c in order[b:b + config.views_per_step]]
                opt.zero_grad(set_to_none=True)
                loss_total = values.new_zeros(())
                n_terms = 0
                for t, s in zip(targets, samplers):
                    cams = [c for c in batch if t.views[c] is not None]
                    if not cams:
                        continue
                    for c in cams:
                        pix, tgt = s.sample_scaled(t.views[c], config.pixels_per_view, config.render_scale, rng)
                        if pix.size == 0:
                            continue
                        m = cache.render(values[:, t.channels], feature_camera(cameras[c], t.model, config.render_scale))
                        rendered = m.reshape(-1, m.shape[-1])[torch.from_numpy(pix)]
                        loss_total = loss_total + feature_loss(t.decode(rendered), tgt, config.mse_weight, t.mse_scale)
                        n_terms += 1
                if n_terms == 0:
                    continue
                loss = loss_total / n_terms
                loss.backward()
                opt.step()
                report.steps += 1
                epoch_loss += float(loss.detach())
                epoch_n += 1
                progress.advance(1, f"loss {float(loss.detach()):.4f}")
                if time.perf_counter() - t0 > config.max_seconds:
                    report.stop_reason = f"time budget ({config.max_seconds:.0f} s)"
                    break
            if epoch_n:
                report.epochs += 1
                mean = epoch_loss / epoch_n
                report.epoch_losses.append(mean)
                if report.stop_reason:
                    break
                if report.epochs >= config.min_epochs and len(best_hist) >= config.patience:
                    ref = min(best_hist[-config.patience:])
                    if mean > ref * (1.0 - config.min_rel_improvement):
                        report.stop_reason = f"plateau (epoch loss {mean:.4f} vs {ref:.4f})"
                        break
                best_hist.append(mean)
        if not report.stop_reason:
            report.stop_reason = f"step limit ({max_steps})"
    finally:
        progress.end()
    report.seconds = time.perf_counter() - t0
    return report


@torch.no_grad()
def evaluate_field(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    cams: Sequence[int],
    values: Tensor,
    targets: Sequence[FieldTarget],
    backend: str = "auto",
    cache: ProjectionCache | None = None,
    render_scale: int = 1,
) -> dict[str, dict[str, float]]:
    """Mean cosine similarity and mean L2 distance between decoded and true features over
    every valid cell of the cameras ``cams``, per model: {name: {cos, l2, pixels}}.

    With ``render_scale`` s > 1 the field is rendered and decoded on the s-times finer grid
    it was trained on, and the decoded features are averaged over each cell's s x s pixels."""
    cache = cache or ProjectionCache(scene, backend)
    out = {}
    for t in targets:
        cos_sum, l2_sum, n = 0.0, 0.0, 0
        for c in cams:
            vi = t.views[c]
            if vi is None:
                continue
            feats, valid = t.model.load_tensor(vi)
            m = cache.render(values[:, t.channels], feature_camera(cameras[c], t.model, render_scale))
            pred = t.decode(m.reshape(-1, m.shape[-1])).reshape(m.shape[0], m.shape[1], -1)
            if render_scale > 1:
                pred = torch.nn.functional.avg_pool2d(pred.permute(2, 0, 1)[None], render_scale)[0].permute(1, 2, 0)
            pred = pred.reshape(-1, pred.shape[-1])
            tgt = feats.reshape(-1, feats.shape[-1])
            keep = valid.reshape(-1)
            pred, tgt = pred[keep], tgt[keep]
            cos_sum += float(torch.nn.functional.cosine_similarity(pred, tgt, dim=-1, eps=1e-8).double().sum())
            l2_sum += float((pred - tgt).double().norm(dim=-1).sum())
            n += int(keep.sum())
        if n:
            out[t.model.name] = {"cos": cos_sum / n, "l2": l2_sum / n, "pixels": n}
    return out
