"""A synthetic Gaussian "performer" driven by real motion capture (test content).

Gaussians sit on capsules around the bones of a BVH skeleton (torso thicker than limbs),
with a striped colour texture and degree-1 SH. Every frame, positions follow linear-blend
skinning (each Gaussian bound to its bone's joint, blended with the parent joint near the
bone's start), plus a small, spatially coherent cloth-like wobble along the surface
normal; rotations follow the blended joint rotation. About ``colour_change_per_s`` of the
Gaussians take a new colour per second. Same count and order in every frame (tracked).
"""
from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from splat.errors import UsageError
from splat.scene import GaussianScene

from .bvh import Motion, read_bvh
from .motion import matrix_to_quat, quat_multiply

DEFAULT_BVH_NAME = "mocapbank_455f.bvh"


def default_bvh_path() -> Path:
    """The default motion: ``$SPLAT_BVH`` if set, else ``motion/mocapbank_455f.bvh`` under
    ``$SPLAT_SHARED_DATA`` or ``../shared/data`` beside a source checkout (an installed wheel
    has no such folder; see :func:`require_default_bvh`)."""
    env = os.environ.get("SPLAT_BVH")
    if env:
        return Path(env)
    shared = os.environ.get("SPLAT_SHARED_DATA")
    if shared:
        return Path(shared) / "motion" / DEFAULT_BVH_NAME
    return (Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "motion" / DEFAULT_BVH_NAME).resolve()


def require_default_bvh() -> Path:
    """:func:`default_bvh_path`, or a one-line ``UsageError`` saying how to give a BVH when it is missing."""
    path = default_bvh_path()
    if not path.is_file():
        raise UsageError(f"no default motion capture at {path} (it comes with a source checkout's ../shared data, "
                         "not with the installed package); pass --bvh FILE or set SPLAT_BVH")
    return path


def _radius(name: str) -> float:
    n = name.lower()
    if "chest" in n or "hips" in n:
        return 0.13
    if "head" in n or "neck" in n:
        return 0.09
    if "hip" in n or "knee" in n:
        return 0.07
    if "collar" in n:
        return 0.06
    return 0.045


class Performer:
    """Rest-pose Gaussians bound to a skeleton; :meth:`frame` poses them."""

    def __init__(self, motion: Motion, n_gaussians: int = 50000, seed: int = 0, scale: float = 0.01,
                 wobble: float = 0.004, colour_change_per_s: float = 0.03, frame_step: int = 1):
        self.motion = motion
        self.frame_step = frame_step
        self.fps = 1.0 / (motion.frame_time * frame_step)
        g = np.random.default_rng(seed)
        R, P = motion.global_transforms(scale)
        self.R, self.P = R, P
        joints = motion.joints
        bones = []  # (owner joint, start pos, end pos, radius)
        for j, jt in enumerate(joints):
            if jt.parent >= 0:
                p = jt.parent
                bones.append((p, P[0, p], P[0, j], _radius(joints[p].name)))
            if jt.end_site is not None:
                end = P[0, j] + R[0, j] @ (jt.end_site * scale)
                bones.append((j, P[0, j], end, _radius(jt.name)))
        lengths = np.array([max(np.linalg.norm(b[2] - b[1]), 1e-3) for b in bones])
        radii = np.array([b[3] for b in bones])
        area = 2 * np.pi * radii * (lengths + 2 * radii)
        counts = np.floor(area / area.sum() * n_gaussians).astype(int)
        counts[np.argmax(counts)] += n_gaussians - counts.sum()
        means, quats, scales, rgb, owner, parent_w, parent_j, normals = [], [], [], [], [], [], [], []
        palette = np.array([[0.8, 0.25, 0.2], [0.2, 0.35, 0.75], [0.9, 0.75, 0.6], [0.25, 0.6, 0.3]])
        for b, (j, a, c, r) in enumerate(bones):
            m = counts[b]
            if m == 0:
                continue
            axis = c - a
            L = float(np.linalg.norm(axis))
            if L < 1e-6:  # a zero-length bone (Mixamo end joints): a sphere, about any axis
                L, ax = 0.0, np.array([0.0, 1.0, 0.0])
            else:
                ax = axis / L
            e1 = np.cross(ax, [0.0, 0.0, 1.0] if abs(ax[2]) < 0.9 else [1.0, 0.0, 0.0])
            e1 /= np.linalg.norm(e1)
            e2 = np.cross(ax, e1)
            # capsule: cylinder plus hemispherical caps, parameterised by s in [-r, L + r]
            s = g.uniform(-r, L + r, m)
            th = g.uniform(0, 2 * np.pi, m)
            cap = np.clip(np.maximum(-s, s - L), 0, r)
            rad = np.sqrt(np.maximum(r * r - cap * cap, 0.0)) * g.uniform(0.96, 1.0, m)
            along = np.clip(s, -r, L + r)
            nrm = np.cos(th)[:, None] * e1 + np.sin(th)[:, None] * e2
            x = a + along[:, None] * ax + rad[:, None] * nrm
            means.append(x)
            normals.append(nrm)
            tang = np.cross(nrm, ax)
            rot = np.stack([ax[None].repeat(m, 0), tang, nrm], 2)  # columns: along, around, normal
            quats.append(matrix_to_quat(torch.from_numpy(rot)).numpy())
            spacing = math.sqrt(area[b] / max(m, 1))
            sc = np.stack([np.full(m, 0.8 * spacing), np.full(m, 0.8 * spacing), np.full(m, 0.2 * spacing)], 1)
            scales.append(sc * g.uniform(0.8, 1.2, (m, 1)))
            base = palette[b % len(palette)]
            u = along / (L if L > 0 else r)
            stripes = 0.5 + 0.5 * np.sin(12 * np.pi * u + 3 * th)
            col = base[None] * (0.6 + 0.4 * stripes[:, None]) + g.normal(0, 0.03, (m, 3))
            rgb.append(np.clip(col, 0.02, 0.98))
            owner.append(np.full(m, j))
            pj = joints[j].parent
            w = np.where((u < 0.25) & (pj >= 0), 0.5 * (0.25 - np.clip(u, 0, None)) / 0.25, 0.0)
            parent_w.append(w)
            parent_j.append(np.full(m, max(pj, 0)))
        self.x0 = np.concatenate(means)
        self.normals = np.concatenate(normals)
        self.q0 = np.concatenate(quats)
        self.scales = np.concatenate(scales)
        self.rgb0 = np.concatenate(rgb)
        self.owner = np.concatenate(owner)
        self.parent_w = np.concatenate(parent_w)
        self.parent_j = np.concatenate(parent_j)
        n = len(self.x0)
        self.n = n
        self.opacity = g.uniform(0.75, 0.97, n)
        self.sh_rest = g.normal(0, 0.04, (n, 3, 3))
        self.phase = self.x0 @ np.array([9.0, 7.0, 11.0])
        self.seed = seed
        self.colour_rate = colour_change_per_s
        self.wobble = wobble
        self.n_frames = (motion.n_frames + frame_step - 1) // frame_step

    def _colours(self, f: int) -> np.ndarray:
        """Colours at frame f: a few % per second switch to a new colour, cumulatively."""
        rgb = self.rgb0.copy()
        per_frame = self.colour_rate / self.fps
        for t in range(1, f + 1):
            g = np.random.default_rng((self.seed, t))
            k = g.binomial(self.n, per_frame)
            idx = g.choice(self.n, size=k, replace=False)
            rgb[idx] = g.uniform(0.05, 0.95, (k, 3))
        return rgb

    def frame(self, f: int, colours: np.ndarray | None = None) -> GaussianScene:
        """Scene at output frame f (motion frame f * frame_step)."""
        t = f * self.frame_step
        M = np.zeros((len(self.motion.joints), 3, 4))
        for j in range(len(self.motion.joints)):
            Rr = self.R[t, j] @ self.R[0, j].T
            M[j, :, :3] = Rr
            M[j, :, 3] = self.P[t, j] - Rr @ self.P[0, j]
        wo, wp = 1.0 - self.parent_w, self.parent_w
        A = wo[:, None, None] * M[self.owner] + wp[:, None, None] * M[self.parent_j]
        x = (A[:, :, :3] @ self.x0[:, :, None])[:, :, 0] + A[:, :, 3]
        n_world = (A[:, :, :3] @ self.normals[:, :, None])[:, :, 0]
        time_s = f / self.fps
        x = x + self.wobble * np.sin(2 * np.pi * 1.5 * time_s + self.phase)[:, None] * n_world
        qo = matrix_to_quat(torch.from_numpy(M[self.owner, :, :3]))
        qp = matrix_to_quat(torch.from_numpy(M[self.parent_j, :, :3]))
        sgn = torch.sign((qo * qp).sum(-1, keepdim=True))
        qb = torch.from_numpy(wo)[:, None] * qo + torch.from_numpy(wp)[:, None] * sgn * qp
        qb = qb / qb.norm(dim=-1, keepdim=True)
        q = quat_multiply(qb, torch.from_numpy(self.q0))
        rgb = self._colours(f) if colours is None else colours
        d = torch.float64
        s = GaussianScene.from_activated(torch.from_numpy(x), q, torch.from_numpy(self.scales),
                                         torch.from_numpy(self.opacity), torch.from_numpy(rgb).to(d),
                                         torch.from_numpy(self.sh_rest))
        return s.to(dtype=torch.float32)

    def frames(self, count: int | None = None, start: int = 0) -> list[GaussianScene]:
        count = self.n_frames - start if count is None else min(count, self.n_frames - start)
        out = []
        rgb = self._colours(start)
        for f in range(start, start + count):
            if f > start:  # incremental colour changes (same result as _colours(f))
                g = np.random.default_rng((self.seed, f))
                k = g.binomial(self.n, self.colour_rate / self.fps)
                idx = g.choice(self.n, size=k, replace=False)
                rgb[idx] = g.uniform(0.05, 0.95, (k, 3))
            out.append(self.frame(f, colours=rgb.copy()))
        return out


def performer_frames(n_gaussians: int = 50000, n_frames: int = 90, *, bvh: str | os.PathLike | None = None,
                     seed: int = 0, frame_step: int = 1, start: int = 0) -> tuple[list[GaussianScene], float]:
    """Frames of the synthetic performer and their fps."""
    motion = read_bvh(bvh or require_default_bvh())
    p = Performer(motion, n_gaussians, seed=seed, frame_step=frame_step)
    return p.frames(n_frames, start), p.fps


def resampled_performer_frames(n_gaussians: int = 50000, n_frames: int = 90, *, bvh: str | os.PathLike | None = None,
                               seed: int = 0, frame_step: int = 1) -> tuple[list[GaussianScene], float]:
    """An independently made sequence: the performer's surface and motion, with new Gaussians
    sampled every frame (frame f from a performer seeded ``seed + 1 + f``), as per-frame
    training would give. No Gaussian persists from one frame to the next."""
    motion = read_bvh(bvh or default_bvh_path())
    out, fps = [], 30.0
    for f in range(n_frames):
        p = Performer(motion, n_gaussians, seed=seed + 1 + f, frame_step=frame_step)
        if f >= p.n_frames:
            break
        out.append(p.frame(f))
        fps = p.fps
    return out, fps
