"""Principal scene components: a capped memory bank of representative feature vectors.

Greedy cosine de-duplication keeps a vector only when no kept vector is within the
threshold (cosine >= ``threshold``). Each kept vector counts the inputs it covers.
A hard cap bounds the bank: whenever it grows past ``max_size`` the kept vectors are
refined by count-weighted k-means (on directions, raw-space means) down to
``max_size`` centroids. Vectors stay raw (unnormalised): the attention sums them.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch
from torch import Tensor

from splat.kmeans import weighted_kmeans


@dataclass
class BankStats:
    """seen: input vectors; deduplicated: bank size before any cap (an upper bound when
    the cap fired mid-stream); size: final bank size; capped: whether k-means ran."""

    seen: int
    deduplicated: int
    size: int
    capped: bool
    threshold: float
    max_size: int


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def greedy_dedup(x: Tensor, threshold: float) -> Tensor:
    """Indices (in input order) of the vectors greedy cosine de-dup keeps among ``x`` [M,D]."""
    if x.shape[0] == 0:
        return torch.zeros(0, dtype=torch.long)
    xn = _unit(x)
    sims = xn @ xn.T
    alive = torch.ones(x.shape[0], dtype=torch.bool)
    keep = []
    while True:
        rest = alive.nonzero()
        if rest.numel() == 0:
            break
        i = int(rest[0, 0])
        keep.append(i)
        alive &= sims[i] < threshold
        alive[i] = False
    return torch.tensor(keep, dtype=torch.long)


def kmeans_reduce(vectors: Tensor, weights: Tensor, k: int, iters: int = 15) -> tuple[Tensor, Tensor]:
    """Weighted k-means of raw vectors [M,D] down to at most k centroids by direction (the one
    k-means, :func:`splat.kmeans.weighted_kmeans`, on unit vectors). Returns each cluster's
    weighted raw mean [K,D] and its total weight [K]."""
    if vectors.shape[0] <= k:
        return vectors.clone(), weights.clone()
    labels = weighted_kmeans(_unit(vectors), k, weights, iters=iters, init="heaviest").labels
    mass = torch.zeros(k, dtype=weights.dtype).index_add_(0, labels, weights)
    w = weights.to(vectors.dtype)[:, None]
    sums = torch.zeros(k, vectors.shape[1], dtype=vectors.dtype).index_add_(0, labels, vectors * w)
    filled = mass > 0
    return sums[filled] / mass[filled, None].to(vectors.dtype), mass[filled]


def build_bank(
    chunks: Iterable[Tensor],
    *,
    threshold: float = 0.9,
    max_size: int = 4096,
    kmeans_iters: int = 15,
) -> tuple[Tensor, BankStats]:
    """Build a bank [K,D] (float32, K <= max_size) from chunks of raw vectors [M,D].

    Chunks stream in (one view's sampled pixels at a time); memory stays bounded by
    about ``2 * max_size`` kept vectors plus one chunk.
    """
    if not 0.0 < threshold <= 1.0:
        raise ValueError(f"bank threshold must be in (0, 1], got {threshold}")
    if max_size < 1:
        raise ValueError(f"bank max size must be >= 1, got {max_size}")
    kept: Tensor | None = None
    counts: Tensor | None = None
    seen, dedup, capped = 0, 0, False
    for chunk in chunks:
        x = chunk.detach().to(torch.float32).reshape(-1, chunk.shape[-1])
        x = x[torch.isfinite(x).all(dim=1) & (x.norm(dim=1) > 1e-12)]
        seen += x.shape[0]
        if x.shape[0] == 0:
            continue
        if kept is None:
            kept, counts = x[:0].clone(), torch.zeros(0, dtype=torch.float64)
        if x.shape[1] != kept.shape[1]:
            raise ValueError(f"feature dimension changed from {kept.shape[1]} to {x.shape[1]} between chunks")
        if kept.shape[0]:
            sims = _unit(x) @ _unit(kept).T
            best, arg = sims.max(dim=1)
            covered = best >= threshold
            counts.index_add_(0, arg[covered], torch.ones(int(covered.sum()), dtype=torch.float64))
            x = x[~covered]
        if x.shape[0]:
            # greedy within the new candidates, then count what each new vector covers
            sel = greedy_dedup(x, threshold)
            new = x[sel]
            sims = _unit(x) @ _unit(new).T
            arg = sims.argmax(dim=1)
            new_counts = torch.zeros(new.shape[0], dtype=torch.float64).index_add_(
                0, arg, torch.ones(x.shape[0], dtype=torch.float64)
            )
            kept = torch.cat([kept, new])
            counts = torch.cat([counts, new_counts])
            dedup += new.shape[0]
        if kept.shape[0] > 2 * max_size:
            kept, counts = kmeans_reduce(kept, counts, max_size, kmeans_iters)
            capped = True
    if kept is None or kept.shape[0] == 0:
        raise ValueError("no valid feature vectors to build a bank from")
    if kept.shape[0] > max_size:
        kept, counts = kmeans_reduce(kept, counts, max_size, kmeans_iters)
        capped = True
    return kept.contiguous(), BankStats(seen, dedup, int(kept.shape[0]), capped, float(threshold), int(max_size))
