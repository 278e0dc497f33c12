"""Decompression with a hard output limit (zstd, zip entries).

A compressed frame may claim any size in its header and may expand far beyond it; these
helpers stream the output and stop at ``limit + 1`` bytes, so memory never exceeds the
size the caller's own header implies. Corrupt data becomes :class:`FormatError`.
"""
from __future__ import annotations

import io
import os
import zipfile
import zlib

from .errors import FormatError

_CHUNK = 1 << 20


def _read_capped(reader, limit: int) -> bytes:
    out = bytearray()
    while len(out) <= limit:
        block = reader.read(min(_CHUNK, limit + 1 - len(out)))
        if not block:
            break
        out += block
    return bytes(out)


def zstd_decompress_bounded(data: bytes | memoryview, limit: int, path: str | os.PathLike | None = None,
                            what: str = "zstd data", exact: bool = False) -> bytes:
    """Decompress one zstd frame to at most ``limit`` bytes (exactly ``limit`` when ``exact``)."""
    import zstandard

    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(data)), read_across_frames=False)
        with reader:
            out = _read_capped(reader, limit)
    except zstandard.ZstdError as e:
        raise FormatError(f"{what}: corrupt zstd data ({e})", path) from None
    if len(out) > limit:
        raise FormatError(f"{what}: decompressed to more than the {limit:,} bytes declared", path)
    if exact and len(out) != limit:
        raise FormatError(f"{what}: decompressed to {len(out):,} bytes, expected {limit:,}", path)
    return out


def zip_read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int,
                     path: str | os.PathLike | None = None) -> bytes:
    """An archive member, refusing to produce more than ``min(limit, info.file_size)`` bytes."""
    cap = min(int(limit), int(info.file_size))
    try:
        with archive.open(info) as f:
            out = _read_capped(f, cap)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError,
            RuntimeError, zlib.error) as e:
        raise FormatError(f"cannot extract {info.filename!r} from the archive ({e})", path) from None
    if len(out) > cap:
        raise FormatError(f"{info.filename!r} expands beyond the {cap:,} bytes the archive declares", path)
    return out
