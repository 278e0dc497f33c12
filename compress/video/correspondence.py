"""Correspondence recovery between consecutive frames of a re-sorted Gaussian sequence.

Writers that sort Gaussians (Morton order in SOG, SPZ, ``.lgs``) give every frame its own
order. :func:`match_gaussians` finds, for each Gaussian of the previous (decoded) frame, the
Gaussian of the next frame that is the same one moved: candidates are its nearest neighbours
in position (a KD-tree around the motion-compensated prediction, never an N x N matrix),
scored by agreement in position, colour, opacity, scale and rotation. Mutually best pairs
are accepted at once; what is left is resolved by an optimal assignment
(``scipy.optimize.linear_sum_assignment``) on each small connected block of ambiguous
candidates. Gaussians left without a partner are deaths (previous frame) and births (next
frame).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from splat.scene import SH_C0, GaussianScene

# scipy is imported where it is used: importing it here (a few tenths of a second) delayed
# every `splat` command, which loads this module with the video commands


@dataclass(frozen=True)
class MatchTolerance:
    """One unit of matching cost per tolerance (a pair is accepted up to ``max_cost``).

    position: fraction of the next frame's median nearest-neighbour spacing; colour: RGB
    (0..1); opacity: activated (0..1); log_scale: natural-log units; rotation: 1 - |q.q'|
    (0.01 is about 16 degrees). Each appearance term adds at most ``appearance_cap``, so
    appearance alone never rejects a pair that position supports.
    """

    position: float = 0.5
    colour: float = 0.1
    opacity: float = 0.05
    log_scale: float = 0.1
    rotation: float = 0.01
    max_cost: float = 16.0
    appearance_cap: float = 6.0  # most one appearance term (colour, opacity, scale, rotation) adds
    neighbours: int = 8
    block: int = 400  # largest side of an ambiguous block solved exactly; bigger ones greedily


def gaussian_features(scene: GaussianScene) -> np.ndarray:
    """Per-Gaussian attributes compared by the matcher [N,11] float64: RGB (3), opacity (1),
    log-scales (3), unit quaternion (4)."""
    rgb = scene.sh_dc.double() * SH_C0 + 0.5
    return torch.cat([rgb, scene.opacities.double()[:, None], scene.log_scales.double(),
                      scene.unit_quats.double()], 1).numpy()


def _pair_costs(src: np.ndarray, dst: np.ndarray, dpos: np.ndarray, sigma_x: float, tol: MatchTolerance) -> np.ndarray:
    """Matching cost of pairs: src/dst features [P,11], position differences [P,3]."""
    c = (dpos ** 2).sum(-1) / sigma_x ** 2
    # each appearance term is capped: a Gaussian that stayed put but changed colour (say) is
    # still the same Gaussian; an update is cheaper than a death and a birth
    cap = tol.appearance_cap
    c += np.minimum(((src[..., 0:3] - dst[..., 0:3]) ** 2).sum(-1) / tol.colour ** 2, cap)
    c += np.minimum((src[..., 3] - dst[..., 3]) ** 2 / tol.opacity ** 2, cap)
    c += np.minimum(((src[..., 4:7] - dst[..., 4:7]) ** 2).sum(-1) / tol.log_scale ** 2, cap)
    c += np.minimum((1.0 - np.abs((src[..., 7:11] * dst[..., 7:11]).sum(-1))) / tol.rotation, cap)
    return c


def spacing(pos: np.ndarray) -> float:
    """Median distance from a point to its nearest other point (scene units; 0 when < 2)."""
    if len(pos) < 2:
        return 0.0
    from scipy.spatial import cKDTree

    d, _ = cKDTree(pos).query(pos, k=2)
    return float(np.median(d[:, 1]))


def match_gaussians(src_pos: np.ndarray, src_feat: np.ndarray, dst_pos: np.ndarray, dst_feat: np.ndarray,
                    tol: MatchTolerance | None = None) -> np.ndarray:
    """Partner of each source Gaussian in the destination frame: [N] int64, -1 = none.

    src_pos [N,3]: the previous frame's Gaussians where motion predicts them in the next
    frame; dst_pos [M,3]: the next frame's; features from :func:`gaussian_features`. Every
    destination index appears at most once.
    """
    tol = tol or MatchTolerance()
    n, m = len(src_pos), len(dst_pos)
    out = np.full(n, -1, dtype=np.int64)
    if n == 0 or m == 0:
        return out
    sp = spacing(dst_pos) or spacing(src_pos) or 1.0
    sigma_x = max(tol.position * sp, 1e-12)
    k = min(tol.neighbours, m)
    from scipy.spatial import cKDTree

    _, j = cKDTree(dst_pos).query(src_pos, k=k, distance_upper_bound=sigma_x * np.sqrt(tol.max_cost))
    j = j.reshape(n, k)
    ok = j < m
    jj = np.where(ok, j, 0)
    cost = _pair_costs(src_feat[:, None, :], dst_feat[jj], dst_pos[jj] - src_pos[:, None, :], sigma_x, tol)
    ok &= cost <= tol.max_cost
    cost = np.where(ok, cost, np.inf)
    rows, slots = np.nonzero(ok)
    cols, vals = jj[rows, slots], cost[rows, slots]
    if len(rows) == 0:
        return out
    # mutual best pairs
    src_best = jj[np.arange(n), cost.argmin(1)]
    has = np.isfinite(cost.min(1))
    order = np.lexsort((rows, vals))  # by cost, ties to the lower source index
    dst_best = np.full(m, -1, dtype=np.int64)
    first = np.unique(cols[order], return_index=True)[1]
    dst_best[cols[order][first]] = rows[order][first]
    mutual = has & (dst_best[src_best] == np.arange(n))
    out[mutual] = src_best[mutual]
    # ambiguous rest: optimal assignment per connected block of candidate pairs
    taken = np.zeros(m, dtype=bool)
    taken[out[mutual]] = True
    keep = ~mutual[rows] & ~taken[cols]
    rows, cols, vals = rows[keep], cols[keep], vals[keep]
    if len(rows):
        _assign_blocks(rows, cols, vals, n, m, tol, out)
    return out


def _assign_blocks(rows: np.ndarray, cols: np.ndarray, vals: np.ndarray, n: int, m: int, tol: MatchTolerance,
                   out: np.ndarray) -> None:
    """Resolve ambiguous candidate pairs (rows: source, cols: destination) into ``out``."""
    from scipy.optimize import linear_sum_assignment
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    g = coo_matrix((np.ones(len(rows)), (rows, n + cols)), shape=(n + m, n + m))
    _, label = connected_components(g, directed=False)
    comp = label[rows]
    order = np.argsort(comp, kind="stable")
    rows, cols, vals, comp = rows[order], cols[order], vals[order], comp[order]
    bounds = np.flatnonzero(np.diff(comp)) + 1
    for r, c, v in zip(np.split(rows, bounds), np.split(cols, bounds), np.split(vals, bounds)):
        ur, ri = np.unique(r, return_inverse=True)
        uc, ci = np.unique(c, return_inverse=True)
        if len(ur) <= tol.block and len(uc) <= tol.block:
            big = tol.max_cost * 4 + 1.0
            mat = np.full((len(ur), len(uc)), big)
            mat[ri, ci] = v
            a, b = linear_sum_assignment(mat)
            good = mat[a, b] <= tol.max_cost
            out[ur[a[good]]] = uc[b[good]]
        else:  # a large tangle: greedy by ascending cost
            used_r, used_c = set(), set()
            for t in np.lexsort((r, v)):
                if r[t] not in used_r and c[t] not in used_c:
                    used_r.add(r[t])
                    used_c.add(c[t])
                    out[r[t]] = c[t]


def matched_fraction(a: GaussianScene, b: GaussianScene, tol: MatchTolerance | None = None) -> float:
    """Fraction of ``a``'s Gaussians that find a partner in ``b`` (no motion prediction)."""
    if len(a) == 0:
        return 0.0
    m = match_gaussians(a.means.double().numpy(), gaussian_features(a), b.means.double().numpy(),
                        gaussian_features(b), tol)
    return float((m >= 0).sum()) / max(len(a), len(b))
