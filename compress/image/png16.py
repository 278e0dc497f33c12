"""Full-precision reading of 16-bit PNGs (Pillow reduces 16-bit RGB, RGBA and gray+alpha to 8 bits).

Handles PNGs with 16 bits per sample, colour types 0 (gray), 2 (RGB), 4 (gray+alpha) and
6 (RGBA), plain or Adam7-interlaced. :func:`read_png16` returns None for any other PNG, so the
caller falls back to Pillow. The zlib stream is inflated with a hard output limit equal
to the size the header implies.
"""
from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path

import numba
import numpy as np

from splat.errors import FormatError

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}
# Adam7 passes: (x0, y0, dx, dy); pass k holds pixels (x0 + i*dx, y0 + j*dy)
ADAM7 = ((0, 0, 8, 8), (4, 0, 8, 8), (0, 4, 4, 8), (2, 0, 4, 4), (0, 2, 2, 4), (1, 0, 2, 2), (0, 1, 1, 2))


def _passes(w: int, h: int, interlace: int) -> list[tuple[int, int, int, int, int, int]]:
    """(x0, y0, dx, dy, pass width, pass height) of each non-empty pass; one full pass when not interlaced."""
    if interlace == 0:
        return [(0, 0, 1, 1, w, h)]
    out = []
    for x0, y0, dx, dy in ADAM7:
        pw, ph = (w - x0 + dx - 1) // dx, (h - y0 + dy - 1) // dy
        if pw > 0 and ph > 0:  # an empty pass has no bytes, not even filter bytes
            out.append((x0, y0, dx, dy, pw, ph))
    return out


def png_header(data: bytes) -> tuple[int, int, int, int, int] | None:
    """(width, height, bit depth, colour type, interlace) from a PNG's IHDR, or None if not a PNG."""
    if len(data) < 33 or data[:8] != SIGNATURE or data[12:16] != b"IHDR":
        return None
    w, h, depth, ctype, _comp, _filt, interlace = struct.unpack(">IIBBBBB", data[16:29])
    return w, h, depth, ctype, interlace


@numba.njit(cache=True)
def _unfilter(raw: np.ndarray, h: int, stride: int, bpp: int) -> np.ndarray:  # pragma: no cover - numba
    out = np.zeros((h, stride), dtype=np.uint8)
    for y in range(h):
        ft = raw[y * (stride + 1)]
        row = raw[y * (stride + 1) + 1:(y + 1) * (stride + 1)]
        for x in range(stride):
            a = np.int32(out[y, x - bpp]) if x >= bpp else np.int32(0)
            b = np.int32(out[y - 1, x]) if y > 0 else np.int32(0)
            c = np.int32(out[y - 1, x - bpp]) if (x >= bpp and y > 0) else np.int32(0)
            if ft == 0:
                pred = 0
            elif ft == 1:
                pred = a
            elif ft == 2:
                pred = b
            elif ft == 3:
                pred = (a + b) // 2
            elif ft == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                pred = a if (pa <= pb and pa <= pc) else (b if pb <= pc else c)
            else:
                return out[:0]
            out[y, x] = np.uint8((np.int32(row[x]) + pred) & 255)
    return out


def read_png16(path: str | os.PathLike, max_pixels: int) -> np.ndarray | None:
    """uint16 pixels [H,W,C] of a 16-bit PNG (plain or Adam7); None for any other image."""
    p = Path(path)
    with open(p, "rb") as f:
        head = f.read(33)
        info = png_header(head)
        if info is None:
            return None
        w, h, depth, ctype, interlace = info
        if depth != 16 or ctype not in CHANNELS or interlace not in (0, 1):
            return None
        if w == 0 or h == 0 or w * h > max_pixels:
            return None  # Pillow's path gives the size errors
        data = head + f.read()
    c = CHANNELS[ctype]
    passes = _passes(w, h, interlace)
    expected = sum(ph * (pw * c * 2 + 1) for *_, pw, ph in passes)
    inflater = zlib.decompressobj()
    parts: list[bytes] = []
    got = 0
    pos = 8
    while pos + 8 <= len(data):
        length, tag = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + length]
        if len(body) != length:
            raise FormatError(f"truncated PNG chunk {tag!r}", p)
        pos += 12 + length
        if tag == b"IDAT":
            try:
                chunk = inflater.decompress(inflater.unconsumed_tail + body, expected - got + 1)
            except zlib.error as e:
                raise FormatError(f"corrupt PNG image data ({e})", p) from None
            parts.append(chunk)
            got += len(chunk)
            if got > expected:
                raise FormatError(f"PNG image data holds more than the {expected} bytes its header implies", p)
        elif tag == b"IEND":
            break
    if got != expected:
        raise FormatError(f"PNG image data holds {got} bytes, its {w}x{h} header implies {expected}", p)
    raw = np.frombuffer(b"".join(parts), dtype=np.uint8)
    out = np.empty((h, w, c), np.uint16)
    start = 0
    for x0, y0, dx, dy, pw, ph in passes:  # each pass is filtered as an image of its own
        stride = pw * c * 2
        rows = _unfilter(raw[start:start + ph * (stride + 1)], ph, stride, c * 2)
        if rows.shape[0] != ph:
            raise FormatError("PNG scanline has an unknown filter type", p)
        out[y0::dy, x0::dx] = rows.view(">u2").reshape(ph, pw, c)
        start += ph * (stride + 1)
    return out


def encode_png16(pixels: np.ndarray, *, interlace: bool = False) -> bytes:
    """A 16-bit PNG of uint16 pixels [H,W,C], C in 1..4 (filter 0 rows, zlib level 6; Adam7
    when ``interlace``)."""
    a = np.asarray(pixels)
    h, w, c = a.shape
    ctype = {1: 0, 2: 4, 3: 2, 4: 6}[c]
    raw_parts = []
    for x0, y0, dx, dy, pw, ph in _passes(w, h, int(interlace)):
        rows = np.ascontiguousarray(a[y0::dy, x0::dx].astype(">u2")).reshape(ph, pw * c).view(np.uint8)
        raw_parts.append(np.concatenate([np.zeros((ph, 1), np.uint8), rows], axis=1).tobytes())
    raw = b"".join(raw_parts)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, int(interlace))
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b"")
