"""Codebook quantisers for the SOG writer: a 1-D scalar codebook and a vector k-means.

* :func:`codebook_1d` fits up to 256 levels to a pool of scalars with Lloyd's
  algorithm run on the sorted values (each iteration costs O(K log N) thanks to
  prefix sums), initialised half on quantiles and half uniformly over the range so
  both the dense core and the tails get levels.
* :func:`kmeans` clusters vectors (SH coefficients) into up to 65,536 centroids. When
  N x K exceeds :data:`FLAT_LIMIT` it is two-level: a coarse k-means into 256 groups, then each group is
  split into a share of the centroids proportional to its size. That costs about as
  much as two 256-centroid runs instead of one 65,536-centroid run.

Everything is deterministic for a given seed. The vector k-means (the project's one,
:mod:`splat.kmeans`) runs on one thread: its many small matrix products are ~10x slower
with threads fighting over shared cores.
"""
from __future__ import annotations

import numpy as np
import torch

from ..kmeans import weighted_kmeans
from ..threads import threads


FLAT_LIMIT = 1 << 25
"""Up to this many point-centroid pairs per iteration, k-means is run flat (one level)."""


def codebook_1d(values: np.ndarray, k: int = 256, iters: int = 60) -> tuple[np.ndarray, np.ndarray]:
    """Fit a sorted codebook [<=k] (float32) to ``values`` and label each value (uint8 for k <= 256).

    Values already representable exactly (at most ``k`` distinct ones) get an exact codebook.
    """
    x = np.asarray(values, dtype=np.float64).ravel()
    if x.size == 0:
        return np.zeros(1, np.float32), np.zeros(0, np.uint8 if k <= 256 else np.int64)
    xs = np.sort(x)
    uniq = np.unique(xs)
    if uniq.size <= k:
        c = uniq
    else:
        q = np.quantile(xs, (np.arange(k - k // 2) + 0.5) / (k - k // 2))
        u = np.linspace(xs[0], xs[-1], k // 2)
        c = np.unique(np.concatenate([q, u]))
        cs = np.concatenate([[0.0], np.cumsum(xs)])
        n = xs.size
        for _ in range(iters):
            mid = 0.5 * (c[1:] + c[:-1])
            b = np.searchsorted(xs, mid)
            starts = np.concatenate([[0], b])
            ends = np.concatenate([b, [n]])
            cnt = ends - starts
            sums = cs[ends] - cs[starts]
            new = np.where(cnt > 0, sums / np.maximum(cnt, 1), c)
            new = np.sort(new)
            if np.array_equal(new, c):
                break
            c = new
        c = np.unique(c)
    c32 = np.unique(c.astype(np.float32))
    labels = nearest_sorted(c32.astype(np.float64), x)
    return c32, labels.astype(np.uint8 if c32.size <= 256 else np.int64)


def nearest_sorted(codebook: np.ndarray, x: np.ndarray) -> np.ndarray:
    """Index of the nearest entry of a sorted codebook for each value."""
    if codebook.size == 1:
        return np.zeros(x.shape, np.int64)
    mid = 0.5 * (codebook[1:] + codebook[:-1])
    return np.searchsorted(mid, x)


def _lloyd(x: np.ndarray, k: int, iters: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """One flat k-means run (:func:`splat.kmeans.weighted_kmeans`, unweighted) on numpy rows."""
    if x.shape[0] <= k:
        return x.copy(), np.arange(x.shape[0])
    r = weighted_kmeans(torch.from_numpy(x), k, iters=iters, seed=int(rng.integers(1 << 31)))
    return r.centroids.numpy(), r.labels.numpy()


def kmeans(x: np.ndarray, k: int, iters: int = 10, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cluster rows of ``x`` [N,D] into at most ``k`` centroids: (centroids [K,D] float32, labels [N] int64)."""
    with threads(1):
        return _kmeans(np.ascontiguousarray(x, dtype=np.float32), k, iters, seed)


def _kmeans(x: np.ndarray, k: int, iters: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    if n <= k or k <= 256 or n * k <= FLAT_LIMIT:
        return _lloyd(x, min(k, n), iters, rng)
    coarse_c, coarse = _lloyd(x, 256, iters, rng)
    sizes = np.bincount(coarse, minlength=coarse_c.shape[0])
    share = _apportion(sizes, k)
    centroids, labels = [], np.empty(n, np.int64)
    base = 0
    order = np.argsort(coarse, kind="stable")
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    for g in range(len(sizes)):
        if sizes[g] == 0:
            continue
        idx = order[bounds[g]: bounds[g + 1]]
        c, lab = _lloyd(x[idx], int(share[g]), iters, rng)
        centroids.append(c)
        labels[idx] = lab + base
        base += c.shape[0]
    return np.concatenate(centroids, 0), labels


def _apportion(sizes: np.ndarray, k: int) -> np.ndarray:
    """Split k centroids over groups proportionally to their sizes (each >= 1 and <= its size, sum <= k)."""
    sizes = sizes.astype(np.int64)
    if k >= sizes.sum():
        return sizes.copy()
    ideal = sizes * (k / sizes.sum())
    share = np.where(sizes > 0, np.clip(np.floor(ideal), 1, sizes), 0).astype(np.int64)
    while share.sum() > k:  # the ">= 1" floor can overshoot by at most the group count
        share[np.argmax(share)] -= 1
    while share.sum() < k:  # largest remainders first
        gap = np.where(share < sizes, ideal - share, -np.inf)
        g = int(np.argmax(gap))
        if gap[g] == -np.inf:
            break
        share[g] += 1
    return share
