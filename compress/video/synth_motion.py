"""Synthetic non-rigid motion of a scene with known correspondence (tests and benchmarks).

:func:`motion_clip` bends a static scene through a periodic motion and writes every frame
in a new random order, as a per-frame writer that sorts its Gaussians would. The true
permutation is kept, so a matcher's recovered share can be measured.

Motions (about the scene's principal axis; ``h`` in 0..1 is a Gaussian's height along it):

* ``twist``: rotation about the axis by ``theta(t) * h``: the far end turns most;
* ``swing``: the part above mid-height rotates rigidly about a perpendicular axis through
  the middle (a smooth joint), like an arm swinging at the shoulder.

``theta(t) = A sin(2 pi t / cycle)``. The amplitude ``A`` is solved so that the fastest
Gaussian moves ``speed`` median neighbour spacings between consecutive frames. ``keep``
selects which time steps are written (dropped frames move further between kept ones).
Positions and rotations move; colour, opacity, scales and SH stay.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from splat.scene import GaussianScene

from .correspondence import spacing
from .motion import quat_multiply, rotvec_to_quat

KINDS = ("twist", "swing")


@dataclass
class MotionClip:
    """Frames [F] in shuffled order; ``truth[f][g]``: index in frame f of the scene's
    Gaussian g; ``speeds[f]`` (f >= 1): the largest displacement from frame f-1 to f in
    neighbour spacings; ``spacing``: the scene's median neighbour spacing."""

    frames: list
    truth: list
    speeds: list
    spacing: float
    amplitude: float


def _frame_axes(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(centre [3], principal axis [3], a perpendicular axis [3], heights h [N] in 0..1)."""
    c = x.mean(0)
    u, s, vt = np.linalg.svd(x - c, full_matrices=False)
    axis, perp = vt[0], vt[1]
    p = (x - c) @ axis
    lo, hi = np.percentile(p, [1, 99])
    h = np.clip((p - lo) / max(hi - lo, 1e-12), 0.0, 1.0)
    return c, axis, perp, h


def _rotvecs(kind: str, theta: float, h: np.ndarray, axis: np.ndarray, perp: np.ndarray) -> np.ndarray:
    if kind == "twist":
        return (theta * h)[:, None] * axis[None]
    w = np.clip((h - 0.35) / 0.3, 0.0, 1.0)
    w = w * w * (3 - 2 * w)  # smoothstep: rigid above, still below, a smooth joint between
    return (theta * w)[:, None] * perp[None]


def _pose(x: np.ndarray, kind: str, theta: float, c: np.ndarray, axis: np.ndarray, perp: np.ndarray,
          h: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Moved points [N,3] and per-point rotation quaternions [N,4] at angle theta."""
    rv = _rotvecs(kind, theta, h, axis, perp)
    q = rotvec_to_quat(torch.from_numpy(rv)).numpy()
    pivot = c  # twist: about the principal axis through the centre
    if kind == "swing":  # about a perpendicular axis at mid-height
        p = (x - c) @ axis
        lo, hi = np.percentile(p, [1, 99])
        pivot = c + axis * (lo + 0.5 * (hi - lo))
    d = x - pivot
    # Rodrigues per point
    ang = np.linalg.norm(rv, axis=1, keepdims=True)
    k = np.divide(rv, ang, out=np.zeros_like(rv), where=ang > 0)
    cos, sin = np.cos(ang), np.sin(ang)
    moved = d * cos + np.cross(k, d) * sin + k * (k * d).sum(1, keepdims=True) * (1 - cos)
    return moved + pivot, q


def motion_clip(scene: GaussianScene, kind: str = "twist", speed: float = 5.0, frames: int = 12,
                cycle: float = 12.0, keep: list | None = None, seed: int = 0,
                amplitude: float | None = None) -> MotionClip:
    """``frames`` time steps of ``kind`` motion at peak ``speed`` spacings per time step
    (one ``cycle`` every ``cycle`` steps), written in a new random order each frame. ``keep``:
    the time steps written (default all). ``amplitude`` (radians at the far end): use it
    instead of solving for ``speed``."""
    if kind not in KINDS:
        raise ValueError(f"unknown motion {kind!r} (choose {', '.join(KINDS)})")
    scene = scene.to(dtype=torch.float32)
    x = scene.means.double().numpy()
    sp = spacing(x) or 1.0
    c, axis, perp, h = _frame_axes(x)
    ts = np.arange(frames)

    def peak(amp: float) -> float:
        prev = x
        worst = 0.0
        for t in ts[1:]:
            cur = _pose(x, kind, amp * np.sin(2 * np.pi * t / cycle), c, axis, perp, h)[0]
            worst = max(worst, float(np.linalg.norm(cur - prev, axis=1).max()))
            prev = cur
        return worst / sp

    amp = 0.1 if amplitude is None else float(amplitude)
    for _ in range(0 if amplitude is not None else 40):  # the peak speed grows with the amplitude: secant-free doubling, then bisection
        if peak(amp) >= speed or amp > 50:
            break
        amp *= 2
    lo, hi = (0.0, amp) if amplitude is None else (amp, amp)
    for _ in range(30 if amplitude is None else 0):
        mid = 0.5 * (lo + hi)
        if peak(mid) < speed:
            lo = mid
        else:
            hi = mid
    amp = 0.5 * (lo + hi)
    steps = list(ts) if keep is None else [int(t) for t in keep]
    g = np.random.default_rng(seed)
    out, truth, speeds, prev = [], [], [], None
    base_q = scene.unit_quats.double()
    for t in steps:
        pos, q = _pose(x, kind, amp * np.sin(2 * np.pi * t / cycle), c, axis, perp, h)
        quats = quat_multiply(torch.from_numpy(q), base_q)
        fr = scene.replace(means=torch.from_numpy(pos).float(), quats=quats.float())
        perm = g.permutation(len(x))  # frame index -> Gaussian
        inv = np.empty_like(perm)
        inv[perm] = np.arange(len(perm))  # Gaussian -> frame index
        out.append(fr[torch.from_numpy(perm)])
        truth.append(inv)
        speeds.append(0.0 if prev is None else float(np.linalg.norm(pos - prev, axis=1).max() / sp))
        prev = pos
    return MotionClip(out, truth, speeds, sp, amp)
