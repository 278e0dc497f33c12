"""The :class:`Memory` dataclass: a scene whose Gaussians carry queries, plus per-model banks."""
from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor

from splat.errors import UsageError
from splat.scene import GaussianScene

from .attention import MemoryAttention

QUERY_EXTRA = "m3_query"
"""Name of the scene extra [N, Q_total] that holds every model's per-Gaussian queries."""


@dataclass
class ModelMemory:
    """One foundation model's part of a memory.

    offset/query_dim: this model's slice of the per-Gaussian query vector.
    bank [K,D] raw feature vectors (principal scene components); projection [Q,D];
    image_size / feature_size (height, width) of the features it was distilled from.
    """

    name: str
    offset: int
    query_dim: int
    bank: Tensor
    projection: Tensor
    temperature: float = 0.05
    learnable: bool = True
    image_size: tuple[int, int] = (0, 0)
    feature_size: tuple[int, int] = (0, 0)

    @property
    def dim(self) -> int:
        return int(self.bank.shape[1])

    @property
    def bank_size(self) -> int:
        return int(self.bank.shape[0])

    @property
    def slice(self) -> slice:
        return slice(self.offset, self.offset + self.query_dim)

    def attention(self) -> MemoryAttention:
        return MemoryAttention(self.bank, self.query_dim, learnable=False, temperature=self.temperature,
                               projection=self.projection)


@dataclass
class Memory:
    """A scene with per-Gaussian queries (``scene.extras[QUERY_EXTRA]`` [N,Q_total]) and its models.

    ``scene_ref`` names the scene file when the geometry was not embedded in the .m3;
    ``meta`` holds free-form build information (bank stats, training time...).
    """

    scene: GaussianScene
    models: list[ModelMemory]
    scene_ref: str | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        q = self.scene.extras.get(QUERY_EXTRA)
        if q is None or q.ndim != 2:
            raise ValueError(f"the scene needs a 2-D extra {QUERY_EXTRA!r} [N, Q] holding the queries")
        total = sum(m.query_dim for m in self.models)
        if q.shape[1] != total:
            raise ValueError(f"queries have {q.shape[1]} channels, the models use {total}")

    @property
    def queries(self) -> Tensor:
        return self.scene.extras[QUERY_EXTRA]

    def model(self, name: str | None = None) -> ModelMemory:
        """A model by name (the first one when ``name`` is None)."""
        if name is None:
            return self.models[0]
        for m in self.models:
            if m.name == name:
                return m
        raise UsageError(f"this memory has no model {name!r} (models: {', '.join(m.name for m in self.models)})")

    def with_queries(self, queries: Tensor) -> "Memory":
        return Memory(self.scene.with_extras(**{QUERY_EXTRA: queries}), self.models, self.scene_ref, dict(self.meta))
