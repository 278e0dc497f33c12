"""Distillation: build each model's bank, then optimise the per-Gaussian queries (and
the projections, when learnable) so that rendered features match the given ones.

Geometry stays frozen: only the query channels (``scene.extras["m3_query"]``) and the
projections change.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import numpy as np
import torch

from splat.camera import Camera
from splat.errors import FormatError, UsageError
from splat.progress import Progress
from splat.scene import GaussianScene

from .attention import DEFAULT_TEMPERATURE, MemoryAttention
from .bank import BankStats, build_bank
from .features import FeatureSet
from .fit import (
    FieldTarget, FitConfig, FitReport, ProjectionCache, _ViewSampler, evaluate_field, fit_field, target_scale,
)
from .memory import QUERY_EXTRA, Memory, ModelMemory


@dataclass
class DistillConfig:
    """query_dim: channels per model; bank_*: principal scene components (threshold is a
    cosine, max is the hard cap K; bank_pixels_per_view vectors are sampled per view);
    learnable_projection: learn P [q,D] or keep M3's fixed random one."""

    query_dim: int = 16
    bank_threshold: float = 0.9
    bank_max: int = 4096
    bank_pixels_per_view: int = 4096
    learnable_projection: bool = True
    temperature: float = DEFAULT_TEMPERATURE
    query_init_std: float = 1.0
    seed: int = 0
    fit: FitConfig = field(default_factory=FitConfig)


@dataclass
class DistillReport:
    banks: dict[str, BankStats]
    fit: FitReport
    train_views: list[int]
    holdout_views: list[int]
    bank_seconds: float
    heldout: dict[str, dict[str, float]] = field(default_factory=dict)

    @property
    def seconds(self) -> float:
        return self.bank_seconds + self.fit.seconds


def _bank_chunks(sampler: _ViewSampler, views: Sequence[int], n: int, seed: int):
    rng = np.random.default_rng(seed)
    for vi in views:
        _, t = sampler.sample(vi, n, rng)
        yield t


def check_features(features: FeatureSet, cameras: Sequence[Camera]) -> list[list[int | None]]:
    """Match every model's views to cameras and check sizes agree (FormatError if not)."""
    matched = features.match(cameras)
    for m, per_cam in zip(features.models, matched):
        ih, iw = m.image_size
        for ci, vi in enumerate(per_cam):
            if vi is None:
                continue
            cam = cameras[ci]
            if abs(cam.width * ih - cam.height * iw) > max(cam.width, cam.height):  # aspect ratio within a pixel
                raise FormatError(
                    f"model {m.name!r}: features come from {iw}x{ih} images but camera {cam.name or ci!r} is "
                    f"{cam.width}x{cam.height} (aspect ratios differ)", features.path,
                )
        if all(v is None for v in per_cam):
            raise FormatError(f"model {m.name!r}: none of its views matches a camera", features.path)
    return matched


def distill(
    scene: GaussianScene,
    cameras: Sequence[Camera],
    features: FeatureSet,
    config: DistillConfig | None = None,
    *,
    holdout: Sequence[int] | None = None,
    evaluate: bool = True,
    cache: ProjectionCache | None = None,
    progress: Progress | None = None,
) -> tuple[Memory, DistillReport]:
    """Distil every model of ``features`` into ``scene``. ``holdout``: camera indices kept out
    of training (default: the feature index's ``holdout`` list); they are evaluated at the end.
    ``cache``: per-view blend operators to reuse across runs on the same scene and cameras.
    ``progress``: the fitting stage ("distilling", one unit per step)."""
    config = config or DistillConfig()
    if config.query_dim < 1:
        raise UsageError("query dimension must be >= 1")
    matched = check_features(features, cameras)
    hold = sorted(set(features.holdout_cameras(cameras) if holdout is None else holdout))
    train = [c for c in range(len(cameras)) if c not in hold]
    if not train:
        raise UsageError("every camera is held out: nothing to train on")
    torch.manual_seed(config.seed)

    t0 = time.perf_counter()
    models, targets, attns, stats = [], [], [], {}
    for mi, (fm, per_cam) in enumerate(zip(features.models, matched)):
        views = [per_cam[c] for c in train if per_cam[c] is not None]
        if not views:
            raise UsageError(f"model {fm.name!r} has no features on any training camera")
        bank, st = build_bank(
            _bank_chunks(_ViewSampler(fm), views, config.bank_pixels_per_view, config.seed + mi),
            threshold=config.bank_threshold, max_size=config.bank_max,
        )
        stats[fm.name] = st
        attn = MemoryAttention(bank, config.query_dim, learnable=config.learnable_projection,
                               temperature=config.temperature, seed=config.seed + 1000 + mi)
        off = mi * config.query_dim
        attns.append(attn)
        targets.append(FieldTarget(fm, per_cam, slice(off, off + config.query_dim), attn,
                                   target_scale(fm, views[:8], seed=config.seed)))
    bank_seconds = time.perf_counter() - t0

    q_total = config.query_dim * len(features.models)
    g = torch.Generator().manual_seed(config.seed)
    values = (torch.randn(len(scene), q_total, generator=g) * config.query_init_std).requires_grad_(True)
    dec_params = [a.projection for a in attns if a.learnable]
    cache = cache or ProjectionCache(scene, config.fit.backend)
    fit_report = fit_field(scene, cameras, train, values, targets, config.fit, dec_params, cache=cache,
                           progress=progress)

    values = values.detach()
    for fm, attn, t in zip(features.models, attns, targets):
        models.append(ModelMemory(
            name=fm.name, offset=t.channels.start, query_dim=config.query_dim, bank=attn.bank.clone(),
            projection=attn.projection.detach().clone(), temperature=config.temperature,
            learnable=config.learnable_projection, image_size=fm.image_size, feature_size=fm.feature_size,
        ))
    base = scene.detach()
    mem = Memory(base.with_extras(**{QUERY_EXTRA: values}), models, meta={
        "bank_seconds": bank_seconds, "fit_seconds": fit_report.seconds, "steps": fit_report.steps,
        "epochs": fit_report.epochs, "stop_reason": fit_report.stop_reason,
        "banks": {k: vars(v) for k, v in stats.items()},
    })
    report = DistillReport(stats, fit_report, train, hold, bank_seconds)
    if evaluate and hold:
        with torch.no_grad():
            report.heldout = evaluate_field(base, cameras, hold, values, targets, config.fit.backend, cache,
                                            config.fit.render_scale)
        mem.meta["heldout"] = report.heldout
    return mem, report
