"""Fused EWA projection for the CPU backend: one numba pass forward, one hand-written pass back.

Computes exactly what :func:`render.projection.project_gaussians` computes (classic
mode; the same culling, clamped Jacobian, eps2d and opacity-aware radii), in float64
internally, multi-threaded over Gaussians. The torch version issues ~100 tensor ops
(each allocating an [C,N] temporary) and autograd twice as many on the way back; this
does one pass each way. Tested against the torch version, gradients included
(``tests/test_cpu_projection.py``). Gradients reach means, quats and scales (and the
opacities, which pass through unchanged); camera gradients are not computed.
"""
from __future__ import annotations

import math

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor

from ..projection import ALPHA_THRESHOLD, GAUSSIAN_EXTEND, Projection

_CHUNK = 256  # Gaussians per parallel work item (scratch arrays are allocated once per item)


@njit(cache=True)
def _rotmat(qw, qx, qy, qz):
    return (
        1.0 - 2.0 * (qy * qy + qz * qz), 2.0 * (qx * qy - qw * qz), 2.0 * (qx * qz + qw * qy),
        2.0 * (qx * qy + qw * qz), 1.0 - 2.0 * (qx * qx + qz * qz), 2.0 * (qy * qz - qw * qx),
        2.0 * (qx * qz - qw * qy), 2.0 * (qy * qz + qw * qx), 1.0 - 2.0 * (qx * qx + qy * qy),
    )


@njit(cache=True)
def _camera_cov(Rv, q, s, wm):
    """Fill wm [9] with Rv Rot(q) diag(s) (row-major) for the unit quaternion q; return Rot(q)."""
    r = _rotmat(q[0], q[1], q[2], q[3])
    for i in range(3):
        for j in range(3):
            wm[i * 3 + j] = (Rv[i, 0] * r[j] + Rv[i, 1] * r[3 + j] + Rv[i, 2] * r[6 + j]) * s[j]
    return r


@njit(cache=True)
def _unit_quat_and_scales(quats, scales, n, q, s):
    """Fill q [4] with the unit quaternion and s [3] with the scales of Gaussian n; return |q|."""
    qn = max(math.sqrt(quats[n, 0] ** 2 + quats[n, 1] ** 2 + quats[n, 2] ** 2 + quats[n, 3] ** 2), 1e-12)
    for i in range(4):
        q[i] = quats[n, i] / qn
    for i in range(3):
        s[i] = scales[n, i]
    return qn


@njit(cache=True)
def _to_camera(Rv, means, n):
    """Camera-space position of Gaussian n under the world->camera matrix Rv [4,4]."""
    m0, m1, m2 = means[n, 0], means[n, 1], means[n, 2]
    return (Rv[0, 0] * m0 + Rv[0, 1] * m1 + Rv[0, 2] * m2 + Rv[0, 3],
            Rv[1, 0] * m0 + Rv[1, 1] * m1 + Rv[1, 2] * m2 + Rv[1, 3],
            Rv[2, 0] * m0 + Rv[2, 1] * m1 + Rv[2, 2] * m2 + Rv[2, 3])


@njit(cache=True)
def _ewa(Rv, K, width, height, eps2d, x, y, z, q, s, wm, t0, t1):
    """The EWA pieces shared by forward and backward.

    Fills wm = Rv Rot diag(s) [9] and the rows t0, t1 [3] of T = J wm; returns (limits
    (lxp, lxn, lyp, lyn), J entries (j00, j02, j11, j12), tx, ty, Rot [9 tuple], 2D
    covariance a, b, c with eps2d added).
    """
    fx, fy, cx, cy = K[0, 0], K[1, 1], K[0, 2], K[1, 2]
    r = _camera_cov(Rv, q, s, wm)
    rz = 1.0 / z
    tanx, tany = 0.5 * width / fx, 0.5 * height / fy
    lims = ((width - cx) / fx + 0.3 * tanx, cx / fx + 0.3 * tanx, (height - cy) / fy + 0.3 * tany, cy / fy + 0.3 * tany)
    tx = z * min(lims[0], max(-lims[1], x * rz))
    ty = z * min(lims[2], max(-lims[3], y * rz))
    js = (fx * rz, -fx * tx * rz * rz, fy * rz, -fy * ty * rz * rz)
    for k in range(3):
        t0[k] = js[0] * wm[k] + js[1] * wm[6 + k]
        t1[k] = js[2] * wm[3 + k] + js[3] * wm[6 + k]
    a = t0[0] * t0[0] + t0[1] * t0[1] + t0[2] * t0[2] + eps2d
    b = t0[0] * t1[0] + t0[1] * t1[1] + t0[2] * t1[2]
    c = t1[0] * t1[0] + t1[1] * t1[1] + t1[2] * t1[2] + eps2d
    return lims, js, tx, ty, r, a, b, c


@njit(parallel=True, cache=True)
def _project_fwd(means, quats, scales, opac, viewmats, Ks, width, height, eps2d, near, far, radius_clip,
                 out_xy, out_conic, out_depth, out_radii):
    C = viewmats.shape[0]
    N = means.shape[0]
    for chunk in prange((N + _CHUNK - 1) // _CHUNK):
        q, s, wm, t0, t1 = np.empty(4), np.empty(3), np.empty(9), np.empty(3), np.empty(3)  # scratch
        for n in range(chunk * _CHUNK, min(N, chunk * _CHUNK + _CHUNK)):
            _unit_quat_and_scales(quats, scales, n, q, s)
            o = np.float64(opac[n])
            for c in range(C):
                Rv = viewmats[c]
                x, y, z = _to_camera(Rv, means, n)
                out_depth[c, n] = z
                out_radii[c, n, 0] = 0
                out_radii[c, n, 1] = 0
                out_xy[c, n, 0] = 0.0
                out_xy[c, n, 1] = 0.0
                out_conic[c, n, 0] = 0.0
                out_conic[c, n, 1] = 0.0
                out_conic[c, n, 2] = 0.0
                if not (z >= near and z <= far):
                    continue
                _, _, _, _, _, a, b, cc = _ewa(Rv, Ks[c], width, height, eps2d, x, y, z, q, s, wm, t0, t1)
                det = a * cc - b * b
                if not det > 0.0:
                    continue
                fx, fy, cx, cy = Ks[c, 0, 0], Ks[c, 1, 1], Ks[c, 0, 2], Ks[c, 1, 2]
                rz = 1.0 / z
                mx = fx * x * rz + cx
                my = fy * y * rz + cy
                out_xy[c, n, 0] = mx
                out_xy[c, n, 1] = my
                out_conic[c, n, 0] = cc / det
                out_conic[c, n, 1] = -b / det
                out_conic[c, n, 2] = a / det
                if not o >= ALPHA_THRESHOLD:
                    continue
                ext = min(math.sqrt(2.0 * math.log(max(o, ALPHA_THRESHOLD) / ALPHA_THRESHOLD)), GAUSSIAN_EXTEND)
                rx = math.ceil(ext * math.sqrt(max(a, 0.0)))
                ry = math.ceil(ext * math.sqrt(max(cc, 0.0)))
                if rx <= radius_clip and ry <= radius_clip:
                    continue
                if mx + rx > 0 and mx - rx < width and my + ry > 0 and my - ry < height:
                    out_radii[c, n, 0] = np.int32(rx)
                    out_radii[c, n, 1] = np.int32(ry)


@njit(parallel=True, cache=True)
def _project_bwd(means, quats, scales, viewmats, Ks, width, height, eps2d, radii, v_xy, v_conic, v_depth,
                 g_means, g_quats, g_scales):
    C = viewmats.shape[0]
    N = means.shape[0]
    for chunk in prange((N + _CHUNK - 1) // _CHUNK):
        q, s, wm, t0, t1 = np.empty(4), np.empty(3), np.empty(9), np.empty(3), np.empty(3)  # scratch
        gt0, gt1, gwm = np.empty(3), np.empty(3), np.empty(9)
        gm, gR, gs = np.empty(3), np.empty(9), np.empty(3)  # dL/dmean, dL/dRot(q), dL/dscale
        for n in range(chunk * _CHUNK, min(N, chunk * _CHUNK + _CHUNK)):
            qn = _unit_quat_and_scales(quats, scales, n, q, s)
            gm[:] = 0.0
            gR[:] = 0.0
            gs[:] = 0.0
            for c in range(C):
                Rv = viewmats[c]
                vz_in = v_depth[c, n]
                x, y, z = _to_camera(Rv, means, n)
                if radii[c, n, 0] <= 0 or radii[c, n, 1] <= 0:
                    # culled: only the depth output (a plain function of the mean) carries a gradient
                    for i in range(3):
                        gm[i] += Rv[2, i] * vz_in
                    continue
                fx, fy = Ks[c, 0, 0], Ks[c, 1, 1]
                lims, js, tx, ty, r, a, b, cc = _ewa(Rv, Ks[c], width, height, eps2d, x, y, z, q, s, wm, t0, t1)
                lxp, lxn, lyp, lyn = lims
                j00, j02, j11, j12 = js
                rz = 1.0 / z
                u, v = x * rz, y * rz
                uc, vcl = tx * rz, ty * rz
                det = a * cc - b * b
                iA, iB, iC = cc / det, -b / det, a / det
                # conic = inverse of [[a,b],[b,cc]]: dL/dSigma = -inv G inv, G = [[vA, vB/2], [vB/2, vC]]
                gA, gB, gC = v_conic[c, n, 0], 0.5 * v_conic[c, n, 1], v_conic[c, n, 2]
                m00 = iA * gA + iB * gB
                m01 = iA * gB + iB * gC
                m10 = iB * gA + iC * gB
                m11 = iB * gB + iC * gC
                va = -(m00 * iA + m01 * iB)
                vb2 = -(m00 * iB + m01 * iC)  # d/d(Sigma_01); b appears twice
                vcc = -(m10 * iB + m11 * iC)
                # cov2 = T T^T with T = J Wm: dL/dT = 2 Gs T, Gs = [[va, vb2], [vb2, vc]]
                for k in range(3):
                    gt0[k] = 2.0 * (va * t0[k] + vb2 * t1[k])
                    gt1[k] = 2.0 * (vb2 * t0[k] + vcc * t1[k])
                # T = J Wm
                gj00 = gt0[0] * wm[0] + gt0[1] * wm[1] + gt0[2] * wm[2]
                gj02 = gt0[0] * wm[6] + gt0[1] * wm[7] + gt0[2] * wm[8]
                gj11 = gt1[0] * wm[3] + gt1[1] * wm[4] + gt1[2] * wm[5]
                gj12 = gt1[0] * wm[6] + gt1[1] * wm[7] + gt1[2] * wm[8]
                for k in range(3):
                    gwm[k] = j00 * gt0[k]
                    gwm[3 + k] = j11 * gt1[k]
                    gwm[6 + k] = j02 * gt0[k] + j12 * gt1[k]
                # J entries -> rz, tx, ty
                vrz = gj00 * fx + gj11 * fy - 2.0 * gj02 * fx * tx * rz - 2.0 * gj12 * fy * ty * rz
                vtx = -gj02 * fx * rz * rz
                vty = -gj12 * fy * rz * rz
                vu, vv = v_xy[c, n, 0], v_xy[c, n, 1]
                vx = vu * fx * rz
                vy = vv * fy * rz
                vrz += vu * fx * x + vv * fy * y
                vz = vz_in - vrz * rz * rz
                if -lxn <= u and u <= lxp:
                    vx += vtx
                else:
                    vz += vtx * uc
                if -lyn <= v and v <= lyp:
                    vy += vty
                else:
                    vz += vty * vcl
                for i in range(3):
                    gm[i] += Rv[0, i] * vx + Rv[1, i] * vy + Rv[2, i] * vz
                # Wm[i][j] = (Rv Rot)[i][j] s[j]
                for i in range(3):
                    for j in range(3):
                        # dL/d(Rv Rot)[k][j] = gwm[k][j] s[j]; dL/dRot[i][j] = sum_k Rv[k][i] ...
                        acc = 0.0
                        for k in range(3):
                            acc += Rv[k, i] * gwm[k * 3 + j]
                        gR[i * 3 + j] += acc * s[j]
                        gs[j] += acc * r[i * 3 + j]
            w, qx, qy, qz = q[0], q[1], q[2], q[3]
            g00, g01, g02, g10, g11, g12, g20, g21, g22 = gR[0], gR[1], gR[2], gR[3], gR[4], gR[5], gR[6], gR[7], gR[8]
            gw = 2.0 * (-qz * g01 + qy * g02 + qz * g10 - qx * g12 - qy * g20 + qx * g21)
            gx = 2.0 * (qy * g01 + qz * g02 + qy * g10 - 2.0 * qx * g11 - w * g12 + qz * g20 + w * g21 - 2.0 * qx * g22)
            gy = 2.0 * (-2.0 * qy * g00 + qx * g01 + w * g02 + qx * g10 + qz * g12 - w * g20 + qz * g21 - 2.0 * qy * g22)
            gz = 2.0 * (-2.0 * qz * g00 - w * g01 + qx * g02 + w * g10 - 2.0 * qz * g11 + qy * g12 + qx * g20 + qy * g21)
            dot = w * gw + qx * gx + qy * gy + qz * gz
            g_quats[n, 0] = (gw - w * dot) / qn
            g_quats[n, 1] = (gx - qx * dot) / qn
            g_quats[n, 2] = (gy - qy * dot) / qn
            g_quats[n, 3] = (gz - qz * dot) / qn
            for i in range(3):
                g_means[n, i] = gm[i]
                g_scales[n, i] = gs[i]


def _np64(t: Tensor) -> np.ndarray:
    return np.ascontiguousarray(t.detach().to("cpu", torch.float64).numpy())


class _ProjectFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near, far, radius_clip):
        C, N = viewmats.shape[0], means.shape[0]
        arrs = [_np64(t) for t in (means, quats, scales, viewmats, Ks)]
        xy = np.empty((C, N, 2))
        conic = np.empty((C, N, 3))
        depth = np.empty((C, N))
        radii = np.empty((C, N, 2), np.int32)
        _project_fwd(arrs[0], arrs[1], arrs[2], _np64(opacities), arrs[3], arrs[4], width, height, eps2d, near, far,
                     radius_clip, xy, conic, depth, radii)
        ctx.arrays = arrs
        ctx.radii = radii
        ctx.params = (width, height, eps2d)
        dt, dev = means.dtype, means.device
        radii_t = torch.from_numpy(radii).to(dev)
        ctx.mark_non_differentiable(radii_t)
        return (torch.from_numpy(xy).to(dev, dt), torch.from_numpy(conic).to(dev, dt), torch.from_numpy(depth).to(dev, dt), radii_t)

    @staticmethod
    def backward(ctx, v_xy, v_conic, v_depth, _v_radii):
        means, quats, scales, viewmats, Ks = ctx.arrays
        width, height, eps2d = ctx.params
        C, N = viewmats.shape[0], means.shape[0]
        dt, dev = v_xy.dtype, v_xy.device
        z = lambda *s: np.zeros(s)  # noqa: E731
        vx = _np64(v_xy) if v_xy is not None else z(C, N, 2)
        vc = _np64(v_conic) if v_conic is not None else z(C, N, 3)
        vd = _np64(v_depth) if v_depth is not None else z(C, N)
        gm, gq, gs = z(N, 3), z(N, 4), z(N, 3)
        _project_bwd(means, quats, scales, viewmats, Ks, width, height, eps2d, ctx.radii, vx, vc, vd, gm, gq, gs)
        t = lambda a: torch.from_numpy(a).to(dev, dt)  # noqa: E731
        return t(gm), t(gq), t(gs), None, None, None, None, None, None, None, None, None


PROJECT_ROWS = 1 << 18
"""Gaussians projected per block when no gradient is needed (float64 work arrays of one block)."""


def _project_blocks(means, quats, scales, opacities, viewmats, Ks, width, height, eps2d, near, far, radius_clip,
                    rows: int = PROJECT_ROWS) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """:class:`_ProjectFn`'s forward without autograd, ``rows`` Gaussians at a time: the same
    values (each Gaussian is projected on its own), without float64 copies of the whole scene."""
    C, N = viewmats.shape[0], means.shape[0]
    dt, dev = means.dtype, means.device
    vm, K = _np64(viewmats), _np64(Ks)
    xy_t, conic_t = torch.empty((C, N, 2), dtype=dt), torch.empty((C, N, 3), dtype=dt)
    depth_t, radii_t = torch.empty((C, N), dtype=dt), torch.empty((C, N, 2), dtype=torch.int32)
    for s in range(0, N, rows):
        e = min(N, s + rows)
        xy, conic, depth = np.empty((C, e - s, 2)), np.empty((C, e - s, 3)), np.empty((C, e - s))
        radii = np.empty((C, e - s, 2), np.int32)
        _project_fwd(_np64(means[s:e]), _np64(quats[s:e]), _np64(scales[s:e]), _np64(opacities[s:e]), vm, K, width,
                     height, eps2d, near, far, radius_clip, xy, conic, depth, radii)
        xy_t[:, s:e], conic_t[:, s:e] = torch.from_numpy(xy), torch.from_numpy(conic)
        depth_t[:, s:e], radii_t[:, s:e] = torch.from_numpy(depth), torch.from_numpy(radii)
    return xy_t.to(dev), conic_t.to(dev), depth_t.to(dev), radii_t.to(dev)


def project_gaussians_fused(
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
) -> Projection:
    """Drop-in for :func:`render.projection.project_gaussians` (classic mode, CPU tensors)."""
    args = (int(width), int(height), float(eps2d), float(near_plane), float(far_plane), float(radius_clip))
    if torch.is_grad_enabled() and any(t.requires_grad for t in (means, quats, scales)):
        xy, conic, depth, radii = _ProjectFn.apply(means, quats, scales, opacities.detach(), viewmats.detach(),
                                                   Ks.detach(), *args)
    else:
        xy, conic, depth, radii = _project_blocks(means, quats, scales, opacities, viewmats, Ks, *args)
    op = opacities[None, :].expand(viewmats.shape[0], -1)
    return Projection(means2d=xy, conics=conic, depths=depth, radii=radii, opacities=op)
