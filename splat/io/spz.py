"""Niantic SPZ (``.spz``): read versions 1-4, write version 3 (gzip, the default), 2 or 4 (zstd).

Version 3 is the default because every SPZ reader in use reads it (Spark 2.2, PlayCanvas,
Niantic's library); version 4 (zstd streams: ``version=4``, ``--set version=4`` on the
command line) is read by PlayCanvas and Niantic's library but not by Spark 2.2.

Packed attributes, one stream each, in this order: positions (3 x signed 24-bit
fixed point with ``fractional_bits``), alphas (u8 of sigmoid(opacity)), colours (u8
of ``dc * 0.15 * 255 + 127.5``), scales (u8 of ``(log_scale + 10) * 16``), rotations
(v3+: 32-bit smallest-three, 2-bit index of the largest xyzw component then three
10-bit sign+magnitude values scaled by 1/sqrt2; v2: xyz as u8 of ``q*127.5+127.5``
with w >= 0; v1 stores positions as float16), SH (u8 of ``x*128+128``, coefficient-
major with RGB inner, degree-1 values rounded to 5 bits and higher to 4 by default).

Framing: v1-3 gzip one stream holding a 16-byte header (magic ``NGSP``, version,
count, SH degree, fractional bits, flags, reserved) and the attributes back to back;
v4 has a plain 32-byte header (adds the stream count and the TOC offset), optional
extension records, a TOC of (compressed, uncompressed) u64 pairs and independent
zstd frames.

Coordinates: SPZ stores RUB (x right, y up, z back: OpenGL/three.js), as its README
specifies and as real files such as biker.spz are, while our scenes use the INRIA/PLY
frame RDF (y down, z forward). Reading and writing therefore negate y and z of the
positions, the matching quaternion components and the odd SH coefficients (a 180
degree turn about x, so nothing is mirrored), and ply -> spz -> ply is unchanged.
``coordinate_system="rdf"`` stores the scene's axes as they are, which is what
Niantic's ``ply_to_spz`` CLI and PlayCanvas splat-transform 3.x do; see
docs/formats/README.md.
"""
from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path

import numpy as np
import zstandard

from ..bounded import zstd_decompress_bounded
from ..errors import FormatError, UsageError
from ..scene import GaussianScene
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

NAME = "spz"
EXTENSIONS = (".spz",)
MAGIC = 0x5053474E  # "NGSP"
COLOR_SCALE = 0.15
SQRT1_2 = 0.7071067811865476
_SH_DIM = {0: 0, 1: 3, 2: 8, 3: 15, 4: 24}
_LEGACY = struct.Struct("<IIIBBBB")
_V4 = struct.Struct("<IIIBBBBI12s")
FLAG_ANTIALIASED = 0x1
FLAG_EXTENSIONS = 0x2
# Flip signs for RDF <-> RUB (y and z negated): quaternion xyz and the 15 SH coefficients.
_FLIP_P = np.array([1.0, -1.0, -1.0])
_FLIP_Q = np.array([1.0, 1.0, -1.0, -1.0])  # wxyz: x keeps its sign, y and z flip
_FLIP_SH = np.array([-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1], dtype=np.float64)


def sniff(head: bytes) -> bool:
    if head[:4] == b"NGSP":
        return True
    if head[:2] == b"\x1f\x8b":
        try:
            inner = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4)
        except zlib.error:
            return False
        return inner[:4] == b"NGSP"
    return False


def _sizes(n: int, degree: int, version: int) -> list[int]:
    """Byte sizes of the six attribute streams, in file order."""
    return [n * (6 if version == 1 else 9), n, 3 * n, 3 * n, n * (3 if version == 2 or version == 1 else 4),
            3 * n * _SH_DIM[degree]]


# ---------------------------------------------------------------------- reading
def read(path: str | os.PathLike, *, coordinate_system: str = "rub", check_finite: bool = True) -> GaussianScene:
    return decode(read_bytes(path), path, coordinate_system=coordinate_system, check_finite=check_finite)


@quiet_numpy
def decode(data: bytes, path=None, *, coordinate_system: str = "rub", check_finite: bool = True) -> GaussianScene:
    _check_coords(coordinate_system)
    if data[:4] == b"NGSP":
        streams, n, degree, fbits, version = _unframe_v4(data, path)
    elif data[:2] == b"\x1f\x8b":
        streams, n, degree, fbits, version = _unframe_gzip(data, path)
    else:
        raise FormatError("not an SPZ file (neither 'NGSP' magic nor a gzip stream)", path)
    return _unpack(streams, n, degree, fbits, version, path, coordinate_system, check_finite)


def _check_header(version: int, n: int, degree: int, fbits: int, path, limit: int, v4: bool) -> None:
    if v4 and version != 4:
        raise FormatError(f"unsupported SPZ version {version} in an NGSP (zstd) header (expected 4)", path)
    if not v4 and not 1 <= version <= 3:
        raise FormatError(f"unsupported SPZ version {version} in a gzip stream (expected 1-3)", path)
    if degree not in _SH_DIM:
        raise FormatError(f"unsupported SH degree {degree} (SPZ allows 0-4)", path)
    if fbits > 23:
        raise FormatError(f"{fbits} fractional bits do not fit a 24-bit position", path)
    per = sum(_sizes(1, degree, version))
    if n * per > limit:
        raise FormatError(f"declared {n:,} Gaussians need {n * per:,} bytes, more than this file can hold", path)


def _unframe_v4(data: bytes, path) -> tuple[list[bytes], int, int, int, int]:
    if len(data) < _V4.size:
        raise FormatError(f"truncated SPZ header ({len(data)} of {_V4.size} bytes)", path)
    magic, version, n, degree, fbits, flags, nstreams, toc, _ = _V4.unpack_from(data)
    _check_header(version, n, degree, fbits, path, expansion_limit(len(data)), v4=True)
    sizes = [s for s in _sizes(n, degree, version) if s > 0]
    if nstreams != len(sizes):
        raise FormatError(f"header declares {nstreams} streams, expected {len(sizes)} for {n:,} Gaussians of SH degree {degree}", path)
    if toc < _V4.size:
        raise FormatError(f"TOC offset {toc} points inside the 32-byte header", path)
    start = toc + 16 * nstreams
    if start > len(data):
        raise FormatError(f"truncated: TOC ends at byte {start:,}, file has {len(data):,}", path)
    entries = [struct.unpack_from("<QQ", data, toc + 16 * i) for i in range(nstreams)]
    total = start + sum(c for c, _ in entries)
    if total != len(data):
        what = "truncated" if total > len(data) else "trailing bytes"
        raise FormatError(f"{what}: the TOC accounts for {total:,} bytes, the file has {len(data):,}", path)
    streams, off, entry = [], start, iter(enumerate(entries))
    for want in _sizes(n, degree, version):
        if want == 0:  # empty attributes have no stream (SH of degree 0, or no Gaussians at all)
            streams.append(b"")
            continue
        i, (csize, usize) = next(entry)
        if usize != want:
            raise FormatError(f"stream {i}: TOC says {usize:,} bytes uncompressed, expected {want:,}", path)
        # streamed with a hard cap: the frame's own content-size field is not trusted
        streams.append(zstd_decompress_bounded(data[off: off + csize], want, path, f"stream {i}", exact=True))
        off += csize
    return streams, n, degree, fbits, version


def _unframe_gzip(data: bytes, path) -> tuple[list[bytes], int, int, int, int]:
    limit = expansion_limit(len(data))
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        head = d.decompress(data, _LEGACY.size)
        if len(head) < _LEGACY.size:
            raise FormatError("truncated SPZ stream (shorter than its 16-byte header)", path)
        magic, version, n, degree, fbits, flags, _ = _LEGACY.unpack(head)
        if magic != MAGIC:
            raise FormatError("gzip stream does not hold an SPZ file ('NGSP' magic missing)", path)
        _check_header(version, n, degree, fbits, path, limit, v4=False)
        sizes = _sizes(n, degree, version)
        want = sum(sizes)
        body = d.decompress(d.unconsumed_tail, want)
        while len(body) < want and d.unconsumed_tail and not d.eof:
            body += d.decompress(d.unconsumed_tail, want - len(body))
        if len(body) < want:
            raise FormatError(f"truncated: {n:,} Gaussians need {want:,} bytes, the stream holds {len(body):,}", path)
        # trailing extension records are allowed (and skipped) when the header says so
        tail_cap = (1 << 20) if flags & FLAG_EXTENSIONS else 0
        tail = b"" if d.eof else d.decompress(d.unconsumed_tail, tail_cap + 1)
        if len(tail) > tail_cap:
            raise FormatError("inconsistent: the stream holds more data than its header declares", path)
        if not d.eof:
            raise FormatError("truncated or corrupt gzip stream (no end marker)", path)
    except zlib.error as e:
        raise FormatError(f"corrupt gzip stream ({e})", path) from None
    streams, off = [], 0
    for s in sizes:
        streams.append(body[off: off + s])
        off += s
    return streams, n, degree, fbits, version


def _unpack(streams, n, degree, fbits, version, path, coords, check_finite) -> GaussianScene:
    pos_b, alpha_b, color_b, scale_b, rot_b, sh_b = streams
    if version == 1:
        means = np.frombuffer(pos_b, "<f2").reshape(n, 3).astype(np.float64)
    else:
        p = np.frombuffer(pos_b, np.uint8).reshape(n, 3, 3).astype(np.int32)
        fixed = p[..., 0] | (p[..., 1] << 8) | (p[..., 2] << 16)
        fixed = np.where(fixed & 0x800000, fixed - (1 << 24), fixed)
        means = fixed.astype(np.float64) / (1 << fbits)
    opacity = logit(np.frombuffer(alpha_b, np.uint8).astype(np.float64) / 255.0)
    dc = (np.frombuffer(color_b, np.uint8).reshape(n, 3).astype(np.float64) / 255.0 - 0.5) / COLOR_SCALE
    log_scales = np.frombuffer(scale_b, np.uint8).reshape(n, 3).astype(np.float64) / 16.0 - 10.0
    if version >= 3:
        quats = _smallest_three_decode(np.frombuffer(rot_b, "<u4"))
    else:
        xyz = np.frombuffer(rot_b, np.uint8).reshape(n, 3).astype(np.float64) / 127.5 - 1.0
        w = np.sqrt(np.maximum(0.0, 1.0 - (xyz ** 2).sum(1)))
        quats = np.concatenate([w[:, None], xyz], axis=1)
    dim = _SH_DIM[degree]
    sh = (np.frombuffer(sh_b, np.uint8).reshape(n, dim, 3).astype(np.float64) - 128.0) / 128.0
    extras = {}
    if degree == 4:
        extras["sh_band4"] = sh[:, 15:].astype(np.float32)
        sh = sh[:, :15]
        warn("SPZ file has SH degree 4; degree 3 kept, band 4 moved to extras['sh_band4']")
    if coords == "rub":
        means, quats, sh = _flip_yz(means, quats, sh)
    return make_scene(path, means=means, quats=quats, log_scales=log_scales, opacity_logits=opacity,
                      sh_dc=dc, sh_rest=sh, extras=extras, check_finite=check_finite)


def _smallest_three_decode(comp: np.ndarray) -> np.ndarray:
    """32-bit smallest-three words -> wxyz quaternions [N,4]."""
    comp = comp.astype(np.uint32)
    largest = (comp >> np.uint32(30)).astype(np.int64)
    mask = np.uint32(0x1FF)
    vals = []
    for shift in (0, 10, 20):  # the highest-indexed remaining component sits in the lowest bits
        word = comp >> np.uint32(shift)
        mag = (word & mask).astype(np.float64) * (SQRT1_2 / 511.0)
        vals.append(np.where((word >> np.uint32(9)) & np.uint32(1), -mag, mag))
    vals = np.stack(vals, axis=1)
    slots = np.array([[3, 2, 1], [3, 2, 0], [3, 1, 0], [2, 1, 0]])[largest]
    xyzw = np.zeros((len(comp), 4))
    np.put_along_axis(xyzw, slots, vals, axis=1)
    rest = np.maximum(0.0, 1.0 - (vals ** 2).sum(1))
    np.put_along_axis(xyzw, largest[:, None], np.sqrt(rest)[:, None], axis=1)
    return xyzw[:, [3, 0, 1, 2]]


def _smallest_three_encode(q_wxyz: np.ndarray) -> np.ndarray:
    """Unit wxyz quaternions [N,4] -> 32-bit smallest-three words (SPZ v3+ layout)."""
    q = normalize_quats(q_wxyz)[:, [1, 2, 3, 0]]  # xyzw
    largest = np.argmax(np.abs(q), axis=1)
    negate = np.take_along_axis(q, largest[:, None], 1)[:, 0] < 0
    comp = largest.astype(np.uint32)
    for i in range(4):
        keep = largest != i
        mag = np.minimum(np.floor(511.0 * np.abs(q[:, i]) / SQRT1_2 + 0.5), 511).astype(np.uint32)
        neg = ((q[:, i] < 0) ^ negate).astype(np.uint32)
        comp = np.where(keep, (comp << np.uint32(10)) | (neg << np.uint32(9)) | mag, comp)
    return comp.astype("<u4")


def _flip_yz(means, quats, sh):
    k = sh.shape[1]
    return means * _FLIP_P, quats * _FLIP_Q, sh * _FLIP_SH[:k, None]


def _check_coords(coords: str) -> None:
    if coords not in ("rdf", "rub"):
        raise UsageError(f"coordinate_system must be 'rub' (the SPZ spec) or 'rdf' (PLY axes, no conversion), got {coords!r}")


# ---------------------------------------------------------------------- writing
def _quantize_sh(x: np.ndarray, bits: int) -> np.ndarray:
    bucket = 1 << (8 - bits)
    q = np.rint(x * 128.0) + 128.0
    q = np.floor((q + bucket // 2) / bucket) * bucket
    return np.clip(q, 0, 255).astype(np.uint8)


def encode(
    scene: GaussianScene,
    *,
    version: int = 3,
    fractional_bits: int | None = None,
    sh1_bits: int = 5,
    sh_rest_bits: int = 4,
    coordinate_system: str = "rub",
    antialiased: bool = False,
    level: int = 12,
) -> bytes:
    """Pack a scene as SPZ bytes (version 3, the default, or 2: one gzip stream; 4: zstd streams).

    ``fractional_bits`` defaults to 12 (1/4096 units), lowered automatically when a
    position would not fit 24 bits.
    """
    _check_coords(coordinate_system)
    if version not in (2, 3, 4):
        raise UsageError(f"SPZ version must be 2, 3 or 4, got {version}")
    if not (1 <= sh1_bits <= 8 and 1 <= sh_rest_bits <= 8):
        raise UsageError("SPZ SH quantisation bits must be 1..8")
    a = scene_arrays(scene)
    n = len(scene)
    means = a["means"].astype(np.float64)
    quats = a["quats"].astype(np.float64)
    sh = a["sh_rest"].astype(np.float64)
    if coordinate_system == "rub":
        means, quats, sh = _flip_yz(means, quats, sh)
    extent = float(np.abs(means).max()) if n else 0.0
    if not math.isfinite(extent):
        raise UsageError("cannot write SPZ: the scene holds non-finite positions")
    if fractional_bits is None:
        fractional_bits = 12
        while fractional_bits > 0 and round(extent * (1 << fractional_bits)) > (1 << 23) - 1:
            fractional_bits -= 1
    if round(extent * (1 << fractional_bits)) > (1 << 23) - 1:
        raise UsageError(f"cannot write SPZ: |position| up to {extent:.4g} does not fit 24 bits with "
                         f"{fractional_bits} fractional bits")
    fixed = np.rint(means * (1 << fractional_bits)).astype(np.int64) & 0xFFFFFF
    pos = np.stack([fixed & 0xFF, (fixed >> 8) & 0xFF, (fixed >> 16) & 0xFF], axis=-1).astype(np.uint8)
    alphas = u8(sigmoid(a["opacity_logits"]) * 255.0)
    colors = u8(a["sh_dc"].astype(np.float64) * (COLOR_SCALE * 255.0) + 127.5)
    scales = u8((a["log_scales"].astype(np.float64) + 10.0) * 16.0)
    if version >= 3:
        rots = _smallest_three_encode(quats).tobytes()
    else:
        q = normalize_quats(quats)
        q = q * np.where(q[:, :1] < 0, -1.0, 1.0)
        rots = u8(q[:, 1:] * 127.5 + 127.5).tobytes()
    shq = np.empty(sh.shape, np.uint8)
    if sh.shape[1]:
        shq[:, :3] = _quantize_sh(sh[:, :3], sh1_bits)
        shq[:, 3:] = _quantize_sh(sh[:, 3:], sh_rest_bits)
    if scene.extras:
        warn(f"SPZ stores no extra channels: {', '.join(sorted(scene.extras))} dropped")
    streams = [pos.tobytes(), alphas.tobytes(), colors.tobytes(), scales.tobytes(), rots, shq.tobytes()]
    degree = scene.sh_degree
    flags = FLAG_ANTIALIASED if antialiased else 0
    if version < 4:
        head = _LEGACY.pack(MAGIC, version, n, degree, fractional_bits, flags, 0)
        return gzip.compress(head + b"".join(streams), compresslevel=6, mtime=0)
    streams = [s for s in streams if s]
    cctx = zstandard.ZstdCompressor(level=level)
    chunks = [cctx.compress(s) for s in streams]
    header = _V4.pack(MAGIC, 4, n, degree, fractional_bits, flags, len(chunks), _V4.size, bytes(12))
    toc = b"".join(struct.pack("<QQ", len(c), len(s)) for c, s in zip(chunks, streams))
    return header + toc + b"".join(chunks)


def write(scene: GaussianScene, path: str | os.PathLike, **options) -> None:
    Path(path).write_bytes(encode(scene, **options))
