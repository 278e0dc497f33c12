"""Pruning as one more dimension of the step-size allocation at a fidelity target.

Removing the fraction p of least significant Gaussians saves about p of the file, and adds a
render error D_p(p) that the quantizers must then make up for. With the error model of
:mod:`compress.scene.rate_model` (one more bit per coded value quarters its error; errors of
different causes add), a target error D_t left to the quantizers as D_t - D_p needs
``0.5 * log2(D_t / (D_t - D_p))`` more bits per coded value. Relative to the unpruned file, the
bytes at the target are then about

    rate(p) = (1 - p) * (1 + log2(D_t / (D_t - D_p(p))) / (2 * bits_per_value))

(``bits_per_value``: the mean coded bits of one quantized value at the target). D_p grows
steeply with p (each further slice removes more visible Gaussians), so the minimum is sharp and
barely moves with ``bits_per_value``. :func:`plan_prune` measures D_p by render-only probes (the
pruned scene, not quantized, against the original) on a ladder of ratios, stops at the first
that alone misses the target, and returns the ratio of least predicted rate (0 when none saves).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable, Sequence

from torch import Tensor

from splat.camera import Camera
from splat.scene import GaussianScene

from .eval import fidelity
from .prune import prune

BITS_PER_VALUE = 5.0  # mean coded bits of one quantized value at a high-fidelity target (conservative: fewer prunes less)
KEEP_STEP = 0.95      # probe ladder: kept fraction 0.95^j
MAX_PRUNE = 0.9


@dataclass
class PrunePlan:
    """The chosen ratio, its predicted rate relative to no pruning, and every probe
    (ratio, prune-only PSNR in dB, predicted relative rate; inf where it alone misses the target)."""

    ratio: float
    rate: float
    probes: list[tuple[float, float, float]] = field(default_factory=list)


def relative_rate(ratio: float, prune_psnr: float, target_psnr: float, bits_per_value: float = BITS_PER_VALUE) -> float:
    """Predicted bytes at ``target_psnr`` after pruning ``ratio``, relative to no pruning (inf
    when the pruning alone leaves the fidelity at or below the target)."""
    x = 10.0 ** ((target_psnr - prune_psnr) / 10.0)  # D_p / D_t
    if x >= 1.0:
        return math.inf
    return (1.0 - ratio) * (1.0 + math.log2(1.0 / (1.0 - x)) / (2.0 * bits_per_value))


def plan_prune(scene: GaussianScene, scores: Tensor, reference: Tensor, views: Sequence[Camera], target_psnr: float,
               *, bits_per_value: float = BITS_PER_VALUE, keep_step: float = KEEP_STEP, max_prune: float = MAX_PRUNE,
               backend: str = "auto", on_probe: Callable[[float, float], None] | None = None) -> PrunePlan:
    """The prune ratio of least predicted bytes at ``target_psnr`` (see the module docstring).
    ``reference`` [V,H,W,3]: renders of the scene the fidelity is measured against on ``views``
    (e.g. the held-out views at a reduced size); ``scores``: significance [N] (lowest go first)."""
    if not 0.0 < keep_step < 1.0:
        raise ValueError(f"keep_step must be in (0, 1), got {keep_step}")
    plan = PrunePlan(0.0, 1.0)
    keep = keep_step
    while 1.0 - keep <= max_prune and len(scene) > 1:
        ratio = 1.0 - keep
        psnr = fidelity(reference, prune(scene, scores, ratio)[0], views, backend=backend, with_ssim=False).psnr
        rate = relative_rate(ratio, psnr, target_psnr, bits_per_value)
        plan.probes.append((ratio, psnr, rate))
        if on_probe is not None:
            on_probe(ratio, psnr)
        if rate < plan.rate:
            plan.ratio, plan.rate = ratio, rate
        if rate == math.inf or rate > plan.rate + 0.05:  # past the minimum: D_p only grows from here
            break
        keep *= keep_step
    return plan
