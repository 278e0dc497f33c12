"""Helpers shared by the format modules: bounded file reading, validation, activations.

Every reader funnels its problems through :class:`splat.FormatError` with the file
name and a short statement of what is wrong. The helpers here keep those checks in
one place: size limits before allocation, bounded decompression, finiteness.
"""
from __future__ import annotations

import contextlib
import functools
import mmap
import os
import warnings
from typing import Iterator, Mapping

import numpy as np
import torch

from ..bounded import open_regular, read_regular
from ..errors import FormatError
from ..scene import SH_C0, GaussianScene, sh_rest_count

MAX_EXPANSION = 64
"""A compressed stream may expand to at most this multiple of the file size ..."""
EXPANSION_SLACK = 16 << 20
"""... plus this many bytes, so that tiny files of highly repetitive data still load."""

OPACITY_EPS = 1e-6
"""Opacities decoded from 8-bit values are clamped to [eps, 1-eps] before the logit."""


class FormatWarning(UserWarning):
    """A writer had to drop or approximate something the target format cannot store."""


def quiet_numpy(fn):
    """Run a decoder with numpy's floating-point warnings off.

    Corrupt input yields signalling NaNs, overflowing casts and the like; decoders check
    the results explicitly (non-finite values become FormatError), so the warnings are noise.
    """

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return fn(*args, **kwargs)

    return wrapper


def expansion_limit(file_size: int) -> int:
    """The largest decompressed size a reader accepts for a file of ``file_size`` bytes."""
    return MAX_EXPANSION * int(file_size) + EXPANSION_SLACK


def read_bytes(path: str | os.PathLike, limit: int | None = None) -> bytes:
    """The whole regular file (at most ``limit`` bytes), or FormatError naming the file
    (see :func:`splat.bounded.read_regular`: FIFOs and devices are refused, never read)."""
    return read_regular(path, limit)


@contextlib.contextmanager
def map_file(path: str | os.PathLike) -> Iterator[mmap.mmap | bytes]:
    """The file memory-mapped read-only (``b""`` when empty), or FormatError naming the file
    when it cannot be read. Pages are read on first touch, so a reader that copies what it
    needs in row chunks (and drops the chunks it is done with, :func:`drop_pages`) never
    holds the whole file resident."""
    with open_regular(path) as f:
        size = os.fstat(f.fileno()).st_size
        mm = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else None
    try:
        yield b"" if mm is None else mm
    finally:
        if mm is not None:
            try:
                mm.close()
            except BufferError:  # a view is still alive (an exception's traceback): the GC unmaps it
                pass


def drop_pages(data: object, start: int, stop: int) -> None:
    """Tell the kernel bytes [start, stop) of a mapping from :func:`map_file` are not needed
    again (they leave this process's resident set; touching them again re-reads them).
    A no-op for anything that is not an mmap."""
    if not isinstance(data, mmap.mmap) or not hasattr(mmap, "MADV_DONTNEED"):
        return
    page = mmap.PAGESIZE
    lo, hi = start // page * page, stop // page * page
    if hi > lo:
        data.madvise(mmap.MADV_DONTNEED, lo, hi - lo)


def warn(message: str) -> None:
    """Emit a :class:`FormatWarning` (the CLI prints these as one line each)."""
    warnings.warn(message, FormatWarning, stacklevel=3)


# ---------------------------------------------------------------------- activations (numpy)
def sigmoid(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return 1.0 / (1.0 + np.exp(-np.clip(x, -80.0, 80.0)))


def logit(p: np.ndarray, eps: float = OPACITY_EPS) -> np.ndarray:
    p = np.clip(np.asarray(p, dtype=np.float64), eps, 1.0 - eps)
    return np.log(p) - np.log1p(-p)


def clamp_infinite_logits(x: np.ndarray) -> np.ndarray:
    """Opacity logits of +-Inf (some tools write them for opacity exactly 1 or 0) -> +-logit(1 - eps)."""
    x = np.asarray(x, dtype=np.float64)
    big = float(logit(np.array(1.0)))
    return np.where(np.isposinf(x), big, np.where(np.isneginf(x), -big, x))


def u8(x: np.ndarray) -> np.ndarray:
    """Round to nearest and clamp to [0, 255] (NaN maps to 0)."""
    x = np.nan_to_num(np.asarray(x, dtype=np.float64), nan=0.0)
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def normalize_quats(q: np.ndarray) -> np.ndarray:
    """Unit quaternions [N,4]; zero-length rows become the identity (first component 1)."""
    q = np.asarray(q, dtype=np.float64)
    n = np.linalg.norm(q, axis=1, keepdims=True)
    out = np.where(n > 0, q / np.where(n > 0, n, 1.0), 0.0)
    zero = n[:, 0] == 0
    out[zero, 0] = 1.0
    return out


# ---------------------------------------------------------------------- scene <-> numpy
def scene_arrays(scene: GaussianScene) -> dict[str, np.ndarray]:
    """The core fields as float32 numpy arrays on the CPU (what writers consume).

    Raises ValueError when a field holds NaN or Inf: a file we write must read back.
    """
    scene.check_finite()
    return {
        name: t.detach().to("cpu", torch.float32).contiguous().numpy()
        for name, t in scene.fields().items()
    }


def make_scene(
    path: str | os.PathLike | None,
    *,
    means: np.ndarray,
    quats: np.ndarray,
    log_scales: np.ndarray,
    opacity_logits: np.ndarray,
    sh_dc: np.ndarray,
    sh_rest: np.ndarray | None = None,
    extras: Mapping[str, np.ndarray] | None = None,
    check_finite: bool = True,
) -> GaussianScene:
    """Build a float32 GaussianScene from decoded arrays, rejecting NaN/Inf with FormatError."""
    n = int(means.shape[0])
    if sh_rest is None:
        sh_rest = np.zeros((n, 0, 3), np.float32)
    arrays = {
        "means": means,
        "quats": quats,
        "log_scales": log_scales,
        "opacity_logits": opacity_logits,
        "sh_dc": sh_dc,
        "sh_rest": sh_rest,
    }
    tensors = {}
    for name, a in arrays.items():
        a = np.ascontiguousarray(a, dtype=np.float32)
        if not a.flags.writeable:
            a = a.copy()
        if check_finite and a.size and not np.isfinite(a).all():
            bad = int(np.nonzero(~np.isfinite(a.reshape(n, -1)).all(axis=1))[0][0])
            raise FormatError(f"non-finite value (NaN or Inf) in {name} of Gaussian {bad}", path)
        tensors[name] = torch.from_numpy(a)
    ex = {}
    for k, v in (extras or {}).items():
        v = np.ascontiguousarray(v)
        if not v.flags.writeable:
            v = v.copy()
        if v.dtype == np.uint16:
            v = v.astype(np.int32)
        elif v.dtype == np.uint32:
            v = v.astype(np.int64)
        ex[k] = torch.from_numpy(v)
    return GaussianScene(**tensors, extras=ex)


def dc_from_rgb(rgb: np.ndarray) -> np.ndarray:
    return (np.asarray(rgb, dtype=np.float64) - 0.5) / SH_C0


def rgb_from_dc(dc: np.ndarray) -> np.ndarray:
    return np.asarray(dc, dtype=np.float64) * SH_C0 + 0.5


def sh_degree_for_coeffs(total: int, path, what: str = "spherical-harmonic coefficients") -> int:
    """SH degree for a total coefficient count over 3 channels (0, 9, 24, 45)."""
    for d in range(4):
        if 3 * sh_rest_count(d) == total:
            return d
    raise FormatError(f"{total} {what} is not a valid SH layout (expected 0, 9, 24 or 45)", path)
