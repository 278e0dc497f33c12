"""Feature memory (M3-style): distil foundation-model features into a Gaussian scene.

Each Gaussian carries a tiny query vector (``q`` channels per model, stored as the
scene extra ``"m3_query"``). The renderer draws the query map; a Gaussian memory
attention turns each pixel's query into a D-dimensional feature in the foundation
model's own space, as a softmax-weighted sum of a small bank of principal scene
components (representative raw feature vectors).

Modules: ``features`` (bring-your-own per-view features, memory-mapped), ``bank``
(principal scene components), ``attention`` (Gaussian memory attention), ``distill``
(optimisation), ``memory`` (the :class:`Memory` dataclass), ``m3file`` (the ``.m3``
container and ``f_emb_*`` PLY export), ``query`` (render features, similarity,
picking, text encoders), ``extract`` (optional real CNN features).
"""
from .attention import MemoryAttention, attention_reference, memory_attention
from .bank import BankStats, build_bank
from .distill import DistillConfig, DistillReport, distill
from .features import FeatureModel, FeatureSet, load_features, write_features
from .m3file import decode_m3, encode_m3, export_ply, read_m3, write_m3
from .memory import QUERY_EXTRA, Memory, ModelMemory
from .query import (
    gaussian_features,
    gaussian_similarity,
    load_text_encoder,
    pick_feature,
    pick_pixel_feature,
    render_features,
    render_queries,
    similarity,
    similarity_colors,
    text_similarity,
)

__all__ = [
    "QUERY_EXTRA",
    "BankStats",
    "DistillConfig",
    "DistillReport",
    "FeatureModel",
    "FeatureSet",
    "Memory",
    "MemoryAttention",
    "ModelMemory",
    "attention_reference",
    "build_bank",
    "decode_m3",
    "distill",
    "encode_m3",
    "export_ply",
    "gaussian_features",
    "gaussian_similarity",
    "load_features",
    "load_text_encoder",
    "memory_attention",
    "pick_feature",
    "pick_pixel_feature",
    "read_m3",
    "render_features",
    "render_queries",
    "similarity",
    "similarity_colors",
    "text_similarity",
    "write_features",
    "write_m3",
]
