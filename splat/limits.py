"""Caps on what a decoder may allocate, checked before allocating.

Our codecs entropy-code their data, and a one-symbol rANS model or an RLE zstd block
decodes any number of values from a handful of bytes. So every count a header declares
(Gaussians, values, pixels, frames) is bounded by what the file's size makes plausible,
and the caller can raise a cap when a legitimate file is bigger than that (``max_*``
arguments in the APIs, ``--max-pixels`` in the CLI).
"""
from __future__ import annotations

import os

from .errors import FormatError

GAUSSIANS_PER_BYTE = 16
"""Real scenes cost 8-60 bytes per Gaussian; 16 Gaussians per byte is a 100x margin."""
GAUSSIAN_SLACK = 1 << 16
"""... plus this many, so that tiny files of degenerate (constant) data still decode."""
VALUES_PER_BYTE = 256
"""Decoded integer values per compressed byte (entropy streams, whole files) ..."""
VALUE_SLACK = 1 << 22
"""... plus this many (4M values, 32 MB as int64)."""
MAX_PIXELS = 1 << 26
"""Default cap on one rendered image (64 Mpx, e.g. 8192 x 8192)."""


def gaussian_cap(nbytes: int, override: int | None = None) -> int:
    """The most Gaussians a file of ``nbytes`` bytes may declare (``override`` replaces it)."""
    return int(override) if override is not None else GAUSSIANS_PER_BYTE * int(nbytes) + GAUSSIAN_SLACK


def value_cap(nbytes: int, override: int | None = None) -> int:
    """The most decoded values a file of ``nbytes`` bytes may declare in total."""
    return int(override) if override is not None else VALUES_PER_BYTE * int(nbytes) + VALUE_SLACK


def require_at_most(count: int, cap: int, what: str, path: str | os.PathLike | None = None, hint: str = "") -> int:
    """``count`` if ``0 <= count <= cap``, else FormatError naming ``what`` (and how to raise the cap)."""
    if count < 0:
        raise FormatError(f"negative {what} ({count})", path)
    if count > cap:
        extra = f" (raise the cap with {hint})" if hint else ""
        raise FormatError(f"{what} {count:,} exceeds the limit of {cap:,} for this file{extra}", path)
    return count


def check_pixels(width: int, height: int, max_pixels: int | None = None, path: str | os.PathLike | None = None,
                 what: str = "image") -> None:
    """FormatError when a ``width`` x ``height`` image is over ``max_pixels`` (default :data:`MAX_PIXELS`)."""
    cap = MAX_PIXELS if max_pixels is None else int(max_pixels)
    if width < 1 or height < 1:
        raise FormatError(f"{what} size {width}x{height} is empty", path)
    if width * height > cap:
        raise FormatError(f"{what} of {width}x{height} = {width * height:,} pixels exceeds the limit of {cap:,} "
                          "(raise it with max_pixels / --max-pixels)", path)
