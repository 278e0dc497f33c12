"""Rate control: quality presets and the search for the smallest file that meets a fidelity.

Fidelity is the PSNR of the compressed scene's renders against the original's renders on
held-out views (see :mod:`compress.scene.views`). For a fixed quantization level fidelity
falls as the prune ratio grows, so :func:`search` bisects the prune ratio at each of a
few quantization levels and keeps the smallest encoding that meets the target.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Callable

from torch import Tensor

from splat.scene import GaussianScene

from .codec import QuantConfig, decode, encode
from .eval import Fidelity, fidelity
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


TOLERANCE = 0.3  # dB: --target-psnr P aims at [P, P + TOLERANCE]


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


def trim_to_window(chosen: Candidate, target_psnr: float, reference: Tensor, views, *, tolerance: float = TOLERANCE,
                   max_encodes: int = 8, backend: str = "auto",
                   on_trial: Callable[[Trial], None] | None = None) -> tuple[Candidate, list[Trial]]:
    """``chosen`` is above [target, target + tolerance] dB: re-encode its source scene with every
    step size made coarser by one factor 2^d (d bits off each attribute's depth, down to its
    least depth; precision classes kept), d found by the secant of the measured fidelity against d (about 6 dB a bit
    to start; inside the bracket once one encode fell below the window). Returns the smallest
    encoding in the window, else the smallest at or above the target (``chosen`` when none
    is), and the trials."""
    from .codec import MIN_POSITION_BITS

    c = chosen.config
    drop = max(c.low_drop if c.low_fraction > 0 else 0, c.max_drop)
    # each attribute's least depth: the position floor, one bit left (after the classes' drops)
    least = {"position_bits": float(MIN_POSITION_BITS), "opacity_bits": 1.0,
             **{k: 1.0 + drop for k in ("scale_bits", "rotation_bits", "dc_bits")}}
    most = max(getattr(c, k) - lo for k, lo in least.items())  # beyond it no attribute moves
    goal = target_psnr + 0.5 * tolerance
    best, trials = chosen, []
    pts = [(0.0, chosen.fidelity.psnr)]  # (bits off, measured)
    if chosen.source is None or most <= 0:
        return best, trials
    d = min(most, (chosen.fidelity.psnr - goal) / 6.02)
    for _ in range(max_encodes):
        cfg = replace(c, **{k: max(min(lo, getattr(c, k)), getattr(c, k) - d) for k, lo in least.items()})
        data, report = encode(chosen.source, chosen.weights, cfg)
        dec = decode(data)
        fid = fidelity(reference, dec, views, backend=backend, with_ssim=False)
        trials.append(Trial(chosen.prune, chosen.level, len(data), fid.psnr, "trim"))
        if on_trial is not None:
            on_trial(trials[-1])
        cand = Candidate(data, report, dec, fid, chosen.prune, chosen.level, cfg, chosen.source, chosen.weights)
        in_window = _landed(cand, target_psnr, tolerance)
        if fid.psnr >= target_psnr and (not in_window, len(data)) < (not _landed(best, target_psnr, tolerance),
                                                                     len(best.data)):
            best = cand
        if in_window:
            break
        pts.append((d, fid.psnr))
        over = [(x, m) for x, m in pts if m > target_psnr + tolerance]
        under = [(x, m) for x, m in pts if m < target_psnr]
        if under:  # bracketed: interpolate, kept inside the middle 60% so the bracket shrinks
            (x0, m0), (x1, m1) = max(over), min(under)
            t = min(0.8, max(0.2, (m0 - goal) / max(m0 - m1, 1e-9)))
            d = x0 + t * (x1 - x0)
        else:
            (x0, m0), (x1, m1) = pts[-2], pts[-1]
            slope = max(1.0, (m0 - m1) / max(x1 - x0, 1e-9))  # dB lost per bit off
            if d >= most:
                break
            d = min(most, x1 + (m1 - goal) / slope)
    return best, trials


def _landed(c: Candidate, target: float, tolerance: float) -> bool:
    return c.fidelity is not None and target <= c.fidelity.psnr <= target + tolerance
