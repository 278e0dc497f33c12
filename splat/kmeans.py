"""Weighted k-means (Lloyd) in PyTorch, deterministic for a given seed: the project's one k-means.

Used for the ``.lgs`` SH codebook (every vector weighted by its significance, so the
centroids spend their precision where the rendered image needs it), the SOG writer's SH
palette (``splat/io/_quantize.py``, two-level for large palettes), the video codec's
clusters and the feature memory's bank (on unit vectors: cosine clustering).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
import torch
from torch import Tensor


@dataclass
class KMeansResult:
    """centroids [K,D]; labels [N] int64; inertia: weighted sum of squared distances."""

    centroids: Tensor
    labels: Tensor
    inertia: float


BLOCK_ELEMENTS = 1 << 22
"""Largest row-by-centroid distance block :func:`assign` holds at once (16 MiB of float32)."""


def assign(x: Tensor, centroids: Tensor, chunk: int = 16384) -> tuple[Tensor, Tensor]:
    """Nearest centroid per row: (labels [N] int64, squared distance [N]).

    x [N,D], centroids [K,D]. Uses ||x||^2 - 2 x.c + ||c||^2 in chunks of at most ``chunk``
    rows and :data:`BLOCK_ELEMENTS` distances, so memory stays bounded for any N and K.
    """
    chunk = max(1, min(chunk, BLOCK_ELEMENTS // max(1, centroids.shape[0])))
    cn = (centroids * centroids).sum(1)
    labels = torch.empty(x.shape[0], dtype=torch.int64, device=x.device)
    dist = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    for s in range(0, x.shape[0], chunk):
        xb = x[s:s + chunk]
        d = torch.addmm(cn[None, :], xb, centroids.T, alpha=-2.0)
        m, i = d.min(dim=1)
        labels[s:s + chunk] = i
        dist[s:s + chunk] = (m + (xb * xb).sum(1)).clamp_min(0.0)
    return labels, dist


SUM_ROWS = 1 << 16
"""Rows :func:`_weighted_sums` promotes to float64 at once (bounds its working memory)."""

MINIBATCH_MIN_ROWS = 1 << 20
"""From this many rows on, :func:`weighted_kmeans` runs mini-batch k-means by default."""


def _weighted_sums(x: Tensor, w: Tensor, labels: Tensor, k: int, rows: int = SUM_ROWS) -> tuple[Tensor, Tensor]:
    """Per-cluster sums of w*x [k,D] and of w [k], in float64.

    Rows are visited sorted by cluster, ``rows`` at a time (each block promoted to float64,
    weighted and summed per cluster with one ``np.add.reduceat``: far faster than
    index_add_ or a bincount per dimension on CPU). A cluster that runs across a block
    boundary carries its partial sum into the next block's first row."""
    lab = labels.numpy()
    wn = w.double().numpy()
    xn = x.numpy()
    order = np.argsort(lab, kind="stable")
    sums = np.zeros((k, x.shape[1]))
    carry_label, carry = -1, None
    for s in range(0, len(order), rows):
        idx = order[s:s + rows]
        lb = lab[idx]
        block = xn[idx].astype(np.float64)
        block *= wn[idx, None]
        if lb[0] == carry_label:
            block[0] = carry + block[0]
        starts = np.flatnonzero(np.r_[True, lb[1:] != lb[:-1]])
        part = np.add.reduceat(block, starts, axis=0)
        sums[lb[starts]] = part
        carry_label, carry = lb[-1], part[-1]
    mass = np.bincount(lab, weights=wn, minlength=k)
    return torch.from_numpy(sums), torch.from_numpy(mass)


def weighted_kmeans(
    x: Tensor,
    k: int,
    weights: Tensor | None = None,
    *,
    iters: int = 10,
    seed: int = 0,
    tol: float = 1e-4,
    init: Literal["sample", "heaviest"] = "sample",
    minibatch: bool | None = None,
    batch_size: int = 1 << 16,
) -> KMeansResult:
    """Cluster rows of ``x`` [N,D] into ``k`` centroids minimising sum_i w_i ||x_i - c(i)||^2.

    Initialisation (``init="sample"``) draws ``k`` distinct rows with probability proportional
    to weight (seeded); ``"heaviest"`` takes the ``k`` heaviest rows (ties: first).

    Lloyd (``minibatch`` False): empty clusters are re-seeded with the rows of largest
    weighted error; stops after ``iters`` steps or when the inertia improves by less than
    ``tol`` (relative). Mini-batch (``minibatch`` True; None: when N >=
    :data:`MINIBATCH_MIN_ROWS`): see :func:`_minibatch`; its cost per step is independent
    of N. Either way the result's labels and inertia come from one full assignment, and the
    result is deterministic for a given seed.
    """
    n, d = x.shape
    if n == 0:
        raise ValueError("k-means needs at least one vector")
    x = x.float()
    w = torch.ones(n, dtype=x.dtype) if weights is None else weights.to(x.dtype).clamp_min(0) + 1e-12
    k = int(min(k, n))
    g = torch.Generator().manual_seed(seed)
    if init == "heaviest":
        first = torch.argsort(w, descending=True, stable=True)[:k]
    else:
        first = torch.sort(torch.multinomial(w / w.sum(), k, replacement=False, generator=g)).values
    c = x[first].clone()
    if minibatch is None:
        minibatch = n >= MINIBATCH_MIN_ROWS
    if minibatch and n > batch_size:
        c = _minibatch(x, w, c, steps=2 * iters, batch_size=batch_size, generator=g)
        labels, dist = assign(x, c)
        return KMeansResult(c, labels, float((dist * w).sum()))
    prev = float("inf")
    labels, dist = assign(x, c)
    for _ in range(iters):
        sums, mass = (t.to(x.dtype) for t in _weighted_sums(x, w, labels, k))
        empty = mass <= 1e-12
        c = torch.where(empty[:, None], c, sums / mass.clamp_min(1e-12)[:, None])
        if bool(empty.any()):
            err = dist * w
            far = torch.argsort(err, descending=True, stable=True)[: int(empty.sum())]
            c[empty] = x[far]
        labels, dist = assign(x, c)
        inertia = float((dist * w).sum())
        if prev - inertia <= tol * max(prev, 1e-30) and prev != float("inf"):
            prev = inertia
            break
        prev = inertia
    return KMeansResult(c, labels, float((dist * w).sum()))


def _minibatch(x: Tensor, w: Tensor, c: Tensor, *, steps: int, batch_size: int, generator: torch.Generator) -> Tensor:
    """Weighted mini-batch k-means (Sculley 2010): ``steps`` batches of ``batch_size`` rows
    drawn uniformly (seeded); each centroid moves to the running weighted mean of the rows
    assigned to it so far (learning rate = batch mass / total mass seen). Centroids [K,D]."""
    n, k = x.shape[0], c.shape[0]
    cw = c.double()
    seen = torch.zeros(k, dtype=torch.float64)
    for _ in range(steps):
        idx = torch.sort(torch.randint(0, n, (batch_size,), generator=generator)).values
        xb, wb = x[idx], w[idx]
        labels, _ = assign(xb, cw.to(x.dtype))
        sums, mass = _weighted_sums(xb, wb, labels, k)
        seen += mass
        hit = mass > 0
        cw[hit] += (sums[hit] - mass[hit, None] * cw[hit]) / seen[hit, None]
    return cw.to(x.dtype)
