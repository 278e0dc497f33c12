"""Reading and writing the images that image fitting consumes and produces.

Images are float32 arrays [H, W, C] in [0, 1] with C in 1..16: 8- and 16-bit PNG/TIFF/...
(grayscale, RGB, RGBA with alpha as a plain channel) through Pillow (16-bit colour PNGs
through :mod:`.png16`, as Pillow reduces them to 8 bits), and ``.npy`` arrays
[H, W] or [H, W, C] for multi-channel data (floats taken as they are, integers scaled by
their type's maximum).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from splat.errors import FormatError, UsageError

MAX_CHANNELS = 16
# Large images are fitted in tiles (tiles.py), which keep one float32 copy of the image plus
# one tile's state; the cap is the largest image a .gsi may store (splat.limits.MAX_PIXELS).
# A fit of the whole image keeps several copies plus per-pixel state (~250 bytes a pixel at
# 2048^2), so api.compress_image refuses a whole fit above WHOLE_MAX_PIXELS and says why.
MAX_PIXELS = 1 << 26
WHOLE_MAX_PIXELS = 16_000_000


@dataclass
class LoadedImage:
    """pixels [H,W,C] float32 in [0,1]; bit_depth of the source (8 or 16, 32 for float data)."""

    pixels: np.ndarray
    bit_depth: int
    path: str | None = None

    @property
    def height(self) -> int:
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        return int(self.pixels.shape[1])

    @property
    def channels(self) -> int:
        return int(self.pixels.shape[2])


def check_pixels(arr: np.ndarray, path: str | os.PathLike | None = None, max_pixels: int = MAX_PIXELS) -> np.ndarray:
    """Validate and normalise an array to float32 [H,W,C]; FormatError/UsageError on bad input."""
    a = np.asarray(arr)
    if a.ndim == 2:
        a = a[:, :, None]
    if a.ndim != 3:
        raise FormatError(f"image must be [H,W] or [H,W,C], got shape {a.shape}", path)
    h, w, c = a.shape
    if h == 0 or w == 0:
        raise FormatError(f"image is empty ({w}x{h} pixels)", path)
    if not 1 <= c <= MAX_CHANNELS:
        raise FormatError(f"image has {c} channels; 1..{MAX_CHANNELS} are supported", path)
    if h * w > max_pixels:
        raise UsageError(
            f"{path or 'image'}: {w}x{h} is {h * w / 1e6:.1f} MP, more than the {max_pixels / 1e6:.0f} MP this fitter "
            f"handles in memory; downscale it or fit crops separately (e.g. with Pillow: img.reduce(2))"
        )
    if np.issubdtype(a.dtype, np.integer):
        a = a.astype(np.float32) / float(np.iinfo(a.dtype).max)
    elif np.issubdtype(a.dtype, np.floating) or a.dtype == np.bool_:
        a = a.astype(np.float32)
        if not np.isfinite(a).all():
            raise FormatError("image contains NaN or infinite values", path)
    else:
        raise FormatError(f"unsupported pixel type {a.dtype}", path)
    return np.ascontiguousarray(a)


def load_image(path: str | os.PathLike, max_pixels: int = MAX_PIXELS) -> LoadedImage:
    """Read an image file (see module doc). FormatError names the file and the problem."""
    p = Path(path)
    if not p.exists():
        raise FormatError("no such file", p)
    if p.is_dir():
        raise FormatError("is a directory, expected an image file", p)
    if p.suffix.lower() == ".npy":
        try:
            arr = np.load(p, allow_pickle=False)
        except Exception as e:
            raise FormatError(f"not a readable .npy array ({e})", p) from None
        depth = 16 if arr.dtype == np.uint16 else 8 if arr.dtype == np.uint8 else 32
        return LoadedImage(check_pixels(arr, p, max_pixels), depth, str(p))
    from PIL import Image, UnidentifiedImageError

    from .png16 import read_png16

    arr16 = read_png16(p, max_pixels)  # Pillow would reduce 16-bit RGB(A) and gray+alpha to 8 bits
    if arr16 is not None:
        return LoadedImage(check_pixels(arr16, p, max_pixels), 16, str(p))
    try:
        with Image.open(p) as im:
            w, h = im.size
            if w * h > max_pixels:
                raise UsageError(
                    f"{p}: {w}x{h} is {w * h / 1e6:.1f} MP, more than the {max_pixels / 1e6:.0f} MP this fitter handles "
                    f"in memory; downscale it or fit crops separately (e.g. with Pillow: img.reduce(2))"
                )
            im.load()
            mode = im.mode
            if mode in ("I;16", "I;16B", "I;16L", "I"):
                arr = np.asarray(im, dtype=np.int64)
                arr = np.clip(arr, 0, 65535).astype(np.uint16)
                depth = 16
            elif mode == "F":
                arr = np.asarray(im, dtype=np.float32)
                depth = 32
            elif mode in ("L", "LA", "RGB", "RGBA"):
                arr = np.asarray(im)
                depth = 8
            elif mode == "1":
                arr = np.asarray(im.convert("L"))
                depth = 8
            else:  # palette, CMYK, YCbCr...: decode to RGB(A)
                im2 = im.convert("RGBA" if "A" in mode or "transparency" in im.info else "RGB")
                arr = np.asarray(im2)
                depth = 8
    except UsageError:
        raise
    except Image.DecompressionBombError as e:
        raise UsageError(f"{p}: {e}") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise FormatError(f"not a readable image ({e.__class__.__name__}: {e})", p) from None
    return LoadedImage(check_pixels(arr, p, max_pixels), depth, str(p))


JPEG_SUFFIXES = (".jpg", ".jpeg")


def check_image_output(path: str | os.PathLike, channels: int) -> None:
    """One-line ``UsageError`` when ``path``'s format cannot hold ``channels`` channels (e.g. RGBA as JPEG)."""
    suffix = Path(path).suffix.lower()
    if suffix in JPEG_SUFFIXES and channels not in (1, 3):
        raise UsageError(f"{path}: JPEG holds gray or RGB, not {channels} channels; write .png "
                         f"(or .npy for more than 4 channels)")
    if suffix not in (".npy", "") and channels > 4:
        raise UsageError(f"{path}: {channels} channels need a .npy output")


def _as(a: np.ndarray, dtype: type) -> np.ndarray:
    """Pixels ``a`` (float in [0,1], uint8 or uint16) as ``dtype`` (float32, uint8 or uint16)."""
    if a.dtype == dtype:
        return a
    f = a.astype(np.float32) / np.float32(255 if a.dtype == np.uint8 else 65535) if a.dtype in (np.uint8, np.uint16) else a
    if dtype == np.float32:
        return f
    return np.round(f * np.float32(255 if dtype == np.uint8 else 65535)).astype(dtype)


def save_image(path: str | os.PathLike, pixels: np.ndarray, bit_depth: int = 8) -> None:
    """Write [H,W,C] pixels (floats in [0,1], or uint8 / uint16 as from
    ``model.render_to_array``) atomically: PNG for 1, 2 (gray+alpha), 3, 4 channels
    (16-bit PNG when ``bit_depth`` is 16), ``.npy`` float32 for anything else. JPEG (by
    extension) holds gray or RGB only: see :func:`check_image_output`."""
    check_image_output(path, pixels.shape[2])
    from PIL import Image

    from splat.atomic import atomic_path

    p = Path(path)
    a = pixels if pixels.dtype in (np.uint8, np.uint16) else np.clip(np.asarray(pixels, dtype=np.float32), 0.0, 1.0)
    c = a.shape[2]
    with atomic_path(p) as tmp:
        if p.suffix.lower() == ".npy" or c not in (1, 2, 3, 4):
            with open(tmp, "wb") as f:
                np.save(f, _as(a, np.float32))
            return
        if bit_depth == 16 and p.suffix.lower() in (".png", ""):
            from .png16 import encode_png16

            with open(tmp, "wb") as f:
                f.write(encode_png16(_as(a, np.uint16)))
            return
        if c == 1 and bit_depth == 16:
            im = Image.fromarray(_as(a, np.uint16)[:, :, 0])
        else:
            u8 = _as(a, np.uint8)
            im = Image.fromarray(u8[:, :, 0] if c == 1 else u8, mode={1: "L", 2: "LA", 3: "RGB", 4: "RGBA"}[c])
        fmt = (p.suffix.lstrip(".").upper() or "PNG").replace("JPG", "JPEG")
        im.save(tmp, format=fmt if fmt in ("PNG", "JPEG", "WEBP", "TIFF", "BMP") else "PNG")
