"""PlayCanvas compressed PLY (``.compressed.ply``, SuperSplat's export), read only.

Layout: an ordinary binary PLY with three elements.

* ``chunk`` (one per 256 Gaussians): float ``min_x min_y min_z max_x max_y max_z
  min_scale_x .. max_scale_z`` and optionally ``min_r min_g min_b max_r max_g max_b``.
* ``vertex``: uint32 ``packed_position`` (11/10/11-bit unorm x/y/z lerped between the
  chunk's min and max), ``packed_rotation`` (2-bit index of the largest component of
  the wxyz quaternion, then three 10-bit values in [-1/sqrt2, 1/sqrt2]),
  ``packed_scale`` (11/10/11-bit unorm lerp between the chunk's log-scale bounds) and
  ``packed_color`` (8-bit r, g, b, opacity; colours lerped between the chunk's colour
  bounds when present).
* optional ``sh`` with uchar ``f_rest_0..`` (9, 24 or 45, channel-major as in INRIA
  PLY), each mapping byte v to ``(v/256 + 1/512 - 0.5) * 8`` (0 -> -4, 255 -> 4).
"""
from __future__ import annotations

import math
import os

import numpy as np

from ..errors import FormatError
from ..scene import GaussianScene
from . import _ply
from ._common import dc_from_rgb, logit, make_scene, quiet_numpy, read_bytes, sh_degree_for_coeffs

NAME = "compressed-ply"
EXTENSIONS = (".compressed.ply",)
CHUNK = 256

_CHUNK_PROPS = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z",
                "min_scale_x", "min_scale_y", "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"]
_COLOR_PROPS = ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
_VERTEX_PROPS = ["packed_position", "packed_rotation", "packed_scale", "packed_color"]


def sniff(head: bytes) -> bool:
    return _ply.is_ply(head) and b"element chunk" in head and b"packed_position" in head


def _unorm(v: np.ndarray, shift: int, bits: int) -> np.ndarray:
    return ((v >> np.uint32(shift)) & np.uint32((1 << bits) - 1)).astype(np.float64) / ((1 << bits) - 1)


def _lerp(lo: np.ndarray, hi: np.ndarray, t: np.ndarray) -> np.ndarray:
    return lo * (1.0 - t) + hi * t


def read(path: str | os.PathLike, *, check_finite: bool = True) -> GaussianScene:
    return decode(read_bytes(path), path, check_finite=check_finite)


@quiet_numpy
def decode(data: bytes, path=None, *, check_finite: bool = True) -> GaussianScene:
    header = _ply.parse_header(data, path)
    if header.format == "ascii":
        raise FormatError("compressed PLY must be binary, found ASCII", path)
    chunk_el, vertex_el, sh_el = header.element("chunk"), header.element("vertex"), header.element("sh")
    if chunk_el is None or vertex_el is None:
        raise FormatError("not a compressed PLY: needs 'chunk' and 'vertex' elements", path)

    def require(el: _ply.PlyElement, props: list[str], dtype: str) -> None:
        types = {p.name: p.dtype for p in el.properties}
        bad = [p for p in props if types.get(p) != dtype]
        if bad:
            raise FormatError(f"compressed PLY element {el.name!r}: property {bad[0]!r} missing or not {dtype}", path)

    require(chunk_el, _CHUNK_PROPS, "f4")
    has_color = "min_r" in chunk_el.names()
    if has_color:
        require(chunk_el, _COLOR_PROPS, "f4")
    require(vertex_el, _VERTEX_PROPS, "u4")
    n = vertex_el.count
    if chunk_el.count != math.ceil(n / CHUNK):
        raise FormatError(
            f"inconsistent counts: {n:,} vertices need {math.ceil(n / CHUNK):,} chunks of {CHUNK}, "
            f"header declares {chunk_el.count:,}", path)
    wanted = {"chunk", "vertex"}
    if sh_el is not None:
        if sh_el.count != n:
            raise FormatError(f"inconsistent counts: 'sh' has {sh_el.count:,} rows, 'vertex' has {n:,}", path)
        sh_degree_for_coeffs(len(sh_el.properties), path, "sh properties")
        require(sh_el, [f"f_rest_{i}" for i in range(len(sh_el.properties))], "u1")
        wanted.add("sh")
    els = _ply.read_elements(data, header, wanted, path)
    ch = {k: v.astype(np.float64) for k, v in els["chunk"].items()}
    bounds = np.stack([ch[k] for k in _CHUNK_PROPS + (_COLOR_PROPS if has_color else [])], axis=1)
    if bounds.size and not np.isfinite(bounds).all():
        raise FormatError(f"non-finite chunk bound in chunk {int(np.nonzero(~np.isfinite(bounds).all(1))[0][0])}", path)
    ci = np.arange(n) // CHUNK
    v = els["vertex"]

    pos, scl = v["packed_position"], v["packed_scale"]
    means = np.stack([_lerp(ch[f"min_{a}"][ci], ch[f"max_{a}"][ci], t)
                      for a, t in zip("xyz", (_unorm(pos, 21, 11), _unorm(pos, 11, 10), _unorm(pos, 0, 11)))], 1)
    log_scales = np.stack([_lerp(ch[f"min_scale_{a}"][ci], ch[f"max_scale_{a}"][ci], t)
                           for a, t in zip("xyz", (_unorm(scl, 21, 11), _unorm(scl, 11, 10), _unorm(scl, 0, 11)))], 1)

    rot = v["packed_rotation"]
    abc = np.stack([(_unorm(rot, s, 10) - 0.5) * math.sqrt(2.0) for s in (20, 10, 0)], 1)
    largest = (rot >> np.uint32(30)).astype(np.int64)
    m = np.sqrt(np.maximum(0.0, 1.0 - (abc ** 2).sum(1)))
    quats = np.empty((n, 4))
    # the three stored values fill the other slots in ascending order
    others = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])[largest]
    np.put_along_axis(quats, others, abc, axis=1)
    np.put_along_axis(quats, largest[:, None], m[:, None], axis=1)

    col = v["packed_color"]
    rgb = np.stack([_unorm(col, s, 8) for s in (24, 16, 8)], 1)
    if has_color:
        rgb = np.stack([_lerp(ch[f"min_{c}"][ci], ch[f"max_{c}"][ci], rgb[:, i]) for i, c in enumerate("rgb")], 1)
    opacity = logit(_unorm(col, 0, 8))

    rest = None
    if sh_el is not None:
        raw = els["sh"].stack([f"f_rest_{i}" for i in range(len(sh_el.properties))], dtype=np.float64)
        unit = np.where(raw == 0, 0.0, np.where(raw == 255, 1.0, (raw + 0.5) / 256.0))
        k = raw.shape[1] // 3
        rest = ((unit - 0.5) * 8.0).reshape(n, 3, k).transpose(0, 2, 1)
    return make_scene(path, means=means, quats=quats, log_scales=log_scales, opacity_logits=opacity,
                      sh_dc=dc_from_rgb(rgb), sh_rest=rest, check_finite=check_finite)
