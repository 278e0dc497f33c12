"""16-bit PNG input at full precision (Pillow reduces colour 16-bit PNGs to 8 bits), and image output checks."""
from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest

from compress.image.imageio import check_image_output, load_image, save_image
from compress.image.png16 import SIGNATURE, encode_png16, read_png16
from splat.errors import FormatError, UsageError


def _paeth(a: int, b: int, c: int) -> int:
    p = a + b - c
    pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
    return a if pa <= pb and pa <= pc else b if pb <= pc else c


def _filtered_png(pixels: np.ndarray, ctype: int) -> bytes:
    """A 16-bit PNG whose rows cycle through all five filter types (a plain-Python reference encoder)."""
    h, w, c = pixels.shape
    rows = pixels.astype(">u2").reshape(h, w * c).view(np.uint8).astype(int)
    bpp = 2 * c
    raw = bytearray()
    for y in range(h):
        ft = y % 5
        raw.append(ft)
        for x in range(rows.shape[1]):
            a = rows[y, x - bpp] if x >= bpp else 0
            b = rows[y - 1, x] if y > 0 else 0
            cc = rows[y - 1, x - bpp] if x >= bpp and y > 0 else 0
            pred = [0, a, b, (a + b) // 2, _paeth(a, b, cc)][ft]
            raw.append((rows[y, x] - pred) & 255)

    def chunk(tag: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + tag + body + struct.pack(">I", zlib.crc32(tag + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, ctype, 0, 0, 0)
    z = zlib.compress(bytes(raw))
    # image data split over two IDAT chunks, as encoders do
    return SIGNATURE + chunk(b"IHDR", ihdr) + chunk(b"IDAT", z[:7]) + chunk(b"IDAT", z[7:]) + chunk(b"IEND", b"")


@pytest.mark.parametrize("channels,ctype", [(3, 2), (4, 6), (2, 4), (1, 0)])
def test_16bit_png_keeps_every_bit(tmp_path, channels, ctype):
    g = np.random.default_rng(channels)
    px = g.integers(0, 65536, (6, 7, channels), dtype=np.uint16)
    px[0, 0] = 1  # a value 8 bits cannot hold
    path = tmp_path / "x.png"
    path.write_bytes(_filtered_png(px, ctype))
    img = load_image(path)
    assert img.bit_depth == 16 and img.pixels.shape == (6, 7, channels)
    assert np.array_equal(np.round(img.pixels * 65535).astype(np.uint16), px)


def test_16bit_round_trip_through_save_image(tmp_path):
    px = np.random.default_rng(0).integers(0, 65536, (5, 9, 3), dtype=np.uint16)
    save_image(tmp_path / "o.png", px.astype(np.float32) / 65535, bit_depth=16)
    assert np.array_equal(read_png16(tmp_path / "o.png", 10**6), px)
    (tmp_path / "e.png").write_bytes(encode_png16(px))
    assert np.array_equal(read_png16(tmp_path / "e.png", 10**6), px)


@pytest.mark.parametrize("shape", [(1, 1), (2, 3), (9, 13), (16, 5)])
def test_adam7_interlaced_16bit_png(tmp_path, shape):
    """Interlaced 16-bit PNGs keep every bit; gray is checked against Pillow's own Adam7 decoder
    (Pillow keeps 16-bit gray at full precision), colour round-trips (some passes are empty)."""
    from PIL import Image

    g = np.random.default_rng(shape[0] * 31 + shape[1])
    gray = g.integers(0, 65536, (*shape, 1), dtype=np.uint16)
    (tmp_path / "g.png").write_bytes(encode_png16(gray, interlace=True))
    with Image.open(tmp_path / "g.png") as im:
        assert im.info.get("interlace") == 1
        ref = np.asarray(im, dtype=np.uint16 if im.mode != "I" else np.int32).astype(np.uint16)
    assert np.array_equal(read_png16(tmp_path / "g.png", 10**6)[..., 0], ref)
    for c in (2, 3, 4):
        px = g.integers(0, 65536, (*shape, c), dtype=np.uint16)
        path = tmp_path / f"c{c}.png"
        path.write_bytes(encode_png16(px, interlace=True))
        assert np.array_equal(read_png16(path, 10**6), px)
        img = load_image(path)
        assert img.bit_depth == 16 and np.array_equal(np.round(img.pixels * 65535).astype(np.uint16), px)


def test_8bit_and_bad_png_data(tmp_path):
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "p8.png")
    assert read_png16(tmp_path / "p8.png", 10**6) is None and load_image(tmp_path / "p8.png").bit_depth == 8
    good = _filtered_png(np.ones((4, 4, 3), np.uint16), 2)
    (tmp_path / "trunc.png").write_bytes(good[:-30])
    with pytest.raises(FormatError, match="trunc.png"):
        load_image(tmp_path / "trunc.png")
    # a header that understates the size: the inflater stops at the implied size
    big = bytearray(good)
    big[16:24] = struct.pack(">II", 2, 2)
    big[29:33] = struct.pack(">I", zlib.crc32(bytes(big[12:29])))
    (tmp_path / "bomb.png").write_bytes(bytes(big))
    with pytest.raises(FormatError, match="more than the .* bytes its header implies"):
        read_png16(tmp_path / "bomb.png", 10**6)


def test_rgba_to_jpeg_is_refused(tmp_path):
    with pytest.raises(UsageError, match="JPEG holds gray or RGB, not 4 channels"):
        check_image_output(tmp_path / "x.jpg", 4)
    with pytest.raises(UsageError, match="need a .npy output"):
        save_image(tmp_path / "x.png", np.zeros((2, 2, 6), np.float32))
    check_image_output(tmp_path / "x.jpeg", 3)
    assert not list(tmp_path.iterdir())


def test_render_image_refuses_rgba_jpeg_before_rendering(tmp_path, monkeypatch, capsys):
    import torch

    import compress.image.model as model
    from compress.image.gsi import encode
    from compress.image.model import ImageGaussians
    from splat.cli import main

    g = torch.Generator().manual_seed(0)
    n, w, h = 50, 20, 16
    rgba = ImageGaussians(torch.rand(n, 2, generator=g) * torch.tensor([w, h]), torch.rand(n, 2, generator=g) + 0.5,
                          torch.rand(n, generator=g), torch.rand(n, 4, generator=g), w, h)
    (tmp_path / "a.gsi").write_bytes(encode(rgba))

    def never(*a, **k):
        raise AssertionError("rendered before checking the output")

    monkeypatch.setattr(model, "render_gaussians", never)
    assert main(["render-image", str(tmp_path / "a.gsi"), "-o", str(tmp_path / "a.jpg")]) == 2
    assert "JPEG holds gray or RGB, not 4 channels" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.gsi"]
