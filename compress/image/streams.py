"""Parameter streams of a version-2 ``.gsi`` file (spec: ``docs/formats/gsi.md`` section 3b).

Positions are coded as quadtree occupancy per LOD layer (or as Morton deltas, whichever is
smaller); the shape and colour indices go through the shared context-modelled coder
(``compress.context``), each with a context the decoder rebuilds from what it already has:

* ``sa`` (size): the layer and the local density (bit length of the Morton gap to the
  previous Gaussian of the layer);
* ``su`` given the size, ``sv`` given the size and ``|su|`` (shape given size);
* ``c0`` (luma) given the size, ``c1`` given luma, ``c2`` given luma and ``c1`` (chroma
  given luma), further channels given ``c0``.

The coder itself adds the previous Gaussian's value (the neighbour in Morton order).
Only ``encode_ctx``/``decode_ctx``/``bucket`` of ``compress.context`` are used, so that module
can be swapped for a newer version.
"""
from __future__ import annotations

import numpy as np

from compress.context import bucket, decode_ctx, encode_ctx
from compress.entropy import decode_ints, encode_ints
from splat.errors import FormatError

from .quant import QuantSpec, attribute_names

MASK_BITS = 4          # a quadtree node's child-occupancy mask (1..15)
MASKS_PER_BYTE = 360   # upper bound on masks a byte of context-coded stream can hold
DENSITY_BUCKETS = 8
MAX_LAYER_CTX = 8
SHAPE_BUCKETS = 8


def tree_depth(spec: QuantSpec) -> int:
    """Levels of the position quadtree: the grid of 2^depth cells a side covers [0, W/step] x [0, H/step]."""
    n = max(round(spec.width / spec.pos_step), round(spec.height / spec.pos_step)) + 1
    return max(1, int(n - 1).bit_length())


# ---------------------------------------------------------------------- positions
def tree_encode(codes: np.ndarray, sizes: list[int], depth: int) -> tuple[np.ndarray, np.ndarray]:
    """Quadtree occupancy of sorted Morton ``codes`` (uint64 [N], sorted inside each layer).

    Returns (masks, extra): per layer, breadth-first, one 4-bit child mask (bit k = child k
    occupied) per occupied node from the root down to the parents of the leaves; and per
    occupied leaf the number of further Gaussians in the same cell (int64)."""
    masks, extra = [], []
    start = 0
    for s in sizes:
        c = codes[start:start + s]
        start += s
        leaves, counts = np.unique(c, return_counts=True)
        extra.append(counts - 1)
        level = [leaves >> np.uint64(2 * (depth - d)) for d in range(depth + 1)]
        for d in range(1, depth + 1):
            nodes = np.unique(level[d])
            parent = nodes >> np.uint64(2)
            first = np.concatenate([[0], np.flatnonzero(parent[1:] != parent[:-1]) + 1])
            bit = np.left_shift(1, (nodes & np.uint64(3)).astype(np.int64))
            masks.append(np.bitwise_or.reduceat(bit, first))
    return np.concatenate(masks).astype(np.int64), np.concatenate(extra).astype(np.int64)


def tree_decode(masks: np.ndarray, sizes: list[int], depth: int, path=None) -> tuple[np.ndarray, np.ndarray]:
    """Inverse of the walk in :func:`tree_encode`: (leaf codes uint64 [U], leaves per layer [L])."""
    leaves, per_layer = [], []
    pos = 0
    for s in sizes:
        nodes = np.zeros(1, np.uint64)
        for _ in range(depth):
            m = masks[pos:pos + nodes.size]
            if m.size != nodes.size:
                raise FormatError("invalid .gsi file: the position tree stream ends early", path)
            if not ((m >= 1) & (m <= 15)).all():
                raise FormatError("invalid .gsi file: empty or bad node in the position tree", path)
            pos += nodes.size
            bits = (m[:, None] >> np.arange(4)) & 1
            rows, ks = np.nonzero(bits)
            nodes = (nodes[rows] << np.uint64(2)) | ks.astype(np.uint64)
            if nodes.size > s:
                raise FormatError("invalid .gsi file: the position tree has more cells than Gaussians", path)
        leaves.append(nodes)
        per_layer.append(nodes.size)
    if pos != masks.size:
        raise FormatError("invalid .gsi file: the position tree stream has trailing values", path)
    return np.concatenate(leaves), np.array(per_layer, np.int64)


def encode_positions(codes: np.ndarray, sizes: list[int], depth: int) -> tuple[str, list[bytes], int]:
    """The shorter of quadtree and Morton-delta coding: (kind, streams, number of tree nodes)."""
    masks, extra = tree_encode(codes, sizes, depth)
    tree = [encode_ctx(masks, MASK_BITS), encode_ints(extra)]
    first = _layer_firsts(len(codes), sizes)
    gaps = np.where(first, codes, codes - np.concatenate([[np.uint64(0)], codes[:-1]])).astype(np.int64)
    delta = [encode_ints(gaps)]
    if sum(map(len, tree)) < len(delta[0]):
        return "tree", tree, int(masks.size)
    return "delta", delta, 0


def decode_positions(kind: str, streams: list[bytes], sizes: list[int], depth: int, nodes: int, path=None
                     ) -> np.ndarray:
    """Morton codes (uint64 [N], layer by layer, sorted inside each layer)."""
    n = sum(sizes)
    if kind == "delta":
        gaps = decode_ints(streams[0], max_count=n)
        if gaps.shape[0] != n or (gaps < 0).any():
            raise FormatError("invalid .gsi file: bad position stream", path)
        out = np.empty(n, np.uint64)
        start = 0
        for s in sizes:
            out[start:start + s] = np.cumsum(gaps[start:start + s].astype(np.uint64), dtype=np.uint64)
            start += s
        return out
    # a binary decision costs at least -log2(4080/4096) bits, so a byte holds at most ~354
    # 4-bit masks: refuse counts the stream cannot hold before allocating
    if nodes > n * depth or nodes > MASKS_PER_BYTE * len(streams[0]) + 64:
        raise FormatError(f"invalid .gsi file: {nodes} tree nodes cannot be in this file", path)
    masks = decode_ctx(streams[0], nodes, MASK_BITS)
    leaves, per_layer = tree_decode(masks, sizes, depth, path)
    extra = decode_ints(streams[1], max_count=leaves.size)
    if extra.shape[0] != leaves.size or (extra < 0).any():
        raise FormatError("invalid .gsi file: bad leaf-count stream", path)
    counts = extra + 1
    ends = np.cumsum(per_layer)
    if not np.array_equal(np.add.reduceat(counts, ends - per_layer), np.asarray(sizes)):
        raise FormatError("invalid .gsi file: the position tree does not hold the layer sizes", path)
    return np.repeat(leaves, counts)


def position_streams(kind: str) -> int:
    return 2 if kind == "tree" else 1


# ---------------------------------------------------------------------- attributes
def _layer_firsts(n: int, sizes: list[int]) -> np.ndarray:
    first = np.zeros(n, bool)
    first[np.cumsum([0] + list(sizes[:-1]))] = True
    return first


def attribute_bits(spec: QuantSpec, name: str) -> int:
    if name == "sa":
        return spec.size_bits
    if name in ("su", "sv"):
        return spec.aniso_bits
    return spec.color_bits[int(name[1:])]


def attribute_context(name: str, q: dict[str, np.ndarray], spec: QuantSpec, codes: np.ndarray, sizes: list[int]
                      ) -> tuple[np.ndarray, int]:
    """Context [N] and context count for stream ``name`` from the positions and the streams before it."""
    n = codes.size
    sb = lambda key, k=SHAPE_BUCKETS: bucket(q[key], attribute_bits(spec, key), k)  # noqa: E731
    if name == "sa":
        layer = np.minimum(np.repeat(np.arange(len(sizes)), sizes), MAX_LAYER_CTX - 1)
        gap = codes - np.concatenate([[np.uint64(0)], codes[:-1]])
        width = np.zeros(n, np.int64)
        while gap.any():
            width += gap > 0
            gap = gap >> np.uint64(1)
        dens = np.minimum(width // 3, DENSITY_BUCKETS - 1)
        dens[_layer_firsts(n, sizes)] = DENSITY_BUCKETS - 1
        return layer * DENSITY_BUCKETS + dens, MAX_LAYER_CTX * DENSITY_BUCKETS
    if name == "su" or name == "c0":
        return sb("sa"), SHAPE_BUCKETS
    if name == "sv":
        half = 1 << (spec.aniso_bits - 1)
        mag = np.minimum(np.abs(q["su"] - half), half - 1)
        return sb("sa") * SHAPE_BUCKETS + bucket(mag, spec.aniso_bits - 1, SHAPE_BUCKETS), SHAPE_BUCKETS ** 2
    if name == "c1" or (name != "c2" and name.startswith("c")):
        return sb("c0"), SHAPE_BUCKETS
    return sb("c0") * SHAPE_BUCKETS + sb("c1"), SHAPE_BUCKETS ** 2  # c2


def encode_attributes(q: dict[str, np.ndarray], spec: QuantSpec, channels: int, codes: np.ndarray,
                      sizes: list[int]) -> list[bytes]:
    """One context-modelled stream per attribute (``attribute_names`` order); ``q`` in file order."""
    out = []
    for name in attribute_names(channels):
        ctx, k = attribute_context(name, q, spec, codes, sizes)
        out.append(encode_ctx(q[name], attribute_bits(spec, name), ctx, k))
    return out


def decode_attributes(streams: list[bytes], spec: QuantSpec, channels: int, codes: np.ndarray,
                      sizes: list[int]) -> dict[str, np.ndarray]:
    """Inverse of :func:`encode_attributes` (indices int64 [N], in range by construction)."""
    q: dict[str, np.ndarray] = {}
    for name, data in zip(attribute_names(channels), streams):
        ctx, k = attribute_context(name, q, spec, codes, sizes)
        q[name] = decode_ctx(data, codes.size, attribute_bits(spec, name), ctx, k)
    return q
