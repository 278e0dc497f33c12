"""Gaussian memory attention: low-dimensional queries -> features in the model's own space.

For a query q [Q] (one model's slice of a rendered query map), a projection P [Q,D]
and a bank B [K,D] of raw feature vectors::

    key     = q @ P                                   [D]
    s_k     = cos(key, B_k)                           [K]
    w       = softmax(s / temperature)                [K]
    feature = sum_k w_k B_k                           [D]

The projection is either learnable or a fixed random matrix (M3's choice); both are
stored in the ``.m3`` file, so decoding never depends on a random generator.
"""
from __future__ import annotations

import math

import torch
from torch import Tensor, nn

DEFAULT_TEMPERATURE = 0.05


def _unit(x: Tensor) -> Tensor:
    return x / x.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def random_projection(q: int, d: int, seed: int = 0) -> Tensor:
    """A fixed random projection [q,D] (Gaussian entries, variance 1/q), reproducible by seed."""
    g = torch.Generator().manual_seed(int(seed))
    return torch.randn(q, d, generator=g, dtype=torch.float64).div_(math.sqrt(q)).float()


def memory_attention(
    queries: Tensor,
    projection: Tensor,
    bank: Tensor,
    temperature: float = DEFAULT_TEMPERATURE,
    *,
    bank_unit: Tensor | None = None,
    chunk: int = 8192,
) -> Tensor:
    """Features [...,D] for queries [...,Q]; projection [Q,D]; bank [K,D] raw vectors.

    Differentiable w.r.t. queries and projection. Rows are processed ``chunk`` at a
    time so a full-resolution frame never materialises an [H*W, K] matrix at once
    when gradients are not needed.
    """
    if queries.shape[-1] != projection.shape[0]:
        raise ValueError(f"queries have {queries.shape[-1]} channels, the projection expects {projection.shape[0]}")
    if projection.shape[1] != bank.shape[1]:
        raise ValueError(f"projection maps to {projection.shape[1]} dims, the bank holds {bank.shape[1]}-dim vectors")
    lead = queries.shape[:-1]
    q = queries.reshape(-1, queries.shape[-1])
    bu = _unit(bank) if bank_unit is None else bank_unit
    inv_t = 1.0 / float(temperature)

    def block(x: Tensor) -> Tensor:
        s = _unit(x @ projection) @ bu.T
        return torch.softmax(s * inv_t, dim=-1) @ bank

    if q.shape[0] <= chunk or torch.is_grad_enabled() and (q.requires_grad or projection.requires_grad):
        out = block(q)
    else:
        out = torch.cat([block(q[i:i + chunk]) for i in range(0, q.shape[0], chunk)])
    return out.reshape(*lead, bank.shape[1])


def attention_reference(queries: Tensor, projection: Tensor, bank: Tensor, temperature: float = DEFAULT_TEMPERATURE) -> Tensor:
    """Direct float64 evaluation of the formula in the module docstring (tests only)."""
    q = queries.double().reshape(-1, queries.shape[-1])
    P, B = projection.double(), bank.double()
    key = torch.einsum("nq,qd->nd", q, P)
    cos = torch.einsum("nd,kd->nk", key, B) / (key.norm(dim=1, keepdim=True) * B.norm(dim=1)[None, :])
    e = torch.exp((cos - cos.max(dim=1, keepdim=True).values) / temperature)
    w = e / e.sum(dim=1, keepdim=True)
    return torch.einsum("nk,kd->nd", w, B).reshape(*queries.shape[:-1], B.shape[1])


class MemoryAttention(nn.Module):
    """One model's attention: a bank buffer [K,D], a projection [Q,D] (parameter when
    ``learnable``, else a buffer) and a temperature."""

    def __init__(self, bank: Tensor, query_dim: int, *, learnable: bool = True, temperature: float = DEFAULT_TEMPERATURE,
                 seed: int = 0, projection: Tensor | None = None) -> None:
        super().__init__()
        bank = bank.detach().float().contiguous()
        self.register_buffer("bank", bank)
        self.register_buffer("bank_unit", _unit(bank))
        p = random_projection(query_dim, bank.shape[1], seed) if projection is None else projection.detach().float().clone()
        if tuple(p.shape) != (query_dim, bank.shape[1]):
            raise ValueError(f"projection must be [{query_dim}, {bank.shape[1]}], got {tuple(p.shape)}")
        self.learnable = bool(learnable)
        if self.learnable:
            self.projection = nn.Parameter(p)
        else:
            self.register_buffer("projection", p)
        self.temperature = float(temperature)

    @property
    def query_dim(self) -> int:
        return int(self.projection.shape[0])

    @property
    def dim(self) -> int:
        return int(self.bank.shape[1])

    def forward(self, queries: Tensor) -> Tensor:
        return memory_attention(queries, self.projection, self.bank, self.temperature, bank_unit=self.bank_unit)
