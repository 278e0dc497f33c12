"""The ``.m3`` feature-memory file (spec: ``docs/formats/m3.md``) and ``f_emb_*`` PLY export.

An ``.m3`` file is a ``compress.container`` with magic ``b"GSM3"``: a JSON header
(models, quantisation ranges, the scene reference), then chunks ``GEOM`` (the scene,
optional), ``QRYS`` (the queries, per-channel quantised and entropy-coded), one
``BANK`` (float16 [K,D]) and one ``PROJ`` (float32 [Q,D]) per model. Every byte is
covered by a CRC-32.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch

from compress.container import pack_container, unpack_container
from compress.entropy import decode_bytes, decode_ints, encode_bytes, encode_ints
from splat.atomic import atomic_path, atomic_write_bytes
from splat.bounded import open_regular, resolve_inside
from splat.errors import FormatError, UsageError, naming
from splat.header import get_float, get_int, get_typed
from splat.io._common import make_scene, read_bytes
from splat.limits import check_pixels, gaussian_cap, require_at_most, value_cap
from splat.scene import GaussianScene, check_finite

from .memory import QUERY_EXTRA, Memory, ModelMemory

MAGIC = b"GSM3"
VERSION = 1
MAX_KEY = 1e18
"""Largest |q @ P| a query may reach (its float32 norm must not overflow)."""
_GEOM_FIELDS = ("means", "quats", "log_scales", "opacity_logits", "sh_dc", "sh_rest")


# ---------------------------------------------------------------------- quantisation
def quantize_queries(q: torch.Tensor, bits: int = 8) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-channel affine quantisation of queries [N,Q] -> codes [Q,N] uint16, lo [Q], step [Q] (float32)."""
    if not 2 <= bits <= 16:
        raise ValueError(f"query bits must be in 2..16, got {bits}")
    a = q.detach().cpu().double().numpy()
    levels = (1 << bits) - 1
    lo = a.min(axis=0) if a.shape[0] else np.zeros(a.shape[1])
    hi = a.max(axis=0) if a.shape[0] else np.zeros(a.shape[1])
    step = np.where(hi > lo, (hi - lo) / levels, 1.0)
    lo32, step32 = lo.astype(np.float32), step.astype(np.float32)
    codes = np.clip(np.rint((a - lo32.astype(np.float64)) / step32.astype(np.float64)), 0, levels).astype(np.uint16)
    return np.ascontiguousarray(codes.T), lo32, step32


def dequantize_queries(codes: np.ndarray, lo: np.ndarray, step: np.ndarray) -> torch.Tensor:
    """Codes [Q,N] -> queries [N,Q] float32: lo + code * step (computed in float32)."""
    return torch.from_numpy((lo[:, None] + codes.astype(np.float32) * step[:, None]).T.astype(np.float32).copy())


# ---------------------------------------------------------------------- scene payload
def _geom_bytes(scene: GaussianScene) -> bytes:
    parts = [getattr(scene, f).detach().cpu().float().contiguous().numpy().astype("<f4").tobytes() for f in _GEOM_FIELDS]
    return encode_bytes(b"".join(parts))


def _geom_scene(data: bytes, n: int, sh_degree: int, path) -> GaussianScene:
    k = {0: 0, 1: 3, 2: 8, 3: 15}[sh_degree]
    widths = (3, 4, 3, 1, 3, 3 * k)
    expect = 4 * n * sum(widths)
    raw = decode_bytes(data, max_size=expect)
    if len(raw) != expect:
        raise FormatError(f"GEOM chunk holds {len(raw)} bytes, {n} Gaussians of SH degree {sh_degree} need {expect}", path)
    arr = np.frombuffer(raw, dtype="<f4")
    out, pos = {}, 0
    shapes = {"means": (n, 3), "quats": (n, 4), "log_scales": (n, 3), "opacity_logits": (n,), "sh_dc": (n, 3),
              "sh_rest": (n, k, 3)}
    for f, w in zip(_GEOM_FIELDS, widths):
        out[f] = arr[pos:pos + n * w].astype(np.float32).reshape(shapes[f])
        pos += n * w
    return make_scene(path, **out)


def file_sha256(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open_regular(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------- write / read
def encode_m3(memory: Memory, *, query_bits: int = 8, embed_scene: bool = True,
              scene_ref: str | None = None, scene_sha256: str | None = None) -> bytes:
    """Serialise a memory. Without ``embed_scene`` the file stores ``scene_ref`` (a path,
    relative to the .m3 file) and the scene file's SHA-256 instead of the geometry."""
    q = memory.queries
    n, qt = int(q.shape[0]), int(q.shape[1])
    memory.scene.check_finite()
    for m in memory.models:
        check_finite({f"model {m.name!r} bank": m.bank, f"model {m.name!r} projection": m.projection}, "row")
    codes, lo, step = quantize_queries(q, query_bits)
    header: dict = {
        "n": n, "query_total": qt, "query_bits": int(query_bits),
        "query_lo": [float(x) for x in lo], "query_step": [float(x) for x in step],
        "sh_degree": memory.scene.sh_degree,
        "models": [
            {"name": m.name, "offset": m.offset, "query_dim": m.query_dim, "dim": m.dim, "bank_size": m.bank_size,
             "temperature": m.temperature, "learnable": m.learnable, "image_size": list(m.image_size),
             "feature_size": list(m.feature_size)}
            for m in memory.models
        ],
        "meta": _jsonable(memory.meta),
    }
    chunks: list[tuple[str, bytes]] = []
    if embed_scene:
        header["scene"] = "embedded"
        chunks.append(("GEOM", _geom_bytes(memory.scene)))
    else:
        if not scene_ref:
            raise ValueError("a scene reference is needed when the scene is not embedded")
        header["scene"] = {"ref": scene_ref, "sha256": scene_sha256}
    chunks.append(("QRYS", encode_ints(codes.reshape(-1).astype(np.int64))))
    for m in memory.models:
        chunks.append(("BANK", m.bank.detach().cpu().numpy().astype("<f2").tobytes()))
        chunks.append(("PROJ", m.projection.detach().cpu().numpy().astype("<f4").tobytes()))
    return pack_container(MAGIC, VERSION, header, chunks)


def _jsonable(x):
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (bool, int, str)) or x is None:
        return x
    if isinstance(x, float):
        return x if np.isfinite(x) else None
    if isinstance(x, (np.floating, np.integer)):
        return _jsonable(x.item())
    return str(x)


def check_scene_ref(m3_path: str | os.PathLike, scene_path: str | os.PathLike, allow_outside_ref: bool = False) -> None:
    """UsageError unless a ``.m3`` at ``m3_path`` may reference ``scene_path``: the scene must
    be in the .m3's folder or below (readers follow nothing else), or ``allow_outside_ref``."""
    folder = Path(m3_path).resolve().parent
    if not allow_outside_ref and folder not in Path(scene_path).resolve().parents:
        raise UsageError(f"the scene {scene_path} is not in the .m3's folder or below, where readers look for it; "
                         "write the .m3 beside the scene, embed the scene, or allow an outside reference "
                         "(--allow-outside-ref; reading then needs it too)")


def write_m3(memory: Memory, path: str | os.PathLike, *, query_bits: int = 8, scene_path: str | os.PathLike | None = None,
             embed_scene: bool = True, allow_outside_ref: bool = False) -> int:
    """Write ``memory`` to ``path`` atomically; returns the byte count.

    ``embed_scene=False`` stores a reference to ``scene_path`` (relative to the .m3, and its
    SHA-256) instead of the geometry. Readers follow only references inside the .m3's folder,
    so a scene elsewhere is a UsageError unless ``allow_outside_ref`` (its readers need it too).
    """
    ref = sha = None
    if not embed_scene:
        if scene_path is None:
            raise ValueError("scene_path is needed when the scene is not embedded")
        check_scene_ref(path, scene_path, allow_outside_ref)
        ref = os.path.relpath(Path(scene_path).resolve(), Path(path).resolve().parent)
        sha = file_sha256(scene_path)
    data = encode_m3(memory, query_bits=query_bits, embed_scene=embed_scene, scene_ref=ref, scene_sha256=sha)
    atomic_write_bytes(path, data)
    return len(data)


def _floats(h: dict, key: str, count: int, path) -> np.ndarray:
    v = get_typed(h, key, list, path, ".m3 header")
    if len(v) != count or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) <= 1e30 for x in v):
        raise FormatError(f".m3 header field {key!r} must list {count} finite numbers", path)
    return np.asarray(v, dtype=np.float32)


def decode_m3(data: bytes, path=None, scene: GaussianScene | None = None, *, max_gaussians: int | None = None) -> Memory:
    """Parse .m3 bytes. A file that references its scene needs ``scene`` (or use :func:`read_m3`).

    The Gaussian count is capped by the file size (``splat.limits.gaussian_cap``; ``max_gaussians``
    replaces the cap) and so is the number of query codes (``value_cap``).
    """
    c = unpack_container(data, magic=MAGIC, path=path, max_version=VERSION, what=".m3 file")
    with naming(path), np.errstate(all="ignore"):
        return _decode(c, len(data), path, scene, max_gaussians)


def _decode(c, nbytes: int, path, scene: GaussianScene | None, max_gaussians: int | None) -> Memory:
    h = c.header
    w = ".m3 header"
    n = require_at_most(get_int(h, "n", 0, 1 << 40, path, w), gaussian_cap(nbytes, max_gaussians), "Gaussian count",
                        path, "max_gaussians")
    qt = get_int(h, "query_total", 1, 1 << 20, path, w)
    bits = get_int(h, "query_bits", 2, 16, path, w)
    code_cap = value_cap(nbytes) if max_gaussians is None else int(max_gaussians) * qt
    require_at_most(n * qt, code_cap, "query code count", path, "max_gaussians")
    lo, step = _floats(h, "query_lo", qt, path), _floats(h, "query_step", qt, path)
    models_h = get_typed(h, "models", list, path, w)
    codes = decode_ints(c.get("QRYS"), max_count=n * qt)
    if codes.size != n * qt or (codes.size and (codes.min() < 0 or codes.max() >= (1 << bits))):
        raise FormatError(f"QRYS chunk holds {codes.size} codes, expected {n} x {qt} of {bits} bits", path)
    queries = dequantize_queries(codes.reshape(qt, n), lo, step)
    if not bool(torch.isfinite(queries).all()):
        raise FormatError(".m3 query ranges decode to NaN/Inf", path)
    banks, projs = c.all("BANK"), c.all("PROJ")
    if len(banks) != len(models_h) or len(projs) != len(models_h) or not models_h:
        raise FormatError(f".m3 file lists {len(models_h)} models but holds {len(banks)} banks and {len(projs)} projections", path)
    models, used = [], 0
    for mh, b, p in zip(models_h, banks, projs):
        wm = ".m3 model"
        name = get_typed(mh, "name", str, path, wm)
        off, qd, dim, k = (get_int(mh, f, 0, 1 << 40, path, wm) for f in ("offset", "query_dim", "dim", "bank_size"))
        if off != used or qd < 1 or off + qd > qt or dim < 1 or k < 1:
            raise FormatError(f".m3 model {name[:40]!r} has an inconsistent query slice or sizes", path)
        used += qd
        if len(b) != 2 * k * dim or len(p) != 4 * qd * dim:
            raise FormatError(f".m3 model {name[:40]!r}: bank/projection chunk sizes do not match [{k},{dim}] / [{qd},{dim}]", path)
        bank = torch.from_numpy(np.frombuffer(b, dtype="<f2").astype(np.float32).reshape(k, dim))
        proj = torch.from_numpy(np.frombuffer(p, dtype="<f4").astype(np.float32).reshape(qd, dim))
        if not (torch.isfinite(bank).all() and torch.isfinite(proj).all()):
            raise FormatError(f".m3 model {name[:40]!r}: bank or projection holds NaN/Inf", path)
        # the keys q @ P (q: dequantised queries) must stay finite, and so must their norms in float32
        qmax = queries[:, off:off + qd].abs().amax(0).double() if n else torch.zeros(qd, dtype=torch.float64)
        if qd and float((qmax @ proj.abs().double()).max()) > MAX_KEY:
            raise FormatError(f".m3 model {name[:40]!r}: projection values too large (the features would "
                              "overflow to NaN/Inf)", path)
        temp = get_float(mh, "temperature", 1e-9, 1e9, path, wm, default=0.05)
        sizes = [mh.get(key, [0, 0]) for key in ("image_size", "feature_size")]
        if not all(isinstance(v, list) and len(v) == 2 and all(isinstance(x, int) and 0 <= x <= 1 << 20 for x in v)
                   for v in sizes):
            raise FormatError(f".m3 model {name[:40]!r}: image_size/feature_size must be two integers", path)
        models.append(ModelMemory(name, off, qd, bank, proj, temp, bool(mh.get("learnable", True)),
                                  tuple(sizes[0]), tuple(sizes[1])))
    if used != qt:
        raise FormatError(f".m3 models use {used} query channels, the file holds {qt}", path)
    ref = None
    if h.get("scene") == "embedded":
        deg = get_int(h, "sh_degree", 0, 3, path, w)
        geo = _geom_scene(c.get("GEOM"), n, deg, path)
    else:
        sref = h.get("scene")
        if not isinstance(sref, dict) or not isinstance(sref.get("ref"), str):
            raise FormatError(".m3 header 'scene' must be \"embedded\" or {\"ref\": path, \"sha256\": hex}", path)
        ref = sref["ref"]
        if scene is None:
            raise FormatError(f".m3 file references its scene ({ref}); load it with read_m3 or pass the scene", path)
        geo = scene
    if len(geo) != n:
        raise FormatError(f"the scene has {len(geo)} Gaussians, the .m3 file has queries for {n}", path)
    geo = geo.replace(extras={k: v for k, v in geo.extras.items() if k != QUERY_EXTRA})
    meta = h.get("meta")
    return Memory(geo.with_extras(**{QUERY_EXTRA: queries}), models, ref, dict(meta) if isinstance(meta, dict) else {})


_SHA256_HEX = frozenset("0123456789abcdef")


def scene_reference(header: dict, m3_path: str | os.PathLike, *, allow_outside_ref: bool = False) -> tuple[Path, str] | None:
    """(scene path, SHA-256 hex) of a ``.m3`` header's scene reference; None for an embedded scene.

    The reference must be a relative path resolving (symlinks followed) inside the ``.m3``'s
    folder or below, and carry the 64-hex-digit SHA-256 of the scene file; ``allow_outside_ref``
    lets it be absolute or lead elsewhere (the hash is still required). FormatError names the .m3.
    """
    p = Path(m3_path)
    sref = header.get("scene")
    if sref == "embedded":
        return None
    if not isinstance(sref, dict) or not isinstance(sref.get("ref"), str):
        raise FormatError(".m3 header 'scene' must be \"embedded\" or {\"ref\": path, \"sha256\": hex}", p)
    ref, sha = sref["ref"], sref.get("sha256")
    if not isinstance(sha, str) or len(sha) != 64 or not set(sha.lower()) <= _SHA256_HEX:
        raise FormatError(f".m3 scene reference {ref[:80]!r} has no valid SHA-256 (a 64-digit hex hash is required)", p)
    if not allow_outside_ref:
        sp = resolve_inside(p.parent, ref, owner=p)
    elif not ref or "\x00" in ref:
        raise FormatError(f".m3 scene reference {ref[:80]!r} is not a file name", p)
    else:
        sp = (p.parent / ref).resolve()
    return sp, sha.lower()


def read_m3(path: str | os.PathLike, scene: GaussianScene | None = None, *, max_gaussians: int | None = None,
            allow_outside_ref: bool = False) -> Memory:
    """Read a ``.m3`` file. A referenced scene is loaded from its path (relative to the .m3,
    inside its folder unless ``allow_outside_ref``) after its SHA-256 has been checked against
    the stored one, unless ``scene`` is given."""
    p = Path(path)
    data = read_bytes(p)
    if scene is None:
        c = unpack_container(data, magic=MAGIC, path=p, max_version=VERSION, what=".m3 file")
        found = scene_reference(c.header, p, allow_outside_ref=allow_outside_ref)
        if found is not None:
            sp, sha = found
            # hashed through the same safe open: a regular file, never a FIFO or device
            with open_regular(sp) as f:
                h = hashlib.sha256()
                for block in iter(lambda: f.read(1 << 20), b""):
                    h.update(block)
            if h.hexdigest() != sha:
                raise FormatError(f"referenced scene {sref_name(c.header)!r} does not match its SHA-256 "
                                  "(changed or replaced; refused)", p)
            try:
                from splat.io import read_scene
            except ImportError:
                raise FormatError("the referenced scene needs splat.io.read_scene, which is not installed", p) from None
            scene = read_scene(sp)
    return decode_m3(data, p, scene, max_gaussians=max_gaussians)


def sref_name(header: dict) -> str:
    sref = header.get("scene")
    return str(sref.get("ref", ""))[:80] if isinstance(sref, dict) else ""


# ---------------------------------------------------------------------- cameras in the header
def cameras_to_meta(cameras) -> list[dict]:
    """Cameras as JSON objects for ``meta["cameras"]`` (world_to_camera row-major, 16 numbers)."""
    return [{"name": c.name, "width": c.width, "height": c.height, "fx": c.fx, "fy": c.fy, "cx": c.cx, "cy": c.cy,
             "world_to_camera": [float(v) for v in c.world_to_camera.reshape(-1)]} for c in cameras]


def cameras_from_meta(meta: dict, path: str | os.PathLike | None = None, *, max_pixels: int | None = None) -> list:
    """The cameras stored by :func:`cameras_to_meta` (empty list when there are none); a camera
    over ``max_pixels`` (default ``splat.limits.MAX_PIXELS``) is a FormatError."""
    from splat.camera import Camera

    cams = meta.get("cameras") or []
    if not isinstance(cams, list):
        raise FormatError(".m3 meta 'cameras' must be a list", path)
    out = []
    for i, d in enumerate(cams):
        what = f".m3 meta camera {i}"
        w, h = get_int(d, "width", 1, 1 << 20, path, what), get_int(d, "height", 1, 1 << 20, path, what)
        check_pixels(w, h, max_pixels, path, what)
        f = [get_float(d, key, -1e9, 1e9, path, what) for key in ("fx", "fy", "cx", "cy")]
        m = get_typed(d, "world_to_camera", list, path, what)
        if len(m) != 16 or not all(isinstance(x, (int, float)) and not isinstance(x, bool) and abs(x) <= 1e30 for x in m):
            raise FormatError(f"{what}: world_to_camera must be 16 finite numbers", path)
        try:
            out.append(Camera(*f, w, h, torch.tensor(m, dtype=torch.float64).reshape(4, 4), str(d.get("name", ""))))
        except (TypeError, ValueError, RuntimeError) as e:
            raise FormatError(f"{what} is malformed ({e})", path) from None
    return out


# ---------------------------------------------------------------------- PLY export
def export_ply(memory: Memory, path: str | os.PathLike) -> None:
    """Write an INRIA PLY whose vertices also carry the queries as ``f_emb_0..f_emb_{Q-1}``
    (float32, every model's slice in order), as M3's checkpoints do."""
    from plyfile import PlyData, PlyElement

    s = memory.scene.detach().to("cpu", torch.float32)
    n, k = len(s), s.sh_rest.shape[1]
    cols: list[tuple[str, np.ndarray]] = [("x", s.means[:, 0]), ("y", s.means[:, 1]), ("z", s.means[:, 2])]
    cols += [(f"n{a}", torch.zeros(n)) for a in "xyz"]
    cols += [(f"f_dc_{i}", s.sh_dc[:, i]) for i in range(3)]
    rest = s.sh_rest.permute(0, 2, 1).reshape(n, -1)  # channel-major, as INRIA stores it
    cols += [(f"f_rest_{i}", rest[:, i]) for i in range(3 * k)]
    cols += [("opacity", s.opacity_logits)]
    cols += [(f"scale_{i}", s.log_scales[:, i]) for i in range(3)]
    cols += [(f"rot_{i}", s.quats[:, i]) for i in range(4)]
    q = memory.queries.detach().cpu().float()
    cols += [(f"f_emb_{i}", q[:, i]) for i in range(q.shape[1])]
    arr = np.empty(n, dtype=[(name, "<f4") for name, _ in cols])
    for name, v in cols:
        arr[name] = v.numpy() if isinstance(v, torch.Tensor) else v
    with atomic_path(path) as tmp:
        PlyData([PlyElement.describe(arr, "vertex")], byte_order="<").write(str(tmp))


def read_ply_queries(path: str | os.PathLike) -> torch.Tensor:
    """The ``f_emb_*`` properties of a PLY as queries [N,Q] (float32)."""
    from plyfile import PlyData

    v = PlyData.read(str(path))["vertex"]
    names = sorted((p.name for p in v.properties if p.name.startswith("f_emb_")), key=lambda s: int(s[6:]))
    if not names:
        raise FormatError("PLY has no f_emb_* properties", path)
    return torch.from_numpy(np.stack([np.asarray(v[nm], dtype=np.float32) for nm in names], axis=1))


__all__ = ["MAGIC", "VERSION", "cameras_from_meta", "check_scene_ref", "scene_reference", "cameras_to_meta", "decode_m3", "encode_m3", "export_ply", "read_m3", "read_ply_queries", "write_m3",
           "quantize_queries", "dequantize_queries"]
