"""EWA projection of 3D Gaussians to screen space, with gsplat's exact conventions.

Vectorised PyTorch, differentiable through autograd, any float dtype. Gaussians that
are culled get ``radii == 0``; their other outputs are finite but meaningless.

Conventions (identical to gsplat's ``fully_fused_projection``, classic mode):

* near/far culling on camera-space depth z (near 0.01, far 1e10 by default);
* the Jacobian uses x/z and y/z clamped to 1.3x the half field of view;
* ``eps2d`` (0.3 px^2) is added to the 2D covariance diagonal (a low-pass filter);
  "antialiased" mode also scales opacity by sqrt(det(cov) / det(cov + eps2d I));
* Gaussians with opacity < 1/255 are culled; the screen extent is
  ``ceil(extend * sqrt(cov2d_ii))`` per axis with
  ``extend = min(3.33, sqrt(2 ln(255 * opacity)))``, which is exactly where alpha can
  still reach 1/255. Any pixel with alpha >= 1/255 lies inside it, so rendering with this
  extent gives the same image as a looser one.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

ALPHA_THRESHOLD = 1.0 / 255.0
GAUSSIAN_EXTEND = 3.33
MAX_ALPHA = 0.99  # our default clamp on one Gaussian's alpha (gsplat >= 1.6; gsplat 1.4-1.5 use 0.999)
TRANSMITTANCE_THRESHOLD = 1e-4


def check_max_alpha(max_alpha: float) -> float:
    """The alpha clamp as a float, or ValueError unless 1/255 < max_alpha < 1."""
    v = float(max_alpha)
    if not ALPHA_THRESHOLD < v < 1.0:
        raise ValueError(f"max_alpha must lie in (1/255, 1), got {max_alpha!r}")
    return v


@dataclass
class Projection:
    """Screen-space Gaussians for C cameras.

    means2d [C,N,2] pixels; conics [C,N,3] = (A, B, C) of the inverse 2D covariance, so that
    sigma = 0.5*(A dx^2 + C dy^2) + B dx dy; depths [C,N] camera z; radii [C,N,2] int32
    (0 = culled); opacities [C,N] (after antialiasing compensation, if any).
    """

    means2d: Tensor
    conics: Tensor
    depths: Tensor
    radii: Tensor
    opacities: Tensor


def quat_to_rotmat(quats: Tensor) -> Tensor:
    """Unit-normalise wxyz quaternions [N,4] and return rotation matrices [N,3,3]."""
    q = quats / quats.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    r = torch.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
            2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
            2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
        ],
        dim=-1,
    )
    return r.reshape(quats.shape[:-1] + (3, 3))


def covariance_3d(quats: Tensor, scales: Tensor) -> Tensor:
    """World covariance R diag(s^2) R^T [N,3,3] from wxyz quats [N,4] and scales [N,3]."""
    m = quat_to_rotmat(quats) * scales[..., None, :]
    return m @ m.transpose(-1, -2)


def project_gaussians(
    means: Tensor,
    quats: Tensor,
    scales: Tensor,
    opacities: Tensor,
    viewmats: Tensor,
    Ks: Tensor,
    width: int,
    height: int,
    *,
    eps2d: float = 0.3,
    near_plane: float = 0.01,
    far_plane: float = 1e10,
    radius_clip: float = 0.0,
    antialiased: bool = False,
) -> Projection:
    """Project N Gaussians into C cameras (see module docstring for the rules).

    means [N,3], quats [N,4] wxyz, scales [N,3] (activated), opacities [N] (activated),
    viewmats [C,4,4] world->camera, Ks [C,3,3].
    """
    R = viewmats[:, :3, :3]  # [C,3,3]
    t = viewmats[:, :3, 3]  # [C,3]
    mean_c = torch.einsum("cij,nj->cni", R, means) + t[:, None, :]  # [C,N,3]
    x, y, z = mean_c.unbind(-1)
    valid = (z >= near_plane) & (z <= far_plane)
    zs = torch.where(valid, z, torch.ones_like(z))

    m = quat_to_rotmat(quats) * scales[:, None, :]  # [N,3,3] = R S
    # camera-space  V = (W R S)(W R S)^T, with W the view rotation
    ws = torch.einsum("cij,njk->cnik", R, m)  # [C,N,3,3]
    cov_c = ws @ ws.transpose(-1, -2)

    fx, fy = Ks[:, 0, 0][:, None], Ks[:, 1, 1][:, None]
    cx, cy = Ks[:, 0, 2][:, None], Ks[:, 1, 2][:, None]
    tan_x, tan_y = 0.5 * width / fx, 0.5 * height / fy
    lim_xp = (width - cx) / fx + 0.3 * tan_x
    lim_xn = cx / fx + 0.3 * tan_x
    lim_yp = (height - cy) / fy + 0.3 * tan_y
    lim_yn = cy / fy + 0.3 * tan_y
    rz = 1.0 / zs
    tx = zs * torch.minimum(lim_xp, torch.maximum(-lim_xn, x * rz))
    ty = zs * torch.minimum(lim_yp, torch.maximum(-lim_yn, y * rz))
    # J = [[fx/z, 0, -fx tx/z^2], [0, fy/z, -fy ty/z^2]]
    j00, j02 = fx * rz, -fx * tx * rz * rz
    j11, j12 = fy * rz, -fy * ty * rz * rz
    v00, v01, v02 = cov_c[..., 0, 0], cov_c[..., 0, 1], cov_c[..., 0, 2]
    v11, v12, v22 = cov_c[..., 1, 1], cov_c[..., 1, 2], cov_c[..., 2, 2]
    a = j00 * j00 * v00 + 2 * j00 * j02 * v02 + j02 * j02 * v22
    b = j00 * j11 * v01 + j00 * j12 * v02 + j02 * j11 * v12 + j02 * j12 * v22
    c = j11 * j11 * v11 + 2 * j11 * j12 * v12 + j12 * j12 * v22

    det_orig = a * c - b * b
    a = a + eps2d
    c = c + eps2d
    det = a * c - b * b
    valid = valid & (det > 0)
    det_s = torch.where(valid, det, torch.ones_like(det))
    conics = torch.stack([c / det_s, -b / det_s, a / det_s], dim=-1)

    op = opacities[None, :].expand_as(z)
    if antialiased:
        ratio = torch.where(valid, det_orig / det_s, torch.ones_like(det_s))
        op = op * torch.sqrt(torch.clamp_min(ratio, 0.0))

    means2d = torch.stack([fx * x * rz + cx, fy * y * rz + cy], dim=-1)

    with torch.no_grad():
        opd = op.detach()
        valid = valid & (opd >= ALPHA_THRESHOLD)
        ext = torch.sqrt(2.0 * torch.log(torch.clamp_min(opd, ALPHA_THRESHOLD) / ALPHA_THRESHOLD))
        ext = torch.clamp_max(ext, GAUSSIAN_EXTEND)
        rx = torch.ceil(ext * torch.sqrt(torch.clamp_min(a.detach(), 0.0)))
        ry = torch.ceil(ext * torch.sqrt(torch.clamp_min(c.detach(), 0.0)))
        valid = valid & ~((rx <= radius_clip) & (ry <= radius_clip))
        mx, my = means2d[..., 0].detach(), means2d[..., 1].detach()
        inside = (mx + rx > 0) & (mx - rx < width) & (my + ry > 0) & (my - ry < height)
        valid = valid & inside
        radii = torch.stack([rx, ry], dim=-1)
        radii = torch.where(valid[..., None], radii, torch.zeros_like(radii)).to(torch.int32)

    return Projection(means2d=means2d, conics=conics, depths=z, radii=radii, opacities=op)
