"""The ``.gsi`` file: quantised, entropy-coded 2D Gaussians (spec: ``docs/formats/gsi.md``).

    data = encode(gaussians, spec)      # ImageGaussians (importance order) -> bytes
    g = decode(data)                    # bytes -> ImageGaussians (exact, repeatable)

The container (``compress/container.py``, magic ``GSI1``) holds a JSON header (size,
channels, render mode, LOD layer sizes, quantiser) and one chunk ``GAUS`` with the
parameter streams. Gaussians are split into LOD layers along their importance order;
inside each layer they are sorted by the Morton code of their quantised position.
Version 2 (written) codes positions as quadtree occupancy or Morton deltas, whichever is
smaller, and shape/colour through the context-modelled coder (``streams.py``); version 1
(plain/delta streams through ``compress.entropy``) still decodes.
"""
from __future__ import annotations

import math
import os

import numpy as np
import torch

from compress.container import pack_container, unpack_container
from compress.entropy import decode_ints, pack_arrays, unpack_arrays
from splat.errors import FormatError, naming
from splat.header import get_int
from splat.io._common import read_bytes
from splat.limits import check_pixels, gaussian_cap, require_at_most
from splat.morton import morton_decode, morton_encode
from splat.scene import check_finite

from .model import ImageGaussians
from .streams import decode_attributes, decode_positions, encode_attributes, encode_positions, position_streams, tree_depth
from .quant import BitDepths, QuantSpec, attribute_names, dequantize, make_spec, quantize
from .streams import attribute_bits

MAGIC = b"GSI1"
VERSION = 2   # 2: quadtree positions and context-modelled attributes; 1 (plain streams) still decodes
DEFAULT_LAYERS = (0.125, 0.25, 0.5, 1.0)
MAX_COUNT = 1 << 24
MAX_SIDE = 1 << 20


def layer_sizes(n: int, fractions=DEFAULT_LAYERS) -> list[int]:
    """Sizes of the LOD layers for n Gaussians (layer l ends at ceil(f_l * n)); no empty layers."""
    ends = sorted({min(n, max(1, math.ceil(f * n))) for f in fractions} | {n}) if n else [0]
    sizes, prev = [], 0
    for e in ends:
        if e > prev:
            sizes.append(e - prev)
            prev = e
    return sizes


# ---------------------------------------------------------------------- encode
def encode(g: ImageGaussians, spec: QuantSpec | None = None, *, layers=DEFAULT_LAYERS, extra: dict | None = None,
           bits: BitDepths | None = None) -> bytes:
    """Quantise and entropy-code ``g`` (kept in its importance order by layers). The quantiser is
    ``spec``, else ``g.spec`` (set by fitting and decoding), else one made for ``g`` with ``bits``."""
    n = len(g)
    if n == 0:
        raise ValueError("cannot encode an empty set of Gaussians")
    check_finite({"means": g.means, "scales": g.scales, "rotations": g.rotations, "colors": g.colors}, "Gaussian")
    spec = spec or g.spec or make_spec(g.means, g.scales, g.colors, g.width, g.height, bits or BitDepths(), g.rotations)
    extra = g.meta if extra is None else extra
    q = quantize(spec, g.means.detach().cpu().numpy(), g.scales.detach().cpu().numpy(),
                 g.rotations.detach().cpu().numpy(), g.colors.detach().cpu().numpy())
    sizes = layer_sizes(n, layers)
    code = morton_encode(np.stack([q["px"], q["py"]], 1))
    order = np.concatenate([start + np.argsort(code[start:start + s], kind="stable")
                            for start, s in zip(np.cumsum([0] + sizes[:-1]), sizes)])
    code = code[order]
    q = {k: v[order] for k, v in q.items()}
    kind, pos_streams, nodes = encode_positions(code, sizes, tree_depth(spec))
    streams = pos_streams + encode_attributes(q, spec, g.channels, code, sizes)
    header = {
        "width": g.width,
        "height": g.height,
        "channels": g.channels,
        "count": n,
        "mode": g.mode,
        "k": g.k,
        "layers": sizes,
        "quant": spec.to_json(),
        "positions": kind,
        "tree_nodes": nodes,
    }
    if extra:
        header["meta"] = extra
    return pack_container(MAGIC, VERSION, header, [("GAUS", pack_arrays(*streams))])


# ---------------------------------------------------------------------- decode
def _need(cond: bool, msg: str, path) -> None:
    if not cond:
        raise FormatError(f"invalid .gsi file: {msg}", path)


def read_header(data: bytes | memoryview, path: str | os.PathLike | None = None, *, max_gaussians: int | None = None,
                max_pixels: int | None = None) -> tuple[dict, QuantSpec, bytes]:
    """Verify the container and header; return (header, spec, GAUS payload).

    The Gaussian count is capped by the file size (``splat.limits.gaussian_cap``, or
    ``max_gaussians``) and the stored image size by ``max_pixels`` (default ``MAX_PIXELS``).
    """
    c = unpack_container(data, magic=MAGIC, path=path, max_version=VERSION, what=".gsi file")
    h = c.header
    w = get_int(h, "width", 1, MAX_SIDE, path, ".gsi header")
    ht = get_int(h, "height", 1, MAX_SIDE, path, ".gsi header")
    check_pixels(w, ht, max_pixels, path, "stored image")
    ch = get_int(h, "channels", 1, 16, path, ".gsi header")
    n = get_int(h, "count", 1, MAX_COUNT, path, ".gsi header")
    require_at_most(n, gaussian_cap(len(data), max_gaussians), "Gaussian count", path, "max_gaussians")
    get_int(h, "k", 1, 64, path, ".gsi header")
    _need(h.get("mode") in ("topk", "sum"), f"unknown render mode {str(h.get('mode'))[:40]!r}", path)
    layers = h.get("layers")
    _need(isinstance(layers, list) and layers and len(layers) <= 64
          and all(isinstance(s, int) and not isinstance(s, bool) and s > 0 for s in layers)
          and sum(layers) == n, f"layer sizes do not add up to the count {n}", path)
    if c.version == 1:
        _need(isinstance(h.get("delta"), list) and all(isinstance(d, str) for d in h["delta"])
              and set(h["delta"]) <= set(attribute_names(ch)), "bad 'delta' list", path)
    else:
        _need(h.get("positions") in ("tree", "delta"), "unknown position coding", path)
        h["tree_nodes"] = get_int(h, "tree_nodes", 0, n * 32, path, ".gsi header")
        _need((h["tree_nodes"] > 0) == (h["positions"] == "tree"), "'tree_nodes' does not match the position coding",
              path)
    h["version"] = c.version
    qd = h.get("quant")
    _need(isinstance(qd, dict), "missing quantiser", path)
    try:
        spec = QuantSpec.from_json(qd, w, ht)
    except (TypeError, ValueError, KeyError, AttributeError) as e:
        raise FormatError(f"invalid .gsi file: bad quantiser ({e})", path) from None
    num = (int, float)
    _need(isinstance(spec.pos_step, num) and 2.0 ** -8 <= spec.pos_step <= 64, "bad position step", path)
    _need(isinstance(spec.size_bits, int) and 1 <= spec.size_bits <= 16, "bad size bit depth", path)
    _need(isinstance(spec.aniso_bits, int) and 1 <= spec.aniso_bits <= 16, "bad anisotropy bit depth", path)
    _need(all(isinstance(v, num) and math.isfinite(v) for v in (spec.size_lo, spec.size_hi, spec.aniso_max))
          and spec.size_lo < spec.size_hi and spec.aniso_max > 0 and -30 < spec.size_lo and spec.size_hi < 30
          and spec.aniso_max < 30, "bad shape range", path)
    _need(spec.color_transform in ("ycocg", "none") and (spec.color_transform == "none" or ch >= 3),
          "bad colour transform", path)
    for lst in (spec.color_lo, spec.color_hi, spec.color_bits):
        _need(isinstance(lst, list) and len(lst) == ch, "colour quantiser does not match the channel count", path)
    _need(all(isinstance(b, int) and 1 <= b <= 16 for b in spec.color_bits), "bad colour bit depth", path)
    _need(all(isinstance(a, num) and isinstance(b, num) and math.isfinite(a) and math.isfinite(b) and a < b
              for a, b in zip(spec.color_lo, spec.color_hi)), "bad colour range", path)
    return h, spec, c.get("GAUS")


def decode(data: bytes | memoryview, path: str | os.PathLike | None = None, *, max_gaussians: int | None = None,
           max_pixels: int | None = None) -> ImageGaussians:
    """Parse a ``.gsi`` file; raises FormatError (naming ``path``) on any inconsistency.
    ``max_gaussians``/``max_pixels`` raise the caps (see :func:`read_header`)."""
    with naming(path), np.errstate(all="ignore"):
        return _decode(data, path, max_gaussians, max_pixels)


def _decode(data: bytes | memoryview, path, max_gaussians: int | None, max_pixels: int | None) -> ImageGaussians:
    h, spec, payload = read_header(data, path, max_gaussians=max_gaussians, max_pixels=max_pixels)
    ch = h["channels"]
    names = attribute_names(ch)
    if h["version"] == 1:
        q = _decode_v1(h, spec, payload, path)
    else:
        q = _decode_v2(h, spec, payload, path)
    limits = {name: 1 << attribute_bits(spec, name) for name in names}
    for name in names:
        _need(bool((q[name] >= 0).all() and (q[name] < limits[name]).all()), f"parameter {name!r} out of range", path)
    means, scales, rot, colors = dequantize(spec, q, ch)
    _need(all(np.isfinite(a).all() for a in (means, scales, rot, colors)), "quantiser ranges decode to NaN/Inf", path)
    meta = h.get("meta") if isinstance(h.get("meta"), dict) else {}
    return ImageGaussians(torch.from_numpy(means), torch.from_numpy(scales), torch.from_numpy(rot),
                          torch.from_numpy(colors), spec.width, spec.height, h["mode"], h["k"], dict(meta), spec)


def _check_positions(code: np.ndarray, spec: QuantSpec, path) -> dict[str, np.ndarray]:
    qx, qy = morton_decode(code, 2).astype(np.int64).T
    nx, ny = round(spec.width / spec.pos_step), round(spec.height / spec.pos_step)
    _need(bool((qx <= nx).all() and (qy <= ny).all()), "a position lies outside the image", path)
    return {"px": qx, "py": qy}


def _decode_v2(h: dict, spec: QuantSpec, payload: bytes, path) -> dict[str, np.ndarray]:
    n, ch, sizes = h["count"], h["channels"], h["layers"]
    n_pos = position_streams(h["positions"])
    try:
        streams = unpack_arrays(payload, n_pos + 3 + ch)
        code = decode_positions(h["positions"], streams[:n_pos], sizes, tree_depth(spec), h["tree_nodes"], path)
        _need(code.size == n, "the position streams do not hold one position per Gaussian", path)
        q = _check_positions(code, spec, path)
        q.update(decode_attributes(streams[n_pos:], spec, ch, code, sizes))
    except FormatError as e:
        raise FormatError(f"invalid .gsi file: {e.reason.removeprefix('invalid .gsi file: ')}", path) from None
    return q


def _decode_v1(h: dict, spec: QuantSpec, payload: bytes, path) -> dict[str, np.ndarray]:
    """Version 1: Morton deltas and plain/delta attribute streams through ``compress.entropy``."""
    n, ch = h["count"], h["channels"]
    names = attribute_names(ch)
    try:
        streams = unpack_arrays(payload, 1 + len(names))
        values = [decode_ints(s, max_count=n) for s in streams]
    except FormatError as e:
        raise FormatError(f"invalid .gsi file: {e.reason}", path) from None
    _need(all(v.shape[0] == n for v in values), "a parameter stream does not hold one value per Gaussian", path)
    sizes = h["layers"]
    pos = values[0]
    _need(bool((pos >= 0).all()), "negative position code", path)
    # undo the per-layer deltas: cumulative sum restarted at each layer's first element
    code = np.empty(n, np.uint64)
    start = 0
    for s in sizes:
        code[start:start + s] = np.cumsum(pos[start:start + s].astype(np.uint64), dtype=np.uint64)
        start += s
    q = _check_positions(code, spec, path)
    for name, v in zip(names, values[1:]):
        if name in h["delta"]:
            out = np.empty(n, np.int64)
            start = 0
            for s in sizes:
                out[start:start + s] = np.cumsum(v[start:start + s])
                start += s
            v = out
        q[name] = v
    return q


def stream_sizes(data: bytes | memoryview, path: str | os.PathLike | None = None) -> dict[str, int]:
    """Bytes of each part of a ``.gsi`` file: ``header`` (container, JSON and chunk table), the
    position stream(s) (``pos``, or ``tree`` and ``cells`` for quadtree positions), then one
    entry per attribute stream (``sa``, ``su``, ``sv``, ``c0``..); the values sum to ``len(data)``."""
    with naming(path):
        h, _spec, payload = read_header(data, path)
        kind = "delta" if h["version"] == 1 else h["positions"]
        names = (["tree", "cells"] if kind == "tree" else ["pos"]) + attribute_names(h["channels"])
        try:
            streams = unpack_arrays(payload, len(names))
        except FormatError as e:
            raise FormatError(f"invalid .gsi file: {e.reason}", path) from None
    out = {"header": len(data) - len(payload)}
    framing = len(payload) - sum(len(s) for s in streams)  # the length prefixes
    out.update({name: len(s) for name, s in zip(names, streams)})
    out["header"] += framing
    return out


def read_gsi(path: str | os.PathLike, *, max_gaussians: int | None = None,
             max_pixels: int | None = None) -> ImageGaussians:
    """Read a ``.gsi`` file (caps: see :func:`read_header`)."""
    return decode(read_bytes(path), path, max_gaussians=max_gaussians, max_pixels=max_pixels)


def write_gsi(g: ImageGaussians, path: str | os.PathLike, spec: QuantSpec | None = None, **kwargs) -> int:
    """Encode ``g`` (``spec`` and ``kwargs`` as for :func:`encode`) and write it atomically to
    ``path``; returns the file's size in bytes."""
    from splat.atomic import atomic_write_bytes

    data = encode(g, spec, **kwargs)
    atomic_write_bytes(path, data)
    return len(data)
