"""Render-supervised tracking for sequences whose frames are not the same Gaussians.

Frames trained one by one share a surface but no Gaussians, so correspondence cannot be
recovered. As DualGS tracks its joint and skin Gaussians, we carry the keyframe's Gaussians
forward instead: per frame, the joint transforms (rotation vector and translation per
joint, driving the Gaussians by the same linear-blend skinning the decoder uses) and sparse
per-Gaussian position residuals are optimised so that renders of the carried set match
renders of the target frame from K training views (L1 + SSIM, our differentiable CPU
rasterizer). The carried frames hold the same Gaussians in the same order, so the tracked
segment codec encodes them. Fidelity is measured on held-out views
(:func:`compress.video.eval.eval_cameras`); a frame below the target starts a new segment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from splat.scene import GaussianScene

from .motion import (blend_positions, blend_quats, default_length, farthest_point_sampling, knn_joints, quat_multiply,
                     quat_to_matrix, rotvec_to_quat, skin_weights)


@dataclass
class TrackSettings:
    """Tracking by rendering. views/size: training views per frame and their pixels (square);
    iters: Adam steps per frame; lr_rot (radians) and lr_trans / lr_residual (fractions of
    the scene extent): first step sizes, decayed exponentially to lr_decay times them by the
    last step (large moves first, then fine ones; the best iterate is kept); ssim_weight: weight of (1 - SSIM) next to L1;
    residual_l1: sparsity weight on the residuals (per unit of extent); target_psnr: a frame
    whose held-out PSNR falls below this starts a new segment (dB)."""

    views: int = 4
    size: int = 80
    iters: int = 20
    lr_rot: float = 0.01
    lr_trans: float = 0.002
    lr_residual: float = 0.001
    lr_decay: float = 1.0
    ssim_weight: float = 0.2
    residual_l1: float = 0.02
    target_psnr: float = 30.0
    joint_fraction: float = 0.02
    k: int = 4


@dataclass
class TrackResult:
    """Carried frames (same Gaussians and order as the keyframe) and held-out PSNR per frame."""

    frames: list[GaussianScene]
    psnr: list[float]


def _train_cameras(key: GaussianScene, ts: TrackSettings):
    from splat.camera import orbit_cameras

    half = max(1, ts.views // 2)
    return (orbit_cameras(key, half, width=ts.size, height=ts.size, elevation_deg=10.0)
            + orbit_cameras(key, ts.views - half, width=ts.size, height=ts.size, elevation_deg=-25.0, phase_deg=45.0))


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


class Carrier:
    """The keyframe's Gaussians bound to joints (farthest-point samples) by skinning."""

    def __init__(self, key: GaussianScene, joint_fraction: float, k: int):
        self.key = key.to(dtype=torch.float32)
        self.x0 = self.key.means.contiguous()
        self.q0 = self.key.unit_quats
        n = len(key)
        jidx = np.sort(farthest_point_sampling(self.x0.double().numpy(), max(4, int(round(joint_fraction * n)))))
        self.centers = self.x0[torch.from_numpy(jidx)]
        self.idx, d2 = knn_joints(self.x0, self.centers, k)
        self.w = skin_weights(d2, default_length(d2))
        self.extent = float((self.x0.max(0).values - self.x0.min(0).values).max().clamp_min(1e-6))

    def pose(self, rv: Tensor, t: Tensor, residual: Tensor) -> GaussianScene:
        """The carried scene for joint rotation vectors rv [J,3], translations t [J,3] and
        per-Gaussian position residuals [N,3] (differentiable)."""
        q = rotvec_to_quat(rv)
        pos = blend_positions(self.x0, self.idx, self.w, quat_to_matrix(q), t, self.centers) + residual
        rot = quat_multiply(blend_quats(self.idx, self.w, q), self.q0)
        k = self.key
        return GaussianScene(means=pos, quats=rot, log_scales=k.log_scales, opacity_logits=k.opacity_logits,
                             sh_dc=k.sh_dc, sh_rest=k.sh_rest)


def track_frames(frames: list[GaussianScene], ts: TrackSettings | None = None,
                 progress=None) -> TrackResult:
    """Carry ``frames[0]``'s Gaussians through ``frames`` (see the module doc). Stops early at
    the first frame whose held-out PSNR is below ``ts.target_psnr`` (that frame is not
    returned). ``progress()`` is called per frame."""
    from .eval import eval_cameras, frame_fidelity

    ts = ts or TrackSettings()
    car = Carrier(frames[0], ts.joint_fraction, ts.k)
    cams, held = _train_cameras(car.key, ts), eval_cameras(car.key)
    J, N = len(car.centers), len(car.x0)
    rv = torch.zeros(J, 3)
    tr = torch.zeros(J, 3)
    res = torch.zeros(N, 3)
    prev = (rv.clone(), tr.clone())
    out, fid = [car.key], [float("inf")]
    for f in range(1, len(frames)):
        target = frames[f].to(dtype=torch.float32)
        with torch.no_grad():
            ref = _render(target, cams).clamp(0, 1)
        # constant-velocity start, then Adam on the transforms and residuals
        start_rv, start_tr = 2 * rv - prev[0], 2 * tr - prev[1]
        prev = (rv.clone(), tr.clone())
        p_rv = start_rv.clone().requires_grad_(True)
        p_tr = start_tr.clone().requires_grad_(True)
        p_res = res.clone().requires_grad_(True)
        opt = torch.optim.Adam([{"params": [p_rv], "lr": ts.lr_rot},
                                {"params": [p_tr], "lr": ts.lr_trans * car.extent},
                                {"params": [p_res], "lr": ts.lr_residual * car.extent}])
        best = (float("inf"), start_rv, start_tr, res)
        sched = torch.optim.lr_scheduler.ExponentialLR(opt, ts.lr_decay ** (1.0 / max(ts.iters, 1)))
        for _ in range(ts.iters + 1):  # the last pass only scores the final step
            opt.zero_grad()
            img = _render(car.pose(p_rv, p_tr, p_res), cams)
            loss = _loss(img, ref, ts.ssim_weight) + ts.residual_l1 * p_res.abs().mean() / car.extent
            if float(loss.detach()) < best[0]:  # keep the best iterate seen (Adam's steps need not descend)
                best = (float(loss.detach()), p_rv.detach().clone(), p_tr.detach().clone(), p_res.detach().clone())
            if _ == ts.iters:
                break
            loss.backward()
            opt.step()
            sched.step()
        _, rv, tr, res = best
        with torch.no_grad():
            carried = car.pose(rv, tr, res)
            carried = GaussianScene(means=carried.means.detach().clone(), quats=carried.quats.detach().clone(),
                                    log_scales=carried.log_scales, opacity_logits=carried.opacity_logits,
                                    sh_dc=carried.sh_dc, sh_rest=carried.sh_rest)
            p = frame_fidelity(target, carried, held, f).psnr
        if progress is not None:
            progress()
        if p < ts.target_psnr:
            break
        out.append(carried)
        fid.append(p)
    return TrackResult(out, fid)
