"""INRIA 3D Gaussian Splatting PLY (the ``point_cloud.ply`` that training writes).

One ``vertex`` element with float properties ``x y z [nx ny nz] f_dc_0..2
[f_rest_0..3K-1] opacity scale_0..2 rot_0..3``, stored raw (log-scales, opacity
logits, SH coefficients, unnormalised wxyz quaternions). ``f_rest`` is channel-major:
``f_rest_{c*K+k}`` holds coefficient k of channel c.

Reading accepts binary little-/big-endian and ASCII, any SH degree 0-3, missing
normals or ``f_rest``, any numeric property type, and extra properties (kept in
``scene.extras``: ``name`` -> [N]; a run ``name_0..name_{D-1}`` -> [N,D]; non-zero
normals -> ``extras["normal"]`` [N,3]).

nerfstudio's ``ns-export gaussian-splat --ply-color-mode rgb`` writes ``red green blue``
(uchar, the clamped base colour times 255) instead of ``f_dc_*`` and drops ``f_rest``;
such files are read with ``sh_dc`` from that colour (``(rgb/255 - 0.5) / SH_C0``).
Integer colour properties are divided by their type's maximum; float ones are taken
as [0,1]. Opacity logits of +-Inf, which some tools
write for opacity exactly 1 or 0, are read as +-13.8 (opacity 1 - 1e-6 or 1e-6). Writing emits binary little-endian in the
INRIA layout (normals zero unless ``extras["normal"]`` exists), then the extras.
"""
from __future__ import annotations

import mmap
import os
import re
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_path
from ..errors import FormatError
from ..scene import GaussianScene
from . import _ply
from ._common import (
    clamp_infinite_logits,
    dc_from_rgb,
    drop_pages,
    make_scene,
    map_file,
    quiet_numpy,
    scene_arrays,
    sh_degree_for_coeffs,
    warn,
)

NAME = "ply"
EXTENSIONS = (".ply",)

_DC = ["f_dc_0", "f_dc_1", "f_dc_2"]
_RGB = ["red", "green", "blue"]
_REQUIRED = ["x", "y", "z", *_DC, "opacity",
             "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3"]
_NORMALS = ["nx", "ny", "nz"]
_NUMPY_TO_PLY = {"f4": "float", "f8": "double", "i1": "char", "u1": "uchar", "i2": "short",
                 "u2": "ushort", "i4": "int", "u4": "uint"}


def sniff(head: bytes) -> bool:
    """Any PLY file (the compressed-PLY sniffer runs first and claims its own files)."""
    return _ply.is_ply(head)


def read(path: str | os.PathLike, *, check_finite: bool = True) -> GaussianScene:
    """Read a PLY memory-mapped: the columns are copied out in row chunks and each chunk's
    pages are dropped after, so peak memory is the scene's float32 arrays plus one chunk."""
    with map_file(path) as data:
        return decode(data, path, check_finite=check_finite)


@quiet_numpy
def decode(data: bytes | mmap.mmap, path=None, *, check_finite: bool = True) -> GaussianScene:
    header = _ply.parse_header(data, path)
    vertex = header.element("vertex")
    if vertex is None:
        raise FormatError("PLY file has no 'vertex' element", path)
    names = vertex.names()
    rgb_mode = not any(n in names for n in _DC) and all(n in names for n in _RGB)
    missing = [n for n in _REQUIRED if n not in names and not (rgb_mode and n in _DC)]
    if missing:
        raise FormatError(f"not a Gaussian-splat PLY: vertex element lacks {', '.join(missing)}", path)
    rest_names = []
    while f"f_rest_{len(rest_names)}" in names:
        rest_names.append(f"f_rest_{len(rest_names)}")
    stray = [n for n in names if n.startswith("f_rest_") and n not in rest_names]
    if stray:
        raise FormatError(f"f_rest properties are not numbered 0..{len(rest_names) - 1} (found {stray[0]})", path)
    sh_degree_for_coeffs(len(rest_names), path, "f_rest properties")
    cols = _ply.read_elements(data, header, {"vertex"}, path)["vertex"]
    n = vertex.count

    k = len(rest_names) // 3
    groups = {
        "means": ["x", "y", "z"], "quats": ["rot_0", "rot_1", "rot_2", "rot_3"],
        "log_scales": ["scale_0", "scale_1", "scale_2"], "opacity": ["opacity"],
        # coefficient-major ([n, k, 3] once reshaped, no transpose copy): f_rest is channel-major
        "sh_rest": [f"f_rest_{c * k + j}" for j in range(k) for c in range(3)],
    }
    if not rgb_mode:
        groups["sh_dc"] = _DC
    has_normals = all(m in names for m in _NORMALS)
    if has_normals:
        groups["normal"] = _NORMALS
    g = cols.stack_groups(groups, done=lambda a, b: drop_pages(data, a, b))
    sh_dc = _rgb_dc(cols) if rgb_mode else g["sh_dc"]
    core = set(_REQUIRED) | set(rest_names) | set(_NORMALS) | (set(_RGB) if rgb_mode else set())
    extras = _collect_extras(cols, [p for p in names if p not in core])
    extras = {key: np.array(v) for key, v in extras.items()}  # own copies: no view into the file
    if has_normals and (g["normal"] != 0).any():
        extras["normal"] = g["normal"]
    del cols
    return make_scene(
        path,
        means=g["means"],
        quats=g["quats"],
        log_scales=g["log_scales"],
        opacity_logits=clamp_infinite_logits(g["opacity"][:, 0]),
        sh_dc=sh_dc,
        sh_rest=g["sh_rest"].reshape(n, k, 3),
        extras=extras,
        check_finite=check_finite,
    )


def _rgb_dc(cols: _ply.ElementData) -> np.ndarray:
    """SH DC [N,3] from ``red green blue`` columns (integers scaled by their type's maximum)."""
    chans = []
    for name in _RGB:
        c = cols[name]
        top = float(np.iinfo(c.dtype).max) if c.dtype.kind in "iu" else 1.0
        chans.append(c.astype(np.float64) / top)
    return dc_from_rgb(np.stack(chans, axis=1))


def _collect_extras(cols: _ply.ElementData, names: list[str]) -> dict[str, np.ndarray]:
    """Group ``foo_0..foo_{D-1}`` (D >= 2, same dtype, consecutive) into one [N,D] channel."""
    extras: dict[str, np.ndarray] = {}
    i = 0
    while i < len(names):
        m = re.fullmatch(r"(.+)_0", names[i])
        if m:
            base = m.group(1)
            j = i
            while j < len(names) and names[j] == f"{base}_{j - i}" and cols[names[j]].dtype == cols[names[i]].dtype:
                j += 1
            if j - i >= 2 and base not in extras and base not in names:
                extras[base] = cols.stack(names[i:j], dtype=cols[names[i]].dtype)
                i = j
                continue
        extras[names[i]] = cols[names[i]]
        i += 1
    return extras


def _ply_type(t: torch.Tensor, name: str) -> tuple[np.ndarray, str] | None:
    a = t.detach().cpu()
    if a.dtype == torch.bool:
        a = a.to(torch.uint8)
    if a.dtype in (torch.float16, torch.bfloat16):
        a = a.float()
    arr = a.numpy()
    if arr.dtype == np.int64:
        if arr.size == 0 or (arr.min() >= 0 and arr.max() < 2**32):
            arr = arr.astype(np.uint32)
        elif arr.min() >= -(2**31) and arr.max() < 2**31:
            arr = arr.astype(np.int32)
        else:
            warn(f"extra channel {name!r} holds 64-bit integers beyond 32 bits; written as double")
            arr = arr.astype(np.float64)
    key = arr.dtype.kind + str(arr.dtype.itemsize)
    if key not in _NUMPY_TO_PLY:
        warn(f"extra channel {name!r} has dtype {arr.dtype}, which PLY cannot store; dropped")
        return None
    return arr, _NUMPY_TO_PLY[key]


def encode(scene: GaussianScene) -> bytes:
    """The scene as binary little-endian INRIA PLY bytes."""
    header, table = _encode_parts(scene)
    return header + table.tobytes()


def _encode_parts(scene: GaussianScene) -> tuple[bytes, np.ndarray]:
    """(PLY header bytes, the [n] row table as one C-contiguous array) for :func:`encode`."""
    a = scene_arrays(scene)
    n = len(scene)
    k = a["sh_rest"].shape[1]
    normal = scene.extras.get("normal")
    has_normal = normal is not None and tuple(normal.shape) == (n, 3)
    # blocks of columns: (property names, [n, len(names)] values, PLY type)
    blocks: list[tuple[list[str], np.ndarray, str]] = [
        (["x", "y", "z"], a["means"], "float"),
        (_NORMALS, normal.detach().cpu().float().numpy() if has_normal else np.zeros((n, 3), np.float32), "float"),
        ([f"f_dc_{i}" for i in range(3)], a["sh_dc"], "float"),
        ([f"f_rest_{i}" for i in range(3 * k)], a["sh_rest"].transpose(0, 2, 1).reshape(n, 3 * k), "float"),
        (["opacity"], a["opacity_logits"][:, None], "float"),
        ([f"scale_{i}" for i in range(3)], a["log_scales"], "float"),
        ([f"rot_{i}" for i in range(4)], a["quats"], "float"),
    ]
    taken = {p for names, _, _ in blocks for p in names}
    for name, t in scene.extras.items():
        if name == "normal" and has_normal:
            continue
        if not re.fullmatch(r"[A-Za-z0-9_.\-]+", name):
            warn(f"extra channel {name!r} is not a valid PLY property name; dropped")
            continue
        conv = _ply_type(t, name)
        if conv is None:
            continue
        arr, ptype = conv
        if arr.ndim > 2:
            warn(f"extra channel {name!r} has shape {tuple(arr.shape)}; written flattened as {name}_0..")
        names = [name] if arr.ndim == 1 else [f"{name}_{j}" for j in range(int(np.prod(arr.shape[1:])))]
        if any(p in taken for p in names):
            warn(f"extra channel {name!r} collides with a Gaussian property name; dropped")
            continue
        blocks.append((names, arr.reshape(n, len(names)), ptype))
        taken.update(names)
    props = [(p, t) for names, _, t in blocks for p in names]
    if all(t == "float" for _, t in props):  # the usual case: one float32 matrix, block by block
        table = np.concatenate([v.astype("<f4", copy=False) for _, v, _ in blocks], axis=1)
    else:
        table = np.empty(n, dtype=np.dtype([(p, "<" + np.dtype(_ply.PLY_TYPES[t]).str[1:]) for p, t in props]))
        for names, values, _ in blocks:
            for j, p in enumerate(names):
                table[p] = values[:, j]
    header = _ply.build_header("binary_little_endian", [("vertex", n, props)], comments=["written by splatkit"])
    return header, np.ascontiguousarray(table)


def write(scene: GaussianScene, path: str | os.PathLike) -> None:
    """Write :func:`encode`'s bytes atomically, the table straight from memory (no second
    copy of the file in memory)."""
    header, table = _encode_parts(scene)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(header)
        if table.size:  # (memoryview cannot cast an empty table)
            f.write(memoryview(table).cast("B"))
        f.flush()
        os.fsync(f.fileno())
