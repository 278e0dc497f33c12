"""Pure-PyTorch float64 brute-force reference renderer. Used only by tests.

Written for clarity, not speed: every Gaussian is evaluated at every pixel, matrices are
built explicitly, and compositing uses a cumulative product. It follows the same rules
as the fast backends (see ``render/projection.py`` and ``docs/renderer.md``):
alpha = min(max_alpha, opacity * exp(-sigma)) (0.99 unless told); contributions with alpha < 1/255 are skipped;
a pixel stops *before* the Gaussian that would bring its transmittance to <= 1e-4.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .projection import ALPHA_THRESHOLD, GAUSSIAN_EXTEND, MAX_ALPHA, TRANSMITTANCE_THRESHOLD


def _rotmat(q: Tensor) -> Tensor:
    q = q / q.norm(dim=-1, keepdim=True)
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    rows = [
        torch.stack([1 - 2 * (y**2 + z**2), 2 * (x * y - w * z), 2 * (x * z + w * y)], -1),
        torch.stack([2 * (x * y + w * z), 1 - 2 * (x**2 + z**2), 2 * (y * z - w * x)], -1),
        torch.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x**2 + y**2)], -1),
    ]
    return torch.stack(rows, dim=-2)


def project_reference(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmat: Tensor,
    K: Tensor,
    width: int,
    height: int,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    antialiased: bool = False,
):
    """One camera. Returns means2d [N,2], conics [N,3], depths [N], radii [N,2], opacities [N]."""
    Rw, tw = viewmat[:3, :3], viewmat[:3, 3]
    p = means @ Rw.T + tw
    z = p[:, 2]
    valid = (z >= near_plane) & (z <= far_plane)
    z1 = torch.where(valid, z, torch.ones_like(z))
    S = torch.diag_embed(scales)
    M = _rotmat(quats) @ S
    cov3 = M @ M.transpose(1, 2)
    cov_c = Rw @ cov3 @ Rw.T
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    limx_p = (width - cx) / fx + 0.3 * (0.5 * width / fx)
    limx_n = cx / fx + 0.3 * (0.5 * width / fx)
    limy_p = (height - cy) / fy + 0.3 * (0.5 * height / fy)
    limy_n = cy / fy + 0.3 * (0.5 * height / fy)
    tx = z1 * torch.clamp(p[:, 0] / z1, -limx_n, limx_p)
    ty = z1 * torch.clamp(p[:, 1] / z1, -limy_n, limy_p)
    J = torch.zeros(len(means), 2, 3, dtype=means.dtype)
    J[:, 0, 0] = fx / z1
    J[:, 0, 2] = -fx * tx / z1**2
    J[:, 1, 1] = fy / z1
    J[:, 1, 2] = -fy * ty / z1**2
    cov2 = J @ cov_c @ J.transpose(1, 2)
    det0 = torch.linalg.det(cov2)
    cov2 = cov2 + eps2d * torch.eye(2, dtype=means.dtype)
    det = torch.linalg.det(cov2)
    valid = valid & (det > 0)
    cov2 = torch.where(valid[:, None, None], cov2, torch.eye(2, dtype=means.dtype))
    inv = torch.linalg.inv(cov2)
    conics = torch.stack([inv[:, 0, 0], inv[:, 0, 1], inv[:, 1, 1]], -1)
    op = opacities
    if antialiased:
        op = op * torch.sqrt(torch.clamp_min(torch.where(valid, det0 / det, torch.ones_like(det)), 0.0))
    means2d = torch.stack([fx * p[:, 0] / z1 + cx, fy * p[:, 1] / z1 + cy], -1)
    with torch.no_grad():
        valid = valid & (op >= ALPHA_THRESHOLD)
        ext = torch.sqrt(2 * torch.log(op.clamp_min(ALPHA_THRESHOLD) * 255.0)).clamp_max(GAUSSIAN_EXTEND)
        r = torch.ceil(ext[:, None] * torch.sqrt(torch.stack([cov2[:, 0, 0], cov2[:, 1, 1]], -1)))
        m2 = means2d.detach()
        inside = (m2[:, 0] + r[:, 0] > 0) & (m2[:, 0] - r[:, 0] < width) & (m2[:, 1] + r[:, 1] > 0) & (m2[:, 1] - r[:, 1] < height)
        valid = valid & inside
        radii = torch.where(valid[:, None], r, torch.zeros_like(r)).to(torch.int32)
    return means2d, conics, z, radii, op


def composite_reference(
    means2d: Tensor,
    conics: Tensor,
    colors: Tensor,
    opacities: Tensor,
    depths: Tensor,
    radii: Tensor,
    width: int,
    height: int,
    background: Tensor | None = None,
    max_alpha: float = MAX_ALPHA,
):
    """Dense compositing for one camera.

    means2d [N,2], conics [N,3], colors [N,D], opacities [N], depths [N], radii [N,2];
    max_alpha clamps one Gaussian's alpha.
    Returns colour [H,W,D], alpha [H,W,1], blend weight per Gaussian [N], hit count [N].
    """
    n, d = colors.shape
    vis = (radii > 0).all(dim=-1)
    order = torch.argsort(torch.where(vis, depths, torch.full_like(depths, float("inf"))), stable=True)
    order = order[vis[order]]
    ys, xs = torch.meshgrid(torch.arange(height, dtype=means2d.dtype), torch.arange(width, dtype=means2d.dtype), indexing="ij")
    px, py = xs.reshape(-1) + 0.5, ys.reshape(-1) + 0.5  # [P]
    mu, con, op, col = means2d[order], conics[order], opacities[order], colors[order]
    dx = mu[:, 0:1] - px[None, :]
    dy = mu[:, 1:2] - py[None, :]
    sigma = 0.5 * (con[:, 0:1] * dx * dx + con[:, 2:3] * dy * dy) + con[:, 1:2] * dx * dy
    alpha = torch.clamp_max(op[:, None] * torch.exp(-sigma), max_alpha)  # [M,P]
    ok = (sigma >= 0) & (alpha >= ALPHA_THRESHOLD)
    a = torch.where(ok, alpha, torch.zeros_like(alpha))
    one_minus = 1.0 - a
    T_after = torch.cumprod(one_minus, dim=0)
    T_before = torch.cat([torch.ones_like(T_after[:1]), T_after[:-1]], dim=0)
    keep = ok & (T_after > TRANSMITTANCE_THRESHOLD)
    w = torch.where(keep, a * T_before, torch.zeros_like(a))  # [M,P]
    out = w.T @ col  # [P,D]
    T_final = torch.prod(torch.where(keep, one_minus, torch.ones_like(one_minus)), dim=0)
    if background is not None:
        out = out + T_final[:, None] * background[None, :]
    blend = torch.zeros(n, dtype=means2d.dtype).index_add(0, order, w.sum(dim=1))
    hits = torch.zeros(n, dtype=torch.int64).index_add(0, order, keep.sum(dim=1))
    return out.reshape(height, width, d), (1.0 - T_final).reshape(height, width, 1), blend, hits
