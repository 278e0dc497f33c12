"""The whole scene compressor: views -> [SH distillation] -> significance -> pruning ->
[fine-tuning] -> quantization + entropy coding -> fidelity check (and rate control).

    result = compress_scene(scene, CompressSettings(), cameras=None)
    result.data          # the .lgs bytes
    result.fidelity      # PSNR/SSIM against the original on held-out views
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Sequence

import torch
from torch import Tensor

from splat.camera import Camera
from splat.progress import NullProgress, Progress
from splat.scene import GaussianScene

from .codec import EncodeReport, QuantConfig, decode, encode
from .distill import FinetuneConfig, distill_sh, finetune
from .eval import Fidelity, fidelity, render_views
from .prune import prune
from .rate import LEVELS, PRESETS, Trial, level_config, search
from .significance import significance
from .views import ViewSplit, pseudo_views, split_views


@dataclass
class CompressSettings:
    """What to do. ``prune``/``level`` None: take them from ``quality``'s preset.
    ``target_psnr``: search for the smallest file with at least this fidelity (dB).
    ``sh_degree``: distil to this SH degree (None: keep). ``steps``: fine-tuning steps after
    pruning (0: none); ``distill_steps``: SH distillation steps. ``train_views`` /
    ``heldout_views``: how many views to generate when no cameras are given.
    ``significance_scale`` / ``finetune_scale``: resolution factors (vs ``max_side``) of the
    significance renders and of the fine-tuning / distillation views."""

    quality: str = "default"
    prune: float | None = None
    level: int | None = None
    position_bits: int | None = None
    target_psnr: float | None = None
    sh_degree: int | None = None
    steps: int = 0
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


def compress_scene(
    scene: GaussianScene,
    settings: CompressSettings | None = None,
    *,
    cameras: Sequence[Camera] | None = None,
    progress: Progress | None = None,
) -> CompressResult:
    """Compress ``scene`` (see the module docstring). ``cameras``: the training cameras, if known.

    ``progress``: where each stage is reported (``splat.progress.Progress``).
    """
    st = settings or CompressSettings()
    if st.quality not in PRESETS:
        raise ValueError(f"unknown quality preset {st.quality!r} ({', '.join(PRESETS)})")
    preset = PRESETS[st.quality]
    pg = progress or NullProgress()
    timings: dict[str, float] = {}
    notes: list[str] = []
    dev = torch.device(st.device)
    original = scene.detach().to(device=dev, dtype=torch.float32)
    n_in = len(original)

    def timed(name: str, t0: float) -> None:
        timings[name] = timings.get(name, 0.0) + time.perf_counter() - t0

    views: ViewSplit = split_views(original, cameras, max_side=st.max_side, up=st.up,
                                   n_train=st.train_views, n_heldout=st.heldout_views)
    notes.append(f"views: {len(views.train)} for compression, {len(views.heldout)} held out ({views.source})")

    t0 = time.perf_counter()
    reference = None
    if st.check_fidelity or st.target_psnr is not None:
        pg.start("reference renders", len(views.heldout))
        reference = render_views(original, views.heldout, backend=st.backend)
        pg.advance(len(views.heldout))
        pg.end()
    timed("reference renders", t0)

    work = original
    if st.sh_degree is not None and st.sh_degree < original.sh_degree:
        t0 = time.perf_counter()
        pv = [c.scaled(st.finetune_scale) for c in pseudo_views(original, views.train, seed=st.seed)]
        pg.start(f"distil SH {original.sh_degree}->{st.sh_degree}", st.distill_steps)
        work, _ = distill_sh(original, pv, st.sh_degree, config=FinetuneConfig(steps=st.distill_steps, seed=st.seed),
                             backend=st.backend, progress=pg)
        pg.end()
        timed("distillation", t0)

    t0 = time.perf_counter()
    sig_views = [c.scaled(st.significance_scale) for c in views.train]
    pg.start("significance", len(sig_views))
    scores = significance(work, sig_views, beta=st.beta, backend=st.backend, progress=pg)
    pg.end()
    timed("significance", t0)

    ratio = preset.prune if st.prune is None else st.prune
    level = preset.level if st.level is None else st.level
    trials: list[Trial] = []
    best = None

    if st.target_psnr is not None:
        t0 = time.perf_counter()
        pg.start(f"search >= {st.target_psnr:g} dB", 0)
        best, trials = search(work, scores, st.target_psnr, reference, views.heldout, base=st.quant,
                              position_bits=st.position_bits,
                              backend=st.backend, on_trial=lambda t: pg.advance(1, f"prune {t.prune:.2f} L{t.level}: {t.psnr:.2f} dB, {t.bytes} B"))
        pg.end()
        timed("rate search", t0)
        if best is None:
            notes.append(f"no setting reaches {st.target_psnr:g} dB; used the finest level without pruning")
            ratio, level = 0.0, len(LEVELS) - 1
        else:
            ratio, level = best.prune, best.level

    t0 = time.perf_counter()
    pruned, keep = prune(work, scores, ratio)
    kept_scores = scores[keep]
    timed("pruning", t0)
    if st.steps > 0 and ratio > 0:
        t0 = time.perf_counter()
        pv = [c.scaled(st.finetune_scale) for c in pseudo_views(original, views.train, seed=st.seed)]
        pg.start("fine-tune", st.steps)
        pruned, _ = finetune(pruned, original if st.sh_degree is None else work, pv,
                             config=FinetuneConfig(steps=st.steps, seed=st.seed), backend=st.backend,
                             progress=pg)
        pg.end()
        timed("fine-tuning", t0)

    def encode_check(sc: GaussianScene, sc_scores: Tensor, cfg: QuantConfig):
        t1 = time.perf_counter()
        pg.start("quantize + entropy code", 1)
        data, report = encode(sc, sc_scores, cfg)
        pg.advance(1)
        pg.end()
        timed("encoding", t1)
        t1 = time.perf_counter()
        dec = decode(data)
        timed("decoding", t1)
        fid = None
        if reference is not None:
            t1 = time.perf_counter()
            pg.start("fidelity", len(views.heldout))
            fid = fidelity(reference, dec, views.heldout, backend=st.backend)
            pg.advance(len(views.heldout))
            pg.end()
            timed("fidelity", t1)
        return data, report, dec, fid

    cfg = level_config(level, st.quant, st.position_bits)
    if st.target_psnr is not None and best is not None and st.steps <= 0:
        data, report, dec, fid = best.data, best.report, best.decoded, best.fidelity
    else:
        data, report, dec, fid = encode_check(pruned, kept_scores, cfg)
        if st.target_psnr is not None and best is not None and fid is not None and fid.psnr < best.fidelity.psnr \
                and fid.psnr < st.target_psnr:
            notes.append("fine-tuning lowered fidelity below the target; kept the search's result")
            data, report, dec, fid = best.data, best.report, best.decoded, best.fidelity

    floor = st.target_psnr if st.target_psnr is not None else (preset.min_psnr if st.prune is None and st.level is None else None)
    if fid is not None and floor is not None and fid.psnr < floor and st.target_psnr is None:
        # the preset missed its fidelity floor on this scene: fall back to the search
        notes.append(f"preset {st.quality!r} gave {fid.psnr:.2f} dB < {floor:g} dB; searching")
        t0 = time.perf_counter()
        pg.start(f"search >= {floor:g} dB", 0)
        best, trials = search(work, scores, floor, reference, views.heldout, base=st.quant, backend=st.backend,
                              position_bits=st.position_bits,
                              on_trial=lambda t: pg.advance(1, f"prune {t.prune:.2f} L{t.level}: {t.psnr:.2f} dB"))
        pg.end()
        timed("rate search", t0)
        if best is not None:
            data, report, dec, fid = best.data, best.report, best.decoded, best.fidelity
            ratio, level = best.prune, best.level
        else:
            notes.append(f"no setting reaches {floor:g} dB")
    if fid is not None and fid.ssim != fid.ssim:  # NaN: chosen by the search, which skips SSIM
        t0 = time.perf_counter()
        fid = fidelity(reference, dec, views.heldout, backend=st.backend)
        timed("fidelity", t0)
    return CompressResult(data, report, dec, fid, timings, n_in, ratio, level, trials, notes)
