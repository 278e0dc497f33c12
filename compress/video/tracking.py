"""Render-supervised tracking for sequences whose frames are not the same Gaussians.

Frames trained one by one share a surface but no Gaussians, so correspondence cannot be
recovered. As DualGS tracks its joint and skin Gaussians, we carry the keyframe's Gaussians
forward instead. Per frame:

1. **Motion.** The joint transforms (rotation vector and translation per joint, driving the
   Gaussians by the linear-blend skinning the decoder uses) start from a constant-velocity
   guess moved towards the frame's Gaussians by iterative closest points. Optionally
   (``iters`` > 0) they are then optimised so that renders of the carried set match renders
   of the target frame from K training views (L1 + SSIM, our differentiable CPU
   rasterizer; steps set by the content, cosine decay, early stop, coarse to fine). On
   re-sampled content the geometric fit follows the motion as well at a fraction of the
   cost, so it is the default. No per-Gaussian position residuals are fitted:
   on re-sampled content they fit the sampling noise (the codec's own sparse position
   corrections cover what the skinning cannot).
2. **Appearance refresh.** When the moved set still misses ``target_psnr`` on held-out views,
   its base colours (SH DC) are re-fitted to the target's renders by least squares
   (:func:`fit_colours`). Two independent samplings
   of one surface differ by their sampling noise (about 34 dB on held-out views at 20k
   Gaussians), so this is what lifts a carried frame above that floor; the codec sends the
   changed colours as sparse updates.
3. **Densify.** When it still misses, the frame's Gaussians that no carried Gaussian covers
   (farther than a few of the frame's spacings) are born, intra-coded, and carried ones with
   no surface under them die; kept only if the held-out PSNR rises.
4. **New segment.** A frame that still misses the target ends the carried run (the caller
   starts a new segment at it).

The carried frames hold the keyframe's Gaussians in its order (survivors first, then each
frame's births), so the tracked segment codec encodes them with their joint transforms. Fidelity is measured on held-out views (:func:`compress.video.fidelity.eval_cameras`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
from torch import Tensor

from splat.scene import GaussianScene

from .fidelity import eval_cameras, held_psnr, render_views
from .motion import (blend_positions, blend_quats, default_length, knn_joints, matrix_to_quat, procrustes,
                     quat_multiply, quat_to_matrix, quat_to_rotvec, rotvec_to_quat, skin_weights)
from .segment import joint_indices, rest_pose


@dataclass
class TrackSettings:
    """Tracking by rendering.

    views/size: training views per frame and their pixels (square); coarse: the first half
    of the motion steps renders at ``coarse * size`` pixels (at least 32; 1: one resolution);
    icp_rounds: rounds of iterative closest points before the render refinement; iters: most
    render-supervised motion steps per frame (0: the geometric fit alone, which on
    re-sampled content follows the motion as well at a fraction of the cost); step: first
    motion step as a fraction of the median Gaussian size; colour_iters / relax: steps of
    the least-squares colour refresh (:func:`fit_colours`) and their relaxation;
    patience / tol: stop when the loss has not improved by ``tol`` (relative) for
    ``patience`` steps; ssim_weight: weight of (1 - SSIM) next to L1; refresh: re-fit
    colours when the moved set misses the target; densify: when it still misses, target
    Gaussians farther than this many target spacings from any carried one are born and
    carried ones as far from the target die (0: off); target_psnr: held-out PSNR (dB) a frame
    must reach, else it ends the carried run; joint_fraction / k: joints per Gaussian and
    joints per binding (the codec passes its own)."""

    views: int = 12
    size: int = 192
    iters: int = 0
    step: float = 0.25
    coarse: float = 0.5
    icp_rounds: int = 3
    colour_iters: int = 6
    relax: float = 1.0
    patience: int = 4
    densify: float = 3.0
    tol: float = 2e-3
    ssim_weight: float = 0.2
    refresh: bool = True
    target_psnr: float = 30.0
    joint_fraction: float = 0.02
    k: int = 8


@dataclass
class TrackResult:
    """Carried frames (same Gaussians and order as the keyframe); per frame: the joint
    transforms (rotation vector, radians, and translation per joint: [J,6] float64, for the
    joints of :func:`~compress.video.segment.joint_indices`), held-out PSNR after the motion
    pass and after refresh, whether the colours were refreshed, the optimiser steps taken."""

    frames: list[GaussianScene]
    psnr: list[float]
    transforms: list[np.ndarray] = field(default_factory=list)
    deaths: list[np.ndarray] = field(default_factory=list)
    births: list[int] = field(default_factory=list)
    motion_psnr: list[float] = field(default_factory=list)
    refreshed: list[bool] = field(default_factory=list)
    steps: list[int] = field(default_factory=list)


def train_cameras(key: GaussianScene, views: int, size: int):
    """Training views: two orbits (elevation 15 and -20 degrees) at phases no evaluation
    view uses (:func:`~compress.video.fidelity.eval_cameras` is at 35 degrees, phase 17)."""
    from splat.camera import orbit_cameras

    half = max(1, views // 2)
    return (orbit_cameras(key, half, width=size, height=size, elevation_deg=15.0, phase_deg=11.0)
            + orbit_cameras(key, views - half, width=size, height=size, elevation_deg=-20.0, phase_deg=56.0))


def _render(scene: GaussianScene, cams) -> Tensor:
    from render.rasterize import rasterize

    return rasterize(scene, cams, backend="cpu").colors


def _loss(img: Tensor, ref: Tensor, ssim_weight: float) -> Tensor:
    from pytorch_msssim import ssim

    l1 = (img - ref).abs().mean()
    if ssim_weight <= 0:
        return l1
    s = ssim(img.permute(0, 3, 1, 2).clamp(0, 1), ref.permute(0, 3, 1, 2), data_range=1.0, size_average=True)
    return l1 + ssim_weight * (1.0 - s)


def descend(params: list[dict], loss_fn: Callable[[], Tensor], steps: int, patience: int, tol: float) -> tuple[list[Tensor], int]:
    """Adam on ``params`` (torch param groups) with a cosine step decay to 10%, early stop when
    the loss has not improved by ``tol`` (relative) for ``patience`` steps. Returns the best
    iterate's values (detached, in group order) and the steps taken."""
    opt = torch.optim.Adam(params)
    base = [g["lr"] for g in params]
    flat = [p for g in params for p in g["params"]]
    best, best_vals, since, taken = math.inf, [p.detach().clone() for p in flat], 0, 0
    for i in range(steps + 1):  # the last pass only scores the final step
        opt.zero_grad()
        loss = loss_fn()
        v = float(loss.detach())
        if v < best * (1 - tol):
            since = 0
        else:
            since += 1
        if v < best:
            best, best_vals = v, [p.detach().clone() for p in flat]
        if i == steps or since >= patience:
            break
        loss.backward()
        frac = 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * i / max(steps, 1)))
        for g, lr in zip(opt.param_groups, base):
            g["lr"] = lr * frac
        opt.step()
        taken += 1
    return best_vals, taken


class Carrier:
    """The keyframe's Gaussians bound to the segment codec's joints by its skinning (so the
    codec reproduces a carried frame from its joint transforms alone). Gaussians die and
    are born as the codec's segment state does (:class:`~compress.video.segment.SegmentState`)."""

    def __init__(self, key: GaussianScene, joint_fraction: float, k: int):
        self.key = key.to(dtype=torch.float32)
        self.k = k
        x0 = self.key.means.contiguous()
        self.centers = x0[torch.from_numpy(joint_indices(self.key, joint_fraction))]
        idx, d2 = knn_joints(x0, self.centers, k)
        self.length = default_length(d2)
        self.size = float(self.key.scales.median().clamp_min(1e-9))  # median Gaussian size
        self.reach = float(d2[:, 0].sqrt().median().clamp_min(self.size))  # typical Gaussian-to-joint distance
        self.x0, self.q0, self.idx, self.w = x0, self.key.unit_quats, idx, skin_weights(d2, self.length)
        k_ = self.key
        self.app = {"log_scales": k_.log_scales, "opacity_logits": k_.opacity_logits, "sh_dc": k_.sh_dc.clone(),
                    "sh_rest": k_.sh_rest}

    def __len__(self) -> int:
        return len(self.x0)

    def pose(self, rv: Tensor, t: Tensor, sh_dc: Tensor | None = None) -> GaussianScene:
        """The carried scene for joint rotation vectors rv [J,3] and translations t [J,3]
        (differentiable), with base colours ``sh_dc`` [N,3] (default: the carried ones)."""
        q = rotvec_to_quat(rv)
        pos = blend_positions(self.x0, self.idx, self.w, quat_to_matrix(q), t, self.centers)
        rot = quat_multiply(blend_quats(self.idx, self.w, q), self.q0)
        app = dict(self.app) if sh_dc is None else {**self.app, "sh_dc": sh_dc}
        return GaussianScene(means=pos, quats=rot, **app)

    def replace(self, dead: np.ndarray, born: GaussianScene | None, rv: Tensor, t: Tensor) -> None:
        """Remove the Gaussians at ``dead``, append ``born`` (at the pose rv, t)."""
        keep = torch.ones(len(self), dtype=torch.bool)
        keep[torch.from_numpy(np.asarray(dead, dtype=np.int64))] = False
        self.x0, self.q0, self.idx, self.w = self.x0[keep], self.q0[keep], self.idx[keep], self.w[keep]
        self.app = {n: v[keep] for n, v in self.app.items()}
        if born is None or not len(born):
            return
        born = born.to(dtype=torch.float32)
        x0, q0 = rest_pose(born, self.centers, rotvec_to_quat(rv), t)
        bi, d2 = knn_joints(x0.contiguous(), self.centers, self.k)
        self.x0, self.q0 = torch.cat([self.x0, x0]).contiguous(), torch.cat([self.q0, q0])
        self.idx, self.w = torch.cat([self.idx, bi]), torch.cat([self.w, skin_weights(d2, self.length)])
        self.app = {n: torch.cat([v, getattr(born, n)]) for n, v in self.app.items()}


def uncovered(carried: GaussianScene, target: GaussianScene, factor: float) -> tuple[np.ndarray, np.ndarray]:
    """Where the carried set and the target frame disagree on the surface: (indices of
    carried Gaussians with no target Gaussian within ``factor`` x the target's median
    nearest-neighbour spacing: deaths; indices of target Gaussians with no carried one
    within it: births)."""
    from scipy.spatial import cKDTree

    a, b = carried.means.double().numpy(), target.means.double().numpy()
    tb = cKDTree(b)
    spacing = float(np.median(tb.query(b, k=2)[0][:, 1])) if len(b) > 1 else 0.0
    r = factor * spacing
    dead = np.flatnonzero(tb.query(a, distance_upper_bound=r)[0] > r)
    born = np.flatnonzero(cKDTree(a).query(b, distance_upper_bound=r)[0] > r)
    return dead, born


def geometric_start(car: "Carrier", rv: Tensor, t: Tensor, target: Tensor, rounds: int) -> tuple[Tensor, Tensor]:
    """Joint transforms moved towards the target frame's Gaussians by ``rounds`` of
    iterative closest points: each carried Gaussian pairs with its nearest target Gaussian
    (pairs farther than 3x the median pair distance are dropped), then a weighted rigid fit
    per joint (:func:`~compress.video.motion.procrustes`). On a re-sampled surface the pairs
    are noisy but the fit averages them over each joint's neighbourhood. target: [M,3]."""
    from scipy.spatial import cKDTree

    tree = cKDTree(target.double().numpy())
    for _ in range(rounds):
        with torch.no_grad():
            pos = car.pose(rv, t).means
        d, j = tree.query(pos.double().numpy())
        keep = torch.from_numpy(d <= 3 * np.median(d) + 1e-12)
        R, tt = procrustes(car.x0[keep], target[torch.from_numpy(j)][keep], car.idx[keep], car.w[keep], car.centers)
        rv, t = quat_to_rotvec(matrix_to_quat(R)).float(), tt.float()
    return rv, t


def fit_colours(carried: GaussianScene, ref: Tensor, cams, iters: int = 8, relax: float = 1.0) -> tuple[GaussianScene, int]:
    """``carried`` with its base colours (SH DC) re-fitted to the renders ``ref`` [V,H,W,3]
    from ``cams`` by least squares (what PSNR measures). With the geometry fixed a render is
    linear in the base colours, image = A rgb, A [pixels, N] holding each Gaussian's blend
    weight (alpha x transmittance) at each pixel. Simultaneous algebraic reconstruction
    (SART): rgb += relax * (A^T (r / rowsum)) / colsum, r the residual image, rowsum the
    pixel's alpha, colsum the Gaussian's blend weight summed over the views; one render
    and one backward pass (which gives A^T) per step, the best iterate kept. Each view's SH
    colours are evaluated once: a base-colour change adds to all of them. Refitted
    colours are kept in [0, 1] (what the codec's colour updates can hold); Gaussians no view
    sees keep theirs. Returns (the refreshed scene, steps taken)."""
    from render.rasterize import rasterize
    from render.sh import sh_colors_split
    from splat.camera import stack_cameras
    from splat.scene import SH_C0

    geo = dict(means=carried.means.detach(), quats=carried.quats.detach(), log_scales=carried.log_scales,
               opacity_logits=carried.opacity_logits, sh_rest=carried.sh_rest)
    dc0 = carried.sh_dc.detach()
    with torch.no_grad():  # each view's colours at the start; a base-colour change adds to all of them
        viewmats, _ = stack_cameras(list(cams), dtype=dc0.dtype, device=dc0.device)
        view0 = sh_colors_split(carried.sh_degree, dc0, carried.sh_rest, carried.means, torch.linalg.inv(viewmats)[:, :3, 3])
    rgb0 = dc0 * SH_C0 + 0.5
    rgb = rgb0.clone()
    scene = GaussianScene(sh_dc=dc0, **geo)
    best, best_rgb, colsum, taken = math.inf, rgb, None, 0
    for i in range(iters + 1):
        feats = (view0 + (rgb - rgb0)[None]).requires_grad_(i < iters)
        out = rasterize(scene, cams, mode="features", features=feats, backend="cpu",
                        return_stats="blend_weight" if colsum is None else False)
        img = out.colors
        r = (ref - img).detach()
        err = float((r * r).mean())
        if err < best:
            best, best_rgb = err, rgb
        if i == iters:
            break
        if colsum is None:
            colsum = out.stats.blend_weight.detach()
            seen = colsum > 1e-3
        (img * (r / out.alphas.detach().clamp_min(0.05))).sum().backward()
        step = feats.grad.sum(0) / colsum.clamp_min(1e-3)[:, None]
        rgb = torch.where(seen[:, None], (rgb + relax * step).clamp(0.0, 1.0), rgb0)
        taken += 1
    best_dc = torch.where((best_rgb != rgb0).any(1, keepdim=True), (best_rgb - 0.5) / SH_C0, dc0)
    return GaussianScene(sh_dc=best_dc, **geo), taken


def _detached(s: GaussianScene) -> GaussianScene:
    return GaussianScene(means=s.means.detach().clone(), quats=s.quats.detach().clone(), log_scales=s.log_scales,
                         opacity_logits=s.opacity_logits, sh_dc=s.sh_dc.detach().clone(), sh_rest=s.sh_rest)


def track_frames(frames: list[GaussianScene], ts: TrackSettings | None = None,
                 progress: Callable[[], None] | None = None, key: GaussianScene | None = None,
                 held: list | None = None) -> TrackResult:
    """Carry the keyframe's Gaussians through ``frames`` (see the module doc). ``key``: the
    Gaussians to carry, e.g. the decoded keyframe (default ``frames[0]``); ``held``: the
    views the target is checked on (default :func:`~compress.video.fidelity.eval_cameras`
    of the keyframe). Stops early at the
    first frame whose held-out PSNR is below ``ts.target_psnr`` after motion and appearance
    refresh (that frame is not returned). ``progress()`` is called per frame."""
    ts = ts or TrackSettings()
    car = Carrier(frames[0] if key is None else key, ts.joint_fraction, ts.k)
    fine = train_cameras(car.key, ts.views, ts.size)
    coarse = train_cameras(car.key, ts.views, max(32, int(ts.size * ts.coarse)))
    held = eval_cameras(car.key) if held is None else held
    J = len(car.centers)
    rv, tr = torch.zeros(J, 3), torch.zeros(J, 3)
    prev = (rv.clone(), tr.clone())
    none = np.zeros(0, np.int64)
    out = TrackResult([car.key], [float("inf")], [np.zeros((J, 6))], [none], [0], [float("inf")], [False], [0])
    lr_t = ts.step * car.size
    lr_r = lr_t / car.reach
    for f in range(1, len(frames)):
        target = frames[f].to(dtype=torch.float32)
        start = (2 * rv - prev[0], 2 * tr - prev[1])  # constant-velocity start
        prev = (rv, tr)
        rv, tr = geometric_start(car, *start, target.means, ts.icp_rounds) if ts.icp_rounds else start
        steps = 0
        split = ts.iters // 2 if 0 < ts.coarse < 1 else 0
        refs: dict = {}

        def ref_of(cams) -> Tensor:  # the target's training renders, once per frame and camera set
            if id(cams) not in refs:
                with torch.no_grad():
                    refs[id(cams)] = _render(target, cams).clamp(0, 1)
            return refs[id(cams)]

        for cams, n_it in ((coarse, split), (fine, ts.iters - split)):
            if n_it == 0:
                continue
            r_c = ref_of(cams)
            p_rv, p_tr = rv.clone().requires_grad_(True), tr.clone().requires_grad_(True)
            (rv, tr), n = descend([{"params": [p_rv], "lr": lr_r}, {"params": [p_tr], "lr": lr_t}],
                                  lambda: _loss(_render(car.pose(p_rv, p_tr), cams), r_c, ts.ssim_weight),
                                  n_it, ts.patience, ts.tol)
            steps += n
        with torch.no_grad():
            carried = _detached(car.pose(rv, tr))
            held_ref = render_views(target, held)
            p = held_psnr(carried, held_ref, held)
        refreshed, p_motion = False, p
        if p < ts.target_psnr and ts.refresh and ts.colour_iters > 0:
            cand, n = fit_colours(carried, ref_of(fine), fine, ts.colour_iters, ts.relax)
            steps += n
            with torch.no_grad():
                p2 = held_psnr(cand, held_ref, held)
            if p2 > p:
                carried, p, refreshed = cand, p2, True
        dc_new = carried.sh_dc
        dead, born = none, None
        if p < ts.target_psnr and ts.densify > 0:
            dead, b_idx = uncovered(carried, target, ts.densify)
            if len(dead) or len(b_idx):
                born = target[torch.from_numpy(b_idx)]
                keep = torch.ones(len(carried), dtype=torch.bool)
                keep[torch.from_numpy(dead)] = False
                cand = GaussianScene.cat([carried[keep], born])
                with torch.no_grad():
                    p2 = held_psnr(cand, held_ref, held)
                if p2 > p:
                    carried, p = cand, p2
                else:
                    dead, born = none, None
        if progress is not None:
            progress()
        if p < ts.target_psnr:
            break
        if refreshed:
            car.app["sh_dc"] = dc_new
        car.replace(dead, born, rv, tr)
        out.frames.append(carried)
        out.deaths.append(dead)
        out.births.append(0 if born is None else len(born))
        out.psnr.append(p)
        out.transforms.append(torch.cat([rv, tr], 1).double().numpy())
        out.motion_psnr.append(p_motion)
        out.refreshed.append(refreshed)
        out.steps.append(steps)
    return out
