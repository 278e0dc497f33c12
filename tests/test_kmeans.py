"""The one k-means (``splat.kmeans``): blocked weighted sums and mini-batch mode."""
from __future__ import annotations

import numpy as np
import torch

from splat.kmeans import _weighted_sums, assign, weighted_kmeans


def _blobs(n: int, d: int, centres: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(centres, d, generator=g) * 4
    x = c[torch.randint(0, centres, (n,), generator=g)] + torch.randn(n, d, generator=g)
    w = torch.rand(n, generator=g) + 0.1
    return x, w


def test_weighted_sums_blocks_match_one_pass_reference():
    x, w = _blobs(5000, 6, 7)
    labels, _ = assign(x, x[:40])
    # reference: float64 sums of w*x per cluster in one pass, sequential within each cluster
    ref = torch.zeros(40, 6, dtype=torch.float64).index_add_(0, labels, x.double() * w.double()[:, None])
    for rows in (1, 333, 1 << 16):
        sums, mass = _weighted_sums(x, w, labels, 40, rows=rows)
        assert sums.dtype == torch.float64
        torch.testing.assert_close(sums, ref, rtol=1e-12, atol=1e-9)
        torch.testing.assert_close(mass, torch.bincount(labels, w.double(), minlength=40))


def test_minibatch_inertia_close_to_lloyd_and_deterministic():
    x, w = _blobs(40000, 8, 24, seed=1)
    full = weighted_kmeans(x, 24, w, iters=20, seed=3, minibatch=False)
    mb = weighted_kmeans(x, 24, w, iters=20, seed=3, minibatch=True, batch_size=2048)
    assert mb.inertia <= 1.05 * full.inertia
    again = weighted_kmeans(x, 24, w, iters=20, seed=3, minibatch=True, batch_size=2048)
    assert torch.equal(mb.centroids, again.centroids) and torch.equal(mb.labels, again.labels)
    # labels are each row's nearest centroid, and the inertia is theirs
    lab, dist = assign(x, mb.centroids)
    assert torch.equal(lab, mb.labels)
    assert np.isclose(mb.inertia, float((dist * w).sum()), rtol=1e-6)
    other = weighted_kmeans(x, 24, w, iters=20, seed=4, minibatch=True, batch_size=2048)
    assert not torch.equal(other.centroids, mb.centroids)


def test_minibatch_is_the_default_only_for_large_inputs(monkeypatch):
    import splat.kmeans as km

    x, w = _blobs(3000, 4, 5)
    lloyd = weighted_kmeans(x, 5, w, seed=0, minibatch=False)
    assert torch.equal(weighted_kmeans(x, 5, w, seed=0).centroids, lloyd.centroids)
    monkeypatch.setattr(km, "MINIBATCH_MIN_ROWS", 1000)
    auto = weighted_kmeans(x, 5, w, seed=0, batch_size=512)
    assert torch.equal(auto.centroids, weighted_kmeans(x, 5, w, seed=0, minibatch=True, batch_size=512).centroids)
