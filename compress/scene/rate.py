"""Rate control: quality presets and the search for the smallest file that meets a fidelity.

Fidelity is the PSNR of the compressed scene's renders against the original's renders on
held-out views (see :mod:`compress.scene.views`). For a fixed quantization level fidelity
falls as the prune ratio grows, so :func:`search` bisects the prune ratio at each of a
few quantization levels and keeps the smallest encoding that meets the target.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

from torch import Tensor

from splat.scene import GaussianScene

from .codec import MIN_POSITION_BITS, QuantConfig, decode, encode
from .eval import Fidelity, fidelity
from .positions import MAX_BITS as POSITION_MAX_BITS
from .prune import prune

# quantization ladder, coarse to fine (the search tries each)
LEVELS: list[dict] = [
    dict(position_bits=16, scale_bits=5, rotation_bits=5, opacity_bits=5, dc_bits=5,
         sh_codebook_bits=8, sh_direct_fraction=0.05, sh_direct_bits=8),
    dict(position_bits=16, scale_bits=8, rotation_bits=8, opacity_bits=8, dc_bits=8,
         sh_codebook_bits=8, sh_direct_fraction=0.05, sh_direct_bits=8),
    dict(position_bits=17, scale_bits=10, rotation_bits=10, opacity_bits=9, dc_bits=10,
         sh_codebook_bits=10, sh_direct_fraction=0.1, sh_direct_bits=10),
    dict(position_bits=18, scale_bits=12, rotation_bits=12, opacity_bits=10, dc_bits=12,
         sh_codebook_bits=12, sh_direct_fraction=0.25, sh_direct_bits=12),
]


@dataclass(frozen=True)
class Preset:
    """A starting point: prune ratio, quantization level, and the fidelity floor (dB) below
    which compression falls back to the search."""

    prune: float
    level: int
    min_psnr: float


PRESETS: dict[str, Preset] = {
    "small": Preset(prune=0.8, level=0, min_psnr=32.0),
    "default": Preset(prune=0.66, level=1, min_psnr=35.0),
    "high": Preset(prune=0.5, level=2, min_psnr=38.5),
    "max": Preset(prune=0.25, level=3, min_psnr=45.0),
}


def level_config(level: int, base: QuantConfig | None = None, position_bits: int | None = None) -> QuantConfig:
    """``base`` (or the defaults) with the bit depths of quantization level ``level``
    (and ``position_bits`` instead of the level's, when given)."""
    cfg = replace(base or QuantConfig(), **LEVELS[max(0, min(level, len(LEVELS) - 1))])
    return cfg if position_bits is None else replace(cfg, position_bits=position_bits)


@dataclass
class Trial:
    """One evaluated setting: prune ratio, level, file bytes, fidelity PSNR (dB), and the
    stage that tried it ("search", "fine-tune" or "codebook")."""

    prune: float
    level: int
    bytes: int
    psnr: float
    stage: str = "search"


@dataclass
class Candidate:
    data: bytes
    report: object
    decoded: GaussianScene
    fidelity: Fidelity
    prune: float
    level: int
    config: QuantConfig
    source: GaussianScene | None = None  # the scene that was encoded (before quantization)
    weights: Tensor | None = None        # its significance


def evaluate(scene: GaussianScene, scores: Tensor, ratio: float, config: QuantConfig, reference: Tensor,
             views, *, backend: str = "auto") -> Candidate:
    """Prune, encode, decode and measure fidelity against ``reference`` renders [V,H,W,3]."""
    pruned, keep = prune(scene, scores, ratio)
    data, report = encode(pruned, scores[keep], config)
    dec = decode(data)
    return Candidate(data, report, dec, fidelity(reference, dec, views, backend=backend, with_ssim=False), ratio, -1, config,
                     pruned, scores[keep])


def search(
    scene: GaussianScene,
    scores: Tensor,
    target_psnr: float,
    reference: Tensor,
    views,
    *,
    base: QuantConfig | None = None,
    levels: range | list[int] | None = None,
    max_prune: float = 0.97,
    iters: int = 5,
    start_prune: float | None = 0.66,
    quant_margin: float = 8.0,
    position_bits: int | None = None,
    backend: str = "auto",
    on_trial: Callable[[Trial], None] | None = None,
) -> tuple[Candidate | None, list[Trial]]:
    """Smallest encoding whose fidelity is >= ``target_psnr``, or None when even the finest
    level without pruning misses it. Returns (best candidate, every trial).

    Per level (coarse to fine): bisect the prune ratio in [0, max_prune], starting at
    ``start_prune``. Finer levels are tried only while the level's quantization alone
    (no pruning) stays within ``quant_margin`` dB of the target, i.e. while quantization,
    not pruning, limits the fidelity."""
    trials: list[Trial] = []
    best: Candidate | None = None

    def run(ratio: float, level: int) -> Candidate:
        c = evaluate(scene, scores, ratio, level_config(level, base, position_bits), reference, views, backend=backend)
        c.level = level
        t = Trial(ratio, level, len(c.data), c.fidelity.psnr)
        trials.append(t)
        if on_trial is not None:
            on_trial(t)
        return c

    for level in (levels if levels is not None else range(len(LEVELS))):
        c0 = run(0.0, level)
        if c0.fidelity.psnr < target_psnr:
            continue  # this level's quantization alone is too coarse
        good, lo, hi = c0, 0.0, max_prune
        if start_prune is not None and 0.0 < start_prune < max_prune:
            cs = run(start_prune, level)
            if cs.fidelity.psnr >= target_psnr:
                good, lo = cs, start_prune
            else:
                hi = start_prune
        chi = run(hi, level) if hi == max_prune else None
        if chi is not None and chi.fidelity.psnr >= target_psnr:
            good = chi
        else:
            for _ in range(iters):
                mid = 0.5 * (lo + hi)
                cm = run(mid, level)
                if cm.fidelity.psnr >= target_psnr:
                    good, lo = cm, mid
                else:
                    hi = mid
        if best is None or len(good.data) < len(best.data):
            best = good
        if c0.fidelity.psnr >= target_psnr + quant_margin:
            break  # quantization error is far below the target: finer levels only cost bytes
    return best, trials


def effective_codebook(config: QuantConfig, n: int) -> int:
    """SH codebook entries :func:`codec.encode` uses for ``n`` Gaussians (the cap included)."""
    n_cb = n - int(round(config.sh_direct_fraction * n))
    return min(config.sh_codebook, max(1, int(config.sh_codebook_fraction * n_cb)))


def try_configs(chosen: Candidate, configs: list[QuantConfig], target_psnr: float, reference: Tensor, views, *,
                stage: str, backend: str = "auto",
                on_trial: Callable[[Trial], None] | None = None) -> tuple[Candidate, list[Trial]]:
    """Re-encode ``chosen``'s source scene with each of ``configs`` in order; keep a result when
    it is smaller than the best so far and its fidelity >= ``target_psnr``; stop at the first
    that is not. Returns (best candidate, trials)."""
    best, trials = chosen, []
    if chosen.source is None:
        return best, trials
    for cfg in configs:
        data, report = encode(best.source, best.weights, cfg)
        dec = decode(data)
        fid = fidelity(reference, dec, views, backend=backend, with_ssim=False)
        trials.append(Trial(best.prune, best.level, len(data), fid.psnr, stage))
        if on_trial is not None:
            on_trial(trials[-1])
        if fid.psnr < target_psnr or len(data) >= len(best.data):
            break
        best = Candidate(data, report, dec, fid, best.prune, best.level, cfg, best.source, best.weights)
    return best, trials


def shrink_codebook(chosen: Candidate, target_psnr: float, reference: Tensor, views, *, min_entries: int = 64,
                    backend: str = "auto", on_trial: Callable[[Trial], None] | None = None) -> tuple[Candidate, list[Trial]]:
    """Halve the SH codebook of ``chosen`` (re-encoding its source scene) while the file gets
    smaller and the fidelity stays >= ``target_psnr`` (see :func:`try_configs`)."""
    if chosen.source is None or chosen.source.sh_degree == 0:
        return chosen, []
    sizes, size = [], effective_codebook(chosen.config, len(chosen.source))
    while size // 2 >= min_entries:
        size //= 2
        sizes.append(replace(chosen.config, sh_codebook=size))
    return try_configs(chosen, sizes, target_psnr, reference, views, stage="codebook", backend=backend, on_trial=on_trial)


def coarser_classes(chosen: Candidate, target_psnr: float, reference: Tensor, views, *, backend: str = "auto",
                    on_trial: Callable[[Trial], None] | None = None) -> tuple[Candidate, list[Trial]]:
    """More Gaussians in the low-precision class, then one more bit dropped (see :func:`try_configs`)."""
    c = chosen.config
    ladder = [replace(c, low_fraction=f, low_drop=d) for f, d in ((0.9, c.low_drop), (0.9, c.low_drop + 1))
              if (f, d) != (c.low_fraction, c.low_drop) and f >= c.low_fraction and d >= c.low_drop
              and d < min(c.scale_bits, c.rotation_bits, c.dc_bits)]
    return try_configs(chosen, ladder, target_psnr, reference, views, stage="precision", backend=backend,
                       on_trial=on_trial)


CLASSES = (3, 0.7)  # significance classes of the allocation: most bits dropped, reference quantile
# attribute -> (bits each extra bit costs per Gaussian, probe depth, least, most)
ALLOCATED: dict[str, tuple[int, int, int, int]] = {
    "position_bits": (3, 16, MIN_POSITION_BITS, POSITION_MAX_BITS),
    "scale_bits": (3, 8, 2, 16),
    "rotation_bits": (3, 8, 2, 16),
    "opacity_bits": (1, 8, 2, 16),
    "dc_bits": (3, 8, 2, 16),
}


def _mse(fid: Fidelity) -> float:
    """Mean squared error of the renders (colours in [0, 1]) averaged over the views."""
    return sum(10.0 ** (-p / 10.0) for p in fid.per_view_psnr) / max(1, len(fid.per_view_psnr))


def sensitivity(scene: GaussianScene, weights: Tensor | None, reference: Tensor, views, base: QuantConfig, *,
                backend: str = "auto") -> tuple[dict[str, float], float]:
    """Render error of each attribute alone at its probe depth (:data:`ALLOCATED`), everything
    else at 16 bits (positions 21): ({attribute: MSE added}, MSE with nothing probed)."""
    fine = replace(base, position_bits=POSITION_MAX_BITS, scale_bits=16, rotation_bits=16, opacity_bits=16, dc_bits=16,
                   context_coding=False, low_fraction=0.0, max_drop=0)

    def mse(cfg: QuantConfig) -> float:
        return _mse(fidelity(reference, decode(encode(scene, weights, cfg)[0]), views, backend=backend, with_ssim=False))

    floor = mse(fine)
    return {name: max(0.0, mse(replace(fine, **{name: probe})) - floor)
            for name, (_, probe, _, _) in ALLOCATED.items()}, floor


def _reprobe(added: dict[str, float], budget: float, probe_mse) -> dict[str, float]:
    """Errors at the probe depths, with those too small to measure (below budget / 1000: e.g. an
    attribute the source stored with 8 bits, which 8 bits reproduce almost exactly) replaced
    by the error 2 bits coarser, referred back to the probe depth (/16)."""
    out = dict(added)
    for name, (_, probe, lo, _) in ALLOCATED.items():
        if added[name] < budget / 1000.0 and probe - 2 >= lo:
            out[name] = max(added[name], probe_mse(name, probe - 2) / 16.0)
    return out


def class_weights(scene: GaussianScene, cameras, *, backend: str = "auto") -> Tensor:
    """[N]: each Gaussian's expected render error with scales, rotations and colour at 8 bits
    over their ranges (the weights significance classes are formed from)."""
    from .sensitivity import error_weights, render_sensitivity

    def step(t: Tensor) -> float:
        t = t.detach().double()
        return float((t.amax(0) - t.amin(0)).mean()) / 255.0 if len(t) else 0.0

    sens = render_sensitivity(scene, cameras, backend=backend)
    return error_weights(sens, {"log_scales": step(scene.log_scales), "quats": math.sqrt(2.0) / 255.0,
                                "sh_dc": step(scene.sh_dc)})


def bit_depths(added: dict[str, float], budget: float) -> dict[str, int]:
    """Bit depth per attribute that spends the render-error ``budget`` (MSE) at the fewest bits.

    Model: one more bit quarters an attribute's error (uniform quantizer) and costs ``cost`` bits
    per Gaussian, so the optimum gives each attribute a share of the budget proportional to its
    cost (equal error reduction per stored bit): b = probe + 0.5 log2(error at probe / share)."""
    total = sum(c for c, _, _, _ in ALLOCATED.values())
    out = {}
    for name, (cost, probe, lo, hi) in ALLOCATED.items():
        e = added.get(name, 0.0)
        b = probe + 0.5 * math.log2(e / (budget * cost / total)) if e > 0 and budget > 0 else lo
        out[name] = int(min(hi, max(lo, round(b))))
    return out


def allocate(scene: GaussianScene, weights: Tensor | None, target_psnr: float, reference: Tensor, views, *,
             base: QuantConfig | None = None, cameras=None, classes: tuple[int, float] = CLASSES,
             max_trials: int = 6, max_steps: int = 3, backend: str = "auto",
             on_trial: Callable[[Trial], None] | None = None) -> tuple[Candidate | None, list[Trial]]:
    """Smallest encoding of ``scene`` (no pruning) with fidelity >= ``target_psnr``, by choosing each
    attribute's bit depth: measure each attribute's error (:func:`sensitivity`), split the error
    budget by :func:`bit_depths`, scale the budget (halving/doubling, then bisecting in log
    scale; at most ``max_trials`` encodings), then take single bits off while the target holds
    (at most ``max_steps`` more). None when even the first tries miss.

    ``cameras`` (views the compressor may use): then, from the best so far with one bit more on
    scales, rotations and colour, store those of each Gaussian up to ``classes[0]`` bits coarser
    by its render sensitivity on the cameras (:mod:`compress.scene.sensitivity`; ``.lgs`` v3
    classes, reference quantile ``classes[1]``) and take single bits off again."""
    base = replace(base or QuantConfig(), low_fraction=0.0, low_drop=0, max_drop=0)
    added, floor = sensitivity(scene, weights, reference, views, base, backend=backend)
    budget = 10.0 ** (-target_psnr / 10.0) - floor
    trials: list[Trial] = []
    if budget <= 0:
        return None, trials
    fine = replace(base, position_bits=POSITION_MAX_BITS, scale_bits=16, rotation_bits=16, opacity_bits=16, dc_bits=16,
                   context_coding=False)
    added = _reprobe(added, budget, lambda name, b: max(0.0, _mse(fidelity(
        reference, decode(encode(scene, weights, replace(fine, **{name: b}))[0]), views, backend=backend,
        with_ssim=False)) - floor))
    tried: dict[tuple, Candidate] = {}
    best: Candidate | None = None
    cls_weights = None

    def run(bits: dict[str, int], drop: int = 0) -> Candidate | None:
        """Encode with ``bits`` (and classes up to ``drop`` bits); the candidate when it meets the target."""
        nonlocal best
        key = (tuple(sorted(bits.items())), drop)
        if key not in tried:
            cfg = replace(base, **bits)
            cfg = replace(cfg, max_drop=min(drop, cfg.scale_bits - 1, cfg.rotation_bits - 1, cfg.dc_bits - 1),
                          drop_reference=classes[1])
            data, report = encode(scene, cls_weights if drop else weights, cfg)
            dec = decode(data)
            fid = fidelity(reference, dec, views, backend=backend, with_ssim=False)
            tried[key] = Candidate(data, report, dec, fid, 0.0, -1, cfg, scene, cls_weights if drop else weights)
            trials.append(Trial(0.0, -1, len(data), fid.psnr, "allocate"))
            if on_trial is not None:
                on_trial(trials[-1])
        c = tried[key]
        if c.fidelity.psnr < target_psnr:
            return None
        if best is None or len(c.data) < len(best.data):
            best = c
        return c

    def descend(c: Candidate, drop: int) -> None:
        """One bit less on single attributes of the passing ``c``, the cheapest predicted error first."""
        for _ in range(max_steps):
            have = {k: getattr(c.config, k) for k in ALLOCATED}
            order = sorted((added[k] * 4.0 ** (ALLOCATED[k][1] - have[k] + 1) / ALLOCATED[k][0], k) for k in ALLOCATED
                           if have[k] > ALLOCATED[k][2] and ((tuple(sorted({**have, k: have[k] - 1}.items())), drop)
                                                             not in tried))
            nxt = next((c2 for _, k in order[:2] if (c2 := run({**have, k: have[k] - 1}, drop)) is not None), None)
            if nxt is None:
                return
            c = nxt

    lo, hi = None, None  # log2 budget scales known to pass / fail
    s = 0.0
    while len(tried) < max_trials and (lo is None or hi is None) and abs(s) <= 6:
        if run(bit_depths(added, budget * 2.0 ** s)):
            lo, s = s, s + 1.0
        else:
            hi, s = s, s - 1.0
    while lo is not None and hi is not None and hi - lo > 0.2 and len(tried) < max_trials:
        mid = 0.5 * (lo + hi)
        if run(bit_depths(added, budget * 2.0 ** mid)):
            lo = mid
        else:
            hi = mid
    if best is None:
        return None, trials
    descend(best, 0)
    if cameras and classes[0] > 0:
        cls_weights = class_weights(scene, cameras, backend=backend)
        have = {k: getattr(best.config, k) for k in ALLOCATED}
        finer = {**have, **{k: min(ALLOCATED[k][3], have[k] + 1) for k in ("scale_bits", "rotation_bits", "dc_bits")}}
        c = run(finer, classes[0])
        if c is not None:
            descend(c, classes[0])
    return best, trials
