"""Dual motion model kernels: joint sampling, skin binding, Procrustes fits, blending.

Joints are a few percent of a keyframe's Gaussians (farthest-point sampling). Every
Gaussian (joints included) is bound to its ``k`` nearest joints with weights
``exp(-d^2 / l^2)``, normalised. A joint's motion is a rigid transform about its rest
position ``c``: ``x' = R (x - c) + c + t``. A Gaussian's predicted position is the
weight-blended transform of its rest position (linear-blend skinning), its rotation the
blended joint rotation composed with its rest rotation.

Fast paths are batched float32 torch; ``*_reference`` functions are plain float64 loops
used by the tests.
"""
from __future__ import annotations

import warnings

import numpy as np
import torch
from numba import njit, prange
from torch import Tensor


# ---------------------------------------------------------------------- sampling / binding
def farthest_point_sampling(x: np.ndarray, m: int) -> np.ndarray:
    """Indices [m] of ``m`` points of x [N,3] by farthest-point sampling (deterministic:
    starts at the point nearest the centroid)."""
    x = np.asarray(x, dtype=np.float64)
    n = len(x)
    m = max(1, min(int(m), n))
    out = np.empty(m, dtype=np.int64)
    out[0] = int(np.argmin(((x - x.mean(0)) ** 2).sum(1)))
    d = ((x - x[out[0]]) ** 2).sum(1)
    for i in range(1, m):
        j = int(np.argmax(d))
        out[i] = j
        np.minimum(d, ((x - x[j]) ** 2).sum(1), out=d)
    return out


def knn_joints(x: Tensor, joints: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """k nearest joints of each point: (indices [N,k] int64, squared distances [N,k]).

    Candidates are the ``2k + 8`` joints nearest to the point's nearest joint (itself
    included); the k are ranked among them by exactly computed squared distance (stable
    sort of candidates listed in ascending joint index). Exact whenever a point's k nearest
    joints lie among its nearest joint's 2k + 8 nearest, which holds for any sane layout.
    The nearest joint is found through a uniform grid over the joints (a serial numba kernel,
    checked against brute force by the tests): binding 50k points to 1,000 joints takes
    ~80 ms. Serial on purpose: numba's OpenMP workers keep spinning after a parallel region;
    on the 2-core machine under load (load average ~3) that made the torch skinning of the
    following frames ~40x slower (450 vs 10 ms a frame). On an idle machine the parallel
    version costs nothing extra, so this trades a few ms of binding for predictability.
    """
    k = min(k, len(joints))
    if len(x) == 0 or k == 0:
        return torch.zeros(0, k, dtype=torch.int64), torch.zeros(0, k, dtype=x.dtype)
    kc = min(len(joints), 2 * k + 8)
    xn = x.detach().cpu().contiguous().numpy()
    cn = joints.detach().cpu().to(x.dtype).contiguous().numpy()
    jt = _joint_table(cn, kc)  # joint -> its kc nearest joints, ascending index
    jn = (cn * cn).sum(1)
    lo = cn.min(0)
    ext = np.maximum(cn.max(0) - lo, 0.0)
    span = float(ext.max()) if ext.max() > 0 else 1.0
    vol = float(np.prod(np.maximum(ext, span / 64)))
    h = max((2.0 * vol / len(cn)) ** (1.0 / 3.0), span / 256)
    dims = (np.floor(ext / h).astype(np.int64) + 1)
    start, items = _joint_grid(cn, lo, h, dims)
    idx = np.empty((len(xn), k), np.int64)
    d2 = np.empty((len(xn), k), xn.dtype)
    _knn_grid(xn, cn, jn, jt, k, lo, h, dims, start, items, idx, d2)
    return torch.from_numpy(idx), torch.from_numpy(d2).to(x.device)


def knn_joints_reference(x: np.ndarray, joints: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Brute-force float64 version of :func:`knn_joints`' rule (tests only)."""
    k = min(k, len(joints))
    kc = min(len(joints), 2 * k + 8)
    jd = ((joints[:, None] - joints[None]) ** 2).sum(-1)
    jt = np.sort(np.argsort(jd, axis=1, kind="stable")[:, :kc], axis=1)
    idx = np.empty((len(x), k), np.int64)
    d2 = np.empty((len(x), k))
    for i, p in enumerate(x):
        near = int(np.argmin(((joints - p) ** 2).sum(1)))
        cand = jt[near]
        dd = ((joints[cand] - p) ** 2).sum(1)
        o = np.argsort(dd, kind="stable")[:k]
        idx[i], d2[i] = cand[o], dd[o]
    return idx, d2


def skin_weights(d2: Tensor, length: float) -> Tensor:
    """Normalised weights exp(-d^2/l^2) [N,k] from squared distances [N,k]."""
    l2 = max(float(length) ** 2, 1e-30)
    w = torch.exp(-(d2 - d2[:, :1]) / l2)  # shifted by the nearest: same normalised weights, no underflow
    return w / w.sum(1, keepdim=True)


def default_length(d2: Tensor) -> float:
    """Kernel length l: the median distance to the 2nd nearest joint (float32-exact)."""
    if d2.shape[1] < 2 or len(d2) == 0:
        return 1.0
    return float(np.float32(torch.sqrt(d2[:, 1].median()).item()) + np.float32(1e-9))


# ---------------------------------------------------------------------- rotations
def quat_to_matrix(q: Tensor) -> Tensor:
    """Unit wxyz quaternions [...,4] -> rotation matrices [...,3,3]."""
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    w, x, y, z = q.unbind(-1)
    return torch.stack([
        1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y),
        2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x),
        2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y),
    ], -1).reshape(*q.shape[:-1], 3, 3)


def matrix_to_quat(m: Tensor) -> Tensor:
    """Rotation matrices [...,3,3] -> unit wxyz quaternions [...,4] with w >= 0."""
    m00, m11, m22 = m[..., 0, 0], m[..., 1, 1], m[..., 2, 2]
    cand = torch.stack([
        torch.stack([1 + m00 + m11 + m22, m[..., 2, 1] - m[..., 1, 2], m[..., 0, 2] - m[..., 2, 0], m[..., 1, 0] - m[..., 0, 1]], -1),
        torch.stack([m[..., 2, 1] - m[..., 1, 2], 1 + m00 - m11 - m22, m[..., 0, 1] + m[..., 1, 0], m[..., 0, 2] + m[..., 2, 0]], -1),
        torch.stack([m[..., 0, 2] - m[..., 2, 0], m[..., 0, 1] + m[..., 1, 0], 1 - m00 + m11 - m22, m[..., 1, 2] + m[..., 2, 1]], -1),
        torch.stack([m[..., 1, 0] - m[..., 0, 1], m[..., 0, 2] + m[..., 2, 0], m[..., 1, 2] + m[..., 2, 1], 1 - m00 - m11 + m22], -1),
    ], -2)  # [...,4,4]: row r is 4 q_r q (stable when q_r is the largest)
    diag = torch.stack([1 + m00 + m11 + m22, 1 + m00 - m11 - m22, 1 - m00 + m11 - m22, 1 - m00 - m11 + m22], -1)
    best = diag.argmax(-1)
    q = torch.gather(cand, -2, best[..., None, None].expand(*best.shape, 1, 4)).squeeze(-2)
    q = q / q.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return torch.where(q[..., :1] < 0, -q, q)


def quat_multiply(a: Tensor, b: Tensor) -> Tensor:
    """Hamilton product a*b of wxyz quaternions [...,4]."""
    aw, ax, ay, az = a.unbind(-1)
    bw, bx, by, bz = b.unbind(-1)
    return torch.stack([
        aw * bw - ax * bx - ay * by - az * bz,
        aw * bx + ax * bw + ay * bz - az * by,
        aw * by - ax * bz + ay * bw + az * bx,
        aw * bz + ax * by - ay * bx + az * bw,
    ], -1)


def rotvec_to_quat(v: Tensor) -> Tensor:
    """Rotation vectors (axis * angle, radians) [...,3] -> unit wxyz quaternions."""
    ang = v.norm(dim=-1, keepdim=True)
    half = 0.5 * ang
    # sin(half)/ang with a series near 0
    k = torch.where(ang > 1e-6, torch.sin(half) / ang.clamp_min(1e-12), 0.5 - ang * ang / 48.0)
    return torch.cat([torch.cos(half), v * k], -1)


def quat_to_rotvec(q: Tensor) -> Tensor:
    """Unit wxyz quaternions [...,4] -> rotation vectors [...,3] with angle in [0, pi]."""
    q = torch.where(q[..., :1] < 0, -q, q)
    s = q[..., 1:].norm(dim=-1, keepdim=True)
    ang = 2 * torch.atan2(s, q[..., :1])
    k = torch.where(s > 1e-8, ang / s.clamp_min(1e-12), 2.0 + 0 * s)
    return q[..., 1:] * k


# ---------------------------------------------------------------------- Procrustes
def procrustes(x0: Tensor, xt: Tensor, idx: Tensor, w: Tensor, centers: Tensor) -> tuple[Tensor, Tensor]:
    """Per-joint weighted rigid fit (Kabsch) of rest points x0 [N,3] onto xt [N,3].

    Joint j's neighbourhood is every Gaussian bound to it (idx [N,k]) with its weight
    w [N,k]. Returns R [J,3,3] and t [J,3] for ``x' = R (x - c_j) + c_j + t_j`` (c =
    centers [J,3]); computed in float64.
    """
    j_count = len(centers)
    x0, xt, w, c = x0.double(), xt.double(), w.double(), centers.double()
    flat_j = idx.reshape(-1)
    ww = w.reshape(-1)
    pi = torch.arange(len(x0)).repeat_interleave(idx.shape[1])
    a, b = x0[pi], xt[pi]
    W = torch.zeros(j_count, dtype=torch.float64).index_add_(0, flat_j, ww).clamp_min(1e-30)
    ca = torch.zeros(j_count, 3, dtype=torch.float64).index_add_(0, flat_j, ww[:, None] * a) / W[:, None]
    cb = torch.zeros(j_count, 3, dtype=torch.float64).index_add_(0, flat_j, ww[:, None] * b) / W[:, None]
    da, db = a - ca[flat_j], b - cb[flat_j]
    H = torch.zeros(j_count, 9, dtype=torch.float64).index_add_(
        0, flat_j, (ww[:, None, None] * da[:, :, None] * db[:, None, :]).reshape(-1, 9)).reshape(j_count, 3, 3)
    U, _, Vh = torch.linalg.svd(H)
    V = Vh.transpose(1, 2)
    d = torch.sign(torch.linalg.det(V @ U.transpose(1, 2)))
    d = torch.where(d == 0, torch.ones_like(d), d)
    D = torch.diag_embed(torch.stack([torch.ones_like(d), torch.ones_like(d), d], -1))
    R = V @ D @ U.transpose(1, 2)
    t = cb - c - (R @ (ca - c)[:, :, None])[:, :, 0]
    return R, t


def procrustes_reference(x0: np.ndarray, xt: np.ndarray, idx: np.ndarray, w: np.ndarray,
                         centers: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float64 loop over joints (same contract as :func:`procrustes`)."""
    J = len(centers)
    R = np.tile(np.eye(3), (J, 1, 1))
    t = np.zeros((J, 3))
    for j in range(J):
        rows, cols = np.nonzero(idx == j)
        if len(rows) == 0:
            continue
        ww = w[rows, cols]
        a, b = x0[rows], xt[rows]
        ca = (ww[:, None] * a).sum(0) / ww.sum()
        cb = (ww[:, None] * b).sum(0) / ww.sum()
        H = ((a - ca) * ww[:, None]).T @ (b - cb)
        U, _, Vt = np.linalg.svd(H)
        d = np.sign(np.linalg.det(Vt.T @ U.T)) or 1.0
        R[j] = Vt.T @ np.diag([1, 1, d]) @ U.T
        t[j] = cb - centers[j] - R[j] @ (ca - centers[j])
    return R, t


# ---------------------------------------------------------------------- blending (LBS)
def blend_positions(x0: Tensor, idx: Tensor, w: Tensor, R: Tensor, t: Tensor, centers: Tensor) -> Tensor:
    """Linear-blend skinning: sum_k w_k (R_j (x0 - c_j) + c_j + t_j) [N,3]."""
    u = centers + t - (R @ centers[:, :, None])[:, :, 0]  # joint affine offset [J,3]
    Rg = R[idx]  # [N,k,3,3]
    A = torch.einsum("nk,nkij->nij", w, Rg)
    b = torch.einsum("nk,nki->ni", w, u[idx])
    return (A @ x0[:, :, None])[:, :, 0] + b


def blend_quats(idx: Tensor, w: Tensor, q: Tensor) -> Tensor:
    """Weighted quaternion blend [N,4] of joint rotations q [J,4] (hemisphere-aligned to the
    nearest joint's, normalised)."""
    qq = q[idx]  # [N,k,4]
    s = torch.sign((qq * qq[:, :1]).sum(-1))
    s = torch.where(s == 0, torch.ones_like(s), s)
    out = (w * s)[:, :, None].mul(qq).sum(1)
    return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def blend_positions_reference(x0: np.ndarray, idx: np.ndarray, w: np.ndarray, R: np.ndarray, t: np.ndarray,
                              centers: np.ndarray) -> np.ndarray:
    """Float64 loop version of :func:`blend_positions`."""
    out = np.zeros_like(x0, dtype=np.float64)
    for i in range(len(x0)):
        for kk in range(idx.shape[1]):
            j = idx[i, kk]
            out[i] += w[i, kk] * (R[j] @ (x0[i] - centers[j]) + centers[j] + t[j])
    return out


class SparseSkin:
    """The skin binding as a sparse [N,J] weight matrix (CSR), for fast per-frame blending.

    Same results as :func:`blend_positions` / :func:`blend_quats` (to float rounding);
    one sparse-dense product per frame instead of gathering [N,k,3,3] joint matrices.
    """

    def __init__(self, idx: Tensor, w: Tensor, n_joints: int):
        n, k = idx.shape
        order = torch.argsort(idx, dim=1, stable=True)
        self.col = torch.gather(idx, 1, order).reshape(-1).contiguous()
        self.w = torch.gather(w, 1, order).reshape(-1).contiguous()
        self.crow = torch.arange(0, n * k + 1, k, dtype=torch.int64)
        self.nearest = idx[:, 0].repeat_interleave(k)  # slot-0 joint per stored entry
        self.shape = (n, n_joints)
        self.W = self._csr(self.w)

    def _csr(self, vals: Tensor) -> Tensor:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            return torch.sparse_csr_tensor(self.crow, self.col, vals, size=self.shape, check_invariants=False)

    def positions(self, x0: Tensor, R: Tensor, t: Tensor, centers: Tensor) -> Tensor:
        """Linear-blend skinning [N,3] (see :func:`blend_positions`)."""
        u = centers + t - (R @ centers[:, :, None])[:, :, 0]
        M = torch.cat([R.reshape(-1, 9), u], 1)  # [J,12]
        A = self.W @ M  # [N,12]
        Ar = A[:, :9].reshape(-1, 3, 3)
        return (Ar @ x0[:, :, None])[:, :, 0] + A[:, 9:]

    def quats(self, q: Tensor) -> Tensor:
        """Blended joint rotations [N,4] (see :func:`blend_quats`)."""
        S = torch.sign(q @ q.T)  # [J,J] hemisphere agreement between joints
        S = torch.where(S == 0, torch.ones_like(S), S)
        vals = self.w * S[self.nearest, self.col]
        Ws = self._csr(vals)
        out = Ws @ q
        return out / out.norm(dim=-1, keepdim=True).clamp_min(1e-12)


# ---------------------------------------------------------------------- fast binding kernel
@njit(cache=True)
def _joint_grid(c: np.ndarray, lo: np.ndarray, h: float, dims: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Bucket joints [J,3] into a uniform grid: (cell start offsets [cells+1], joint ids by cell)."""
    J = c.shape[0]
    ncell = dims[0] * dims[1] * dims[2]
    cell = np.empty(J, np.int64)
    start = np.zeros(ncell + 1, np.int64)
    for j in range(J):
        ix = min(max(int((c[j, 0] - lo[0]) / h), 0), dims[0] - 1)
        iy = min(max(int((c[j, 1] - lo[1]) / h), 0), dims[1] - 1)
        iz = min(max(int((c[j, 2] - lo[2]) / h), 0), dims[2] - 1)
        cell[j] = (ix * dims[1] + iy) * dims[2] + iz
        start[cell[j] + 1] += 1
    for i in range(ncell):
        start[i + 1] += start[i]
    fill = start[:-1].copy()
    items = np.empty(J, np.int64)
    for j in range(J):  # ascending joint id inside each cell
        items[fill[cell[j]]] = j
        fill[cell[j]] += 1
    return start, items


@njit(cache=True)
def _knn_grid(x, c, jn, jt, k, lo, h, dims, start, items, out_idx, out_d2):  # pragma: no cover - numba
    N = x.shape[0]
    kc = jt.shape[1]
    for i in prange(N):
        x0, x1, x2 = x[i, 0], x[i, 1], x[i, 2]
        cx = min(max(int((x0 - lo[0]) / h), 0), dims[0] - 1)
        cy = min(max(int((x1 - lo[1]) / h), 0), dims[1] - 1)
        cz = min(max(int((x2 - lo[2]) / h), 0), dims[2] - 1)
        best, bval, bd = -1, np.float32(0.0), np.inf
        s = 0
        maxs = max(dims[0], max(dims[1], dims[2]))
        while s <= maxs:
            for ix in range(max(cx - s, 0), min(cx + s, dims[0] - 1) + 1):
                for iy in range(max(cy - s, 0), min(cy + s, dims[1] - 1) + 1):
                    for iz in range(max(cz - s, 0), min(cz + s, dims[2] - 1) + 1):
                        if max(abs(ix - cx), max(abs(iy - cy), abs(iz - cz))) != s:
                            continue  # inner shells were searched already
                        cell = (ix * dims[1] + iy) * dims[2] + iz
                        for p in range(start[cell], start[cell + 1]):
                            j = items[p]
                            v = jn[j] - np.float32(2.0) * (x0 * c[j, 0] + x1 * c[j, 1] + x2 * c[j, 2])
                            if best < 0 or v < bval or (v == bval and j < best):
                                best, bval = j, v
                                e0, e1, e2 = x0 - c[j, 0], x1 - c[j, 1], x2 - c[j, 2]
                                bd = e0 * e0 + e1 * e1 + e2 * e2
            # every joint not yet seen is at least s*h away; stop once that exceeds the best
            # (with a margin: the argmin uses the expanded form, the bound the direct one)
            if best >= 0 and s * h > np.sqrt(bd) * 1.001 + 1e-6 * h:
                break
            s += 1
        # the k nearest among the best joint's candidates, stable in listed order
        for a in range(k):
            out_d2[i, a] = np.inf
            out_idx[i, a] = -1
        for m in range(kc):
            j = jt[best, m]
            e0, e1, e2 = x0 - c[j, 0], x1 - c[j, 1], x2 - c[j, 2]
            d = e0 * e0 + e1 * e1 + e2 * e2
            if d < out_d2[i, k - 1]:
                a = k - 1
                while a > 0 and d < out_d2[i, a - 1]:
                    out_d2[i, a] = out_d2[i, a - 1]
                    out_idx[i, a] = out_idx[i, a - 1]
                    a -= 1
                out_d2[i, a] = d
                out_idx[i, a] = j


@njit(cache=True)
def _joint_table(c: np.ndarray, kc: int) -> np.ndarray:
    """For each joint, its ``kc`` nearest joints (itself included; squared distance, ties
    to the lower index), listed in ascending joint index. [J, kc] int64."""
    J = c.shape[0]
    out = np.empty((J, kc), np.int64)
    for i in prange(J):
        bd = np.full(kc, np.inf)
        bi = np.full(kc, -1, np.int64)
        for j in range(J):
            e0, e1, e2 = c[i, 0] - c[j, 0], c[i, 1] - c[j, 1], c[i, 2] - c[j, 2]
            d = e0 * e0 + e1 * e1 + e2 * e2
            if d < bd[kc - 1]:
                a = kc - 1
                while a > 0 and d < bd[a - 1]:
                    bd[a] = bd[a - 1]
                    bi[a] = bi[a - 1]
                    a -= 1
                bd[a] = d
                bi[a] = j
        out[i] = np.sort(bi)
    return out
