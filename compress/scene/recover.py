"""Prune -> recover -> measure, repeated (LightGaussian's recipe with the fidelity in the loop).

Round r prunes the last scene that held to keep ``(1 - start) * shrink^r`` of the input
Gaussians (least significant first), fine-tunes the survivors against fixed targets (the
original's renders, or photos), encodes, decodes and measures fidelity on the held-out
views. While the target holds it goes on pruning; after the first miss a few rounds bisect
between the last ratio that held (no pruning, when the first round missed) and the miss. The smallest encoding that met the target
is the result. No round starts past ``max_prune`` or when the time budget would run out (a
round is assumed to cost what the last one did); the first round always runs.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable, Sequence

from torch import Tensor

from splat.camera import Camera
from splat.progress import Progress
from splat.scene import GaussianScene

from .codec import QuantConfig, decode, encode
from .distill import FinetuneConfig, finetune
from .eval import fidelity
from .prune import prune
from .rate import Candidate, Trial


@dataclass
class RecoverPlan:
    """target_psnr (dB); start: first prune ratio (the compressor passes its preset's); shrink: each round keeps this fraction of
    the survivors; max_prune: never prune more; refine: after the first miss, this many
    rounds bisect (in kept fraction) between the last ratio that held and the miss, each
    from the last scene that held; steps: fine-tuning steps per round;
    deadline: ``time.perf_counter()`` value after which no round starts (None: none)."""

    target_psnr: float
    start: float = 0.5
    shrink: float = 0.6
    max_prune: float = 0.97
    refine: int = 2
    steps: int = 60
    deadline: float | None = None
    finetune: FinetuneConfig | None = None


def estimate_start(scene: GaussianScene, scores: Tensor, reference: Tensor, views: Sequence[Camera],
                   target_psnr: float, *, max_prune: float = 0.97, probes: int = 5, backend: str = "auto",
                   on_probe: Callable[[float, float], None] | None = None) -> float:
    """A first prune ratio from cheap probes: the largest ratio (bisection in log kept
    fraction, ``probes`` renders of ``views``) whose pruned scene, neither fine-tuned nor
    quantized, still renders >= ``target_psnr`` against ``reference`` [V,H,W,3] (renders of
    ``scene`` on ``views``, e.g. the held-out views at a reduced size). Fine-tuning then has
    to recover only the quantization loss, so the first round usually holds and fewer
    rounds are spent walking towards the edge. 0.0 when even the gentlest probe misses."""
    lo, hi = 0.0, math.log(1.0 - max_prune)  # log kept fraction: lo holds (nothing pruned), hi untested
    for _ in range(probes):
        mid = 0.5 * (lo + hi)
        ratio = 1.0 - math.exp(mid)
        psnr = fidelity(reference, prune(scene, scores, ratio)[0], views, backend=backend, with_ssim=False).psnr
        if on_probe is not None:
            on_probe(ratio, psnr)
        if psnr >= target_psnr:
            lo = mid
        else:
            hi = mid
    return 1.0 - math.exp(lo)


def prune_schedule(plan: RecoverPlan) -> list[float]:
    """Cumulative prune ratios of the rounds, increasing, all <= max_prune."""
    out, keep = [], 1.0 - plan.start
    while 1.0 - keep <= plan.max_prune + 1e-12 and len(out) < 64:
        out.append(1.0 - keep)
        keep *= plan.shrink
    return out


def prune_recover(
    scene: GaussianScene | Callable[[], GaussianScene],
    scores: Tensor,
    teacher: GaussianScene | None,
    train_views: Sequence[Camera],
    targets: Tensor,
    reference: Tensor,
    heldout: Sequence[Camera],
    config: QuantConfig,
    plan: RecoverPlan,
    *,
    backend: str = "auto",
    on_trial: Callable[[Trial], None] | None = None,
    progress: Progress | None = None,
) -> tuple[Candidate | None, list[Trial]]:
    """The smallest encoding along the schedule whose fidelity >= ``plan.target_psnr``
    (None when the first round misses it), and every trial (level -1: the caller's).

    ``scene`` may be a function that returns it: it is then called whenever a round prunes the
    input (the first, and the bisection when the first missed) and its result is dropped once
    pruned, so a caller that returns its only reference (``pipeline``) lets go of the input
    while the round fine-tunes. ``teacher`` only sets the scale of the positions' learning
    rate (None: ``plan.finetune.scene_scale``, or the pruned scene's)."""
    trials: list[Trial] = []
    state = {"best": None, "current": scene, "scores": scores, "kept": 1.0, "last": 0.0}
    ft = replace(plan.finetune or FinetuneConfig(), steps=plan.steps)

    def out_of_time() -> bool:
        return (plan.deadline is not None and state["best"] is not None
                and time.perf_counter() + state["last"] > plan.deadline)

    def attempt(ratio: float) -> bool:
        """Prune the last good scene to ``ratio`` overall, fine-tune, measure; True if it held."""
        t0 = time.perf_counter()
        rel = max(0.0, 1.0 - (1.0 - ratio) / state["kept"])
        src = state["current"]
        src = src() if callable(src) else src
        pruned, keep = prune(src, state["scores"], min(rel, 0.999))
        del src  # the input, when pruned from it: not held while the round fine-tunes
        pruned_scores = state["scores"][keep]
        budget = None if plan.deadline is None or state["best"] is None else max(1.0, plan.deadline - t0)
        # the pruned copy is ours: trained in place (one copy of the trained fields fewer)
        tuned, _ = finetune(pruned, teacher, train_views, targets=targets, backend=backend, progress=progress,
                            config=replace(ft, max_seconds=budget, seed=ft.seed + len(trials)), in_place=True)
        del pruned
        data, report = encode(tuned, pruned_scores, config)
        fid = fidelity(reference, decode(data), heldout, backend=backend, with_ssim=False)
        trials.append(Trial(ratio, -1, len(data), fid.psnr, "fine-tune"))
        if on_trial is not None:
            on_trial(trials[-1])
        state["last"] = time.perf_counter() - t0
        if fid.psnr < plan.target_psnr:
            return False
        # decoded again at the end: later rounds do not hold this one's decoded scene
        state.update(best=Candidate(data, report, None, fid, ratio, -1, config, tuned, pruned_scores),
                     current=tuned, scores=pruned_scores, kept=1.0 - ratio)
        return True

    miss = None
    for ratio in prune_schedule(plan):
        if out_of_time():
            break
        if not attempt(ratio):
            miss = ratio
            break
    for _ in range(plan.refine):
        if miss is None or out_of_time():
            break
        held = 0.0 if state["best"] is None else state["best"].prune  # the first round missed: bisect towards 0
        mid = 1.0 - math.sqrt((1.0 - held) * (1.0 - miss))
        if not attempt(mid):
            miss = mid
    best = state["best"]
    if best is not None:
        best.decoded = decode(best.data)
    return best, trials
