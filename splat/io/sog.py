"""PlayCanvas SOG v2 (and v1, read only): lossless WebP textures plus ``meta.json``, zipped (``.sog``) or loose.

Each Gaussian owns one texel (row-major, same index in every texture; textures are
``W x H`` with ``W = 4*ceil(sqrt(N)/4)``, ``H = 4*ceil(N/W/4)``):

* ``means_l.webp`` / ``means_u.webp``: low and high bytes of a 16-bit value per axis
  (RGB) interpolating ``meta.means.mins..maxs`` in log space ``l = sign(x)*ln(1+|x|)``.
* ``quats.webp``: RGB the three smaller components of the unit wxyz quaternion (sign
  fixed so the largest is positive), each ``255*(sqrt2*q/2 + 0.5)``; A = 252 + index of
  the largest component.
* ``scales.webp``: RGB indices into ``meta.scales.codebook`` (log-scales).
* ``sh0.webp``: RGB indices into ``meta.sh0.codebook`` (SH DC), A = 255*opacity.
* optional ``shN_centroids.webp`` / ``shN_labels.webp``: a palette of ``meta.shN.count``
  SH vectors (row-major, 64 per texture row, one texel per coefficient, RGB indices into
  ``meta.shN.codebook``) and a 16-bit palette index per Gaussian (R low, G high byte).

SOG v1 (``meta.json`` without ``version``, what splat-transform wrote before v2) has
the same textures, but ``count`` is ``means.shape[0]`` and there are no codebooks:
``scales`` and ``sh0`` hold ``mins``/``maxs`` per channel and each byte b decodes as
``mins + (maxs - mins) * b / 255``; ``sh0``'s fourth channel (alpha) is the opacity
*logit* on the same scale; ``shN`` has scalar ``mins``/``maxs`` shared by every SH byte,
no ``bands`` (the centroid texture is 64*K texels wide) and no ``count`` (the palette is
every slot of that texture).

The writer reorders Gaussians along a Morton curve (as splat-transform does; pass
``sort=False`` to keep the order), fits the codebooks with :mod:`splat.io._quantize`
and encodes WebP losslessly with Pillow (``exact`` so RGB under zero alpha survives).
Coordinates are the PLY frame, unchanged.
"""
from __future__ import annotations

import io
import json
import math
import os
import zipfile
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from ..atomic import atomic_write_bytes, write_folder
from ..bounded import read_regular, stat_regular, zip_read_bounded
from ..errors import FormatError, UsageError
from ..header import parse_json
from ..morton import morton_encode
from ..scene import GaussianScene, sh_rest_count
from ._common import (
    expansion_limit,
    logit,
    make_scene,
    normalize_quats,
    quiet_numpy,
    read_bytes,
    scene_arrays,
    sigmoid,
    u8,
    warn,
)
from ._quantize import codebook_1d, kmeans
from .sizes import referenced_files

NAME = "sog"
EXTENSIONS = (".sog", "meta.json")
MAX_META_BYTES = 64 << 20
MAX_PALETTE = 65536
_SQRT2 = math.sqrt(2.0)
_OTHERS = np.array([[1, 2, 3], [0, 2, 3], [0, 1, 3], [0, 1, 2]])
_FILES = {"means": 2, "scales": 1, "quats": 1, "sh0": 1}


def sniff(head: bytes) -> bool:
    if head[:4] == b"PK\x03\x04":
        return True
    text = head.lstrip()
    return text[:1] == b"{" and b'"means"' in head and b'"quats"' in head


def sniff_dir(path: Path) -> bool:
    """A loose SOG folder (holding ``meta.json``)."""
    return (path / "meta.json").is_file()


def texture_cap(n: int) -> int:
    """The most bytes one WebP texture of a scene of ``n`` Gaussians may hold: 8 bytes a texel
    (lossless WebP never needs more than its 4 raw bytes plus entropy-code overhead) of the
    larger of the per-Gaussian textures and the biggest SH palette, plus 1 MiB."""
    w, h = texture_size(n)
    return 8 * max(w * h, 64 * 15 * (MAX_PALETTE // 64)) + (1 << 20)


def texture_size(n: int) -> tuple[int, int]:
    """(width, height) of the textures for n Gaussians, as splat-transform lays them out."""
    w = max(4, math.ceil(math.sqrt(n) / 4) * 4)
    h = max(4, math.ceil(n / w / 4) * 4)
    return w, h


# ---------------------------------------------------------------------- reading
class _Source:
    """Named files of one SOG scene, from a zip archive or a folder holding meta.json."""

    def __init__(self, path: Path, data: bytes | None):
        self.path = path
        self.zip = None
        if data is not None and data[:4] == b"PK\x03\x04":
            try:
                self.zip = zipfile.ZipFile(io.BytesIO(data))
                self.infos = {i.filename: i for i in self.zip.infolist()}
            except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError,
                    NotImplementedError, UnicodeDecodeError) as e:
                raise FormatError(f"corrupt SOG zip archive ({e})", path) from None
            self.limit = expansion_limit(len(data))
        else:
            self.dir = path.parent
            self.limit = None  # set after meta.json is read (sum of the referenced files)
        self.file_cap: int | None = None  # the most bytes one texture may hold, set from the Gaussian count

    def read(self, name: str, cap: int | None = None) -> bytes:
        if (not isinstance(name, str) or not name or "/" in name or "\\" in name or "\x00" in name
                or name in (".", "..")):
            raise FormatError(f"meta.json names an invalid file {name[:80]!r}", self.path)
        if self.zip is None:
            # a name in meta.json: inside the folder (symlinks resolved), a regular file, bounded
            limit = cap if cap is not None else self.file_cap
            return read_regular(name, limit, root=self.dir, owner=self.path, what=name)
        info = self.infos.get(name)
        if info is None:
            raise FormatError(f"SOG archive has no {name!r}", self.path)
        if cap is None:
            cap = self.limit if self.file_cap is None else min(self.limit, self.file_cap)
        if info.file_size > cap:
            raise FormatError(f"{name!r} claims {info.file_size:,} bytes uncompressed, more than the limit of {cap:,}", self.path)
        # streamed with a hard cap: an entry that understates its size cannot expand past it
        return zip_read_bounded(self.zip, info, cap, self.path)


def read(path: str | os.PathLike, *, check_finite: bool = True) -> GaussianScene:
    """Read a ``.sog`` archive, a SOG ``meta.json`` (textures beside it) or a folder holding one."""
    path = Path(path)
    if path.is_dir():  # the folder's meta.json: a name the folder holds, so it must stay inside it
        data = read_regular("meta.json", MAX_META_BYTES, root=path, what="meta.json")
        path = path / "meta.json"
    else:
        data = read_bytes(path)  # the file the user named: a regular file, read to its size
    if data[:4] == b"PK\x03\x04":
        return decode(data, path, check_finite=check_finite)
    src = _Source(path, None)
    meta = _parse_meta(data, path)
    total = len(data)
    for f in dict.fromkeys(x for x in _all_files(meta, path) if isinstance(x, str)):
        if not f or "/" in f or "\\" in f or "\x00" in f:
            continue  # refused with a clear message when read
        # every file meta.json names is checked before any is read: inside the folder, regular
        total += stat_regular(f, root=src.dir, owner=path).st_size
    src.limit = expansion_limit(total)
    return _decode(meta, src, path, check_finite)


def decode(data: bytes, path=None, *, check_finite: bool = True) -> GaussianScene:
    """Decode the bytes of a ``.sog`` zip archive."""
    path = Path(path) if path is not None else Path("<bytes>.sog")
    if data[:4] != b"PK\x03\x04":
        raise FormatError("not a SOG archive (no zip signature)", path)
    src = _Source(path, data)
    return _decode(_parse_meta(src.read("meta.json", cap=MAX_META_BYTES), path), src, path, check_finite)


def _parse_meta(meta_bytes: bytes, path):
    if len(meta_bytes) > MAX_META_BYTES:
        raise FormatError(f"meta.json is larger than {MAX_META_BYTES >> 20} MiB", path)
    if not meta_bytes.strip():
        raise FormatError("empty meta.json (or empty file): not a SOG scene", path)
    return parse_json(meta_bytes, path, "meta.json")


def _all_files(meta, path) -> list:
    if not isinstance(meta, dict):
        raise FormatError("meta.json must hold a JSON object", path)
    out = []
    for key in ("means", "scales", "quats", "sh0", "shN"):
        sec = meta.get(key)
        if isinstance(sec, dict) and isinstance(sec.get("files"), list):
            out += sec["files"]
    return out


def _num_list(obj, key: str, path, length: int | None = None, max_len: int | None = None) -> np.ndarray:
    v = obj.get(key) if isinstance(obj, dict) else None
    if not isinstance(v, list) or not v or not all(isinstance(t, (int, float)) and not isinstance(t, bool) for t in v):
        raise FormatError(f"meta.json: {key!r} must be a non-empty list of numbers", path)
    if length is not None and len(v) != length:
        raise FormatError(f"meta.json: {key!r} must have {length} entries, has {len(v)}", path)
    if max_len is not None and len(v) > max_len:
        raise FormatError(f"meta.json: {key!r} has {len(v)} entries, at most {max_len} allowed", path)
    a = np.asarray(v, dtype=np.float64)
    if not np.isfinite(a).all():
        raise FormatError(f"meta.json: {key!r} holds a non-finite number", path)
    return a


def _section(meta: dict, key: str, path, files: int) -> dict:
    sec = meta.get(key)
    if not isinstance(sec, dict):
        raise FormatError(f"meta.json: missing section {key!r}", path)
    f = sec.get("files")
    if not isinstance(f, list) or len(f) != files or not all(isinstance(x, str) for x in f):
        raise FormatError(f"meta.json: {key}.files must list {files} file name(s)", path)
    return sec


def _texture(src: _Source, name: str, count: int, path, width: int | None = None) -> np.ndarray:
    """Decode one WebP texture to uint8 [H*W, 4] after checking its size against the limits."""
    data = src.read(name)
    try:
        im = Image.open(io.BytesIO(data), formats=["WEBP"])
        w, h = im.size
        if width is not None and w != width:
            raise FormatError(f"{name}: texture is {w} texels wide, expected {width}", path)
        if w * h < count:
            raise FormatError(f"{name}: {w}x{h} texture has fewer texels than the {count:,} Gaussians", path)
        if w * h * 4 > src.limit:
            raise FormatError(f"{name}: {w}x{h} texture is implausibly large for this file", path)
        im = im.convert("RGBA")
        arr = np.asarray(im, dtype=np.uint8)
    except FormatError:
        raise
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise FormatError(f"{name}: not a decodable WebP image ({e})", path) from None
    if arr.shape != (h, w, 4):
        raise FormatError(f"{name}: decoded to an unexpected shape {arr.shape}", path)
    return arr.reshape(-1, 4)


def _lookup(codebook: np.ndarray, idx: np.ndarray, what: str, path) -> np.ndarray:
    if idx.size and int(idx.max()) >= codebook.size:
        raise FormatError(f"{what}: index {int(idx.max())} beyond the {codebook.size}-entry codebook", path)
    return codebook[idx]


@quiet_numpy
def _decode(meta, src: _Source, path, check_finite: bool) -> GaussianScene:
    if not isinstance(meta, dict):
        raise FormatError("meta.json must hold a JSON object", path)
    version = meta.get("version")
    if version is None:
        return _decode_v1(meta, src, path, check_finite)
    if version != 2 or isinstance(version, bool):
        raise FormatError(f"unsupported SOG version {version!r} (expected 2)", path)
    n = meta.get("count")
    if not isinstance(n, int) or isinstance(n, bool) or n < 0:
        raise FormatError(f"meta.json: count must be a non-negative integer, got {n!r}", path)
    if 4 * n > src.limit:
        raise FormatError(f"meta.json declares {n:,} Gaussians, impossible for a file of this size", path)
    src.file_cap = texture_cap(n)
    secs = {k: _section(meta, k, path, c) for k, c in _FILES.items()}
    scale_cb = _num_list(secs["scales"], "codebook", path, max_len=256)
    color_cb = _num_list(secs["sh0"], "codebook", path, max_len=256)

    means, quats = _means_quats(secs, src, n, path)

    st = _texture(src, secs["scales"]["files"][0], n, path)[:n]
    log_scales = _lookup(scale_cb, st[:, :3], "scales", path)
    c0 = _texture(src, secs["sh0"]["files"][0], n, path)[:n]
    sh_dc = _lookup(color_cb, c0[:, :3], "sh0", path)
    opacity = logit(c0[:, 3].astype(np.float64) / 255.0)

    rest = None
    shn = meta.get("shN")
    if shn is not None:
        rest = _decode_shn(shn, src, n, path)
    return make_scene(path, means=means, quats=quats, log_scales=log_scales, opacity_logits=opacity,
                      sh_dc=sh_dc, sh_rest=rest, check_finite=check_finite)


def _means_quats(secs: dict, src: _Source, n: int, path) -> tuple[np.ndarray, np.ndarray]:
    """Centres [n,3] and unit wxyz quaternions [n,4] (identical in SOG v1 and v2)."""
    mins = _num_list(secs["means"], "mins", path, 3)
    maxs = _num_list(secs["means"], "maxs", path, 3)
    lo = _texture(src, secs["means"]["files"][0], n, path)[:n]
    hi = _texture(src, secs["means"]["files"][1], n, path)[:n]
    q16 = lo[:, :3].astype(np.float64) + 256.0 * hi[:, :3]
    span = np.where(maxs - mins == 0, 1.0, maxs - mins)
    lg = mins + span * (q16 / 65535.0)
    means = np.sign(lg) * np.expm1(np.abs(lg))

    qt = _texture(src, secs["quats"]["files"][0], n, path)[:n]
    tag = qt[:, 3].astype(np.int64)
    if n and (tag.min() < 252):
        raise FormatError(f"quats.webp: texel {int(np.argmax(tag < 252))} has alpha {int(tag.min())}, expected 252-255", path)
    largest = tag - 252
    abc = (qt[:, :3].astype(np.float64) / 255.0 * 2.0 - 1.0) / _SQRT2
    quats = np.zeros((n, 4))
    np.put_along_axis(quats, _OTHERS[largest], abc, axis=1)
    np.put_along_axis(quats, largest[:, None], np.sqrt(np.maximum(0.0, 1.0 - (abc ** 2).sum(1)))[:, None], axis=1)
    return means, quats


def _lerp(sec: dict, path, channels: int, data: np.ndarray) -> np.ndarray:
    """v1 dequantisation: ``mins + (maxs - mins) * byte / 255`` per channel."""
    lo = _num_list(sec, "mins", path, channels)
    hi = _num_list(sec, "maxs", path, channels)
    return lo + (hi - lo) * (data.astype(np.float64) / 255.0)


def _decode_v1(meta: dict, src: _Source, path, check_finite: bool) -> GaussianScene:
    """SOG v1: per-channel min/max quantisation instead of codebooks (see module docstring)."""
    secs = {k: _section(meta, k, path, c) for k, c in _FILES.items()}
    shape = secs["means"].get("shape")
    if (not isinstance(shape, list) or not shape or not isinstance(shape[0], int) or isinstance(shape[0], bool)
            or shape[0] < 0):
        raise FormatError(f"meta.json (SOG v1): means.shape must start with the Gaussian count, got {shape!r}", path)
    n = shape[0]
    if 4 * n > src.limit:
        raise FormatError(f"meta.json declares {n:,} Gaussians, impossible for a file of this size", path)
    src.file_cap = texture_cap(n)
    means, quats = _means_quats(secs, src, n, path)
    log_scales = _lerp(secs["scales"], path, 3, _texture(src, secs["scales"]["files"][0], n, path)[:n, :3])
    sh0 = _lerp(secs["sh0"], path, 4, _texture(src, secs["sh0"]["files"][0], n, path)[:n])
    rest = None
    shn = meta.get("shN")
    if shn is not None:
        if not isinstance(shn, dict):
            raise FormatError("meta.json: shN must be an object", path)
        files = shn.get("files")
        if not isinstance(files, list) or len(files) != 2 or not all(isinstance(f, str) for f in files):
            raise FormatError("meta.json: shN.files must list 2 file names", path)
        lo, hi = (shn.get(k) for k in ("mins", "maxs"))
        if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in (lo, hi)):
            raise FormatError("meta.json (SOG v1): shN.mins and shN.maxs must be finite numbers", path)
        cen = _texture(src, files[0], 0, path)
        width = _texture_width(src, files[0], path)
        k = {192: 3, 512: 8, 960: 15}.get(width)
        if k is None:
            raise FormatError(f"{files[0]}: centroid texture is {width} texels wide, expected 192, 512 or 960", path)
        lab = _texture(src, files[1], n, path)[:n]
        labels = lab[:, 0].astype(np.int64) | (lab[:, 1].astype(np.int64) << 8)
        palette = cen.reshape(-1, 64, k, 4)[..., :3].reshape(-1, k, 3)
        if n and labels.max() >= len(palette):
            raise FormatError(f"shN_labels: palette index {int(labels.max())} beyond the {len(palette)} palette slots", path)
        rest = lo + (hi - lo) * (palette[labels].astype(np.float64) / 255.0)
    return make_scene(path, means=means, quats=quats, log_scales=log_scales, opacity_logits=sh0[:, 3],
                      sh_dc=sh0[:, :3], sh_rest=rest, check_finite=check_finite)


def _texture_width(src: _Source, name: str, path) -> int:
    try:
        return Image.open(io.BytesIO(src.read(name)), formats=["WEBP"]).size[0]
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise FormatError(f"{name}: not a decodable WebP image ({e})", path) from None


def _decode_shn(shn, src: _Source, n: int, path) -> np.ndarray:
    if not isinstance(shn, dict):
        raise FormatError("meta.json: shN must be an object", path)
    bands, count = shn.get("bands"), shn.get("count")
    if bands not in (1, 2, 3) or isinstance(bands, bool):
        raise FormatError(f"meta.json: shN.bands must be 1, 2 or 3, got {bands!r}", path)
    if not isinstance(count, int) or isinstance(count, bool) or not 1 <= count <= MAX_PALETTE:
        raise FormatError(f"meta.json: shN.count must be 1..{MAX_PALETTE}, got {count!r}", path)
    files = shn.get("files")
    if not isinstance(files, list) or len(files) != 2 or not all(isinstance(f, str) for f in files):
        raise FormatError("meta.json: shN.files must list 2 file names", path)
    cb = _num_list(shn, "codebook", path, max_len=256)
    k = sh_rest_count(bands)
    cen = _texture(src, files[0], 0, path, width=64 * k)
    lab = _texture(src, files[1], n, path)[:n]
    labels = lab[:, 0].astype(np.int64) | (lab[:, 1].astype(np.int64) << 8)
    # centroid i, coefficient j sits at row i // 64, column (i % 64) * k + j
    palette = cen.reshape(-1, 64, k, 4)[..., :3].reshape(-1, k, 3)[:count]
    if n and labels.max() >= len(palette):
        raise FormatError(f"shN_labels: palette index {int(labels.max())} beyond the palette of "
                          f"{len(palette)} (count {count}, {len(cen) // (64 * k)} texture rows)", path)
    values = _lookup(cb, palette, "shN", path)  # [count, k, 3]
    return values[labels]


# ---------------------------------------------------------------------- writing
def morton_order(means: np.ndarray) -> np.ndarray:
    """Permutation sorting points along a 3-D Morton (Z-order) curve, 10 bits per axis."""
    if len(means) == 0:
        return np.zeros(0, np.int64)
    lo, hi = means.min(0), means.max(0)
    q = np.clip(((means - lo) / np.where(hi > lo, hi - lo, 1.0) * 1023.0).astype(np.int64), 0, 1023)
    return np.argsort(morton_encode(q), kind="stable")


def _webp(rgba: np.ndarray, w: int, h: int, effort: int) -> bytes:
    img = np.zeros((w * h, 4), np.uint8)
    img[: len(rgba)] = rgba
    buf = io.BytesIO()
    Image.fromarray(img.reshape(h, w, 4), "RGBA").save(buf, format="WEBP", lossless=True, quality=effort,
                                                       method=4, exact=True)
    return buf.getvalue()


def encode_files(scene: GaussianScene, *, sort: bool = True, sh_iterations: int = 10,
                 palette_size: int | None = None, effort: int = 80, seed: int = 0) -> dict[str, bytes]:
    """The SOG files of a scene: {"meta.json": ..., "means_l.webp": ..., ...}.

    ``palette_size`` (SH vectors in the shN palette, <= 65,536) defaults to splat-transform's
    choice, ``min(64, 2^floor(log2(N/1024))) * 1024``.
    """
    a = scene_arrays(scene)
    n = len(scene)
    if scene.extras:
        warn(f"SOG stores no extra channels: {', '.join(sorted(scene.extras))} dropped")
    order = morton_order(a["means"].astype(np.float64)) if sort else np.arange(n)
    a = {k: v[order] for k, v in a.items()}
    w, h = texture_size(n)
    if w > 16383 or h > 16383:
        raise UsageError(f"SOG textures are limited to 16383x16383 texels; {n:,} Gaussians do not fit")
    files: dict[str, bytes] = {}
    ones = np.full((n, 1), 255, np.uint8)

    lg = np.sign(a["means"].astype(np.float64)) * np.log1p(np.abs(a["means"].astype(np.float64)))
    mins = lg.min(0) if n else np.zeros(3)
    maxs = lg.max(0) if n else np.zeros(3)
    span = np.where(maxs > mins, maxs - mins, 1.0)
    q16 = np.clip(np.rint((lg - mins) / span * 65535.0), 0, 65535).astype(np.int64)
    files["means_l.webp"] = _webp(np.concatenate([(q16 & 255).astype(np.uint8), ones], 1), w, h, effort)
    files["means_u.webp"] = _webp(np.concatenate([(q16 >> 8).astype(np.uint8), ones], 1), w, h, effort)

    q = normalize_quats(a["quats"])
    largest = np.argmax(np.abs(q), axis=1)
    sign = np.where(np.take_along_axis(q, largest[:, None], 1) < 0, -1.0, 1.0)
    abc = np.take_along_axis(q * sign, _OTHERS[largest], axis=1)
    files["quats.webp"] = _webp(np.concatenate([u8(255.0 * (abc * _SQRT2 * 0.5 + 0.5)),
                                                (252 + largest).astype(np.uint8)[:, None]], 1), w, h, effort)

    scale_cb, scale_lab = codebook_1d(a["log_scales"])
    files["scales.webp"] = _webp(np.concatenate([scale_lab.reshape(n, 3), ones], 1), w, h, effort)
    color_cb, color_lab = codebook_1d(a["sh_dc"])
    alpha = u8(sigmoid(a["opacity_logits"]) * 255.0)[:, None]
    files["sh0.webp"] = _webp(np.concatenate([color_lab.reshape(n, 3), alpha], 1), w, h, effort)

    meta = {
        "version": 2,
        "asset": {"generator": "splatkit"},
        "count": n,
        "means": {"mins": mins.tolist(), "maxs": maxs.tolist(), "files": ["means_l.webp", "means_u.webp"]},
        "scales": {"codebook": scale_cb.astype(float).tolist(), "files": ["scales.webp"]},
        "quats": {"files": ["quats.webp"]},
        "sh0": {"codebook": color_cb.astype(float).tolist(), "files": ["sh0.webp"]},
    }
    k = a["sh_rest"].shape[1]
    if k and n:
        if palette_size is None:
            palette_size = int(min(64.0, 2.0 ** math.floor(math.log2(n / 1024))) * 1024) if n >= 1 else 1
        palette_size = max(1, min(int(palette_size), MAX_PALETTE))
        vecs = a["sh_rest"].transpose(0, 2, 1).reshape(n, 3 * k)  # channel-major, as PLY f_rest
        cent, labels = kmeans(vecs, palette_size, iters=sh_iterations, seed=seed)
        m = cent.shape[0]
        cb, cl = codebook_1d(cent)
        cl = cl.reshape(m, 3, k).transpose(0, 2, 1)  # [m, k, rgb]
        rows = math.ceil(m / 64)
        cen_img = np.zeros((rows * 64, k, 4), np.uint8)
        cen_img[:m, :, :3] = cl
        cen_img[:m, :, 3] = 255
        files["shN_centroids.webp"] = _webp(cen_img.reshape(-1, 4), 64 * k, rows, effort)
        lab = np.stack([labels & 255, labels >> 8, np.zeros(n, np.int64), np.full(n, 255)], 1).astype(np.uint8)
        files["shN_labels.webp"] = _webp(lab, w, h, effort)
        meta["shN"] = {"count": m, "bands": scene.sh_degree, "codebook": cb.astype(float).tolist(),
                       "files": ["shN_centroids.webp", "shN_labels.webp"]}
    files["meta.json"] = json.dumps(meta, separators=(",", ":")).encode("utf-8")
    return files


def encode(scene: GaussianScene, **options) -> bytes:
    """The scene as a ``.sog`` zip archive (entries stored: WebP is already compressed)."""
    files = encode_files(scene, **options)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        for name in ["meta.json"] + [f for f in files if f != "meta.json"]:
            info = zipfile.ZipInfo(name, date_time=(2020, 1, 1, 0, 0, 0))
            z.writestr(info, files[name])
    return buf.getvalue()


def write(scene: GaussianScene, path: str | os.PathLike, *, sort: bool = True, sh_iterations: int = 10,
          palette_size: int | None = None, effort: int = 80, seed: int = 0) -> None:
    """Write ``.sog`` (zip), or loose files beside ``path`` when it is named ``*.json`` (options: see encode_files)."""
    options = dict(sort=sort, sh_iterations=sh_iterations, palette_size=palette_size, effort=effort, seed=seed)
    path = Path(path)
    if path.suffix.lower() != ".json":
        atomic_write_bytes(path, encode(scene, **options))
        return
    files = encode_files(scene, **options)
    write_folder(path.parent, {path.name if n == "meta.json" else n: d for n, d in files.items()},
                 replaces=[f.name for f in referenced_files(path)[1:] if f.parent == path.parent])
