"""Rate control on a model of the render error: step sizes from a few probe renders, one encode
to verify, one correction.

Model. Quantizing one attribute a with b bits (round(2^b) - 1 steps over its range; ``.lgs``
version 4 stores any number of steps) adds a render error to view v of about

    e_a,v(b) = e_a,v(b_a) * 2^(-k_a (b - b_a))

(k_a = 2 for a uniform quantizer well above the data's own precision: one more bit quarters the
squared error). Errors of different attributes add, and a fixed ``floor`` (the SH codebook) comes
on top. e_a,v and k_a are measured by rendering the scene with only attribute a quantized
(simulated: quantize and dequantize, no entropy coding) at two depths, on the held-out views at
a reduced resolution. The full-resolution error is the model's times a factor rho (the same for
every attribute), which the verifying encode measures.

Allocation. Each more bit of attribute a costs ``cost_a`` bits per Gaussian (its channels). At
the cheapest allocation every attribute buys error at the same price (equal slope):
cost_a = lambda k_a ln2 E_a(b_a), E_a the view-mean error, so
b_a = b_a' + log2(lambda k_a ln2 E_a(b_a') / cost_a) / k_a; lambda is bisected until the predicted
mean PSNR over the views equals the target.

Then the quantized scene itself (quantize and dequantize, classes included, no entropy coding)
is rendered on the fidelity views at full resolution; when its PSNR is outside [target, target +
tolerance] the model is solved again for an aim corrected by the secant of the checks so far
(the first by the measured - predicted difference, that is rho; once two checks bracket the
window, interpolated inside the bracket). When one step of a coarse quantizer spans the window,
one attribute alone is searched on its own steps (:func:`_vernier`). The first depths whose
render lands in the window are encoded once: the decoded scene is what was rendered (with an
SH rest, up to its codebook), so that encode verifies; should it still miss, the same correction
continues on encodes (at most ``max_encodes``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, replace
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from splat.camera import Camera
from splat.scene import GaussianScene

from .codec import MIN_POSITION_BITS, QuantConfig, decode, encode
from .eval import fidelity, render_views
from .positions import PositionGrid
from .quantize import UniformQuant, decode_rotations, decode_vectree_sh, encode_rotations, vectree_sh
from .rate import Candidate, Trial, effective_codebook
from compress.uniform import levels_for_bits

# attribute -> (bits per Gaussian each more bit costs, first probe depth, least, most)
ATTRIBUTES: dict[str, tuple[int, float, float, float]] = {
    "position_bits": (3, 14.0, float(MIN_POSITION_BITS), 21.0),
    "scale_bits": (3, 8.0, 2.0, 16.0),
    "rotation_bits": (3, 8.0, 2.0, 16.0),
    "opacity_bits": (1, 8.0, 2.0, 16.0),
    "dc_bits": (3, 8.0, 2.0, 16.0),
}
MIN_SLOPE, MAX_SLOPE = 0.5, 2.5  # k: the error falls 2^-k per bit (2 for a uniform quantizer)
TINY = 1e-14  # an error below this (MSE of colours in [0, 1]) counts as none


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-6, 1.0 - 1e-6)
    return np.log(p) - np.log1p(-p)


def quantized(scene: GaussianScene, bits: dict[str, float], sh_rest: Tensor | None = None,
              factors: np.ndarray | None = None) -> GaussianScene:
    """``scene`` with the attributes named in ``bits`` quantized and dequantized the way
    :func:`codec.encode` / :func:`codec.decode` do (no entropy coding); ``sh_rest`` replaces the
    SH rest (e.g. its codebook-coded version); ``factors`` [N]: per-Gaussian grid factors of the
    scales, rotations and colour (precision classes)."""
    from .precision import coarsen_by_factor, refine_by_factor

    def cls(q: np.ndarray, levels: int) -> np.ndarray:
        return q if factors is None else refine_by_factor(coarsen_by_factor(q, factors), factors, levels)

    out = {}
    if "position_bits" in bits:
        x = scene.means.detach().double().numpy()
        g = PositionGrid.fit(x, bits["position_bits"])
        out["means"] = torch.from_numpy(g.dequantize(g.quantize(x)))
    if "opacity_bits" in bits:
        p = scene.opacities.detach().double().numpy()[:, None]
        q = UniformQuant.fit(p, bits["opacity_bits"])
        out["opacity_logits"] = torch.from_numpy(_logit(q.dequantize(q.quantize(p))[:, 0].astype(np.float64))).float()
    for key, attr in (("scale_bits", "log_scales"), ("dc_bits", "sh_dc")):
        if key in bits:
            v = getattr(scene, attr).detach().double().numpy()
            q = UniformQuant.fit(v, bits[key])
            out[attr] = torch.from_numpy(q.dequantize(cls(q.quantize(v), q.levels)).reshape(v.shape))
    if "rotation_bits" in bits:
        lev = levels_for_bits(bits["rotation_bits"])
        idx, vals = encode_rotations(scene.quats.detach().double().numpy(), 1, levels=lev)
        out["quats"] = torch.from_numpy(decode_rotations(idx, cls(vals, lev), 1, levels=lev))
    if sh_rest is not None:
        out["sh_rest"] = sh_rest
    return scene.replace(**out) if out else scene


def _per_view_mse(ref: Tensor, scene: GaussianScene, views: Sequence[Camera], backend: str) -> np.ndarray:
    out = render_views(scene, views, backend=backend)
    return ((out - ref) ** 2).reshape(len(views), -1).mean(1).double().numpy()


def _own_renders(scene: GaussianScene, teacher: GaussianScene | None, views: Sequence[Camera], ref: Tensor,
                 backend: str) -> Tensor:
    """What a probe's quantization error is measured against: the unquantized ``scene``'s own
    renders of ``views`` (``ref`` itself without a teacher). Measuring against the teacher and
    subtracting the scene's own error instead leaves a difference of two near-equal errors where
    that error (e.g. of pruning) dominates: noise, or nothing, and a model that misses by dB."""
    return ref if teacher is None else render_views(scene, views, backend=backend)


@dataclass
class ErrorModel:
    """Per attribute: anchor depth b_a, per-view error there e_a,v [V] and slope k_a; ``floor``
    [V] the error of what is not allocated; ``shift_db``: measured - predicted PSNR (10 log10 of
    1/rho) once an encode has been measured."""

    anchor: dict[str, float]
    error: dict[str, np.ndarray]
    slope: dict[str, float]
    floor: np.ndarray
    shift_db: float = 0.0
    sh_rest: Tensor | None = None  # the codebook-coded SH rest the floor was measured with
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)

    def view_mse(self, bits: dict[str, float]) -> np.ndarray:
        """Predicted error per view [V] (probe resolution, before the shift)."""
        tot = self.floor.copy()
        for a, b in bits.items():
            tot = tot + self.error[a] * 2.0 ** (-self.slope[a] * (b - self.anchor[a]))
        return tot

    def psnr(self, bits: dict[str, float]) -> float:
        """Predicted mean PSNR over the views (dB) at full resolution (with the measured shift)."""
        mse = np.maximum(self.view_mse(bits), 1e-10)
        return float(np.mean(np.minimum(100.0, -10.0 * np.log10(mse)))) + self.shift_db

    def depths(self, lam: float) -> dict[str, float]:
        """Equal-slope depths for the Lagrange multiplier ``lam`` (bits per Gaussian per unit MSE)."""
        out = {}
        for a, (cost, _, lo, hi) in ATTRIBUTES.items():
            lo, hi = self.bounds.get(a, (lo, hi))
            e, k = float(np.mean(self.error[a])), self.slope[a]
            if e <= TINY:  # nothing measurable even at the coarsest probe: stay there
                out[a] = float(min(hi, max(lo, self.anchor[a])))
                continue
            b = self.anchor[a] + math.log2(lam * k * math.log(2.0) * e / cost) / k
            out[a] = float(min(hi, max(lo, b)))
        return out

    def solve(self, target_psnr: float) -> dict[str, float]:
        """Cheapest depths (equal slope) whose predicted PSNR is ``target_psnr`` (the finest
        when even they miss it)."""
        lo, hi = -60.0, 80.0  # log2 lambda
        if self.psnr(self.depths(2.0 ** hi)) < target_psnr:
            return self.depths(2.0 ** hi)
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if self.psnr(self.depths(2.0 ** mid)) >= target_psnr:
                hi = mid
            else:
                lo = mid
        return self.depths(2.0 ** hi)


def probe_views(views: Sequence[Camera], scale: float) -> list[Camera]:
    return list(views) if scale == 1.0 else [c.scaled(scale) for c in views]


def _probe_reference(source: GaussianScene, views: Sequence[Camera], scale: float, reference: Tensor | None,
                     backend: str) -> tuple[list[Camera], Tensor]:
    """The probe views at ``scale`` and their renders of ``source`` (``reference`` itself at scale 1)."""
    pv = probe_views(views, scale)
    if reference is not None and scale == 1.0:
        return pv, reference
    return pv, render_views(source, pv, backend=backend)


def measure_model(scene: GaussianScene, weights: Tensor | None, views: Sequence[Camera], target_psnr: float,
                  base: QuantConfig, *, scale: float = 1.0, backend: str = "auto", teacher: GaussianScene | None = None,
                  reference: Tensor | None = None,
                  on_probe: Callable[[str, float], None] | None = None) -> ErrorModel:
    """Fit the :class:`ErrorModel` of ``scene`` from probe renders of ``views`` at ``scale``:
    the SH rest coded as ``base`` codes it (the floor), then each attribute alone at its first
    probe depth, the model solved for ``target_psnr``, and each attribute probed again at the
    solved depth (the slope from the two probes, the anchor at the second). ``teacher``: the
    scene fidelity is measured against when it is not ``scene`` itself (e.g. the original of a
    pruned scene): its error joins the floor, and each probe measures its quantization error
    against the unquantized ``scene``'s own renders (the two errors add: they are independent).
    ``reference``: the renders [V,H,W,3] of ``views`` the fidelity is measured against, reused
    when ``scale`` is 1.

    The probes render at the fidelity's own resolution by default: a render's cost is nearly all
    per Gaussian (projection, sorting), not per pixel, and the error of small Gaussians and fine
    steps grows with the resolution (probes at half resolution predicted 1.2 dB too high)."""
    pv, ref = _probe_reference(scene if teacher is None else teacher, views, scale, reference, backend)
    sh = _coded_sh_rest(scene, weights, base)
    floor = _per_view_mse(ref, quantized(scene, {}, sh), pv, backend) \
        if sh is not None or teacher is not None else np.zeros(len(pv))
    own = _own_renders(scene, teacher, pv, ref, backend)

    def probe(a: str, b: float) -> np.ndarray:
        e = _per_view_mse(own, quantized(scene, {a: b}), pv, backend)
        if on_probe is not None:
            on_probe(a, b)
        return e

    first = {a: probe(a, p) for a, (_, p, _, _) in ATTRIBUTES.items()}
    model = ErrorModel({a: p for a, (_, p, _, _) in ATTRIBUTES.items()}, first, {a: 2.0 for a in ATTRIBUTES}, floor,
                       sh_rest=sh)
    for a, (_, p, lo, _) in ATTRIBUTES.items():  # nothing measurable at the probe depth: probe 3 bits coarser
        if float(np.mean(first[a])) <= TINY and p - 3 >= lo:
            model.error[a], model.anchor[a] = probe(a, p - 3), p - 3
    want = model.solve(target_psnr)
    for a in ATTRIBUTES:
        b1, e1 = model.anchor[a], float(np.mean(model.error[a]))
        b2 = round(want[a] * 4) / 4
        if abs(b2 - b1) < 0.75:  # too close to measure a slope: probe 1.5 bits to the far side instead
            b2 = b1 + (1.5 if want[a] >= b1 else -1.5)
        e2v = probe(a, b2)
        e2 = float(np.mean(e2v))
        if e1 > TINY and e2 > TINY:
            model.slope[a] = float(min(MAX_SLOPE, max(MIN_SLOPE, math.log2(e1 / e2) / (b2 - b1))))
        if e2 > TINY and abs(want[a] - b2) <= abs(want[a] - b1):
            model.anchor[a], model.error[a] = b2, e2v
    return model


def _coded_sh_rest(scene: GaussianScene, weights: Tensor | None, base: QuantConfig) -> Tensor | None:
    """The SH rest after the codebook coding :func:`codec.encode` applies with ``base`` (None without SH rest)."""
    if scene.sh_rest.shape[1] == 0:
        return None
    n = len(scene)
    w = np.ones(n) if weights is None else torch.as_tensor(weights).detach().double().numpy().reshape(n)
    rest = scene.sh_rest.detach().float().numpy()
    code = vectree_sh(rest, w, codebook_size=effective_codebook(base, n), direct_fraction=base.sh_direct_fraction,
                      codebook_bits=base.sh_codebook_bits, direct_bits=base.sh_direct_bits, iters=base.kmeans_iters,
                      seed=base.seed)
    return torch.from_numpy(decode_vectree_sh(code).reshape(rest.shape))


CLASSED = {"scale_bits": "log_scales", "rotation_bits": "quats", "dc_bits": "sh_dc"}  # attributes with classes
CLASS_DROPS, CLASS_REFERENCE = 3, 0.7  # classes 0..3 by render sensitivity, reference quantile
CLASS_STEPS = (0.5, 1.0)  # class spacings the model compares (bits per class)
CHECK_MARGIN = 0.02  # dB: how far inside the window a render check must land
SENSITIVITY_CAMERAS = 12  # at most this many views estimate the per-Gaussian render sensitivity


def _spread(cameras: Sequence[Camera], n: int) -> list[Camera]:
    """At most ``n`` of ``cameras``, evenly spread over the list."""
    cams = list(cameras)
    if len(cams) <= n:
        return cams
    return [cams[int(i * len(cams) / n)] for i in range(n)]


@dataclass
class ClassPlan:
    """Precision classes on the model: per-Gaussian weights to form them, the class spacing (bits;
    0: no classes), the predicted depths and bits per Gaussian."""

    weights: Tensor | None
    step: float
    bits: dict[str, float]
    rate: float
    model: ErrorModel | None = None

    def factors(self, cfg: QuantConfig) -> np.ndarray | None:
        """Grid factor per Gaussian [N] (input order) that :func:`codec.encode` applies with ``cfg``."""
        from .codec import _class_factors
        from .precision import significance_classes

        if self.weights is None or cfg.max_drop == 0:
            return None
        cls = significance_classes(self.weights.double().numpy(), cfg.max_drop, cfg.drop_reference)
        finest = min(levels_for_bits(cfg.scale_bits), levels_for_bits(cfg.rotation_bits), levels_for_bits(cfg.dc_bits))
        return np.asarray(_class_factors(cfg, list(range(cfg.max_drop + 1)), finest), dtype=np.int64)[cls]

    def config(self, cfg: QuantConfig) -> QuantConfig:
        """``cfg`` with these classes (unchanged without them)."""
        if self.weights is None:
            return cfg
        drops = min(CLASS_DROPS, int(min(cfg.scale_bits, cfg.rotation_bits, cfg.dc_bits)) - 1)
        return replace(cfg, max_drop=max(0, drops), drop_reference=CLASS_REFERENCE, class_step=self.step)


def _rate(bits: dict[str, float], saved: float = 0.0) -> float:
    """Model bits per Gaussian of the allocated attributes (``saved``: what classes take off)."""
    return sum(ATTRIBUTES[a][0] * b for a, b in bits.items()) - saved


def plan_classes(scene: GaussianScene, model: ErrorModel, cameras: Sequence[Camera], views: Sequence[Camera],
                 target_psnr: float, *, backend: str = "auto", scale: float = 1.0, teacher: GaussianScene | None = None,
                 reference: Tensor | None = None, max_cameras: int = SENSITIVITY_CAMERAS,
                 on_probe: Callable[[str, float], None] | None = None) -> ClassPlan:
    """Whether and how far apart to store scales, rotations and colour coarser per Gaussian.

    From the render sensitivity of every Gaussian on ``cameras``
    (:func:`sensitivity.render_sensitivity`), each Gaussian gets a class c in 0..3 (fewer where
    it matters more; :func:`precision.significance_classes`); with spacing t its grid is
    f = round(2^(c t)) times coarser, which saves mean log2 f bits per channel. For each spacing
    in :data:`CLASS_STEPS` one probe render (on ``views`` at ``scale``, the classed attributes
    together at the depths solved without classes, classes applied) measures the factor g by
    which the classes raise their summed error; the model with that factor is solved again, and
    the spacing with the fewest predicted bits at ``target_psnr`` wins (0: none). The
    sensitivities use at most ``max_cameras`` of ``cameras`` (evenly spread): the classes are a
    factor 4 of sensitivity apart, far coarser than the estimate's noise."""
    from .precision import significance_classes
    from .sensitivity import error_weights, render_sensitivity

    plain = model.solve(target_psnr)
    best = ClassPlan(None, 0.0, plain, _rate(plain), model)
    if not cameras or len(scene) == 0 or min(plain[a] for a in CLASSED) < CLASS_DROPS + 1:
        return best
    sens = render_sensitivity(scene, _spread(cameras, max_cameras), backend=backend)
    ranges = {k: float((getattr(scene, k).detach().double().amax(0) - getattr(scene, k).detach().double().amin(0))
                       .mean()) for k in ("log_scales", "sh_dc")}
    steps = {"log_scales": ranges["log_scales"] / levels_for_bits(plain["scale_bits"]),
             "quats": math.sqrt(2.0) / levels_for_bits(plain["rotation_bits"]),
             "sh_dc": ranges["sh_dc"] / levels_for_bits(plain["dc_bits"])}
    w = error_weights(sens, steps)
    cls = significance_classes(w.numpy(), CLASS_DROPS, CLASS_REFERENCE)
    pv, ref = _probe_reference(scene if teacher is None else teacher, views, scale, reference, backend)
    own = _own_renders(scene, teacher, pv, ref, backend)
    classed = {a: plain[a] for a in CLASSED}
    e_plain = sum(float(np.mean(model.error[a] * 2.0 ** (-model.slope[a] * (plain[a] - model.anchor[a]))))
                  for a in CLASSED)
    for t in CLASS_STEPS:
        f = np.maximum(1, np.round(2.0 ** (cls * t))).astype(np.int64)
        trial = replace(model, error=dict(model.error))
        e_cls = _per_view_mse(own, quantized(scene, classed, factors=f), pv, backend)
        if on_probe is not None:
            on_probe(f"scales, rotations, colour with classes {t:g} bits apart", min(classed.values()))
        g = float(max(1.0, e_cls.mean() / max(e_plain, TINY)))
        for a in CLASSED:
            trial.error[a] = model.error[a] * g
        bits = trial.solve(target_psnr)
        rate = _rate(bits, len(CLASSED) * 3 * float(np.log2(f).mean()))
        if rate < best.rate:
            best = ClassPlan(w.float(), t, bits, rate, trial)
    return best


@dataclass
class ModelStep:
    """One check of the model: the depths, the predicted and the measured PSNR (dB), the file bytes
    (0 for a render check), and ``kind``: "render" (the quantized scene rendered at full
    resolution, no coding) or "encode" (encoded, decoded and rendered)."""

    bits: dict[str, float]
    predicted: float
    measured: float
    bytes: int
    kind: str = "encode"


def model_allocate(scene: GaussianScene, weights: Tensor | None, target_psnr: float, reference: Tensor,
                   views: Sequence[Camera], *, base: QuantConfig | None = None, tolerance: float = 0.3,
                   probe_scale: float = 1.0, max_encodes: int = 3, max_renders: int = 6,
                   cameras: Sequence[Camera] | None = None,
                   teacher: GaussianScene | None = None, backend: str = "auto",
                   on_trial: Callable[[Trial], None] | None = None,
                   on_probe: Callable[[str, float], None] | None = None
                   ) -> tuple[Candidate | None, list[Trial], list[ModelStep]]:
    """Smallest encoding of ``scene`` (no pruning) with fidelity in [target, target + tolerance] dB
    on ``views`` (``reference``: their renders of the original), allocated on the error model.
    Returns (the smallest candidate that meets the target, or the closest when none does; the
    trials; predicted against measured PSNR of every encode). ``cameras``: views the compressor
    may use (e.g. the training views, at a low resolution) to form precision classes
    (:func:`plan_classes`); none without them. ``teacher``: the scene ``reference`` was rendered
    from, when it is not ``scene`` (see :func:`measure_model`)."""
    base = replace(base or QuantConfig(), low_fraction=0.0, low_drop=0, max_drop=0)
    model = measure_model(scene, weights, views, target_psnr + 0.5 * tolerance, base, scale=probe_scale,
                          backend=backend, teacher=teacher, reference=reference, on_probe=on_probe)
    plan = plan_classes(scene, model, cameras or [], views, target_psnr + 0.5 * tolerance, backend=backend,
                        scale=probe_scale, teacher=teacher, reference=reference, on_probe=on_probe)
    model = plan.model
    enc_weights = weights if plan.weights is None else plan.weights
    trials: list[Trial] = []
    steps: list[ModelStep] = []
    best: Candidate | None = None
    closest: Candidate | None = None
    goal = target_psnr + 0.5 * tolerance
    checks: list[tuple[float, float]] = []  # render checks: (the model's aim, measured), in dB
    encoded: list[tuple[float, float]] = []  # the same for encodes

    def in_window(p: float) -> bool:
        return target_psnr <= p <= target_psnr + tolerance

    # a render check must land a margin inside the window: the decoded file renders a few
    # thousandths of a dB apart from the simulated quantization
    margin = min(CHECK_MARGIN, 0.25 * tolerance)
    lo_c, hi_c = target_psnr + margin, target_psnr + tolerance - margin

    def render_check(bits: dict[str, float], aim: float) -> float:
        cfg = plan.config(replace(base, **bits))
        p = fidelity(reference, quantized(scene, bits, model.sh_rest, plan.factors(cfg)), views, backend=backend,
                     with_ssim=False).psnr
        steps.append(ModelStep(bits, model.psnr(bits), p, 0, "render"))
        checks.append((aim, p))
        tried[_grid(bits)] = (bits, p, aim if aim == aim else checks_aim[0])
        return p

    # every rendered grid: (depths, PSNR, the aim of the equal-slope depths it came from)
    tried: dict[tuple[int, ...], tuple[dict[str, float], float, float]] = {}
    checks_aim = [goal]
    aim, landed = goal, None
    for _ in range(max_renders):  # the quantized scene itself at full resolution, without coding it
        bits = model.solve(aim)
        if _grid(bits) in tried:  # one step of one quantizer spans the window here: the aim cannot land
            break
        if lo_c <= render_check(bits, aim) <= hi_c:
            landed, landed_aim = bits, aim
            break
        aim = _next_aim(goal, checks, lo_c, hi_c)
    if landed is None:  # one quantizer alone, in its own finest steps, from the closest grid above the window
        over = [(p, a) for a, p in checks if p > hi_c]
        checks_aim[0] = min(over)[1] if over else goal
        searched: set[str] = set()  # a quantizer whose single step spans the window: the next one, from closer
        while landed is None and len(searched) < len(ATTRIBUTES):
            landed, a = _vernier(model, tried, goal, lo_c, hi_c, max_renders,
                                 lambda b: render_check(b, float("nan")), exclude=searched)
            if a is None:
                break
            searched.add(a)
        if landed is None:  # every single step spans the window: one quantizer a step coarser, another a step finer
            landed = _swap(model, tried, goal, lo_c, hi_c, 3,
                           lambda b: render_check(b, float("nan")))
        landed_aim = checks_aim[0]
    if landed is None:  # none landed: the closest check above the target, else a margin above the highest aim
        above = sorted((p, i, b, a) for i, (b, p, a) in enumerate(tried.values()) if p >= target_psnr)
        if above:
            _, _, bits, landed_aim = above[0]
        else:
            landed_aim = max(a for a, _ in checks if a == a) + tolerance
            bits = model.solve(landed_aim)
    else:
        bits = landed
    aim = landed_aim
    done: set[tuple[int, ...]] = set()  # grids encoded so far
    for _ in range(max_encodes):
        cfg = plan.config(replace(base, **bits))
        data, report = encode(scene, enc_weights, cfg)
        dec = decode(data)
        fid = fidelity(reference, dec, views, backend=backend)  # with SSIM: the file's report needs no second render
        cand = Candidate(data, report, dec, fid, 0.0, -1, cfg, scene, enc_weights)
        steps.append(ModelStep(bits, model.psnr(bits), fid.psnr, len(data), "encode"))
        trials.append(Trial(0.0, -1, len(data), fid.psnr, "model"))
        if on_trial is not None:
            on_trial(trials[-1])
        if fid.psnr >= target_psnr and (best is None or len(data) < len(best.data)):
            best = cand
        if closest is None or fid.psnr > closest.fidelity.psnr:
            closest = cand
        if in_window(fid.psnr):
            break
        encoded.append((aim, fid.psnr))  # the coded SH rest differs from the rendered one: correct on encodes
        done.add(_grid(bits))
        aim = _next_aim(goal, encoded, target_psnr, target_psnr + tolerance)
        bits = model.solve(aim)
        if _grid(bits) in done:  # the same file again (e.g. every quantizer at its coarsest)
            break
    return best or closest, trials, steps


def _levels(a: str, bits: float) -> int:
    """Steps of attribute ``a``'s quantizer at ``bits`` (what the codec stores)."""
    return int(round(2.0 ** bits)) - 1 if a == "position_bits" else levels_for_bits(bits)


def _grid(bits: dict[str, float]) -> tuple[int, ...]:
    """The quantizer steps of every attribute: depths with equal grids give equal files."""
    return tuple(_levels(a, bits[a]) for a in sorted(bits))


def _vernier(model: ErrorModel, tried: dict, goal: float, lo: float, hi: float, budget: int,
             check: Callable[[dict[str, float]], float],
             exclude: set[str] = frozenset()) -> tuple[dict[str, float] | None, str | None]:
    """Land in [lo, hi] dB by moving one quantizer alone, one step at a time if need be, when no
    depths on the equal-slope path do (near a coarse quantizer one of its steps moves the
    fidelity by more than the window). From the checked depths closest above the window
    (``tried``: grid -> (depths, measured PSNR)), the attribute whose single step changes the
    predicted error least, among those whose coarsest depth would shed what is needed, is
    searched alone: the model's guess first, then interpolation within the bracket of measured
    steps (in log2 steps), at most ``budget`` renders (``check``; its checks join ``tried``).
    Attributes in ``exclude`` are not searched. Returns (the depths that landed or None, the
    attribute searched or None when there was none to search)."""
    above = sorted((p, i, b) for i, (b, p, _) in enumerate(tried.values()) if p > hi)
    if not above:
        return None, None
    p0, _, start = above[0]
    shed = p0 - goal  # dB to give up
    base = float(np.mean(model.view_mse(start)))
    choice = None
    for a in start:
        if a in exclude:
            continue
        lo_b = model.bounds.get(a, ATTRIBUTES[a][2:4])[0]
        n0, n1 = _levels(a, start[a]), _levels(a, lo_b)
        if n0 <= n1:
            continue
        e = float(np.mean(model.error[a])) * 2.0 ** (-model.slope[a] * (start[a] - model.anchor[a]))
        one = e * (2.0 ** (model.slope[a] * math.log2((n0 + 1) / n0)) - 1.0)  # one step coarser
        full = e * (2.0 ** (model.slope[a] * (start[a] - lo_b)) - 1.0)  # down to the coarsest
        reach = 10.0 * math.log10(1.0 + full / max(base, TINY))
        key = (reach < shed, one if reach >= shed else -reach)
        if choice is None or key < choice[0]:
            choice = (key, a, n1, n0, e)
    if choice is None:
        return None, None
    _, a, n_lo, n_hi, e = choice
    f_hi = p0
    f_lo = None  # measured at n_lo, once known
    # the model's guess: the steps whose added error sheds ``shed`` dB of the predicted PSNR
    need = base * (10.0 ** (shed / 10.0) - 1.0)
    b_guess = start[a] - math.log2(1.0 + need / max(e, TINY)) / model.slope[a]
    n = _levels(a, b_guess)
    for _ in range(budget):
        n = min(n_hi - 1, max(n_lo, n))
        if n >= n_hi or (f_lo is not None and n <= n_lo):
            return None, a  # a single step of this quantizer spans the window
        bits = dict(start, **{a: math.log2(n + 1)})
        p = check(bits)
        if lo <= p <= hi:
            return bits, a
        if p > hi:
            n_hi, f_hi = n, p
        else:
            n_lo, f_lo = n, p
        x_hi = math.log2(n_hi + 1)
        if f_lo is None:  # not bracketed yet: step on, by the secant of what the model predicted per bit
            x = x_hi - (f_hi - goal) / max(0.5, 20.0 * math.log10(2.0) * model.slope[a] * 0.5)
        else:
            x_lo = math.log2(n_lo + 1)
            t = min(0.8, max(0.2, (goal - f_lo) / max(f_hi - f_lo, 1e-9)))
            x = x_lo + t * (x_hi - x_lo)
        n = int(round(2.0 ** x)) - 1
        if f_lo is not None and n_hi - n_lo <= 1:
            return None, a
        if f_lo is not None:
            n = min(n_hi - 1, max(n_lo + 1, n))
    return None, a


def _swap(model: ErrorModel, tried: dict, goal: float, lo: float, hi: float, budget: int,
          check: Callable[[dict[str, float]], float]) -> dict[str, float] | None:
    """From the checked depths closest above [lo, hi] dB, one quantizer one step coarser and another
    one step finer (within their bounds): the pairs whose predicted change lands nearest ``goal``
    are checked, at most ``budget``. For coarse quantizers whose every single step spans the
    window. Returns the depths that landed, or None."""
    above = sorted((p, i, b) for i, (b, p, _) in enumerate(tried.values()) if p > hi)
    if not above:
        return None
    p0, _, start = above[0]
    pred0 = model.psnr(start)
    pairs = []
    for a in start:
        for b in start:
            lo_a, hi_b = model.bounds.get(a, ATTRIBUTES[a][2:4])[0], model.bounds.get(b, ATTRIBUTES[b][2:4])[1]
            n_a, n_b = _levels(a, start[a]) - 1, _levels(b, start[b]) + 1
            if a == b or n_a < _levels(a, lo_a) or n_b > _levels(b, hi_b):
                continue
            bits = dict(start, **{a: math.log2(n_a + 1), b: math.log2(n_b + 1)})
            if _grid(bits) in tried:
                continue
            pairs.append((abs(p0 + model.psnr(bits) - pred0 - goal), bits))
    for _, bits in sorted(pairs, key=lambda x: x[0])[:budget]:
        if lo <= check(bits) <= hi:
            return bits
    return None


def _next_aim(goal: float, tried: list[tuple[float, float]], lo: float, hi: float) -> float:
    """The PSNR to solve the model for next, from the (aim, measured) pairs so far (aims that are
    NaN are skipped). When they bracket the window (the highest aim that measured below ``lo``,
    the lowest that measured above ``hi``): interpolated between the two towards ``goal``, kept in
    the middle 60% of the bracket so that it shrinks. Else the secant through the last two aims
    (measured dB per aimed dB, within [0.5, 4]: far from the probes the model's slope is off, e.g.
    with coarse quantizers), or with one aim the miss added to it (the factor rho of the model)."""
    pts = [(a, m) for a, m in tried if a == a]
    below = [(a, m) for a, m in pts if m < lo]
    above = [(a, m) for a, m in pts if m > hi]
    if below and above:
        (a0, m0), (a1, m1) = max(below), min(above)
        if a0 < a1:
            t = min(0.8, max(0.2, (goal - m0) / max(m1 - m0, 1e-9)))
            return a0 + t * (a1 - a0)
    a1, m1 = pts[-1]
    prev = [(a, m) for a, m in pts[:-1] if abs(a - a1) > 1e-6]
    if not prev:
        return a1 + (goal - m1)
    a0, m0 = prev[-1]
    slope = min(4.0, max(0.5, (m1 - m0) / (a1 - a0)))
    return a1 + (goal - m1) / slope
