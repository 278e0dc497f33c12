"""The whole scene compressor: views -> [SH distillation] -> significance -> pruning with
fine-tuning in the loop -> quantization + entropy coding -> fidelity check (and rate control).

The default path (``steps > 0``, no fixed ``prune``): prune, fine-tune, measure held-out
fidelity, prune further while the fidelity floor holds, within ``max_seconds``
(:mod:`compress.scene.recover`). Fixed ``prune``: prune once, fine-tune, encode.
``target_psnr`` without fine-tuning: bisect prune ratio and level (:func:`rate.search`).
``target_psnr`` with ``prune=0``: the step size of every attribute from an error model
(:func:`rate_model.model_allocate`), verified by one encode and corrected once.

    result = compress_scene(scene, CompressSettings(), cameras=None)
    result.data          # the .lgs bytes
    result.fidelity      # PSNR/SSIM against the original on held-out views

``scene`` may also be a function that returns it (e.g. :func:`handoff`): the compressor then
holds the only reference and lets go of the input while the prune + fine-tune rounds run,
reading it again if a later stage needs it (a 2M-Gaussian SH-2 scene is 300 MB of arrays).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import torch
from torch import Tensor

from splat import heap
from splat.camera import Camera
from splat.progress import NullProgress, Progress
from splat.scene import GaussianScene

from .codec import EncodeReport, QuantConfig, decode, encode
from .distill import FinetuneConfig, distill_sh, finetune, render_targets
from .eval import Fidelity, fidelity, render_views
from .prune import prune
from .prune_plan import plan_prune
from .rate import (LEVELS, PRESETS, TOLERANCE, Candidate, Trial, coarser_classes, effective_codebook, level_config,
                   search, shrink_codebook, trim_to_window)
from .rate_model import ModelStep, model_allocate
from .recover import RecoverPlan, estimate_start, prune_recover
from .significance import significance
from .views import ViewSplit, pseudo_views, scene_scale, split_views


@dataclass
class CompressSettings:
    """What to do. ``prune``/``level`` None: take them from ``quality``'s preset.
    ``target_psnr``: search for the smallest file with at least this fidelity (dB).
    ``sh_degree``: distil to this SH degree (None: keep). ``steps``: fine-tuning steps after
    pruning (0: none); ``distill_steps``: SH distillation steps. ``train_views`` /
    ``heldout_views``: how many views to generate when no cameras are given.
    ``significance_scale`` / ``finetune_scale``: resolution factors (vs ``max_side``) of the
    significance renders and of the fine-tuning / distillation views. ``steps``: fine-tuning
    steps per prune round (0: no fine-tuning). ``max_seconds``: wall-time budget of the whole
    compression (the prune/fine-tune loop starts no round it cannot finish; None: none).
    ``photos``: training photos {camera name: [H,W,3] float32 in [0,1]} (see
    :mod:`compress.scene.photos`); fine-tuning fits them where given. ``finetune_geometry``:
    fine-tune means, scales and rotations too (default: colour and opacity only: fewer
    parameters to overfit the training views, and each step is cheaper).
    ``estimate_start``: the fine-tuned loop's first prune ratio is the smaller of the preset's
    and the render-only estimate (:func:`recover.estimate_start`), so a scene on which the
    preset's ratio cannot hold starts where it can instead of missing its first round.
    ``low_fraction`` / ``low_drop``: the starting precision classes of the fine-tuned path (the
    least significant fraction stores scales, rotations and colour ``low_drop`` bits coarser).
    The prune loop measures held-out fidelity with these classes applied, so the floor holds
    on any scene; a last stage tries coarser classes while it still holds (it never tries
    finer ones; ``bench/scene_precision.py`` measures the trade-off).
    ``plan_prune``: with ``target_psnr`` and no ``prune`` given, allocate step sizes on the error
    model (as ``prune=0``) after pruning the fraction of least predicted bytes at the target
    (:func:`prune_plan.plan_prune`). ``None`` (the default) plans whenever a target is given
    without ``prune``, ``level`` or ``photos``; ``False`` runs the fine-tuned pruning rounds
    for the target instead (slower; smaller files at low targets, where fine-tuning recovers
    what heavy pruning loses)."""

    quality: str = "default"
    prune: float | None = None
    level: int | None = None
    position_bits: int | None = None
    target_psnr: float | None = None
    sh_degree: int | None = None
    steps: int = 60
    finetune_geometry: bool = False
    estimate_start: bool = True
    low_fraction: float = 0.75
    low_drop: int = 3
    max_seconds: float | None = 60.0
    photos: dict | None = None
    distill_steps: int = 300
    quant: QuantConfig = field(default_factory=QuantConfig)
    beta: float = 0.1
    significance_scale: float = 1.0
    finetune_scale: float = 0.5
    max_side: int = 480
    train_views: int = 24
    heldout_views: int = 8
    up: str = "-y"
    backend: str = "auto"
    device: str = "cpu"
    seed: int = 0
    check_fidelity: bool = True
    plan_prune: bool | None = None


@dataclass
class CompressResult:
    data: bytes
    report: EncodeReport
    decoded: GaussianScene
    fidelity: Fidelity | None
    timings: dict[str, float]
    input_count: int
    prune: float
    level: int | None
    trials: list[Trial] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    photo_psnr: float | None = None
    start_prune: float | None = None  # the fine-tuned loop's first ratio, when it ran
    model_steps: list[ModelStep] = field(default_factory=list)  # predicted vs measured PSNR of the model's encodes
    input_sh_degree: int | None = None


@dataclass
class _Run:
    """State shared by the stages of one compression."""

    st: CompressSettings
    pg: Progress
    _original: GaussianScene | None  # None while let go of (``load`` reads it again)
    views: ViewSplit
    t_start: float
    load: Callable[[], GaussianScene] | None = None  # reads the input again (None: it is always held)
    input_count: int = 0
    input_sh_degree: int = 0
    reference: Tensor | None = None
    _work: GaussianScene | None = None  # None: the input itself
    scores: Tensor | None = None
    timings: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    start_prune: float | None = None
    model_steps: list = field(default_factory=list)

    @property
    def original(self) -> GaussianScene:
        """The input scene (float32, on the device), read again when it was let go of."""
        if self._original is None:
            t0 = time.perf_counter()
            self._original = _as_input(self.load(), self.st)
            self.timed("read again", t0)
        return self._original

    @property
    def work(self) -> GaussianScene:
        """The scene being compressed: the input, or its SH-distilled copy."""
        return self.original if self._work is None else self._work

    @work.setter
    def work(self, scene: GaussianScene) -> None:
        self._work = None if scene is self._original else scene

    def take_work(self) -> GaussianScene:
        """The work scene for one use. When it is the input and ``load`` can read that again,
        the run lets go of it: the caller's reference is then the last one."""
        scene = self.work
        if self._work is None and self.load is not None:
            self._original = None
        return scene

    def timed(self, name: str, t0: float) -> None:
        self.timings[name] = self.timings.get(name, 0.0) + time.perf_counter() - t0

    @property
    def deadline(self) -> float | None:
        return None if self.st.max_seconds is None else self.t_start + self.st.max_seconds

    def stage(self, name: str, total: int, fn, *args, **kwargs):
        """Run ``fn`` as one progress stage and time it."""
        t0 = time.perf_counter()
        self.pg.start(name, total)
        try:
            return fn(*args, **kwargs)
        finally:
            heap.trim()  # the stage's freed arrays back to the system before the next one
            self.pg.end()
            self.timed(name, t0)


def compress_scene(
    scene: GaussianScene | Callable[[], GaussianScene],
    settings: CompressSettings | None = None,
    *,
    cameras: Sequence[Camera] | None = None,
    progress: Progress | None = None,
) -> CompressResult:
    """Compress ``scene`` (see the module docstring). ``cameras``: the training cameras, if known.
    ``scene`` may be a function that returns it (each call the same scene, e.g. :func:`handoff`):
    the input is then not held while it is not needed.

    ``progress``: where each stage is reported (``splat.progress.Progress``).
    """
    st = settings or CompressSettings()
    if st.quality not in PRESETS:
        raise ValueError(f"unknown quality preset {st.quality!r} ({', '.join(PRESETS)})")
    run = _prepare(scene, st, cameras, progress or NullProgress())
    preset = PRESETS[st.quality]
    ratio = preset.prune if st.prune is None else st.prune
    level = preset.level if st.level is None else st.level
    floor = st.target_psnr if st.target_psnr is not None else (preset.min_psnr if st.prune is None else None)
    trials: list[Trial] = []
    chosen: Candidate | None = None
    if st.steps > 0 and st.prune is None and run.reference is not None and floor is not None and not plans(st):
        chosen, trials = _recover_stage(run, floor, level, ratio)
        if chosen is None:
            chosen, more = _search_stage(run, floor)
            trials += more
    elif _allocates(st):
        chosen, trials = _allocate_stage(run, st.target_psnr)
    elif st.target_psnr is not None and st.steps <= 0:
        chosen, trials = _search_stage(run, st.target_psnr)
    else:
        chosen = _fixed_stage(run, ratio, level)
        fid = chosen.fidelity
        if floor is not None and st.level is None and fid is not None and fid.psnr < floor:
            # the fixed setting missed the fidelity floor on this scene: fall back to the search
            run.notes.append(f"prune {ratio:.2f} at level {level} gave {fid.psnr:.2f} dB < {floor:g} dB; searching")
            best, trials = _search_stage(run, floor)
            chosen = best or chosen
    if chosen is None:
        run.notes.append(f"no setting reaches {floor:g} dB; used the finest level without pruning")
        chosen = _fixed_stage(run, 0.0, len(LEVELS) - 1)
    if st.target_psnr is not None and not run.model_steps and chosen.source is not None and run.reference is not None:
        chosen, more = _land_stage(run, chosen, st.target_psnr)
        trials += more
    if st.target_psnr is not None and chosen.fidelity is not None and chosen.source is not None \
            and chosen.fidelity.psnr > st.target_psnr + TOLERANCE and run.reference is not None:
        chosen, more = run.stage(f"trim to {st.target_psnr:g} dB", 0, trim_to_window, chosen, st.target_psnr,
                                 run.reference, run.views.heldout, tolerance=TOLERANCE, backend=st.backend,
                                 on_trial=lambda t: run.pg.advance(1, f"{t.bytes} B: {t.psnr:.2f} dB"))
        trials += more
        if more:
            run.notes.append(f"trimmed every step size by one factor: {len(more)} encodes, "
                             f"{chosen.fidelity.psnr:.2f} dB, {len(chosen.data)} B")
    if st.target_psnr is not None and chosen.fidelity is not None and run.work.sh_degree > 0 and not run.model_steps:
        chosen, more = _codebook_stage(run, chosen, st.target_psnr)
        trials += more
    fid = chosen.fidelity
    if fid is not None and fid.ssim != fid.ssim:  # NaN: chosen by a search, which skips SSIM
        fid = run.stage("fidelity", len(run.views.heldout), fidelity, run.reference, chosen.decoded, run.views.heldout,
                        backend=st.backend)
    photo = _photo_psnr(run, chosen.decoded)
    return CompressResult(chosen.data, chosen.report, chosen.decoded, fid, run.timings, run.input_count,
                          chosen.prune, chosen.level, trials, run.notes, photo, run.start_prune, run.model_steps,
                          run.input_sh_degree)


def handoff(scene: GaussianScene, read: Callable[[], GaussianScene]) -> Callable[[], GaussianScene]:
    """A ``scene`` argument for :func:`compress_scene` that hands over ``scene`` (already read) on its
    first call and calls ``read`` (which must return the same scene) after that. The caller drops
    its own reference to ``scene``, so the compressor's is the only one:

        load = handoff(scene, lambda: read_scene(path)); del scene
        compress_scene(load, settings)
    """
    box = [scene]
    del scene
    return lambda: box.pop() if box else read()


def _as_input(scene: GaussianScene, st: CompressSettings) -> GaussianScene:
    return scene.detach().to(device=torch.device(st.device), dtype=torch.float32)


def _allocates(st: CompressSettings) -> bool:
    """Whether ``st`` asks for step sizes on the error model alone (a target, no level, and no pruning
    or only the planned pruning of ``plan_prune``)."""
    return st.target_psnr is not None and (st.prune == 0.0 or plans(st)) and st.level is None


def plans(st: CompressSettings) -> bool:
    """Whether ``st`` prunes by the plan of :func:`prune_plan.plan_prune` (``plan_prune``, or by
    default a target without ``prune``, ``level`` or photos)."""
    if st.plan_prune is not None:
        return bool(st.plan_prune and st.target_psnr is not None and st.prune is None)
    return st.target_psnr is not None and st.prune is None and st.level is None and st.photos is None


def _prepare(scene, st: CompressSettings, cameras, pg) -> _Run:
    """Views, reference renders of the held-out views, SH distillation, significance."""
    load = None if isinstance(scene, GaussianScene) else scene
    original = _as_input(scene if load is None else load(), st)
    del scene
    views = split_views(original, cameras, max_side=st.max_side, up=st.up, n_train=st.train_views,
                        n_heldout=st.heldout_views)
    run = _Run(st, pg, original, views, time.perf_counter(), load, len(original), original.sh_degree)
    run.notes.append(f"views: {len(views.train)} for compression, {len(views.heldout)} held out ({views.source})")
    if st.check_fidelity or st.target_psnr is not None:
        run.reference = run.stage("reference renders", len(views.heldout), render_views, original, views.heldout,
                                  backend=st.backend)
    run.work = original
    if st.sh_degree is not None and st.sh_degree < original.sh_degree:
        pv = [c.scaled(st.finetune_scale) for c in pseudo_views(original, views.train, seed=st.seed)]
        run.work, _ = run.stage(f"distil SH {original.sh_degree}->{st.sh_degree}", st.distill_steps, distill_sh,
                                original, pv, st.sh_degree, config=FinetuneConfig(steps=st.distill_steps, seed=st.seed),
                                backend=st.backend, progress=pg)
    if _allocates(st) and st.prune == 0.0 and run.work.sh_degree == 0:
        return run  # step sizes only, no SH codebook: significance steers nothing (the classes use render sensitivity)
    sig_views = [c.scaled(st.significance_scale) for c in views.train]
    run.scores = run.stage("significance", len(sig_views), significance, run.work, sig_views, beta=st.beta,
                           backend=st.backend, progress=pg)
    return run


def _evaluate(run: _Run, sc: GaussianScene, sc_scores: Tensor, cfg: QuantConfig, ratio: float, level: int) -> Candidate:
    """Encode, decode and (when a reference exists) measure fidelity."""
    data, report = run.stage("quantize + entropy code", 1, encode, sc, sc_scores, cfg)
    t0 = time.perf_counter()
    dec = decode(data)
    run.timed("decoding", t0)
    fid = None
    if run.reference is not None:
        fid = run.stage("fidelity", len(run.views.heldout), fidelity, run.reference, dec, run.views.heldout,
                        backend=run.st.backend)
    return Candidate(data, report, dec, fid, ratio, level, cfg, sc, sc_scores)


def _teacher(run: _Run) -> GaussianScene:
    return run.original if run.st.sh_degree is None else run.work


def _finetune_views(run: _Run) -> tuple[list[Camera], Tensor]:
    """Fine-tuning views and their targets: teacher renders, with photos where given."""
    st = run.st
    pv = [c.scaled(st.finetune_scale) for c in pseudo_views(run.original, run.views.train, seed=st.seed)]
    targets = run.stage("fine-tuning targets", len(pv), render_targets, _teacher(run), pv, backend=st.backend)
    if st.photos:
        from .photos import photo_targets

        targets, used = photo_targets(targets, pv, st.photos)
        run.notes.append(f"fine-tuning fits {used} training photos (renders of the original elsewhere)")
    return pv, targets


def _fixed_stage(run: _Run, ratio: float, level: int) -> Candidate:
    st = run.st
    pruned, keep = run.stage("pruning", 0, prune, run.work, run.scores, ratio)
    if st.steps > 0 and ratio > 0:
        pv, targets = _finetune_views(run)
        cfg = FinetuneConfig(steps=st.steps, seed=st.seed, train_geometry=st.finetune_geometry,
                             max_seconds=None if run.deadline is None else max(1.0, run.deadline - time.perf_counter()))
        pruned, _ = run.stage("fine-tune", st.steps, finetune, pruned, _teacher(run), pv, targets=targets, config=cfg,
                              backend=st.backend, progress=run.pg)
    return _evaluate(run, pruned, run.scores[keep], level_config(level, st.quant, st.position_bits), ratio, level)


def _search_stage(run: _Run, target: float) -> tuple[Candidate | None, list[Trial]]:
    st = run.st
    if run.reference is None:
        return None, []
    return run.stage(f"search >= {target:g} dB", 0, search, run.work, run.scores, target, run.reference,
                     run.views.heldout, base=st.quant, position_bits=st.position_bits, backend=st.backend,
                     on_trial=lambda t: run.pg.advance(1, f"prune {t.prune:.2f} L{t.level}: {t.psnr:.2f} dB, {t.bytes} B"))


def _allocate_stage(run: _Run, target: float) -> tuple[Candidate | None, list[Trial]]:
    """No pruning: the step size of every attribute chosen for ``target`` on the error model
    (:func:`rate_model.model_allocate`)."""
    st = run.st
    if run.reference is None:
        return None, []
    scene, scores, ratio = run.work, run.scores, 0.0
    if plans(st):
        scene, scores, ratio = _prune_plan_stage(run, target)
    best, trials, steps = _allocate(run, scene, scores, target, ratio > 0)
    if ratio > 0 and (best is None or best.fidelity.psnr < target):
        run.notes.append(f"the scene pruned by {ratio:.3f} missed {target:g} dB: allocated without pruning")
        scene, scores, ratio = run.work, run.scores, 0.0
        best, more, steps = _allocate(run, scene, scores, target, False)
        trials += more
    run.model_steps = steps
    _model_notes(run, steps)
    if best is not None:
        best.prune = ratio
        c = best.config
        run.notes.append(f"step sizes: positions {c.position_bits:.2f}, scales {c.scale_bits:.2f}, rotations "
                         f"{c.rotation_bits:.2f}, opacity {c.opacity_bits:.2f}, colour {c.dc_bits:.2f} bits"
                         + (f"; classes {c.class_step:g} bits apart (up to {c.max_drop})" if c.max_drop else ""))
    return best, trials


def _allocate(run: _Run, scene: GaussianScene, scores: Tensor, target: float, pruned: bool):
    st = run.st
    return run.stage(
        f"step sizes for {target:g} dB", 0, model_allocate, scene, scores, target, run.reference,
        run.views.heldout, base=st.quant, backend=st.backend, cameras=[c.scaled(st.finetune_scale) for c in run.views.train],
        teacher=None if scene is run.original else run.original,
        on_probe=lambda a, b: run.pg.advance(1, f"probe {a.replace('_bits', '')} at {b:.2f} bits"),
        on_trial=lambda t: run.pg.advance(1, f"{t.bytes} B: {t.psnr:.2f} dB"))


def _prune_plan_stage(run: _Run, target: float) -> tuple[GaussianScene, Tensor, float]:
    """The work scene pruned by the fraction of least predicted bytes at ``target``
    (:func:`prune_plan.plan_prune`, render-only probes on the fidelity views at full resolution:
    at a reduced size a removed small Gaussian is blurred away and pruning looks cheaper)."""
    st = run.st
    plan = run.stage("prune plan", 0, plan_prune, run.work, run.scores, run.reference, run.views.heldout, target,
                     backend=st.backend, on_probe=lambda r, p: run.pg.advance(1, f"prune {r:.3f}: {p:.2f} dB unquantized"))
    run.notes.append(f"prune plan: {plan.ratio:.3f} of the Gaussians, predicted {plan.rate:.3f}x the bytes at "
                     f"{target:g} dB (" + ", ".join(f"{r:.3f}: {p:.1f} dB" for r, p, _ in plan.probes) + ")")
    if plan.ratio <= 0.0:
        return run.work, run.scores, 0.0
    pruned, keep = prune(run.work, run.scores, plan.ratio)
    return pruned, run.scores[keep], plan.ratio


def _model_notes(run: _Run, steps: list[ModelStep]) -> None:
    for s in steps:
        what = f"encoded, {s.bytes} B" if s.kind == "encode" else "render check"
        run.notes.append(f"error model: predicted {s.predicted:.2f} dB, measured {s.measured:.2f} dB ({what})")


def _land_stage(run: _Run, chosen: Candidate, target: float) -> tuple[Candidate, list[Trial]]:
    """The step sizes of the chosen (pruned, fine-tuned) scene set on the error model so that its
    fidelity against the original lands just above ``target``; kept when smaller and on target."""
    st = run.st
    best, trials, steps = run.stage(
        f"step sizes for {target:g} dB", 0, model_allocate, chosen.source, chosen.weights, target, run.reference,
        run.views.heldout, base=st.quant, backend=st.backend, teacher=run.original,
        cameras=[c.scaled(st.finetune_scale) for c in run.views.train],
        on_probe=lambda a, b: run.pg.advance(1, f"probe {a.replace('_bits', '')} at {b:.2f} bits"),
        on_trial=lambda t: run.pg.advance(1, f"{t.bytes} B: {t.psnr:.2f} dB"))
    run.model_steps = steps
    _model_notes(run, steps)
    if best is None or best.fidelity.psnr < target or len(best.data) >= len(chosen.data):
        run.notes.append(f"kept the pruned file's own step sizes ({len(chosen.data)} B, {chosen.fidelity.psnr:.2f} dB)")
        return chosen, trials
    best.prune, best.level = chosen.prune, chosen.level
    run.notes.append(f"step sizes on the model: {len(chosen.data)} -> {len(best.data)} B, "
                     f"{chosen.fidelity.psnr:.2f} -> {best.fidelity.psnr:.2f} dB")
    return best, trials


def _recover_stage(run: _Run, target: float, level: int, start: float) -> tuple[Candidate | None, list[Trial]]:
    """From prune ratio ``start`` (the preset's), prune further while fine-tuning keeps the
    fidelity >= ``target`` (None: not even the first round)."""
    st = run.st
    if st.estimate_start:  # never more aggressive than the preset: fine-tuning may not recover the quantization loss
        start = min(start, _estimate_stage(run, target))
    run.start_prune = start
    pv, targets = _finetune_views(run)
    ft = FinetuneConfig(steps=st.steps, seed=st.seed, train_geometry=st.finetune_geometry,
                        scene_scale=scene_scale(_teacher(run)))  # the targets are fixed: the teacher is not needed
    plan = RecoverPlan(target_psnr=target, start=start, steps=st.steps, deadline=run.deadline, finetune=ft)
    cfg = replace(level_config(level, st.quant, st.position_bits), low_fraction=st.low_fraction,
                  low_drop=min(st.low_drop, LEVELS[level]["scale_bits"] - 1, LEVELS[level]["rotation_bits"] - 1,
                               LEVELS[level]["dc_bits"] - 1))
    # the input is taken for each pruning and let go of while the rounds fine-tune (when it can be read again)
    best, trials = run.stage(f"prune + fine-tune >= {target:g} dB", 0, prune_recover, run.take_work, run.scores, None,
                             pv, targets, run.reference, run.views.heldout, cfg, plan, backend=st.backend,
                             on_trial=lambda t: run.pg.advance(1, f"prune {t.prune:.2f}: {t.psnr:.2f} dB, {t.bytes} B"))
    for t in trials:
        t.level = level
    if best is None:
        run.notes.append(f"fine-tuned pruning at {trials[0].prune:.2f} missed {target:g} dB" if trials else "no round ran")
    else:
        best.level = level
        run.notes.append(f"prune + fine-tune: {len(trials)} rounds, kept prune {best.prune:.3f}")
        if st.low_fraction > 0 and (run.deadline is None or time.perf_counter() < run.deadline):
            best, more = run.stage("precision classes", 0, coarser_classes, best, target, run.reference,
                                   run.views.heldout, backend=st.backend,
                                   on_trial=lambda t: run.pg.advance(1, f"{t.bytes} B: {t.psnr:.2f} dB"))
            trials += more
            c = best.config
            run.notes.append(f"precision classes: {c.low_fraction:.0%} of the Gaussians {c.low_drop} bits coarser")
    return best, trials


def _estimate_stage(run: _Run, target: float) -> float:
    """The first prune ratio of the fine-tuned loop from render-only probes (no fine-tuning, no
    quantization) on the held-out views at the fine-tuning scale (:func:`recover.estimate_start`)."""
    st = run.st
    views = [c.scaled(st.finetune_scale) for c in run.views.heldout]
    ref = run.stage("probe references", len(views), render_views, run.original, views, backend=st.backend)
    ratio = run.stage("first prune ratio", 0, estimate_start, run.work, run.scores, ref, views, target,
                      backend=st.backend, on_probe=lambda r, p: run.pg.advance(1, f"prune {r:.2f}: {p:.2f} dB unquantized"))
    run.notes.append(f"render-only estimate: prune {ratio:.3f} still >= {target:g} dB unquantized")
    return ratio


def _codebook_stage(run: _Run, chosen: Candidate, target: float) -> tuple[Candidate, list[Trial]]:
    """Halve the SH codebook while the fidelity stays >= ``target`` (re-encoding the chosen scene)."""
    better, trials = run.stage("codebook search", 0, shrink_codebook, chosen, target, run.reference, run.views.heldout,
                               backend=run.st.backend,
                               on_trial=lambda t: run.pg.advance(1, f"{t.bytes} B: {t.psnr:.2f} dB"))
    if better is not chosen:
        run.notes.append(f"SH codebook search: {effective_codebook(chosen.config, len(chosen.source))} -> "
                         f"{better.config.sh_codebook} entries")
    return better, trials


def _photo_psnr(run: _Run, decoded: GaussianScene) -> float | None:
    """PSNR (dB) of the decoded scene against the held-out photos, when photos were given."""
    if not run.st.photos:
        return None
    from .photos import heldout_photo_psnr

    return heldout_photo_psnr(decoded, run.views.heldout, run.st.photos, backend=run.st.backend)
