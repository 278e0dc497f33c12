"""Significance pruning: drop the least significant fraction of the Gaussians."""
from __future__ import annotations

import torch
from torch import Tensor

from splat.scene import GaussianScene


def prune_mask(scores: Tensor, ratio: float) -> Tensor:
    """Boolean keep-mask [N] that removes the floor(ratio * N) lowest scores.

    Ties are broken by index (earlier Gaussians go first), so the result is deterministic.
    """
    if not 0.0 <= ratio < 1.0:
        raise ValueError(f"prune ratio must be in [0, 1), got {ratio}")
    n = scores.shape[0]
    k = int(ratio * n)
    keep = torch.ones(n, dtype=torch.bool)
    if k:
        order = torch.argsort(scores.detach().cpu().double(), stable=True)
        keep[order[:k]] = False
    return keep


def prune(scene: GaussianScene, scores: Tensor, ratio: float = 0.66) -> tuple[GaussianScene, Tensor]:
    """(pruned scene, keep-mask [N]): the ``ratio`` fraction with the lowest ``scores`` removed."""
    keep = prune_mask(scores, ratio)
    return scene[keep.to(scene.device)], keep
