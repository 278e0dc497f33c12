"""Teacher-student fine-tuning: recover quality after pruning, and distil SH to a lower degree.

The student is trained to reproduce the teacher's renders (no photos needed) on pseudo
views: the training cameras, jittered copies (translation ~ N(0, (0.05 x scene scale)^2))
and orbit views. Loss: (1 - lambda) * L1 + lambda * (1 - SSIM), lambda = 0.2 as in 3DGS.
Photos, when given for some views, replace the teacher's render for those views.
Adam with the 3DGS learning rates (positions scaled by the scene scale).
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Sequence

import torch
from torch import Tensor

from render import rasterize
from render.sh import sh_colors, sh_colors_split
from render.metrics import ssim
from splat.camera import Camera, stack_cameras
from splat.progress import Progress
from splat.threads import threads
from splat.scene import GaussianScene

from .views import scene_scale


@dataclass
class FinetuneConfig:
    """steps: optimisation steps (one view each); lr_*: Adam learning rates per parameter group
    (lr_means is multiplied by the scene scale); ssim_weight: lambda; train_geometry: also
    optimise means, scales and rotations (otherwise colour and opacity only); max_seconds:
    stop early after this much wall time (None: no limit); torch_threads: torch's intra-op
    threads during the run (restored after; None: leave as is). One thread is the default:
    the step's heavy kernels are numba's, and torch's pool only spins against them.
    chunk: most Gaussians whose gradients and optimiser state exist at once (None: all). A
    larger scene is split into K = ceil(N / chunk) seeded random chunks (each spread over the
    whole scene, so every view trains every chunk); they take turns, each trained for its share
    of the steps with an optimiser of its own that is dropped before the next, so the parameter
    gradients and optimiser state grow with the chunk, not with N. Off by default: on 85k
    Gaussians at 240 px the step's render dominates the peak, and chunks cost fidelity
    (``bench/finetune_chunks.py``). scene_scale: what ``lr_means`` is multiplied by (None: the
    teacher's scale, or the student's without a teacher); set, a caller that gives the targets
    need not keep the teacher."""

    steps: int = 200
    lr_means: float = 1.6e-4
    lr_scales: float = 5e-3
    lr_quats: float = 1e-3
    lr_opacity: float = 2.5e-2
    lr_dc: float = 2.5e-3
    lr_rest: float = 2.5e-3 / 20
    ssim_weight: float = 0.2
    train_geometry: bool = True
    seed: int = 0
    max_seconds: float | None = None
    torch_threads: int | None = 1
    chunk: int | None = None
    scene_scale: float | None = None


def _adam(groups: list[dict]) -> torch.optim.Optimizer:
    """Adam (eps 1e-15); the fused CPU kernel when this torch has it (one pass per tensor)."""
    try:
        return torch.optim.Adam(groups, eps=1e-15, fused=True)
    except (RuntimeError, TypeError, ValueError):
        return torch.optim.Adam(groups, eps=1e-15)


def render_targets(teacher: GaussianScene, views: Sequence[Camera], *, backend: str = "auto") -> Tensor:
    """Teacher renders [V,H,W,3] (no gradient), black background."""
    with torch.no_grad():
        return torch.cat([rasterize(teacher, v, backend=backend).colors.detach() for v in views])


def finetune(
    student: GaussianScene,
    teacher: GaussianScene | None,
    views: Sequence[Camera],
    *,
    config: FinetuneConfig | None = None,
    targets: Tensor | None = None,
    backend: str = "auto",
    progress: Progress | None = None,
    in_place: bool = False,
) -> tuple[GaussianScene, list[float]]:
    """Optimise ``student`` to match ``targets`` (default: the teacher's renders of ``views``).

    Returns the trained scene (detached) and the loss per step. ``progress`` is advanced
    after every step with the loss (the caller starts and ends the stage). ``in_place``:
    train the student's own tensors (its trained fields are overwritten; a caller that
    drops the student saves a copy of them); otherwise they are copied first.
    """
    cfg = config or FinetuneConfig()
    with threads(cfg.torch_threads, numba_too=False):
        return _finetune(student, teacher, views, cfg, targets, backend, progress, in_place)


def _finetune(student, teacher, views, cfg: FinetuneConfig, targets, backend, progress,
              in_place: bool = False) -> tuple[GaussianScene, list[float]]:
    t_start = time.perf_counter()
    views = list(views)
    if targets is None:
        if teacher is None:
            raise ValueError("finetune needs a teacher or targets")
        targets = render_targets(teacher, views, backend=backend)
    if cfg.steps <= 0 or len(student) == 0:
        return student.detach(), []
    scale = cfg.scene_scale if cfg.scene_scale is not None else scene_scale(teacher if teacher is not None else student)
    lrs = {"opacity_logits": cfg.lr_opacity, "sh_dc": cfg.lr_dc}
    if student.sh_rest.numel():
        lrs["sh_rest"] = cfg.lr_rest
    if cfg.train_geometry:
        lrs.update(means=cfg.lr_means * scale, log_scales=cfg.lr_scales, quats=cfg.lr_quats)
    # only the trained fields are copied (the others are read, never written)
    work = {k: t.detach().clone() if k in lrs and not in_place else t.detach() for k, t in student.fields().items()}
    g = torch.Generator().manual_seed(cfg.seed)
    n = len(student)
    k_chunks = 1 if cfg.chunk is None or n <= cfg.chunk else math.ceil(n / cfg.chunk)
    chunks = [None] if k_chunks == 1 else \
        [c.sort().values for c in torch.randperm(n, generator=g).chunk(k_chunks)]
    order = torch.randperm(len(views), generator=g)
    history: list[float] = []
    step = 0
    for c, idx in enumerate(chunks):
        if idx is None:  # one chunk: the tensors themselves are the parameters
            params = {k: work[k].requires_grad_(True) for k in lrs}
        else:
            params = {k: work[k][idx].clone().requires_grad_(True) for k in lrs}
        opt = _adam([{"params": [params[k]], "lr": lr} for k, lr in lrs.items()])
        for _ in range(cfg.steps // k_chunks + (c < cfg.steps % k_chunks)):
            if cfg.max_seconds is not None and time.perf_counter() - t_start > cfg.max_seconds:
                break
            if step and step % len(views) == 0:
                order = torch.randperm(len(views), generator=g)
            i = int(order[step % len(views)])
            if idx is None:
                out = rasterize(student.replace(**dict(work, **params)), views[i], backend=backend).colors[0]
            else:
                out = _render_chunk(student, work, params, idx, views[i], backend)
            tgt = targets[i].to(out.dtype)
            loss = (1 - cfg.ssim_weight) * (out - tgt).abs().mean()
            if cfg.ssim_weight:
                # zero-padded SSIM in float32: the training loss (fidelity reports the standard one)
                loss = loss + cfg.ssim_weight * (1 - ssim(out, tgt, padding="same", dtype=None))
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            history.append(float(loss.detach()))
            del out, loss
            step += 1
            if progress is not None:
                progress.advance(1, f"loss {history[-1]:.4f}")
        with torch.no_grad():
            for k, p in params.items():
                if idx is None:
                    work[k] = p.detach()
                else:
                    work[k][idx] = p.detach()
        del opt, params
    return student.replace(**{k: t.detach() for k, t in work.items()}), history


def _render_chunk(student: GaussianScene, work: dict[str, Tensor], params: dict[str, Tensor], idx: Tensor,
                  view: Camera, backend: str) -> Tensor:
    """Render [H,W,3] of ``work`` with the chunk ``idx``'s trained fields replaced by ``params``
    (the gradient reaches only them). The colours of the other Gaussians are evaluated without a
    gradient and the chunk's spliced in, so what autograd keeps for all N is the composited
    colour and opacity (4 channels), not the SH coefficients."""
    fields = dict(work)
    for k in ("opacity_logits", "means", "log_scales", "quats"):
        if k in params:
            fields[k] = work[k].index_put((idx,), params[k])
    viewmats, _ = stack_cameras([view], dtype=work["means"].dtype, device=work["means"].device)
    campos = torch.linalg.inv(viewmats)[:, :3, 3]
    deg = student.sh_degree
    with torch.no_grad():
        rest = sh_colors_split(deg, work["sh_dc"], work["sh_rest"], work["means"], campos)[0]
    dc, sh_rest = params.get("sh_dc", work["sh_dc"][idx]), params.get("sh_rest", work["sh_rest"][idx])
    part = sh_colors(deg, torch.cat([dc[:, None, :], sh_rest], dim=1), fields["means"][idx], campos)[0]
    colors = rest.index_put((idx,), part)
    return rasterize(student.replace(**fields), view, mode="features", features=colors, backend=backend).colors[0]


def distill_sh(
    teacher: GaussianScene,
    views: Sequence[Camera],
    sh_degree: int,
    *,
    config: FinetuneConfig | None = None,
    backend: str = "auto",
    progress: Progress | None = None,
) -> tuple[GaussianScene, list[float]]:
    """Student with SH degree ``sh_degree`` (truncated teacher), trained on the teacher's renders."""
    if sh_degree >= teacher.sh_degree:
        return teacher.detach(), []
    student = teacher.detach().with_sh_degree(sh_degree)
    return finetune(student, teacher, views, config=config, backend=backend, progress=progress)
