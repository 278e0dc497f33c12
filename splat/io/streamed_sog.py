"""PlayCanvas streamed SOG: ``lod-meta.json`` plus level-of-detail folders of SOG v2.

The layout splat-transform writes (``writers/write-lod.ts``) and the PlayCanvas engine
streams; the full description is in ``docs/formats/streamed-sog.md``:

* ``lod-meta.json``: ``{"version": 1, "count", "counts": [per level], "lodLevels": L,
  "filenames": ["<level>_<i>/meta.json", ...], "tree": node}``; a node is either
  ``{"bound": {"min", "max"}, "children": [node, ...]}`` or a leaf
  ``{"bound", "lods": {"<level>": {"file", "offset", "count"}}}``, the leaf's Gaussians
  of that level being rows ``offset .. offset+count`` of ``filenames[file]``.
* each file is a loose SOG v2 folder (:mod:`splat.io.sog`). Level 0 is the finest.

Reading picks one level (default 0), or every level (``level=None``; each Gaussian then
carries ``extras["lod"]``), optionally only the leaves whose bound meets ``region``
(``[xmin, ymin, zmin, xmax, ymax, zmax]``). Writing builds each coarser level by
significance-aware decimation: neighbours along a Morton curve are merged pairwise by
moment matching, weighted by significance (opacity x cross-section), so every level
halves the count (``bench/lod_levels.py`` compares it with random and most-significant
subsets). It then chunks all levels spatially with a median-split k-d tree
over the level-0 centres and writes every leaf's rows contiguously, Morton-sorted, in
units of at most ``unit_size`` Gaussians per level.
"""
from __future__ import annotations

import json
import os
import posixpath
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch

from ..atomic import atomic_write_bytes
from ..bounded import read_regular, resolve_inside
from ..errors import FormatError, UsageError
from ..header import parse_json
from ..scene import GaussianScene
from . import sog
from ._common import logit, make_scene, normalize_quats, read_bytes, scene_arrays, sigmoid, warn

NAME = "streamed-sog"
EXTENSIONS = ("lod-meta.json",)
MAX_META_BYTES = 64 << 20
MAX_LEVELS = 32
MAX_DEPTH = 64


def sniff(head: bytes) -> bool:
    text = head.lstrip()
    return text[:1] == b"{" and b'"lodLevels"' in head and b'"tree"' in head


def sniff_dir(path: Path) -> bool:
    return (path / "lod-meta.json").is_file()


# ---------------------------------------------------------------------- reading
def _int(v, what: str, path, lo: int = 0, hi: int | None = None) -> int:
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        rng = f"{lo}..{hi}" if hi is not None else f">= {lo}"
        raise FormatError(f"lod-meta.json: {what} must be an integer {rng}, got {v!r}", path)
    return v


def _bound(node: dict, path) -> np.ndarray:
    b = node.get("bound")
    try:
        lo = np.asarray(b["min"], np.float64)
        hi = np.asarray(b["max"], np.float64)
    except (TypeError, KeyError, ValueError):
        raise FormatError("lod-meta.json: a tree node lacks a numeric bound {min, max}", path) from None
    if lo.shape != (3,) or hi.shape != (3,) or not (np.isfinite(lo).all() and np.isfinite(hi).all()):
        raise FormatError("lod-meta.json: a node bound must hold 3 finite numbers in min and max", path)
    return np.concatenate([lo, hi])


def parse_meta(data: bytes, path) -> tuple[dict, list[tuple[np.ndarray, dict[int, tuple[int, int, int]]]]]:
    """(meta, leaves): each leaf is (bound [6], {level: (file, offset, count)}), validated."""
    if len(data) > MAX_META_BYTES:
        raise FormatError(f"lod-meta.json is larger than {MAX_META_BYTES >> 20} MiB", path)
    # a tree level is two JSON levels (node -> children list -> node)
    meta = parse_json(data, path, "lod-meta.json", max_depth=2 * MAX_DEPTH + 8)
    if meta.get("version") not in (None, 1) or isinstance(meta.get("version"), bool):
        raise FormatError(f"unsupported lod-meta.json version {meta.get('version')!r} (expected 1)", path)
    levels = _int(meta.get("lodLevels"), "lodLevels", path, 1, MAX_LEVELS)
    names = meta.get("filenames")
    if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
        raise FormatError("lod-meta.json: filenames must be a non-empty list of strings", path)
    seen: set[str] = set()
    for n in names:
        parts = n.replace("\\", "/").split("/")
        if n.startswith("/") or ".." in parts or not n.endswith(".json") or len(n) > 4096 or ":" in n:
            raise FormatError(f"lod-meta.json: file name {n[:80]!r} must be a relative path to a meta.json", path)
        norm = posixpath.normpath(n.replace("\\", "/"))
        if norm in seen:
            raise FormatError(f"lod-meta.json names the unit {n[:80]!r} twice (refused)", path)
        seen.add(norm)
    counts = meta.get("counts")
    if counts is not None and (not isinstance(counts, list) or len(counts) != levels):
        raise FormatError(f"lod-meta.json: counts must list {levels} numbers", path)
    leaves = []
    stack = [(meta.get("tree"), 0)]
    while stack:
        node, depth = stack.pop()
        if not isinstance(node, dict):
            raise FormatError("lod-meta.json: tree nodes must be objects", path)
        if depth > MAX_DEPTH:
            raise FormatError(f"lod-meta.json: tree deeper than {MAX_DEPTH}", path)
        bound = _bound(node, path)
        if "children" in node:
            kids = node["children"]
            if not isinstance(kids, list) or not kids:
                raise FormatError("lod-meta.json: children must be a non-empty list", path)
            stack += [(k, depth + 1) for k in reversed(kids)]
            continue
        lods = node.get("lods")
        if not isinstance(lods, dict):
            raise FormatError("lod-meta.json: a leaf lacks 'lods'", path)
        refs = {}
        for key, ref in lods.items():
            if not (isinstance(key, str) and 0 < len(key) <= 3 and key.isascii() and key.isdigit()) or int(key) >= levels:
                raise FormatError(f"lod-meta.json: level {key[:20]!r} is not in 0..{levels - 1}", path)
            if not isinstance(ref, dict):
                raise FormatError("lod-meta.json: a level entry must be {file, offset, count}", path)
            refs[int(key)] = (_int(ref.get("file"), "file", path, 0, len(names) - 1),
                              _int(ref.get("offset"), "offset", path), _int(ref.get("count"), "count", path))
        leaves.append((bound, refs))
    _check_disjoint(leaves, names, path)
    if counts is not None:
        for lv in range(levels):
            got = sum(r[lv][2] for _, r in leaves if lv in r)
            if counts[lv] != got:
                raise FormatError(f"lod-meta.json: counts[{lv}] is {counts[lv]!r} but the tree holds {got}", path)
    return meta, leaves


def _check_disjoint(leaves: list, names: list[str], path) -> None:
    """Every row of a unit belongs to at most one leaf and level: a range referenced twice
    (or overlapping another) is refused, so the Gaussians the tree declares never exceed
    what its units hold. O(R log R) in the R ranges."""
    ranges = sorted((f, off, cnt) for _, refs in leaves for f, off, cnt in refs.values() if cnt > 0)
    for (f0, o0, c0), (f1, o1, _) in zip(ranges, ranges[1:]):
        if f0 == f1 and o1 < o0 + c0:
            raise FormatError(f"lod-meta.json: rows {o1}.. of {names[f1][:80]!r} are referenced twice (refused)", path)


def _parse_region(region, path) -> np.ndarray | None:
    if region is None:
        return None
    r = np.asarray(region, np.float64).reshape(-1)
    if r.shape != (6,) or not np.isfinite(r).all() or (r[:3] > r[3:]).any():
        raise UsageError(f"region must be [xmin, ymin, zmin, xmax, ymax, zmax] with min <= max, got {region!r}")
    return r


def read(path: str | os.PathLike, *, level: int | None = 0, region=None, check_finite: bool = True) -> GaussianScene:
    """Read one level (0 = finest) or every level (``level=None``, tagged in ``extras["lod"]``),
    of the leaves meeting ``region`` (all when None)."""
    path = Path(path)
    if path.is_dir():  # a name the folder holds: it must stay inside it
        data = read_regular("lod-meta.json", MAX_META_BYTES, root=path, what="lod-meta.json")
        path = path / "lod-meta.json"
    else:
        data = read_bytes(path, MAX_META_BYTES)
    meta, leaves = parse_meta(data, path)
    levels = int(meta["lodLevels"])
    if level is not None and not (isinstance(level, int) and 0 <= level < levels):
        raise UsageError(f"level must be 0..{levels - 1} (or None for all levels), got {level!r}")
    box = _parse_region(region, path)
    # every unit resolves inside the tree's folder (a unit folder that is a symlink out is refused)
    # and no two names reach the same unit
    unit_paths = [resolve_inside(path.parent, n, owner=path) for n in meta["filenames"]]
    if len(set(unit_paths)) != len(unit_paths):
        raise FormatError("lod-meta.json names one unit twice (through a link or an alias; refused)", path)
    want = range(levels) if level is None else [level]
    units: dict[int, GaussianScene] = {}
    parts: list[GaussianScene] = []
    tags: list[np.ndarray] = []
    for lv in want:
        for bound, refs in leaves:
            if lv not in refs or (box is not None and ((bound[3:] < box[:3]).any() or (bound[:3] > box[3:]).any())):
                continue
            f, off, cnt = refs[lv]
            if f not in units:
                units[f] = sog.read(unit_paths[f], check_finite=check_finite)
            unit = units[f]
            if off + cnt > len(unit):
                raise FormatError(f"a leaf asks for rows {off}..{off + cnt} of {meta['filenames'][f]}, "
                                  f"which holds {len(unit)}", path)
            parts.append(unit[off:off + cnt])
            tags.append(np.full(cnt, lv, np.int32))
    if not parts:
        return GaussianScene.empty(next(iter(units.values())).sh_degree if units else 0)
    degree = max(p.sh_degree for p in parts)
    scene = GaussianScene.cat([p.with_sh_degree(degree) for p in parts])
    if level is None:
        scene = scene.with_extras(lod=torch.from_numpy(np.concatenate(tags)))
    return scene


# ---------------------------------------------------------------------- writing
def significance(scene: GaussianScene) -> np.ndarray:
    """Opacity times the ellipsoid's mean cross-section, ``prod(scales)^(2/3)`` [N] (float64)."""
    a = scene_arrays(scene)
    return sigmoid(a["opacity_logits"]) * np.exp(a["log_scales"].astype(np.float64).sum(1) * (2.0 / 3.0))


def rotmats(quats: np.ndarray) -> np.ndarray:
    """Rotation matrices [N,3,3] of wxyz quaternions [N,4] (normalised here)."""
    w, x, y, z = normalize_quats(quats).T
    return np.stack([
        np.stack([1 - 2 * (y * y + z * z), 2 * (x * y - w * z), 2 * (x * z + w * y)], 1),
        np.stack([2 * (x * y + w * z), 1 - 2 * (x * x + z * z), 2 * (y * z - w * x)], 1),
        np.stack([2 * (x * z - w * y), 2 * (y * z + w * x), 1 - 2 * (x * x + y * y)], 1),
    ], 1)


def quats_from_rotmats(r: np.ndarray) -> np.ndarray:
    """Unit wxyz quaternions [N,4] of rotation matrices [N,3,3] (largest-component branch per row)."""
    r = np.asarray(r, np.float64)
    tr = np.stack([r[:, 0, 0] + r[:, 1, 1] + r[:, 2, 2], r[:, 0, 0], r[:, 1, 1], r[:, 2, 2]], 1)
    k = np.argmax(tr, 1)
    q = np.zeros((len(r), 4))
    for case in range(4):
        m = k == case
        if not m.any():
            continue
        R = r[m]
        if case == 0:
            t = np.sqrt(1.0 + tr[m, 0]) * 2
            q[m] = np.stack([0.25 * t, (R[:, 2, 1] - R[:, 1, 2]) / t, (R[:, 0, 2] - R[:, 2, 0]) / t,
                             (R[:, 1, 0] - R[:, 0, 1]) / t], 1)
        else:
            i, j, l = (case - 1), case % 3, (case + 1) % 3
            t = np.sqrt(np.maximum(1.0 + R[:, i, i] - R[:, j, j] - R[:, l, l], 1e-30)) * 2
            v = np.zeros((m.sum(), 4))
            v[:, 0] = (R[:, l, j] - R[:, j, l]) / t
            v[:, 1 + i] = 0.25 * t
            v[:, 1 + j] = (R[:, j, i] + R[:, i, j]) / t
            v[:, 1 + l] = (R[:, l, i] + R[:, i, l]) / t
            q[m] = v
    return normalize_quats(q)


def merge_neighbours(scene: GaussianScene) -> GaussianScene:
    """Half the Gaussians: neighbours along a Morton curve merged pairwise by moment matching.

    Each pair (weights w = significance) becomes one Gaussian with the weighted mean, the
    covariance of the mixture, weighted colour and SH, and the opacity that keeps the pair's
    summed ``opacity x cross-section`` (capped at 0.99). An odd last Gaussian is kept as is.
    """
    a = {k: v.astype(np.float64) for k, v in scene_arrays(scene).items()}
    n = len(scene)
    order = sog.morton_order(a["means"])
    m = n // 2 * 2
    i, j = order[:m:2], order[1:m:2]
    sig = significance(scene)
    wi = (sig[i] / np.maximum(sig[i] + sig[j], 1e-300))[:, None]
    wj = 1.0 - wi
    mu = wi * a["means"][i] + wj * a["means"][j]

    def cov(idx: np.ndarray) -> np.ndarray:
        r = rotmats(a["quats"][idx])
        return (r * np.exp(2 * a["log_scales"][idx])[:, None, :]) @ r.transpose(0, 2, 1)

    di, dj = a["means"][i] - mu, a["means"][j] - mu
    c = (wi[:, :, None] * (cov(i) + di[:, :, None] * di[:, None, :])
         + wj[:, :, None] * (cov(j) + dj[:, :, None] * dj[:, None, :]))
    ev, vec = np.linalg.eigh(c)
    vec = vec * np.sign(np.linalg.det(vec))[:, None, None]
    log_scales = 0.5 * np.log(np.maximum(ev, 1e-30))
    cover = sig[i] + sig[j]
    alpha = np.clip(cover / np.exp(log_scales.sum(1) * (2.0 / 3.0)), 1e-4, 0.99)
    merged = {
        "means": mu,
        "quats": quats_from_rotmats(vec),
        "log_scales": log_scales,
        "opacity_logits": logit(alpha),
        "sh_dc": wi * a["sh_dc"][i] + wj * a["sh_dc"][j],
        "sh_rest": wi[:, :, None] * a["sh_rest"][i] + wj[:, :, None] * a["sh_rest"][j],
    }
    if n % 2:
        last = order[-1:]
        merged = {k: np.concatenate([v, a[k][last]]) for k, v in merged.items()}
    return make_scene(None, **merged)


def _kd_tree(means: np.ndarray, leaf_size: int) -> tuple[list, int]:
    """Median splits along the widest axis until a leaf holds at most leaf_size centres.

    Returns (nodes, leaves): nodes[k] = (axis, split, left, right) or (-1, leaf id, 0, 0).
    """
    nodes: list = []
    leaves = 0
    stack = [(np.arange(len(means)), None)]
    while stack:
        ids, parent = stack.pop()
        k = len(nodes)
        if parent is not None:
            p, side = parent
            nodes[p][2 + side] = k
        if len(ids) <= leaf_size:
            nodes.append([-1, leaves, 0, 0])
            leaves += 1
            continue
        pts = means[ids]
        axis = int(np.argmax(pts.max(0) - pts.min(0)))
        order = ids[np.argsort(pts[:, axis], kind="stable")]
        half = len(order) // 2
        nodes.append([axis, float(means[order[half], axis]), 0, 0])
        stack += [(order[half:], (k, 1)), (order[:half], (k, 0))]
    return nodes, leaves


def _kd_assign(nodes: list, points: np.ndarray) -> np.ndarray:
    """Leaf id [N] of each point (points on a split plane go right)."""
    out = np.empty(len(points), np.int64)
    stack = [(0, np.arange(len(points)))]
    while stack:
        k, ids = stack.pop()
        axis, split, left, right = nodes[k]
        if axis < 0:
            out[ids] = split
            continue
        right_side = points[ids, axis] >= split
        stack += [(left, ids[~right_side]), (right, ids[right_side])]
    return out


def _extent_bound(a: dict, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned box [3], [3] of the Gaussians' 1-sigma ellipsoids (as splat-transform bounds leaves)."""
    half = np.abs(rotmats(a["quats"][ids])) @ np.exp(a["log_scales"][ids].astype(np.float64))[:, :, None]
    m = a["means"][ids].astype(np.float64)
    return (m - half[..., 0]).min(0), (m + half[..., 0]).max(0)


def _f32_list(v: np.ndarray) -> list[float]:
    return [float(np.float32(x)) for x in v]


def plan(scene: GaussianScene, *, levels: int = 4, leaf_size: int = 16384,
         unit_size: int = 65536) -> tuple[dict, dict[str, np.ndarray], list[GaussianScene]]:
    """(lod-meta.json object, {file name: rows of its level}, level scenes), nothing encoded yet.

    Level 0 is the scene; level l + 1 is :func:`merge_neighbours` of level l. Leaves are the
    cells of a k-d tree over the level-0 centres (at most ``leaf_size`` each); every level's
    Gaussians go to the leaf holding their centre, Morton-sorted within it, and the leaves of a
    level fill units of at most ``unit_size`` Gaussians in k-d order.
    """
    n = len(scene)
    if n == 0:
        raise UsageError("cannot write an empty scene as streamed SOG")
    if not 1 <= levels <= MAX_LEVELS:
        raise UsageError(f"levels must be 1..{MAX_LEVELS}, got {levels}")
    if leaf_size < 1 or unit_size < leaf_size:
        raise UsageError("leaf_size must be >= 1 and unit_size >= leaf_size")
    level_scenes = [scene]
    while len(level_scenes) < levels:
        level_scenes.append(merge_neighbours(level_scenes[-1]))
    nodes, n_leaves = _kd_tree(scene_arrays(scene)["means"].astype(np.float64), leaf_size)
    filenames: list[str] = []
    rows: dict[str, list[np.ndarray]] = {}
    leaf_lods: list[dict] = [{} for _ in range(n_leaves)]
    boxes = np.full((n_leaves, 6), np.nan)
    for lv, ls in enumerate(level_scenes):
        a = scene_arrays(ls)
        leaf_of = _kd_assign(nodes, a["means"].astype(np.float64))
        by_leaf = np.argsort(leaf_of, kind="stable")
        starts = np.searchsorted(leaf_of[by_leaf], np.arange(n_leaves + 1))
        unit, fill = 0, 0
        for leaf in range(n_leaves):
            local = by_leaf[starts[leaf]:starts[leaf + 1]]
            if not len(local):
                continue
            if fill and fill + len(local) > unit_size:
                unit, fill = unit + 1, 0
            name = f"{lv}_{unit}/meta.json"
            if name not in rows:
                filenames.append(name)
                rows[name] = []
            local = local[sog.morton_order(a["means"][local].astype(np.float64))]
            rows[name].append(local)
            leaf_lods[leaf][str(lv)] = {"file": filenames.index(name), "offset": fill, "count": int(len(local))}
            fill += len(local)
            lo, hi = _extent_bound(a, local)
            boxes[leaf] = np.concatenate([np.fmin(boxes[leaf, :3], lo), np.fmax(boxes[leaf, 3:], hi)])

    def node(k: int) -> dict:
        axis, split, left, right = nodes[k]
        if axis < 0:
            b = boxes[split]
            return {"bound": {"min": _f32_list(b[:3]), "max": _f32_list(b[3:])}, "lods": leaf_lods[split]}
        kids = [node(left), node(right)]
        return {"bound": {"min": _f32_list(np.minimum(kids[0]["bound"]["min"], kids[1]["bound"]["min"])),
                          "max": _f32_list(np.maximum(kids[0]["bound"]["max"], kids[1]["bound"]["max"]))},
                "children": kids}

    tree = node(0)
    if "children" not in tree:
        tree = {"bound": tree["bound"], "children": [tree]}
    counts = [len(s) for s in level_scenes]
    meta = {"version": 1, "asset": {"generator": "splatkit"}, "count": int(sum(counts)), "counts": counts,
            "lodLevels": levels, "filenames": filenames, "tree": tree}
    return meta, {k: np.concatenate(v) for k, v in rows.items()}, level_scenes


def write(scene: GaussianScene, path: str | os.PathLike, *, levels: int = 4,
          leaf_size: int = 16384, unit_size: int = 65536, sh_iterations: int = 10, effort: int = 80,
          seed: int = 0) -> None:
    """Write ``lod-meta.json`` at ``path`` and its level folders beside it (see :func:`plan`).

    The folders are written under a temporary name in the same parent and swapped in, and
    ``lod-meta.json`` is written last, so a reader never sees a half-written tree.
    """
    path = Path(path)
    if path.name.lower() != "lod-meta.json":
        raise UsageError(f"a streamed SOG is written as a folder's lod-meta.json, not {path.name!r}")
    if scene.extras:
        warn(f"SOG stores no extra channels: {', '.join(sorted(scene.extras))} dropped")
        scene = scene.replace(extras={})
    meta, rows, level_scenes = plan(scene, levels=levels, leaf_size=leaf_size, unit_size=unit_size)
    root = path.parent
    root.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".lod-tmp-", dir=root))
    try:
        for name, r in rows.items():
            lv = int(name.split("_", 1)[0])
            files = sog.encode_files(level_scenes[lv][torch.from_numpy(r)], sort=False,
                                     sh_iterations=sh_iterations, effort=effort, seed=seed)
            d = tmp / Path(name).parent
            d.mkdir(parents=True)
            for fname, data in files.items():
                (d / fname).write_bytes(data)
        for name in rows:
            final = root / Path(name).parent
            if final.exists():
                shutil.rmtree(final)
            os.replace(tmp / Path(name).parent, final)
        atomic_write_bytes(path, json.dumps(meta, separators=(",", ":")).encode("utf-8"))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
