"""Correspondence under large, non-rigid motion: appearance anchors plus coarse-to-fine registration.

The plain matcher (:func:`~compress.video.correspondence.match_gaussians`) looks for a
Gaussian's partner within about two neighbour spacings of where motion predicts it, so it
loses every match once a frame moves further than that (fast motion, dropped frames, the
first predicted frame of a clip). :func:`register_frames` does not depend on small motion:

1. **Appearance anchors.** Attributes that motion leaves alone (base colour, opacity, the
   sorted scale magnitudes, the SH's per-band energy) form a descriptor per Gaussian.
   Mutual nearest neighbours in descriptor space that pass a ratio test (the best partner
   clearly better than the second) are confident anchor pairs, wherever they moved.
2. **Coarse-to-fine deformation.** A chain of smooth deformations, each a blend of rigid
   node transforms (an embedded deformation graph: nodes by farthest-point sampling,
   every point bound to its nearest nodes with Gaussian weights), fitted by iteratively
   re-weighted (Geman-McClure) weighted Procrustes. The first level is one global rigid
   transform; each later level has about 8x the nodes and fits what the previous left.
3. **Re-matching.** After each level, every source Gaussian is moved (position and
   rotation) by the deformation and matched with the plain matcher on position and
   appearance (KD-tree; mutual best, then optimal assignment on ambiguous blocks). The
   matches, with the anchors for the rest, are the pairs the next level is fitted to.
   The finest level is re-fitted until the match count stops growing.

Every step is a KD-tree query or a sum over bound pairs: O(N log N) per frame pair.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from scipy.spatial import cKDTree

from splat.scene import SH_C0, GaussianScene

from .correspondence import MatchTolerance, gaussian_features, match_gaussians, spacing
from .motion import farthest_point_sampling, matrix_to_quat, procrustes, quat_multiply


@dataclass(frozen=True)
class RegisterSettings:
    """Registration settings (scale-free: distances are in neighbour spacings).

    ratio: an anchor's best descriptor distance must be below ``ratio`` x its second best;
    growth: node count factor between levels; node_points: finest level has about one
    node per ``node_points`` Gaussians; bind: nodes per point; irls: re-weighting rounds
    per level; max_refits: extra rounds at the finest level (stops when matches stop
    growing); direct: when the plain matcher alone pairs at least this share of the
    Gaussians, its pairs seed the registration instead of the anchors alone.
    """

    ratio: float = 0.8
    growth: int = 8
    node_points: int = 40
    max_nodes: int = 4096
    bind: int = 6
    irls: int = 2
    max_refits: int = 3
    direct: float = 0.9
    tolerance: MatchTolerance = field(default_factory=MatchTolerance)


# ---------------------------------------------------------------------- appearance
def appearance_descriptors(scene: GaussianScene, sh_energy: bool = False) -> np.ndarray:
    """Motion-invariant attributes per Gaussian [N,D] float64: base RGB (3), opacity (1),
    sorted log-scales (3) and, with ``sh_energy`` and SH, the root-mean-square coefficient
    of each band (rotation-invariant, 1 per degree). The SH energy is off by default: the
    encoder matches against the *decoded* previous frame, whose SH rest is vector-quantized
    (its band energy is off by 20-50% of the spread, against <2% for the other columns, and
    it cut the correct anchors from 100% to 82% on the performer)."""
    rgb = scene.sh_dc.double() * SH_C0 + 0.5
    ls = torch.sort(scene.log_scales.double(), dim=1).values
    parts = [rgb, scene.opacities.double()[:, None], ls]
    rest = scene.sh_rest.double()
    lo = 0
    for deg in range(1, scene.sh_degree + 1 if sh_energy else 1):
        hi = (deg + 1) ** 2 - 1
        parts.append(rest[:, lo:hi].pow(2).mean((1, 2)).sqrt()[:, None])
        lo = hi
    return torch.cat(parts, 1).numpy()


def _whiten(da: np.ndarray, db: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Scale each descriptor column by its robust spread over both frames (interquartile
    range / 1.35; columns with no spread are dropped)."""
    both = np.concatenate([da, db])
    q1, q3 = np.percentile(both, [25, 75], axis=0)
    s = (q3 - q1) / 1.35
    s = np.where(s > 0, s, both.std(0))
    keep = s > 1e-12
    return da[:, keep] / s[keep], db[:, keep] / s[keep]


def appearance_anchors(da: np.ndarray, db: np.ndarray, ratio: float = 0.8) -> tuple[np.ndarray, np.ndarray]:
    """Confident pairs (source indices, destination indices) from descriptors da [N,D],
    db [M,D]: mutual nearest neighbours whose best distance is below ``ratio`` x the
    second best on both sides."""
    if len(da) < 2 or len(db) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    wa, wb = _whiten(da, db)
    if wa.shape[1] == 0:
        return np.zeros(0, np.int64), np.zeros(0, np.int64)
    dab, jab = cKDTree(wb).query(wa, k=2)
    dba, jba = cKDTree(wa).query(wb, k=2)
    i = np.arange(len(wa))
    j = jab[:, 0]
    ok = (jba[j, 0] == i) & (dab[:, 0] < ratio * dab[:, 1]) & (dba[j, 0] < ratio * dba[j, 1])
    return i[ok], j[ok]


# ---------------------------------------------------------------------- deformation
@dataclass
class _Level:
    """One level of the deformation chain: nodes c [K,3] with rigid transforms
    x' = R_k (x - c_k) + c_k + t_k blended by Gaussian weights of the distance."""

    centers: np.ndarray
    R: np.ndarray
    t: np.ndarray
    length: float
    bind: int

    def _binding(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        k = min(self.bind, len(self.centers))
        d, j = cKDTree(self.centers).query(x, k=k)
        d, j = d.reshape(len(x), k), j.reshape(len(x), k)
        w = np.exp(-(d ** 2 - d[:, :1] ** 2) / self.length ** 2)
        return j, w / w.sum(1, keepdims=True)

    def apply(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Moved points [N,3] and each point's blended rotation as a quaternion [N,4]."""
        j, w = self._binding(x)
        A = np.einsum("nk,nkij->nij", w, self.R[j])
        u = self.centers + self.t - np.einsum("kij,kj->ki", self.R, self.centers)
        y = np.einsum("nij,nj->ni", A, x) + np.einsum("nk,nki->ni", w, u[j])
        q = matrix_to_quat(torch.from_numpy(self.R)).numpy()
        q = q * np.where(q[:, :1] < 0, -1.0, 1.0)  # one hemisphere (residual rotations are small)
        qb = np.einsum("nk,nki->ni", w, q[j])
        return y, qb / np.maximum(np.linalg.norm(qb, axis=1, keepdims=True), 1e-12)

    def fit(self, x: np.ndarray, y: np.ndarray, wt: np.ndarray) -> None:
        """Per-node weighted Procrustes of pairs x -> y [P,3] with weights wt [P]; nodes
        with (almost) no support keep the identity."""
        j, w = self._binding(x)
        ww = w * wt[:, None]
        R, t = procrustes(torch.from_numpy(x), torch.from_numpy(y), torch.from_numpy(j), torch.from_numpy(ww),
                          torch.from_numpy(self.centers))
        W = np.bincount(j.reshape(-1), ww.reshape(-1), minlength=len(self.centers))
        weak = W < 3.0  # fewer than about 3 full-weight pairs: not enough to fix a rotation
        R, t = R.numpy(), t.numpy()
        R[weak], t[weak] = np.eye(3), 0.0
        self.R, self.t = R, t


def _make_level(x: np.ndarray, nodes: int, bind: int) -> _Level:
    n = len(x)
    nodes = max(1, min(nodes, n))
    if nodes == 1:
        c = x.mean(0, keepdims=True)
        length = 1.0
    else:
        # farthest-point sampling on an even subsample of ~8 points per node: O(N + K^2)
        step = max(1, n // (8 * nodes + 1000))
        sample = x[::step]
        c = sample[farthest_point_sampling(sample, nodes)]
        d, _ = cKDTree(c).query(c, k=min(3, len(c)))
        length = float(np.median(d[:, -1])) or 1.0
    return _Level(c, np.tile(np.eye(3), (len(c), 1, 1)), np.zeros((len(c), 3)), length, bind)


def _robust_fit(level: _Level, x: np.ndarray, y: np.ndarray, prior: np.ndarray, floor: float, rounds: int) -> None:
    """Fit ``level`` to pairs x -> y with prior weights [P], re-weighting by the residual
    (Geman-McClure, scale 3 x the weighted median residual, at least ``floor``)."""
    wt = prior.copy()
    for _ in range(max(1, rounds)):
        level.fit(x, y, wt)
        r = np.linalg.norm(level.apply(x)[0] - y, axis=1)
        if not len(r):
            return
        tau = max(3.0 * float(np.median(r[prior > 0])) if (prior > 0).any() else floor, floor)
        wt = prior * tau ** 2 / (tau ** 2 + r ** 2)


# ---------------------------------------------------------------------- registration
@dataclass
class Registration:
    """Result of :func:`register_frames`: partner of each source Gaussian (-1 = none) [N],
    the source means moved by the fitted deformation [N,3], the anchor count, and the
    matched share after each level (diagnostics)."""

    match: np.ndarray
    moved: np.ndarray
    anchors: int
    history: list


def _rotate_features(feat: np.ndarray, q: np.ndarray) -> np.ndarray:
    out = feat.copy()
    qq = quat_multiply(torch.from_numpy(q), torch.from_numpy(feat[:, 7:11])).numpy()
    out[:, 7:11] = qq / np.maximum(np.linalg.norm(qq, axis=1, keepdims=True), 1e-12)
    return out


def register_frames(src: GaussianScene, dst: GaussianScene, settings: RegisterSettings | None = None,
                    src_pos: np.ndarray | None = None) -> Registration:
    """Match every Gaussian of ``src`` to its partner in ``dst`` under any smooth motion.

    ``src_pos`` [N,3]: where a motion prediction puts the source Gaussians (default: their
    means); the registration starts there. Returns a :class:`Registration` whose ``match``
    has the contract of :func:`~compress.video.correspondence.match_gaussians`.
    """
    st = settings or RegisterSettings()
    tol = st.tolerance
    x = (src.means.double().numpy() if src_pos is None else np.asarray(src_pos, dtype=np.float64)).copy()
    y = dst.means.double().numpy()
    n, m = len(x), len(y)
    fa, fb = gaussian_features(src), gaussian_features(dst)
    if n == 0 or m == 0:
        return Registration(np.full(n, -1, np.int64), x, 0, [])
    sp = spacing(y) or spacing(x) or 1.0
    direct = match_gaussians(x, fa, y, fb, tol)
    history = [float((direct >= 0).mean())]
    ia, ib = appearance_anchors(appearance_descriptors(src), appearance_descriptors(dst), st.ratio)
    # pairs the levels are fitted to: per source Gaussian, a destination index (or -1)
    anchor = np.full(n, -1, np.int64)
    anchor[ia] = ib
    if history[0] >= st.direct:
        pair, best = direct.copy(), direct
        pair[pair < 0] = anchor[pair < 0]
    else:
        pair, best = anchor.copy(), direct
    moved, feat = x, fa
    top = max(1, min(st.max_nodes, n // max(st.node_points, 1)))
    counts = [1]
    while counts[-1] < top:
        counts.append(min(top, counts[-1] * st.growth))
    levels = counts + [counts[-1]] * st.max_refits
    prev_matched = -1
    for li, nodes in enumerate(levels):
        sel = np.flatnonzero(pair >= 0)
        if len(sel) < 3:
            break
        level = _make_level(moved, nodes, st.bind)
        prior = np.where(best[sel] >= 0, 1.0, 0.5)  # matches under the previous level count more than anchors
        _robust_fit(level, moved[sel], y[pair[sel]], prior, 2.0 * sp, st.irls)
        moved_new, q = level.apply(moved)
        feat_new = _rotate_features(feat, q)
        mt = match_gaussians(moved_new, feat_new, y, fb, tol)
        matched = int((mt >= 0).sum())
        history.append(matched / n)
        if matched >= int((best >= 0).sum()) or li < len(counts):
            moved, feat, best = moved_new, feat_new, mt
            pair = mt.copy()
            pair[pair < 0] = anchor[pair < 0]
        if li >= 1 and matched >= 0.999 * min(n, m):
            break  # (almost) everything is paired: nothing left to gain
        if li >= len(counts) - 1 and matched <= prev_matched + max(1, n // 1000):
            break
        prev_matched = matched
    # leftovers: a confident appearance anchor whose partner is still free is kept (even a
    # wrong one costs a position update, less than a death plus a birth)
    free = np.ones(m, dtype=bool)
    free[best[best >= 0]] = False
    left = np.flatnonzero((best < 0) & (anchor >= 0))
    left = left[free[anchor[left]]]
    best = best.copy()
    best[left] = anchor[left]
    history.append(float((best >= 0).mean()))
    return Registration(best, moved, len(ia), history)


def recovered_share(match: np.ndarray, truth_src: np.ndarray, truth_dst: np.ndarray) -> float:
    """Share of the true pairs a match found: ``truth_*[g]`` is Gaussian g's index in the
    source / destination frame; ``match`` maps source indices to destination indices."""
    if len(truth_src) == 0:
        return 1.0
    return float((match[truth_src] == truth_dst).mean())
