"""Fitting 2D Gaussians to an image, after Image-GS.

* Initialisation: 70% of the positions sampled with probability proportional to the squared
  image-gradient magnitude, 30% uniformly; colours read from the image; scales small, from
  the distance to the nearest neighbours. ``init="structure"`` starts instead from
  ``init.py``'s structure-guided placement, structure-tensor shapes and least-squares colours.
* Error-guided progressive growth: start with half the budget, then add Gaussians at
  high-error pixels in several rounds (colour = target colour in "topk" mode, residual in
  "sum" mode); Gaussians that contribute (almost) nothing are pruned and their slots refilled.
* Loss: ``l1_weight`` L1 + ``l2_weight`` RMSE + ``ssim_weight`` (1 - SSIM) (default
  RMSE + 0.1 (1 - SSIM): PSNR is an MSE measure, and at equal bpp it ends 0.20-0.55 dB above
  L1 + 0.1 (1 - SSIM); ``qat_weights`` replaces the three once QAT is on), value and
  gradient from one fused numba pass (``fused_loss.py``). Adam with per-parameter learning rates; coarse to fine (the
  first ``coarse_end`` of the steps at 1/4 resolution, up to ``warmup_end`` at 1/2;
  ``schedules.py``); plateau
  detection lowers the learning rate and finally stops early.
* Quantisation-aware training: from ``qat_start`` on (or at the first plateau after growth),
  parameters pass through the file's quantiser (straight-through) in the forward pass, and
  ``rate_weight`` times the estimated bits per pixel of the shape and colour streams
  (``rate_term.py``) joins the loss, so the optimiser trades distortion for bits.

The result is ordered by importance (summed pixel share, largest first) for level of detail.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import torch
import torch.nn.functional as F
from torch import Tensor

from render.image2d import DEFAULT_K, DEFAULT_MODE, conics_from_scale_rotation, contribution, render_image
from render.image2d.kernels import PARALLEL_MIN_PIXELS
from render.metrics import psnr
from splat.heap import steady_heap
from splat.progress import Progress
from splat.threads import threads

from .fused_loss import FusedLoss
from .schedules import COARSE_MIN_SIDE, DEFAULT_SCHEDULE, SCHEDULES
from .init import lookup as _lookup
from .init import structure_init
from .model import ImageGaussians
from .quant import BitDepths, QuantSpec, fake_quantize, make_spec
from .rate_term import estimate_bits


DEFAULT_RATE_WEIGHT = 0.08  # the rate term's weight of a fit that rate control did not set up


@dataclass
class FitConfig:
    """Fitting settings. Learning rates are per step, in pixels (means), log-pixels (scales),
    radians (rotations) and image units (colours)."""

    steps: int = 180  # the default schedule's (SCHEDULES; plus a 25% rate-control stage)
    init: str = "gradient"  # "gradient" (Image-GS sampling, below) or "structure" (init.py: structure tensor, least-squares colours)
    mode: str = DEFAULT_MODE  # accumulated sum fits best (see docs); "topk" is Image-GS's normalised rule
    k: int = DEFAULT_K
    ssim_weight: float = 0.1
    l1_weight: float = 0.0
    l2_weight: float = 1.0  # of the RMSE (on L1's scale: rate_weight keeps its meaning; fused_loss.py)
    qat_weights: tuple[float, float, float] | None = None  # (L1, L2, SSIM) weights once QAT is on
    grad_fraction: float = 0.7
    start_fraction: float = 0.5
    growth_rounds: int = 4
    growth_end: float = 0.4  # fraction of steps by which the full budget is reached
    warmup_end: float = 0.25  # fraction of steps rendered at reduced resolution (half, after the quarter part)
    coarse_end: float = 0.0  # fraction of steps (within the warm-up) rendered at quarter resolution
    qat_start: float = 0.6  # fraction of steps after which QAT is on (earlier on a plateau)
    # Adam's step is about the learning rate, so these are the largest moves per step. With a
    # cosine decay over a short fit, larger rates converge far sooner: at 6x the earlier rates
    # (0.25 / 0.02 / 0.02 / 0.01), 180 steps end above 420 steps at those rates
    # (bench/image_speed.py --baseline; guides/image.md).
    lr_means: float = 1.5
    lr_scales: float = 0.12
    lr_rotations: float = 0.12
    lr_colors: float = 0.06
    lr_floor: float = 0.05  # cosine decay of the learning rates to this fraction
    plateau_window: int = 40
    plateau_tol: float = 2e-3
    max_decays: int = 3
    prune_share: float = 0.25  # Gaussians with a smaller summed pixel share are pruned
    # after growth: prune + re-add at high-error pixels every this fraction of the steps (0:
    # never)... A fixed period in steps disturbed long fits ever more often (1,500 Gaussians
    # on a 384x256 crop, 1200 steps: refills every 50 steps ended 0.6 dB below three refills).
    refill_every: float = 0.28
    refill_end: float = 0.9  # ...until this fraction of the steps
    relocate: float = 0.01  # ...also moving this fraction of the least useful Gaussians
    finetune_fraction: float = 0.25  # rate control's fine-tuning stage, as a fraction of ``steps``
    # lambda: loss per estimated bit per pixel of the shape/colour streams, in QAT. None: rate
    # control chooses it from the target (``rate.coding_for``); a plain fit uses DEFAULT_RATE_WEIGHT
    rate_weight: float | None = None
    bits: BitDepths | None = None  # the quantiser's bit depths; None: as rate_weight (plain fit: BitDepths())
    seed: int = 0
    time_limit: float | None = None


def schedule(cfg: "FitConfig", name: str) -> "FitConfig":
    """``cfg`` with the step schedule ``name`` (a key of :data:`SCHEDULES`)."""
    if name not in SCHEDULES:
        raise ValueError(f"unknown schedule {name!r} ({', '.join(SCHEDULES)})")
    return replace(cfg, **SCHEDULES[name])  # type: ignore[arg-type]


@dataclass
class FitContext:
    """What a fit of one tile of a larger image needs from around it (``tiles.py``).

    ``offset`` [H,W,C]: the render of the neighbours' Gaussians (fixed) over the fitted
    region, added to every render (``sum`` mode: the region is fitted jointly with them);
    ``bounds`` (x0, y0, x1, y1) px: the fitted Gaussians' centres stay in this window
    (placed, grown and clamped there); ``max_scale`` px: their largest standard deviation;
    ``spec_hook``: maps the quantiser made when QAT starts to the one used (a shared one)."""

    offset: Tensor | None = None
    bounds: tuple[float, float, float, float] | None = None
    max_scale: float | None = None
    spec_hook: Callable[[QuantSpec], QuantSpec] | None = None


@dataclass
class FitReport:
    steps: int
    seconds: float
    psnr: float  # of the last (quantised, if QAT ran) render, full resolution
    history: list[tuple[int, float]]


# ---------------------------------------------------------------------- initialisation helpers
def _gradient_prob(target: Tensor) -> Tensor:
    gray = target.mean(dim=2)
    gx = torch.zeros_like(gray)
    gy = torch.zeros_like(gray)
    gx[:, 1:-1] = (gray[:, 2:] - gray[:, :-2]) * 0.5
    gy[1:-1, :] = (gray[2:, :] - gray[:-2, :]) * 0.5
    g2 = (gx * gx + gy * gy).reshape(-1)
    return g2 / g2.sum() if float(g2.sum()) > 0 else torch.full_like(g2, 1.0 / g2.numel())


def _sample_pixels(prob: Tensor, n: int, width: int, gen: torch.Generator) -> Tensor:
    idx = torch.multinomial(prob, n, replacement=True, generator=gen)
    xy = torch.stack([(idx % width).float(), (idx // width).float()], 1)
    return xy + torch.rand(n, 2, generator=gen)


def _nn_distance(pts: Tensor, ref: Tensor, k: int = 3) -> Tensor:
    """Mean distance from each of pts to its k nearest points in ref (excluding itself if present)."""
    out = torch.empty(pts.shape[0])
    kk = min(k + 1, ref.shape[0])
    for s in range(0, pts.shape[0], 2048):
        d = torch.cdist(pts[s:s + 2048], ref)
        v, _ = torch.topk(d, kk, dim=1, largest=False)
        v = v[:, 1:] if kk > 1 else v
        out[s:s + 2048] = v.mean(1) if v.numel() else 1.0
    return out


def initial_gaussians(target: Tensor, n: int, cfg: FitConfig, gen: torch.Generator) -> dict[str, Tensor]:
    h, w, _ = target.shape
    n_grad = int(round(cfg.grad_fraction * n))
    prob = _gradient_prob(target)
    xy = torch.cat([_sample_pixels(prob, n_grad, w, gen),
                    torch.rand(n - n_grad, 2, generator=gen) * torch.tensor([float(w), float(h)])])
    d = _nn_distance(xy, xy)
    s = (0.5 * d).clamp(0.6, 0.25 * max(h, w))
    return {
        "means": xy,
        "log_scales": torch.log(s)[:, None].repeat(1, 2),
        "rotations": torch.zeros(n),
        "colors": _lookup(target, xy).clone(),
    }


# ---------------------------------------------------------------------- the fitter
class Adam:
    """Adam as ``torch.optim.Adam`` computes it on the CPU (its single-tensor path: no weight
    decay, AMSGrad or maximize), operation for operation, so a fit gives the same bits. Without
    ``torch.optim``'s per-call wrappers, whose first call imports ``torch._dynamo`` (about 1 s
    of a command's start-up). Same ``param_groups`` (dicts with "params" and "lr") and
    ``state`` (per parameter: "step" [0-d float32 tensor], "exp_avg", "exp_avg_sq")."""

    def __init__(self, groups: list[dict], betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
        self.param_groups = [dict(g, params=list(g["params"])) for g in groups]
        self.betas = betas
        self.eps = eps
        self.state: dict[Tensor, dict[str, Tensor]] = {}

    def zero_grad(self, set_to_none: bool = True) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                if set_to_none:
                    p.grad = None
                elif p.grad is not None:
                    p.grad.zero_()

    @torch.no_grad()
    def step(self) -> None:
        beta1, beta2 = self.betas
        for group in self.param_groups:
            lr = group["lr"]
            for p in group["params"]:
                if p.grad is None:
                    continue
                st = self.state.get(p)
                if not st:
                    st = self.state[p] = {"step": torch.tensor(0.0, dtype=torch.float32),
                                          "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                                          "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format)}
                grad, exp_avg, exp_avg_sq, step_t = p.grad, st["exp_avg"], st["exp_avg_sq"], st["step"]
                step_t += 1
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                step = step_t.item()
                step_size = lr / (1 - beta1 ** step)
                bias_correction2_sqrt = (1 - beta2 ** step) ** 0.5
                denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(self.eps)
                p.addcdiv_(exp_avg, denom, value=-step_size)


def _scaled_size(width: int, height: int, scale: float) -> tuple[int, int]:
    """(W, H) of a render at ``scale`` (the renderer's rounding)."""
    return max(1, int(round(width * scale))), max(1, int(round(height * scale)))


class _Fitter:
    def __init__(self, target: Tensor, n_target: int, cfg: FitConfig, init: ImageGaussians | None,
                 spec: QuantSpec | None, context: FitContext | None = None):
        self.t = target
        self.ctx = context or FitContext()
        self._offsets: dict[float, Tensor] = {}
        self.h, self.w, self.c = target.shape
        self.cfg = cfg
        self.n_target = n_target
        self.gen = torch.Generator().manual_seed(cfg.seed)
        self.spec = spec
        # the losses hold a few full-size buffers each: built when first needed, and the
        # reduced-resolution ones (warm-up only) dropped once a finer one starts
        self._losses: dict[float, FusedLoss] = {}
        n0 = max(1, int(round(cfg.start_fraction * n_target)))
        if init is None and self.ctx.bounds is not None:
            p = self._bounded_init(n0)
        elif init is None and cfg.init == "structure":
            p = structure_init(target, n0, self.gen, mode=cfg.mode)
        elif init is None:
            p = initial_gaussians(target, n0, cfg, self.gen)
        else:
            p = {"means": init.means.float().clone(), "log_scales": torch.log(init.scales.float().clamp_min(1e-4)),
                 "rotations": init.rotations.float().clone(), "colors": init.colors.float().clone()}
        self.params = {k: v.detach().clone().requires_grad_(True) for k, v in p.items()}
        if init is None and cfg.mode == "sum" and cfg.init != "structure":
            # overlapping Gaussians add up: start at the target's brightness, not a multiple of it
            with torch.no_grad():
                img = self.render(False, context=False)
                gain = float(self._residual().mean()) / max(float(img.mean()), 1e-6)
                self.params["colors"].mul_(min(1.0, gain))
        self.lr_scale = 1.0
        self.schedule = 1.0
        self.opt = self._make_opt()

    def _residual(self) -> Tensor:
        """The target less the fixed neighbours' render (the target without context)."""
        return self.t if self.ctx.offset is None else self.t - self.ctx.offset

    def _bounded_init(self, n0: int) -> dict[str, Tensor]:
        """Initial Gaussians inside ``bounds``, fitted to the residual there."""
        x0, y0, x1, y1 = (int(round(v)) for v in self.ctx.bounds)  # type: ignore[union-attr]
        sub = self._residual()[y0:y1, x0:x1].contiguous()
        if self.cfg.init == "structure":
            p = structure_init(sub, n0, self.gen, mode=self.cfg.mode)
        else:
            p = initial_gaussians(sub, n0, self.cfg, self.gen)
        p["means"] = p["means"] + torch.tensor([float(x0), float(y0)])
        return p

    def _make_opt(self, old: Adam | None = None, keep: Tensor | None = None) -> Adam:
        c = self.cfg
        lrs = {"means": c.lr_means, "log_scales": c.lr_scales, "rotations": c.lr_rotations, "colors": c.lr_colors}
        opt = Adam([{"params": [self.params[k]], "lr": lrs[k] * self.lr_scale * self.schedule, "name": k}
                    for k in lrs], betas=(0.9, 0.99), eps=1e-10)
        if old is not None and keep is not None:
            for g_old, g_new in zip(old.param_groups, opt.param_groups):
                st = old.state.get(g_old["params"][0])
                p = g_new["params"][0]
                if not st:
                    continue
                ns = {"step": st["step"]}
                for key in ("exp_avg", "exp_avg_sq"):
                    z = torch.zeros_like(p)
                    z[: keep.numel()] = st[key][keep]
                    ns[key] = z
                opt.state[p] = ns
        return opt

    def set_schedule(self, f: float) -> None:
        self.schedule = f
        self.set_lr_scale(self.lr_scale)

    def set_lr_scale(self, s: float) -> None:
        self.lr_scale = s
        base = {"means": self.cfg.lr_means, "log_scales": self.cfg.lr_scales, "rotations": self.cfg.lr_rotations,
                "colors": self.cfg.lr_colors}
        for g in self.opt.param_groups:
            g["lr"] = base[g["name"]] * s * self.schedule

    def n(self) -> int:
        return int(self.params["means"].shape[0])

    def current(self, quantised: bool) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        p = self.params
        if quantised and self.spec is not None:
            return fake_quantize(self.spec, p["means"], p["log_scales"], p["rotations"], p["colors"])
        return p["means"], torch.exp(p["log_scales"]), p["rotations"], p["colors"]

    def render(self, quantised: bool, scale: float = 1.0, context: bool = True) -> Tensor:
        m, s, r, col = self.current(quantised)
        img = render_image(m, s, r, col, self.w, self.h, mode=self.cfg.mode, k=self.cfg.k, scale=scale)
        return img + self.offset(scale) if context and self.ctx.offset is not None else img

    def offset(self, scale: float) -> Tensor:
        """The context render at ``scale`` (area-averaged; kept for the current scale only)."""
        if scale not in self._offsets:
            self._offsets = {}
            o = self.ctx.offset
            if scale < 1.0:
                ow, oh = _scaled_size(self.w, self.h, scale)
                o = F.interpolate(o.permute(2, 0, 1)[None], size=(oh, ow), mode="area")[0].permute(1, 2, 0)
            self._offsets[scale] = o.contiguous()
        return self._offsets[scale]

    def loss(self, scale: float) -> FusedLoss:
        """The fused loss against the target at ``scale`` (1, 1/2 or 1/4) of full resolution,
        built on first use; coarser ones are dropped when a finer one is built."""
        if scale not in self._losses:
            for s in [s for s in self._losses if s < scale]:
                del self._losses[s]
            if scale < 1.0:
                ow, oh = _scaled_size(self.w, self.h, scale)
                t = F.interpolate(self.t.permute(2, 0, 1)[None], size=(oh, ow), mode="area")[0].permute(1, 2, 0)
                self._losses[scale] = FusedLoss(t.contiguous())
            else:
                self._losses[scale] = FusedLoss(self.t)
        return self._losses[scale]

    def loss_weights(self, quantised: bool) -> tuple[float, float, float]:
        """(L1, L2, SSIM) weights of the loss, those of QAT when ``quantised``."""
        c = self.cfg
        return c.qat_weights if quantised and c.qat_weights is not None else (c.l1_weight, c.l2_weight, c.ssim_weight)

    def step(self, quantised: bool, scale: float = 1.0) -> float:
        img = self.render(quantised, scale)
        # a L1 + b RMSE + w (1 - SSIM) and its gradient in one fused numba pass (see fused_loss.py)
        fl = self.loss(scale)
        fl.set_weights(*self.loss_weights(quantised))
        loss = fl.loss_tensor(img)
        if quantised and self.cfg.rate_weight > 0 and self.spec is not None:
            loss = loss + self.cfg.rate_weight * self.rate_bpp()
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            self.params["log_scales"].clamp_(math.log(0.3), math.log(self.ctx.max_scale or 0.5 * max(self.h, self.w)))
            x0, y0, x1, y1 = self.ctx.bounds or (0.0, 0.0, float(self.w), float(self.h))
            self.params["means"][:, 0].clamp_(x0, x1)
            self.params["means"][:, 1].clamp_(y0, y1)
        return float(loss.detach())

    def rate_bpp(self) -> Tensor:
        """Estimated bits per pixel of the shape and colour streams (``rate_term.py``)."""
        p = self.params
        return estimate_bits(self.spec, p["log_scales"], p["rotations"], p["colors"]) / (self.h * self.w)

    def shares(self) -> Tensor:
        with torch.no_grad():
            m, s, r, col = self.current(self.spec is not None)
            return contribution(m, conics_from_scale_rotation(s, r), col, self.w, self.h, mode=self.cfg.mode,
                                k=self.cfg.k)

    def grow(self, n_add: int, prune: bool, relocate: float = 0.0) -> None:
        """Prune near-useless Gaussians (and the ``relocate`` fraction with the smallest pixel
        share), then add n_add plus the pruned count at pixels sampled by their error."""
        with torch.no_grad():
            keep = torch.arange(self.n())
            if prune:
                share = self.shares()
                ok = share >= self.cfg.prune_share
                n_move = int(relocate * self.n())
                if n_move:
                    ok[torch.argsort(share, stable=True)[:n_move]] = False
                keep = torch.nonzero(ok).reshape(-1)
            n_add += self.n() - keep.numel()
            n_add = max(0, min(n_add, self.n_target - keep.numel()))
            img = self.render(self.spec is not None).clamp(0, 1)
            err = (img - self.t).abs().sum(dim=2)
            if self.ctx.bounds is not None:  # new Gaussians only where this fit may place them
                x0, y0, x1, y1 = (int(round(v)) for v in self.ctx.bounds)
                inside = torch.zeros_like(err)
                inside[y0:y1, x0:x1] = 1.0
                err = err * inside
            err = err.reshape(-1)
            new = {}
            if n_add > 0:
                xy = _sample_pixels(err / err.sum() if float(err.sum()) > 0 else torch.full_like(err, 1 / err.numel()),
                                    n_add, self.w, self.gen)
                base = self._residual() if self.cfg.mode == "topk" else (self.t - img)
                d = math.sqrt(self.h * self.w / max(1, self.n_target))
                new = {"means": xy, "log_scales": torch.full((n_add, 2), math.log(max(0.6, 0.35 * d))),
                       "rotations": torch.zeros(n_add), "colors": _lookup(base, xy)}
            for k in self.params:
                v = self.params[k].detach()[keep]
                if n_add > 0:
                    v = torch.cat([v, new[k].to(v.dtype)])
                self.params[k] = v.clone().requires_grad_(True)
            self.opt = self._make_opt(self.opt, keep)

    def freeze_spec(self) -> None:
        m, s, r, col = self.current(False)
        self.spec = make_spec(m, s, col, self.w, self.h, self.cfg.bits, r)
        if self.ctx.spec_hook is not None:
            self.spec = self.ctx.spec_hook(self.spec)

    def result(self, quantised: bool) -> ImageGaussians:
        """Parameters (on the file's grid if ``quantised``), ordered by importance."""
        with torch.no_grad():
            m, s, r, col = self.current(quantised)
            share = self.shares()
            order = torch.argsort(share, descending=True, stable=True)
            keep = order[share[order] > 0]
            if keep.numel() == 0:
                keep = order[:1]
            return ImageGaussians(m[keep].clone(), s[keep].clone(), r[keep].clone(), col[keep].clone(), self.w, self.h,
                                  self.cfg.mode, self.cfg.k, {}, self.spec)


def fit_gaussians(target: Tensor, n_gaussians: int, cfg: FitConfig | None = None, *,
                  init: ImageGaussians | None = None, spec: QuantSpec | None = None,
                  progress: Progress | None = None, context: FitContext | None = None
                  ) -> tuple[ImageGaussians, QuantSpec, FitReport]:
    """Fit ``n_gaussians`` to ``target`` [H,W,C] (float32 in [0,1]).

    ``context``: the fixed surroundings of a tile of a larger image (see :class:`FitContext`);
    the returned Gaussians and the report's PSNR then exclude / include it respectively.

    ``progress`` is advanced by the steps done, with the count, PSNR and QAT state as info
    (the caller starts and ends the stage; total: ``cfg.steps``).

    With ``init``, start from those Gaussians (refinement/growth, e.g. in rate control) and
    skip the warm-up; with ``spec``, QAT uses that fixed quantiser from the first step.
    Returns the Gaussians in importance order, the quantiser, and a report.
    """
    cfg = cfg or FitConfig()
    if cfg.rate_weight is None or cfg.bits is None:
        cfg = replace(cfg, rate_weight=DEFAULT_RATE_WEIGHT if cfg.rate_weight is None else cfg.rate_weight,
                      bits=cfg.bits or BitDepths())
    if n_gaussians < 1:
        raise ValueError("need at least one Gaussian")
    # one thread for small images: the loss convolutions are too small to split, and a thread
    # pool costs far more than it saves there (worse on busy cores)
    # each step frees and makes again the same arrays of a few MB (render, weights, loss
    # gradient): steady_heap keeps them on the heap instead of fresh pages every step
    with threads(1 if target.shape[0] * target.shape[1] < PARALLEL_MIN_PIXELS else None), steady_heap():
        return _fit(target, n_gaussians, cfg, init, spec, progress, context)


def _fit(target: Tensor, n_gaussians: int, cfg: FitConfig, init: ImageGaussians | None, spec: QuantSpec | None,
         progress: Progress | None, context: FitContext | None = None
         ) -> tuple[ImageGaussians, QuantSpec, FitReport]:
    torch.manual_seed(cfg.seed)
    t0 = time.perf_counter()
    target = target.float().contiguous()
    ft = _Fitter(target, n_gaussians, cfg, init, spec, context)
    steps = max(1, cfg.steps)
    growing = ft.n() < n_gaussians
    rounds = max(1, cfg.growth_rounds) if growing else 0
    grow_at = {max(1, int(round(steps * cfg.growth_end * (i + 1) / rounds))): i for i in range(rounds)}
    warm_end = int(cfg.warmup_end * steps) if init is None else 0
    # quarter resolution only where it still has COARSE_MIN_SIDE pixels on the short side
    coarse = init is None and min(ft.h, ft.w) >= 4 * COARSE_MIN_SIDE
    coarse_end = min(warm_end, int(cfg.coarse_end * steps)) if coarse else 0
    qat_at = int(cfg.qat_start * steps)
    refill_period = max(1, int(round(cfg.refill_every * steps))) if cfg.refill_every > 0 else 0
    qat = spec is not None
    window: list[float] = []
    prev_mean = None
    decays = 0
    history = []
    last_growth = 0
    it = 0
    reported = 0
    last_psnr = None
    last_scale = None
    for it in range(1, steps + 1):
        if it in grow_at and ft.n() < n_gaussians:
            missing = n_gaussians - ft.n()
            left = rounds - grow_at[it]
            ft.grow(int(math.ceil(missing / left)), prune=True)
            last_growth = it
            window, prev_mean = [], None
        elif (it > last_growth and ft.n() >= n_gaussians and refill_period and it % refill_period == 0
              and it < cfg.refill_end * steps):
            # in the normalised mode a pixel that no Gaussian reaches has no gradient, so the
            # optimiser cannot close such holes itself: refill them from the error map
            ft.grow(0, prune=True, relocate=cfg.relocate)
        if not qat and it >= qat_at:
            ft.freeze_spec()
            qat = True
            window, prev_mean = [], None
        # cosine decay of every learning rate to lr_floor, times the plateau factor
        ft.set_schedule(cfg.lr_floor + (1 - cfg.lr_floor) * 0.5 * (1 + math.cos(math.pi * (it - 1) / steps)))
        scale = 0.25 if it <= coarse_end else (0.5 if it <= warm_end else 1.0)
        if scale != last_scale:
            # losses at another resolution are not comparable: the plateau check restarts
            window, prev_mean = [], None
            last_scale = scale
        loss = ft.step(qat, scale)
        window.append(loss)
        if len(window) == cfg.plateau_window:
            mean = sum(window) / len(window)
            window = []
            done_growing = ft.n() >= n_gaussians or it > max(grow_at, default=0)
            if prev_mean is not None and done_growing and it > warm_end and it - last_growth > cfg.plateau_window:
                if prev_mean - mean < cfg.plateau_tol * prev_mean:
                    decays += 1
                    if decays > cfg.max_decays:
                        if not qat:
                            ft.freeze_spec()
                            qat = True
                            decays = 0
                            ft.set_lr_scale(0.5)
                        else:
                            break
                    else:
                        ft.set_lr_scale(ft.lr_scale * 0.5)
            prev_mean = mean
        if progress is not None and (it % 10 == 0 or it == steps):
            if it % 50 == 0 or it == steps:
                with torch.no_grad():
                    last_psnr = float(psnr(ft.render(qat).clamp(0, 1), target))
                history.append((it, last_psnr))
            info = f"{ft.n():,} Gaussians" + ("" if last_psnr is None else f"  PSNR {last_psnr:.2f} dB")
            progress.advance(it - reported, info + ("  (QAT)" if qat else ""))
            reported = it
        if cfg.time_limit is not None and time.perf_counter() - t0 > cfg.time_limit:
            break
    if not qat:
        ft.freeze_spec()
    g = ft.result(qat)
    with torch.no_grad():
        img = g.render() if ft.ctx.offset is None else g.render() + ft.ctx.offset
        final = float(psnr(img.clamp(0, 1), target))
    return g, ft.spec, FitReport(it, time.perf_counter() - t0, final, history)
