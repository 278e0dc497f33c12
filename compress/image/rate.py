"""Rate control: fit to a target size (bits per pixel), Gaussian count or PSNR.

Every decision uses real encoded files. Because Gaussians are stored in importance order,
a prefix of a fitted set is itself a valid, coarser fit; so the solver

1. fits a first guess of the count (``first_guess``: a model of the bits per Gaussian of
   version-2 files fitted with the rate term, by count and density; aimed under the budget),
2. encodes, and re-estimates the count from the bytes per Gaussian the real coder gave
   after the fit's QAT with the rate term (``count_for_budget``): a smaller set (the usual
   case: the first guess aims under the budget) is grown to it (new Gaussians at high-error
   pixels), a larger one trimmed to the largest prefix within the budget (size is monotone
   in the count),
3. fine-tunes that set with QAT (and the rate term) on the fixed quantiser (always, once),
   re-encodes, and trims by bisection to the budget; the first fit's best prefix within the
   budget is kept instead when it decodes to a higher PSNR.

For a PSNR target the bisection runs on the decoded render's PSNR instead.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Callable

from torch import Tensor

from render.metrics import psnr
from splat.progress import Progress

from .fit import FitConfig, fit_gaussians
from .fused_loss import FusedLoss
from .gsi import decode, encode
from .model import ImageGaussians
from .quant import BitDepths, QuantSpec

FIRST_SHARE = 0.95  # the first fit's file aims at this share of the budget (the model's spread is ~10%)
GROW_FILL = 1.03  # the grown set's count: this times the budget at the first fit's bytes per Gaussian
TUNE_LR = 0.1  # the refinement stage's learning rates, as a fraction of the fit's (the fit's are large: it starts far from the answer)
BITS_MODEL = (7.8, 3.76, 233.0)  # bits per Gaussian: a + b log2(pixels per Gaussian) + c / sqrt(count)
SLOPE_FRACTION = 0.85  # rd_slope compares a prefix with this fraction of it
HEADER_BITS = 3200  # the header and quantiser of a file (about 400 bytes)
GROW_STEP = 2.0  # one growth stage at most doubles the count
# The rate term's weight (lambda, loss per bpp) is the price of a bit: the slope of the loss
# against the rate at the target. The fitted files' loss falls about as a power of the rate,
# D ~ R^-beta with beta about 0.5 (Kodak, 0.25-1.0 bpp), so the slope beta D / R falls as
# R^-(1 + beta); the weight follows it, scaled to the best measured weight at one rate, with
# a floor (at 1.0 bpp the law's 0.0053 suits smooth images, textured ones lose 0.3-0.4 dB).
LAMBDA_REF = (0.5, 0.015)  # (bpp, weight): the weight at one rate (bench/image_rd.py --rate-weight sweeps)
LAMBDA_EXPONENT = 1.5  # 1 + beta: the weight falls as bpp^-LAMBDA_EXPONENT
LAMBDA_RANGE = (0.015, 0.2)  # the weight is clamped to this range (below 0.015 textured images lose at 1.0 bpp)
POS_STEP_REF = 0.25  # px: the position grid bits_per_gaussian's model was fitted with


def coding_for(bpp: float) -> tuple[float, BitDepths]:
    """The rate term's weight and the quantiser's bit depths for a file of ``bpp`` bits per
    pixel.

    Weight: the slope model above (``LAMBDA_REF``, ``LAMBDA_EXPONENT``). Bit depths:
    ``BitDepths``' defaults at every rate. The 1/8-px position grid ended above 1/4 px at 0.25,
    0.5 and 1.0 bpp (+0.10, +0.06, +0.29 dB mean on four Kodak images, bench/results/
    image_pos_step.json), and 1/2 px below it at 0.5 bpp (-0.5 dB); a grid that follows the
    spacing (1/2 px at 0.25 bpp) was level with 1/4 px there. Shape and colour: an error
    costs about the same per pixel at every density, and the step where its marginal loss
    meets the weight times its marginal bits (step^2 ~ weight / pixels per Gaussian) moves
    little, as the weight and the pixels per Gaussian rise together at lower rates."""
    bpp = max(float(bpp), 1e-3)
    lam = LAMBDA_REF[1] * (bpp / LAMBDA_REF[0]) ** -LAMBDA_EXPONENT
    lam = min(LAMBDA_RANGE[1], max(LAMBDA_RANGE[0], lam))
    return lam, BitDepths()


def with_coding(cfg: FitConfig, bpp: float) -> FitConfig:
    """``cfg`` with :func:`coding_for`'s weight and bit depths where it leaves them to rate
    control (None); explicit settings are kept."""
    lam, bits = coding_for(bpp)
    return replace(cfg, rate_weight=lam if cfg.rate_weight is None else cfg.rate_weight,
                   bits=bits if cfg.bits is None else cfg.bits)


@dataclass
class RateResult:
    gaussians: ImageGaussians  # exactly what ``data`` decodes to
    spec: QuantSpec
    data: bytes
    psnr: float
    fit_steps: int
    seconds: float
    reached: bool  # False when a PSNR target could not be met within max_gaussians
    notes: dict = field(default_factory=dict)  # what rate control measured and chose (for benchmarks)

    def bpp(self) -> float:
        return len(self.data) * 8.0 / (self.gaussians.width * self.gaussians.height)


def _bisect(lo: int, hi: int, ok: Callable[[int], bool]) -> int:
    """Largest n in [lo, hi] with ok(n), assuming ok is monotone (True then False); lo if none."""
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if ok(mid):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _encode_prefix(g: ImageGaussians, spec: QuantSpec, n: int, meta: dict | None) -> bytes:
    return encode(g.prefix(n), spec, extra=meta)


def largest_within(lo: int, hi: int, size: Callable[[int], int], max_size: int) -> int:
    """Largest n in [lo, hi] with size(n) <= max_size, for size non-decreasing in n; lo if none.

    The same answer as a bisection, in fewer calls when size is close to linear (file bytes
    against the prefix length): each probe interpolates between the bracket's known sizes,
    and a probe that does not halve the bracket is followed by a plain bisection step."""
    known = {lo: size(lo)}
    if known[lo] > max_size:
        return lo
    known[hi] = size(hi) if hi != lo else known[lo]
    if known[hi] <= max_size:
        return hi
    interpolate = True
    while hi - lo > 1:  # size(lo) <= max_size < size(hi)
        if interpolate:
            frac = (max_size - known[lo]) / max(1, known[hi] - known[lo])
            mid = min(hi - 1, max(lo + 1, lo + int(frac * (hi - lo))))
        else:
            mid = (lo + hi) // 2
        width = hi - lo
        known[mid] = size(mid)
        if known[mid] <= max_size:
            lo = mid
        else:
            hi = mid
        interpolate = not interpolate or 2 * (hi - lo) <= width
    return lo


class _Files:
    """The encoded file of each prefix rate control looks at, and its decoded render's PSNR
    against ``target`` [H,W,C], each made once: the same file is asked for several times (its
    size in the prefix search, its PSNR in the comparison with the first fit, the result). A
    prefix is known by its tensors' storage (a prefix of a set shares it) and its length;
    the sets are kept, so no storage is reused while the cache lives."""

    def __init__(self, meta: dict | None, target: Tensor | None = None) -> None:
        self.meta = meta
        self.target = target
        self._data: dict[tuple, tuple[ImageGaussians, QuantSpec, bytes]] = {}
        self._decoded: dict[tuple, tuple[ImageGaussians, float]] = {}

    @staticmethod
    def _key(g: ImageGaussians, spec: QuantSpec, n: int) -> tuple:
        return (g.means.data_ptr(), g.scales.data_ptr(), g.rotations.data_ptr(), g.colors.data_ptr(), id(spec),
                max(0, min(int(n), len(g))))

    def data(self, g: ImageGaussians, spec: QuantSpec, n: int | None = None) -> bytes:
        """The file of the first ``n`` (default: all) Gaussians of ``g``."""
        n = len(g) if n is None else n
        key = self._key(g, spec, n)
        if key not in self._data:
            self._data[key] = (g, spec, _encode_prefix(g, spec, n, self.meta))
        return self._data[key][2]

    def decoded(self, g: ImageGaussians, spec: QuantSpec) -> tuple[ImageGaussians, float]:
        """What the file of ``g`` decodes to, and the PSNR (dB) of its render against ``target``."""
        key = self._key(g, spec, len(g))
        if key not in self._decoded:
            dec = decode(self.data(g, spec))
            self._decoded[key] = (dec, float(psnr(dec.render().clamp(0, 1), self.target)))
        return self._decoded[key]


def largest_prefix_within(g: ImageGaussians, spec: QuantSpec, max_bytes: int, meta: dict | None = None,
                          files: _Files | None = None) -> int:
    """Largest prefix length whose encoded file has at most ``max_bytes`` bytes (>= 1).
    ``files``: a cache of encoded prefixes (with ``meta`` its own)."""
    files = files or _Files(meta)
    return largest_within(1, len(g), lambda n: len(files.data(g, spec, n)), max_bytes)


def _psnr_of(g: ImageGaussians, spec: QuantSpec, meta: dict | None, target: Tensor, files: _Files | None = None) -> float:
    """PSNR (dB) of the decoded file of ``g`` against ``target`` [H,W,C] (``files``: a cache
    made with the same ``meta`` and ``target``)."""
    return (files or _Files(meta, target)).decoded(g, spec)[1]


def bits_per_gaussian(n: int, pixels: int, pos_step: float = POS_STEP_REF) -> float:
    """Bits per Gaussian of a fitted file of ``n`` Gaussians over ``pixels`` pixels, header
    aside: more where the Gaussians are sparse (longer position codes, larger shapes), and
    more in small sets (the coder's adaptive contexts have less to learn from). Fitted on v2
    files fitted with the rate term (full-size Kodak at 0.25, 0.5 and 1.0 bpp, 384x256 and
    128x128 crops): about 40, 34 and 28 bits at 768x512 and 0.25, 0.5 and 1.0 bpp, within
    about 10% per image. A position grid of ``pos_step`` px other than the model's 1/4 px adds
    a bit per coordinate per halving (measured: 2.1 bits per Gaussian from 1/2 to 1/4 px)."""
    n = max(1, n)
    per = BITS_MODEL[0] + BITS_MODEL[1] * math.log2(max(1.0, pixels / n)) + BITS_MODEL[2] / math.sqrt(n)
    per += 2.0 * math.log2(POS_STEP_REF / pos_step)
    return min(80.0, max(16.0, per))


def expected_bpp(n: int, pixels: int) -> float:
    """Bits per pixel of a fitted file of ``n`` Gaussians over ``pixels`` pixels (the
    :func:`bits_per_gaussian` model, header included)."""
    n = max(1, int(n))
    return (n * bits_per_gaussian(n, pixels) + HEADER_BITS) / max(1, pixels)


def first_guess(bpp: float, pixels: int, pos_step: float = POS_STEP_REF) -> int:
    """First count for a ``bpp`` target: the count whose file fills ``FIRST_SHARE`` of the
    budget at :func:`bits_per_gaussian`, so that the refinement stage grows the first fit to
    the budget rather than trims it (a prefix loses far more than its share of the bits:
    the Gaussians were fitted jointly, and in the ``sum`` rule the others do not cover for
    the dropped ones)."""
    bits = max(0.0, FIRST_SHARE * bpp * pixels - HEADER_BITS)
    n = bits / 33.0
    for _ in range(30):  # fixed point of n = bits / bits_per_gaussian(n) (a contraction)
        n = bits / bits_per_gaussian(int(n), pixels, pos_step)
    return max(8, int(n))


def rd_slope(g: ImageGaussians, spec: QuantSpec, n: int, target: Tensor, ssim_weight: float, meta: dict | None = None,
             fraction: float = SLOPE_FRACTION) -> float:
    """The rate-distortion slope of ``g`` at prefix ``n`` (a measurement for choosing the rate
    term's weight; rate control does not call it): the fit's loss (L1 + ``ssim_weight``
    (1 - SSIM) of the decoded render against ``target`` [H,W,C]) lost per bit per pixel saved
    when the prefix is cut to ``fraction`` of ``n`` (>= 0; loss units per bpp, those of
    ``FitConfig.rate_weight``)."""
    loss = FusedLoss(target.float().contiguous(), ssim_weight)
    pixels = g.width * g.height
    pts = []
    for m in sorted({max(1, int(fraction * n)), max(1, n)}):
        data = _encode_prefix(g, spec, m, meta)
        pts.append((len(data) * 8.0 / pixels, loss(decode(data).render().clamp(0, 1).numpy())[0]))
    if len(pts) < 2:
        return 0.0
    (r0, d0), (r1, d1) = pts
    return max(0.0, (d0 - d1) / max(r1 - r0, 1e-9))


def count_for_budget(g: ImageGaussians, spec: QuantSpec, max_bytes: int, meta: dict | None = None,
                     max_gaussians: int | None = None, size: int | None = None) -> int:
    """The count ``max_bytes`` allows at the bytes per Gaussian of ``g``'s real encoding
    (at most ``GROW_STEP`` times ``len(g)``, and at most ``max_gaussians``). ``size``: the
    bytes of that encoding when the caller already has them."""
    per = (len(_encode_prefix(g, spec, len(g), meta)) if size is None else size) / len(g)
    n = min(int(max_bytes / per), int(len(g) * GROW_STEP))
    return max(1, min(n, max_gaussians) if max_gaussians else n)


def fit_rate(target: Tensor, *, bpp: float | None = None, gaussians: int | None = None, psnr_db: float | None = None,
             cfg: FitConfig | None = None, max_gaussians: int | None = None, meta: dict | None = None,
             progress: Progress | None = None) -> RateResult:
    """Fit ``target`` [H,W,C] to exactly one of the targets; see module doc.
    ``progress``: one stage per fit ("fit", "fine-tune", ...)."""
    if sum(x is not None for x in (bpp, gaussians, psnr_db)) != 1:
        raise ValueError("give exactly one of bpp, gaussians, psnr_db")
    cfg = cfg or FitConfig()
    h, w = int(target.shape[0]), int(target.shape[1])
    pixels = h * w
    # the weight and quantiser from the target rate (a count target: the rate its file will
    # have by the bits model; a PSNR target: its first count's)
    if bpp is None:
        n = gaussians if gaussians is not None else min(max_gaussians or max(64, pixels // 16), max(64, pixels // 128))
    cfg = with_coding(cfg, bpp if bpp is not None else expected_bpp(n, pixels))
    steps_total = 0
    seconds = 0.0
    notes: dict = {"rate_weight": cfg.rate_weight, "bits": asdict(cfg.bits)}
    files = _Files(meta, target)

    def run(stage: str, n: int, c: FitConfig, init=None, spec=None):
        nonlocal steps_total, seconds
        if progress is not None:
            progress.start(stage, c.steps)
        g, sp, rep = fit_gaussians(target, n, c, init=init, spec=spec, progress=progress)
        if progress is not None:
            progress.end()
        steps_total += rep.steps
        seconds += rep.seconds
        return g, sp, rep

    tune = replace(cfg, steps=max(20, int(cfg.steps * cfg.finetune_fraction)), warmup_end=0.0, growth_end=0.5,
                   growth_rounds=2, refill_every=0.0, lr_means=cfg.lr_means * TUNE_LR,
                   lr_scales=cfg.lr_scales * TUNE_LR, lr_rotations=cfg.lr_rotations * TUNE_LR,
                   lr_colors=cfg.lr_colors * TUNE_LR)
    reached = True
    if gaussians is not None:
        if gaussians < 1:
            raise ValueError("the Gaussian count must be >= 1")
        g, spec, _ = run("fit", gaussians, cfg)
    elif bpp is not None:
        if not bpp > 0:
            raise ValueError("bpp must be positive")
        budget = int(bpp * pixels / 8)
        n0 = first_guess(bpp, pixels, cfg.bits.pos_step)
        if max_gaussians:
            n0 = min(n0, max_gaussians)
        g, spec, _ = run("fit", n0, cfg)
        # one refinement stage, always (a fit that lands under the budget would otherwise keep
        # the unused bytes). The first fit aims under the budget, so the stage normally grows
        # it (new Gaussians at high-error pixels) to the count the budget allows at the real
        # coder's bytes per Gaussian after the fit's QAT, times GROW_FILL: the stage's rate
        # term and the new Gaussians lower the bytes per Gaussian again, and cutting a prefix
        # afterwards costs far more than its share of the bits, so the stage aims at the
        # budget itself and the final bisection only removes what its QAT left over. A first
        # fit over the budget is cut to its largest prefix within it and fine-tuned. The first
        # fit's best prefix is kept when the refined set is no better.
        first_bytes = len(files.data(g, spec))
        n_first = len(g) if first_bytes <= budget else largest_prefix_within(g, spec, budget, meta, files)
        first = g.prefix(n_first)
        notes.update(first_count=len(g), first_bytes=first_bytes, budget=budget, first_prefix=n_first)
        if first_bytes > budget:
            g, spec, _ = run("fine-tune", n_first, tune, init=first, spec=spec)
            notes["stage"] = "fine-tune"
        else:
            n = max(len(g), count_for_budget(g, spec, int(budget * GROW_FILL), meta, max_gaussians, first_bytes))
            stage = "grow" if n > len(g) else "fine-tune"
            g, spec, _ = run(stage, n, tune, init=g, spec=spec)
            notes["stage"] = stage
        notes["tuned_bytes"] = len(files.data(g, spec))
        g = g.prefix(largest_prefix_within(g, spec, budget, meta, files))
        if _psnr_of(first, spec, meta, target, files) > _psnr_of(g, spec, meta, target, files):
            g = first
            notes["kept_first"] = True
    else:
        if not psnr_db > 0:
            raise ValueError("the PSNR target must be positive (dB)")
        cap = max_gaussians or max(64, pixels // 16)
        n0 = min(cap, max(64, pixels // 128))
        g, spec, _ = run("fit", n0, cfg)
        def quality(m: int) -> float:
            return _psnr_of(g.prefix(m), spec, meta, target, files)

        while quality(len(g)) < psnr_db:
            if len(g) >= cap:
                reached = False
                break
            g, spec, _ = run("grow", min(cap, int(len(g) * 1.6)), tune, init=g, spec=spec)
        if reached:
            # smallest prefix that meets the target (PSNR grows with the prefix), then fine-tune it
            n = 1 + _bisect(0, len(g) - 1, lambda m: m == 0 or quality(m) < psnr_db)
            if n < len(g):
                g2, _, _ = run("fine-tune", n, tune, init=g.prefix(n), spec=spec)
                if _psnr_of(g2, spec, meta, target, files) >= psnr_db:
                    g = g2
                else:
                    g = g.prefix(n)
    dec, final_psnr = files.decoded(g, spec)
    return RateResult(dec, spec, files.data(g, spec), final_psnr, steps_total, seconds, reached, notes)
