"""Bad input: every reader names the file and says what is wrong, with splat.FormatError only."""
from __future__ import annotations

import gzip
import io
import json
import struct

import numpy as np
import pytest
import zstandard
from io_helpers import zip_files
from PIL import Image

import splat.io as sio
from splat import FormatError, GaussianScene
from splat.io import dotsplat, ply, sog, spz


def expect_error(tmp_path, name: str, data: bytes, match: str, format: str | None = None) -> FormatError:
    path = tmp_path / name
    path.write_bytes(data)
    with pytest.raises(FormatError, match=match) as info:
        sio.read_scene(path, format)
    assert str(info.value).startswith(str(path)), "the message must name the file"
    assert info.value.path == str(path)
    return info.value


SCENE = GaussianScene.random(40, sh_degree=1, seed=0)


# ---------------------------------------------------------------------------------- PLY
def _ply_bytes() -> bytes:
    return ply.encode(SCENE)


def _swap_header(data: bytes, old: bytes, new: bytes) -> bytes:
    head, sep, body = data.partition(b"end_header\n")
    assert old in head
    return head.replace(old, new, 1) + sep + body


@pytest.mark.parametrize("mutate,match", [
    (lambda d: b"", "not a PLY file"),
    (lambda d: b"plx\n" + d[4:], "not a PLY file"),
    (lambda d: d[:60], "header is truncated"),
    (lambda d: _swap_header(d, b"binary_little_endian 1.0", b"binary_middle_endian 1.0"), "unsupported format"),
    (lambda d: _swap_header(d, b"binary_little_endian 1.0", b"binary_little_endian 2.0"), "unsupported PLY version"),
    (lambda d: _swap_header(d, b"element vertex 40", b"element vertex -40"), "malformed element line"),
    (lambda d: _swap_header(d, b"element vertex 40", b"element vertex 1000000000000000"), "truncated: element 'vertex' declares"),
    (lambda d: _swap_header(d, b"element vertex 40", b"element vertex 41"), "only 4,160 bytes remain"),
    (lambda d: _swap_header(d, b"property float opacity", b"property float opacityy"), "lacks opacity"),
    (lambda d: _swap_header(d, b"property float f_rest_8", b"property float f_rest_9"), "not numbered"),
    (lambda d: _swap_header(d, b"property float x", b"property quaternion x"), "unknown property type"),
    (lambda d: _swap_header(d, b"property float y", b"property float x"), "declared twice"),
    (lambda d: _swap_header(d, b"property float x", b"property list uchar float x"), "list properties"),
    (lambda d: _swap_header(d, b"comment", b"commant"), "unknown keyword"),
    (lambda d: _swap_header(d, b"comment written", b"comment \xff\xfe"), "non-ASCII"),
    (lambda d: d[:-1], "truncated"),
    (lambda d: d.replace(b"element vertex", b"element face", 1), "no 'vertex' element"),
], ids=["empty", "magic", "no-end-header", "format", "version", "negative-count", "absurd-count", "count+1",
        "missing-prop", "rest-gap", "bad-type", "dup-prop", "list", "keyword", "non-ascii", "short-body", "no-vertex"])
def test_ply_bad_headers_and_bodies(tmp_path, mutate, match):
    expect_error(tmp_path, "bad.ply", mutate(_ply_bytes()), match)


def test_ply_nan_and_bad_rest_count(tmp_path):
    s = GaussianScene.random(5)
    s.means[3, 1] = 1234.5  # writers refuse NaN: write a marker, then patch its bytes
    data = ply.encode(s).replace(np.float32(1234.5).tobytes(), np.float32("nan").tobytes())
    err = expect_error(tmp_path, "nan.ply", data, r"non-finite value .* in means of Gaussian 3")
    assert "nan.ply" in str(err)
    # ten f_rest properties are no SH layout
    s2 = GaussianScene.random(5, sh_degree=1).with_extras(f_rest_9=np_tensor(np.zeros(5, np.float32)))
    expect_error(tmp_path, "rest.ply", ply.encode(s2), "10 f_rest properties is not a valid SH layout")


def np_tensor(a):
    import torch

    return torch.from_numpy(a)


@pytest.mark.parametrize("body,match", [
    ("1 2 x 4\n", "malformed ASCII data"),
    ("1 2 3\n", "expected 1 rows of 14 values|malformed ASCII"),
    ("", "truncated"),
])
def test_ply_ascii_errors(tmp_path, body, match):
    names = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]
    header = "ply\nformat ascii 1.0\nelement vertex 1\n" + "".join(f"property float {n}\n" for n in names) + "end_header\n"
    expect_error(tmp_path, "a.ply", (header + body).encode(), match)


# ---------------------------------------------------------------------------------- compressed PLY
def _compressed_ply(n=300, chunks=None, sh=0, chunk_type="float", color=True) -> bytes:
    chunk_props = ["min_x", "min_y", "min_z", "max_x", "max_y", "max_z", "min_scale_x", "min_scale_y",
                   "min_scale_z", "max_scale_x", "max_scale_y", "max_scale_z"]
    if color:
        chunk_props += ["min_r", "min_g", "min_b", "max_r", "max_g", "max_b"]
    c = chunks if chunks is not None else -(-n // 256)
    lines = ["ply", "format binary_little_endian 1.0", f"element chunk {c}"]
    lines += [f"property {chunk_type} {p}" for p in chunk_props]
    lines += [f"element vertex {n}"] + [f"property uint {p}" for p in
                                         ("packed_position", "packed_rotation", "packed_scale", "packed_color")]
    if sh:
        lines += [f"element sh {n}"] + [f"property uchar f_rest_{i}" for i in range(sh)]
    lines.append("end_header")
    rng = np.random.default_rng(0)
    bounds = np.tile(np.array([-1, -1, -1, 1, 1, 1, -5, -5, -5, -2, -2, -2] + ([0, 0, 0, 1, 1, 1] if color else []),
                              np.float32), (c, 1))
    body = bounds.tobytes() + rng.integers(0, 2**32, (n, 4), dtype=np.uint32).tobytes()
    body += rng.integers(0, 256, (n, sh), dtype=np.uint8).tobytes()
    return ("\n".join(lines) + "\n").encode() + body


def test_compressed_ply_synthetic_reads(tmp_path):
    p = tmp_path / "ok.compressed.ply"
    p.write_bytes(_compressed_ply(sh=24))
    s = sio.read_scene(p)
    assert len(s) == 300 and s.sh_degree == 2
    assert float(s.means.abs().max()) <= 1.0 and float(s.log_scales.min()) >= -5.0


@pytest.mark.parametrize("data,match", [
    (_compressed_ply(chunks=1), "300 vertices need 2 chunks"),
    (_compressed_ply(chunk_type="double"), "missing or not f4"),
    (_compressed_ply(sh=10), "10 sh properties is not a valid SH layout"),
    (_compressed_ply()[:-5], "truncated"),
    (_compressed_ply().replace(b"element vertex 300", b"element vertex 3000000000"), "need 11,718,750 chunks"),
    (_compressed_ply().replace(b"binary_little_endian", b"ascii"), "must be binary"),
], ids=["chunk-count", "chunk-type", "sh-count", "truncated", "absurd", "ascii"])
def test_compressed_ply_errors(tmp_path, data, match):
    expect_error(tmp_path, "bad.compressed.ply", data, match)


def test_compressed_ply_nan_bound(tmp_path):
    data = bytearray(_compressed_ply())
    start = data.index(b"end_header\n") + len(b"end_header\n")
    data[start: start + 4] = struct.pack("<f", float("nan"))
    expect_error(tmp_path, "nan.compressed.ply", bytes(data), "non-finite chunk bound in chunk 0")


# ---------------------------------------------------------------------------------- .splat
def test_splat_errors(tmp_path):
    good = dotsplat.encode(GaussianScene.random(10))
    expect_error(tmp_path, "a.splat", good[:-3], "not a multiple of 32")
    rec = np.frombuffer(good, np.uint8).copy().reshape(10, 32)
    rec[4, 0:4] = np.frombuffer(struct.pack("<f", float("inf")), np.uint8)
    expect_error(tmp_path, "b.splat", rec.tobytes(), "non-finite position .* Gaussian 4")
    rec = np.frombuffer(good, np.uint8).copy().reshape(10, 32)
    rec[7, 12:16] = np.frombuffer(struct.pack("<f", -1.0), np.uint8)
    expect_error(tmp_path, "c.splat", rec.tobytes(), "negative scale in Gaussian 7")


# ---------------------------------------------------------------------------------- SPZ
def _v4(n=50, degree=1) -> bytes:
    return spz.encode(GaussianScene.random(n, sh_degree=degree, seed=1), version=4)


def _patch(data: bytes, offset: int, fmt: str, value) -> bytes:
    b = bytearray(data)
    struct.pack_into(fmt, b, offset, value)
    return bytes(b)


@pytest.mark.parametrize("data,match", [
    (b"NOPE" + _v4()[4:], "not an SPZ file"),
    (_v4()[:20], "truncated SPZ header"),
    (_patch(_v4(), 4, "<I", 5), "unsupported SPZ version 5"),
    (_patch(_v4(), 8, "<I", 2**31), "declared 2,147,483,648 Gaussians need"),
    (_patch(_v4(), 12, "<B", 7), "unsupported SH degree 7"),
    (_patch(_v4(), 13, "<B", 30), "fractional bits"),
    (_patch(_v4(), 15, "<B", 5), "declares 5 streams, expected 6"),
    (_patch(_v4(), 16, "<I", 8), "TOC offset 8 points inside"),
    (_patch(_v4(), 16, "<I", 10**9), "truncated: TOC ends"),
    (_v4() + b"junk", "trailing bytes"),
    (_v4()[:-10], "truncated: the TOC accounts"),
    (_patch(_v4(), 40, "<Q", 51), "stream 0: TOC says 51 bytes uncompressed"),
    (_patch(_v4(), 8, "<I", 49), "stream 0: TOC says 450 bytes uncompressed, expected 441"),
], ids=["magic", "short-header", "version", "absurd-count", "sh-degree", "fbits", "nstreams", "toc-low",
        "toc-high", "trailing", "truncated", "usize", "count-mismatch"])
def test_spz_v4_errors(tmp_path, data, match):
    expect_error(tmp_path, "bad.spz", data, match)


def test_spz_v4_corrupt_zstd_frame(tmp_path):
    data = bytearray(_v4())
    toc = 32
    start = toc + 16 * 6
    data[start + 4: start + 12] = b"\xff" * 8  # inside the first frame header
    expect_error(tmp_path, "z.spz", bytes(data), "stream 0: corrupt zstd data|stream 0: decompressed to")


def test_spz_v4_zstd_bomb_is_bounded(tmp_path):
    """A frame that inflates far beyond its declared size stops at the declared size."""
    n = 10
    sizes = [9 * n, n, 3 * n, 3 * n, 4 * n]
    bomb = zstandard.ZstdCompressor().compress(b"\0" * (50 << 20))
    frames = [bomb] + [zstandard.ZstdCompressor().compress(b"\0" * s) for s in sizes[1:]]
    head = struct.pack("<IIIBBBBI12s", 0x5053474E, 4, n, 0, 12, 0, 5, 32, bytes(12))
    toc = b"".join(struct.pack("<QQ", len(f), s) for f, s in zip(frames, sizes))
    expect_error(tmp_path, "bomb.spz", head + toc + b"".join(frames), "stream 0: (corrupt zstd|decompressed)")


def _legacy(version=3, n=50, body_extra=b"", magic=0x5053474E, count=None) -> bytes:
    scene = GaussianScene.random(n, seed=2)
    raw = gzip.decompress(spz.encode(scene, version=version))
    raw = struct.pack("<I", magic) + raw[4:8] + struct.pack("<I", count if count is not None else n) + raw[12:]
    return gzip.compress(raw + body_extra)


@pytest.mark.parametrize("data,match", [
    (_legacy()[:-30], "truncated"),
    (_legacy(magic=0x12345678), "'NGSP' magic missing"),
    (_legacy(count=51), "truncated: 51 Gaussians need"),
    (_legacy(count=10**9), "need 20,000,000,000 bytes"),
    (_legacy(body_extra=b"x" * 100), "more data than its header declares"),
    (gzip.compress(b"NGSP"), "shorter than its 16-byte header"),
    (b"\x1f\x8b" + b"\x00" * 40, "corrupt gzip stream"),
], ids=["truncated", "inner-magic", "count+1", "absurd-count", "extra", "short", "garbage"])
def test_spz_legacy_errors(tmp_path, data, match):
    expect_error(tmp_path, "bad.spz", data, match)


def test_spz_gzip_bomb_is_bounded(tmp_path):
    """A legacy file whose header claims more than the gzip ratio allows is refused before inflating."""
    head = struct.pack("<IIIBBBB", 0x5053474E, 3, 5_000_000, 0, 12, 0, 0)
    bomb = gzip.compress(head + b"\0" * (20 << 20))
    assert len(bomb) < 30_000
    expect_error(tmp_path, "bomb.spz", bomb, "more than this file can hold")


# ---------------------------------------------------------------------------------- SOG
def _sog_files(n=60, degree=1) -> dict[str, bytes]:
    return sog.encode_files(GaussianScene.random(n, sh_degree=degree, seed=3), sort=False)


def _with_meta(edit) -> bytes:
    files = _sog_files()
    meta = json.loads(files["meta.json"])
    edit(meta)
    files["meta.json"] = json.dumps(meta).encode()
    return zip_files(files)


def _webp(w, h, alpha=255) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(np.full((h, w, 4), alpha, np.uint8), "RGBA").save(buf, "WEBP", lossless=True)
    return buf.getvalue()


@pytest.mark.parametrize("data,match", [
    (b"PK\x03\x04" + b"\0" * 100, "corrupt SOG zip archive"),
    (zip_files({"x.txt": b"hi"}), "has no 'meta.json'"),
    (zip_files({"meta.json": b"{not json"}), "not valid JSON"),
    (zip_files({"meta.json": b"[1, 2]"}), "must hold a JSON object"),
    (_with_meta(lambda m: m.pop("version")), "SOG v1"),
    (_with_meta(lambda m: m.update(version=3)), "unsupported SOG version 3"),
    (_with_meta(lambda m: m.update(count=-1)), "count must be a non-negative integer"),
    (_with_meta(lambda m: m.update(count=10**12)), "impossible for a file of this size"),
    (_with_meta(lambda m: m.update(count=1000)), "fewer texels than the 1,000 Gaussians"),
    (_with_meta(lambda m: m.pop("quats")), "missing section 'quats'"),
    (_with_meta(lambda m: m["means"].update(mins=[0, 0])), "'mins' must have 3 entries"),
    (_with_meta(lambda m: m["scales"].update(codebook=[1.0] * 300)), "at most 256 allowed"),
    (_with_meta(lambda m: m["sh0"].update(codebook=[0.5])), "index .* beyond the 1-entry codebook"),
    (_with_meta(lambda m: m["means"].update(files=["../../etc/passwd", "means_u.webp"])), "invalid file"),
    (_with_meta(lambda m: m["means"].update(files=["nope.webp", "means_u.webp"])), "has no 'nope.webp'"),
    (_with_meta(lambda m: m["shN"].update(bands=4)), "bands must be 1, 2 or 3"),
    (_with_meta(lambda m: m["shN"].update(count=70000)), "shN.count must be"),
    (_with_meta(lambda m: m["shN"].update(count=m["shN"]["count"] - 1)), "palette index .* beyond the palette"),
], ids=["zip", "no-meta", "json", "not-object", "v1", "version", "neg-count", "absurd-count", "big-count",
        "no-quats", "mins", "codebook-len", "codebook-short", "path", "missing-file", "bands", "palette",
        "palette-short"])
def test_sog_errors(tmp_path, data, match):
    expect_error(tmp_path, "bad.sog", data, match)


def test_sog_nan_codebook_and_bad_textures(tmp_path):
    files = _sog_files()
    meta = json.loads(files["meta.json"])
    meta["scales"]["codebook"][0] = float("nan")  # json writes NaN, Python's reader accepts it
    files["meta.json"] = json.dumps(meta).encode()
    expect_error(tmp_path, "a.sog", zip_files(files), "non-finite number")
    files = _sog_files()
    files["quats.webp"] = _webp(8, 8, alpha=7)
    expect_error(tmp_path, "b.sog", zip_files(files), "alpha 7, expected 252-255")
    files = _sog_files()
    files["sh0.webp"] = b"RIFF\x00\x00\x00\x00WEBPVP8L" + b"\x00" * 30
    expect_error(tmp_path, "c.sog", zip_files(files), "not a decodable WebP image")
    files = _sog_files()
    files["scales.webp"] = _webp(2200, 2200)  # a few hundred bytes that would decode to 19 MB
    expect_error(tmp_path, "d.sog", zip_files(files), "implausibly large")


def test_sog_zip_crc_mismatch(tmp_path):
    data = bytearray(zip_files(_sog_files()))
    i = data.index(b"WEBP") + 40
    data[i] ^= 0xFF
    expect_error(tmp_path, "crc.sog", bytes(data), "cannot extract|corrupt")


def test_sog_loose_folder_missing_texture(tmp_path):
    folder = tmp_path / "loose"
    sio.write_scene(GaussianScene.random(30), folder / "meta.json")
    (folder / "quats.webp").unlink()
    with pytest.raises(FormatError, match="quats.webp: no such file"):
        sio.read_scene(folder)


# ---------------------------------------------------------------------------------- generic
def test_missing_and_directory_inputs(tmp_path):
    with pytest.raises(FormatError, match="no such file"):
        sio.read_scene(tmp_path / "nothing.ply")
    with pytest.raises(FormatError, match="no such file"):
        sio.read_scene(tmp_path / "nothing.spz", "spz")
    (tmp_path / "d").mkdir()
    with pytest.raises(FormatError, match="directory without a meta.json"):
        sio.read_scene(tmp_path / "d")
