"""Hostile input for our own formats (.lgs, .gsi, .gsv, .m3) and the compressed external ones.

* a bounded mutation fuzz (>= 1,000 cases per format: bit flips, truncations, insertions,
  header-field rewrites, and payload edits behind re-computed checksums, nested containers
  included) where the only allowed failure is FormatError, within time and memory bounds;
* one crafted decompression bomb per format (a one-symbol rANS stream decodes any count
  from 4 bytes; zstd and zip entries that lie about their size), refused before allocating;
* the container index is linear; headers with hostile JSON; truncated clips; file names in
  every message; directories and empty files as input; writers refusing NaN/Inf.
"""
from __future__ import annotations

import io
import json
import os
import struct
import time
import tracemalloc
import zipfile
import zlib

import numpy as np
import pytest
import torch

from compress.container import Chunk, pack_container, read_index, unpack_container
from compress.entropy import RANS, encode_ints, pack_arrays, write_varint
from compress.entropy import _pack_counts as pack_counts
from compress.image import gsi
from compress.image.model import ImageGaussians, render_gaussians
from compress.memory.m3file import cameras_from_meta, decode_m3, encode_m3, read_m3
from compress.memory.memory import QUERY_EXTRA, Memory, ModelMemory
from compress.rans import rans_encode
from compress.scene import codec as lgs
from compress.video import VideoReader, VideoSettings, encode_video
from compress.video.segment import DecodedSegment
from splat.errors import FormatError
from splat.io import dotsplat, ply, sog, spz
from splat.scene import GaussianScene
from test_io_fuzz import _json_mutate, generic

CASES = int(os.environ.get("SPLAT_FUZZ_CASES", "1000"))
CPU_LIMIT_S = 2.0  # per case; typical is a few ms
FORMAT_BUDGET_S = 60.0  # CPU seconds for one format's whole fuzz (target ~15 s on an idle core)
MEM_EVERY = 20
MEM_LIMIT = 64 << 20  # peak traced allocation per case


# ---------------------------------------------------------------------- seeds (small, deterministic)
def _scene(n: int, deg: int = 1, seed: int = 0) -> GaussianScene:
    return GaussianScene.random(n, sh_degree=deg, seed=seed)


def _image_gaussians(n=120, w=32, h=24, c=3, seed=0) -> ImageGaussians:
    g = torch.Generator().manual_seed(seed)
    return ImageGaussians(torch.rand(n, 2, generator=g) * torch.tensor([w, h]), torch.rand(n, 2, generator=g) * 3 + 0.5,
                          torch.rand(n, generator=g) * 6 - 3, torch.rand(n, c, generator=g), w, h)


def _memory(n=60, seed=0) -> Memory:
    g = torch.Generator().manual_seed(seed)
    scene = _scene(n, 1, seed)
    models = [ModelMemory("clip", 0, 4, torch.randn(8, 6, generator=g), torch.randn(4, 6, generator=g), 0.05, True,
                          (48, 64), (6, 8))]
    return Memory(scene.with_extras(**{QUERY_EXTRA: torch.randn(n, 4, generator=g)}), models, meta={"note": "t"})


def _clip_frames(n=24, frames=5) -> list[GaussianScene]:
    base = _scene(n, 1, 3)
    g = torch.Generator().manual_seed(1)
    out = []
    for f in range(frames):
        shift = torch.tensor([0.02 * f, 0.0, 0.01 * f]) + 0.001 * torch.randn(n, 3, generator=g)
        out.append(base.replace(means=base.means + shift))
    return out


@pytest.fixture(scope="module")
def seeds() -> dict[str, bytes]:
    small = lgs.QuantConfig(sh_codebook=16, kmeans_iters=2)
    return {
        "lgs": lgs.encode(_scene(150), config=small)[0],
        # version 4: steps that are not powers of two and precision classes with grid factors
        "lgs-v4": lgs.encode(_scene(150), torch.rand(150, generator=torch.Generator().manual_seed(3)),
                             config=lgs.QuantConfig(sh_codebook=16, kmeans_iters=2, position_bits=13.4, scale_bits=6.6,
                                                    rotation_bits=7.3, opacity_bits=5.5, dc_bits=6.2,
                                                    sh_codebook_bits=5.8, sh_direct_bits=6.9, max_drop=3,
                                                    class_step=0.7))[0],
        "gsi": gsi.encode(_image_gaussians()),
        "gsv": encode_video(_clip_frames(16, 3), VideoSettings(gop=2, fps=10.0)).data,  # 2 + 1 frames
        "gsv-intra": encode_video(_clip_frames(), VideoSettings(gop=3, fps=10.0, tracked=False)).data,
        "m3": encode_m3(_memory()),
    }


def _decode_gsv(data: bytes) -> None:
    """Parse every segment and decode its last frame (which applies all of its updates)."""
    with VideoReader(data) as r:
        for s in range(r.info.n_segments):
            r.frame(r.info.segment_first[s] + r.info.segment_frames[s] - 1)


def _decode_gsv_all(data: bytes) -> None:
    with VideoReader(data) as r:
        for i in range(min(len(r), 8)):
            r.frame(i)


DECODERS = {
    "lgs": lgs.decode,
    "lgs-v4": lgs.decode,
    "gsi": gsi.decode,
    "gsv": _decode_gsv,
    "gsv-intra": _decode_gsv_all,
    "m3": decode_m3,
}


# ---------------------------------------------------------------------- container-aware mutators
def raw_container(magic: bytes, version: int, header: bytes, chunks: list[tuple[str, bytes]]) -> bytes:
    """A container with valid checksums around an arbitrary header byte string."""
    head = struct.pack("<4sHHI", magic, version, 0, len(header)) + header
    tbl = struct.pack("<I", len(chunks)) + b"".join(
        struct.pack("<4sQI", t.encode("ascii"), len(d), zlib.crc32(d)) for t, d in chunks)
    return b"".join([head, struct.pack("<I", zlib.crc32(head)), tbl, struct.pack("<I", zlib.crc32(tbl))]
                    + [d for _, d in chunks])


def _parts(data: bytes):
    idx = read_index(data, magic=data[:4])
    box = unpack_container(data, magic=data[:4])
    return idx, [(c.tag, c.data) for c in box.chunks]


def _is_container(data: bytes) -> bool:
    try:
        unpack_container(data, magic=data[:4])
        return True
    except (FormatError, ValueError, struct.error):
        return False


def rewrite_header(data: bytes, rng: np.random.Generator) -> bytes:
    """Edit one header field (NaN, Inf, huge, negative, wrong type, deleted...), checksums fixed."""
    idx, chunks = _parts(data)
    header = _json_mutate(json.loads(json.dumps(idx.header)), rng)
    raw = json.dumps(header, separators=(",", ":")).encode()
    return raw_container(idx.magic, idx.version, raw, chunks)


def rewrite_chunk(data: bytes, rng: np.random.Generator, depth: int = 0) -> bytes:
    """Mutate one chunk's payload (recursing into nested containers) and fix its checksum."""
    idx, chunks = _parts(data)
    if not chunks:
        return generic(data, rng)
    i = int(rng.integers(len(chunks)))
    tag, payload = chunks[i]
    if depth < 2 and _is_container(payload) and rng.random() < 0.7:
        payload = (rewrite_header if rng.random() < 0.4 else lambda d, r: rewrite_chunk(d, r, depth + 1))(payload, rng)
    elif rng.random() < 0.3 and len(payload) > 4:  # small numbers where counts live (varints)
        b = bytearray(payload)
        j = int(rng.integers(min(len(b), 16)))
        b[j] = int(rng.choice([0, 1, 0x7F, 0x80, 0xFF]))
        payload = bytes(b)
    else:
        payload = generic(payload, rng, header=32)
    chunks[i] = (tag, payload)
    return raw_container(idx.magic, idx.version, json.dumps(idx.header, separators=(",", ":")).encode(), chunks)


def mutate(data: bytes, rng: np.random.Generator) -> bytes:
    r = rng.random()
    if r < 0.3:
        return generic(data, rng)
    if r < 0.55:
        return rewrite_header(data, rng)
    return rewrite_chunk(data, rng)


# ---------------------------------------------------------------------- the fuzz
@pytest.mark.parametrize("fmt", ["lgs", "lgs-v4", "gsi", "gsv", "gsv-intra", "m3"])
def test_fuzz_own_formats_only_format_error(seeds, fmt):
    data, decode = seeds[fmt], DECODERS[fmt]
    decode(data)  # the seed itself decodes (and JIT-compiles what it needs)
    rng = np.random.default_rng(17)
    cases = CASES if fmt != "gsv-intra" else max(1, CASES // 4)
    outcomes = {"ok": 0, "FormatError": 0}
    t_start = time.process_time()
    for case in range(cases):
        bad = mutate(data, rng)
        traced = case % MEM_EVERY == 0
        if traced:
            tracemalloc.start()
        t0 = time.process_time()
        try:
            decode(bad)
            outcomes["ok"] += 1
        except FormatError:
            outcomes["FormatError"] += 1
        except Exception as e:  # pragma: no cover - the assertion is the point
            raise AssertionError(f"{fmt} case {case}: {type(e).__name__}: {e}") from e
        finally:
            dt = time.process_time() - t0
            if traced:
                peak = tracemalloc.get_traced_memory()[1]
                tracemalloc.stop()
                assert peak < MEM_LIMIT, f"{fmt} case {case}: peak allocation {peak / 2**20:.0f} MiB"
        assert dt < CPU_LIMIT_S, f"{fmt} case {case}: {dt:.2f} s CPU"
    assert time.process_time() - t_start < FORMAT_BUDGET_S
    assert outcomes["FormatError"] > cases // 2, outcomes  # the mutations really reach the checks


# ---------------------------------------------------------------------- crafted bombs
def one_symbol_stream(n: int) -> bytes:
    """An entropy stream of n zeros in a few bytes: rANS with a one-symbol model costs 0 bits/symbol."""
    freqs = np.array([1 << 16], dtype=np.int64)
    return bytes([RANS]) + write_varint(n) + b"\x00" + pack_counts(freqs) + rans_encode(np.zeros(1, np.int64), freqs)


def channels(n: int, c: int) -> bytes:
    return pack_arrays(*[b"\x00" + one_symbol_stream(n) for _ in range(c)])


def _bounded(fn, *, seconds: float = 2.0, mib: int = 32):
    """Run fn, expecting FormatError, fast and without a large allocation; returns the error."""
    tracemalloc.start()
    t0 = time.process_time()
    try:
        with pytest.raises(FormatError) as ei:
            fn()
    finally:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert time.process_time() - t0 < seconds
    assert peak < mib << 20, f"peak allocation {peak / 2**20:.0f} MiB"
    return ei.value


def _lgs_bomb(n: int) -> bytes:
    blob = lgs.encode(_scene(10, 0), config=lgs.QuantConfig(kmeans_iters=1))[0]
    h = read_index(blob, magic=lgs.MAGIC).header
    h["count"] = n
    chunks = [("POSN", one_symbol_stream(n)), ("OPAC", channels(n, 1)), ("SCAL", channels(n, 3)),
              ("ROTI", channels(n, 1)), ("ROTV", channels(n, 3)), ("COLR", channels(n, 3))]
    return pack_container(lgs.MAGIC, lgs.VERSION, h, chunks)


def test_lgs_bomb_refused_and_cap_overridable():
    bomb = _lgs_bomb(4_200_000)
    assert len(bomb) < 1500
    err = _bounded(lambda: lgs.decode(bomb, "bomb.lgs"))
    assert "bomb.lgs" in str(err) and "max_gaussians" in str(err)
    small = _lgs_bomb(100_000)  # same bytes per file, fewer Gaussians: still over the default cap
    _bounded(lambda: lgs.decode(small))
    assert len(lgs.decode(small, max_gaussians=100_000)) == 100_000


def test_gsi_bombs_refused():
    blob = gsi.encode(_image_gaussians())
    h = read_index(blob, magic=gsi.MAGIC).header
    n = 1 << 24
    bomb = pack_container(gsi.MAGIC, gsi.VERSION, {**h, "count": n, "layers": [n]},
                          [("GAUS", pack_arrays(*[one_symbol_stream(n) for _ in range(7)]))])
    assert len(bomb) < 1024
    assert "Gaussian count" in str(_bounded(lambda: gsi.decode(bomb, "b.gsi")))
    huge = pack_container(gsi.MAGIC, gsi.VERSION, {**h, "width": 65536, "height": 65536},
                          [("GAUS", unpack_container(blob, magic=gsi.MAGIC).get("GAUS"))])
    assert "pixels" in str(_bounded(lambda: gsi.decode(huge, "h.gsi")))
    g = gsi.decode(blob)
    assert "pixels" in str(_bounded(lambda: render_gaussians(g, scale=5000)))
    assert render_gaussians(g, scale=2, max_pixels=64 * 48).shape == (48, 64, 3)
    with pytest.raises(FormatError, match="pixels"):
        render_gaussians(g, scale=2, max_pixels=64 * 48 - 1)


def test_m3_bombs_refused():
    blob = encode_m3(_memory())
    idx, chunks = _parts(blob)
    for n in (1 << 27, 1 << 20):
        bomb = pack_container(b"GSM3", idx.version, {**idx.header, "n": n},
                              [(t, one_symbol_stream(n * 4) if t == "QRYS" else d) for t, d in chunks])
        _bounded(lambda: decode_m3(bomb, "bomb.m3"))
    cam = {"name": "c", "width": 200000, "height": 200000, "fx": 1.0, "fy": 1.0, "cx": 0.0, "cy": 0.0,
           "world_to_camera": [float(v) for v in np.eye(4).reshape(-1)]}
    assert "pixels" in str(_bounded(lambda: cameras_from_meta({"cameras": [cam]}, "c.m3")))
    assert len(cameras_from_meta({"cameras": [{**cam, "width": 64, "height": 48}]})) == 1


def test_gsv_bombs_refused(seeds):
    data = seeds["gsv"]
    idx, chunks = _parts(data)
    h = json.loads(json.dumps(idx.header))
    h["segments"] = [{"first": 0, "frames": 10 ** 8, "mode": h["segments"][0]["mode"]}] + [
        {**s, "first": s["first"] - h["segments"][0]["frames"] + 10 ** 8} for s in h["segments"][1:]]
    h["frames"] = h["frames"] - idx.header["segments"][0]["frames"] + 10 ** 8
    bomb = pack_container(idx.magic, idx.version, h, chunks)
    assert "frame count" in str(_bounded(lambda: VideoReader(bomb)))
    # the same claim inside the segment's own header (outer header consistent with it)
    seg_idx, seg_chunks = _parts(chunks[0][1])
    seg = pack_container(seg_idx.magic, seg_idx.version, {**seg_idx.header, "frames": 10 ** 8}, seg_chunks)
    inner = pack_container(idx.magic, idx.version, idx.header, [(chunks[0][0], seg)] + chunks[1:])
    _bounded(lambda: VideoReader(inner).frame(0))
    # a codebook size the segment cannot hold (allocated before its stream was read)
    seg = pack_container(seg_idx.magic, seg_idx.version, {**seg_idx.header, "sh_codebook": 10 ** 12}, seg_chunks)
    assert "SH codebook" in str(_bounded(lambda: DecodedSegment(seg)))


def _zstd_frame_claiming(content: bytes, claimed: int) -> bytes:
    """A zstd frame whose header claims ``claimed`` bytes, holding one RLE block of ``content``."""
    assert len(set(content)) == 1 and len(content) <= 1 << 17
    fhd = 0b11000000  # 8-byte frame content size, window descriptor present, no checksum
    window = 7 << 3  # 128 KiB window
    block = (1 | (1 << 1) | (len(content) << 3)).to_bytes(3, "little")  # last block, RLE
    return struct.pack("<I", 0xFD2FB528) + bytes([fhd, window]) + struct.pack("<Q", claimed) + block + content[:1]


def test_spz_zstd_frame_claiming_2_40_bytes():
    s = _scene(50, 0)
    s = s.replace(opacity_logits=torch.full((50,), 2.0))  # the alpha stream is one repeated byte
    data = spz.encode(s, version=4)
    _, version, n, degree, fbits, flags, nstreams, toc, _ = struct.unpack_from("<IIIBBBBI12s", data)
    entries = [struct.unpack_from("<QQ", data, toc + 16 * i) for i in range(nstreams)]
    off = toc + 16 * nstreams
    streams = []
    for c, _u in entries:
        streams.append(data[off:off + c])
        off += c
    k = [u for _c, u in entries].index(50)  # the stream holding the 50 alpha bytes
    alpha = bytes(zstandard_decompress(streams[k]))
    assert len(set(alpha)) == 1
    streams[k] = _zstd_frame_claiming(alpha, 1 << 40)
    toc_bytes = b"".join(struct.pack("<QQ", len(st), u) for st, (_c, u) in zip(streams, entries))
    bomb = data[:toc] + toc_bytes + b"".join(streams)
    _bounded(lambda: spz.decode(bomb, "bomb.spz"))
    # the same frame claiming its true size decodes: the refusal is about the lie
    streams[k] = _zstd_frame_claiming(alpha, len(alpha))
    toc_bytes = b"".join(struct.pack("<QQ", len(st), u) for st, (_c, u) in zip(streams, entries))
    assert len(spz.decode(data[:toc] + toc_bytes + b"".join(streams))) == 50


def zstandard_decompress(frame: bytes) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(frame)


def test_sog_zip_entry_understating_its_size():
    data = sog.encode(_scene(40, 0))
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        entries = {i.filename: z.read(i) for i in z.infolist()}
    big = b" " * (8 << 20)  # valid JSON whitespace after the object: 8 MiB, deflates to ~8 KiB
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for name, payload in entries.items():
            z.writestr(name, payload + big if name == "meta.json" else payload)
    b = bytearray(buf.getvalue())
    # rewrite meta.json's uncompressed size (local header offset 22, central directory offset 24) to 1 KiB
    for sig, off in ((b"PK\x03\x04", 22), (b"PK\x01\x02", 24)):
        pos = -1
        while (pos := b.find(sig, pos + 1)) >= 0:
            name_at = pos + (30 if sig == b"PK\x03\x04" else 46)
            if b[name_at:name_at + 9] == b"meta.json":
                b[pos + off:pos + off + 4] = struct.pack("<I", 1024)
    _bounded(lambda: sog.decode(bytes(b), "bomb.sog"), mib=24)


# ---------------------------------------------------------------------- container index
def test_container_index_is_linear_and_capped_by_file_size():
    n = 131_072
    blob = pack_container(b"TEST", 1, {}, [Chunk("EMPT", b"")] * n)
    t0 = time.process_time()
    idx = read_index(blob, magic=b"TEST")
    offsets = [idx.offset(i) for i in range(n)]
    box = unpack_container(blob, magic=b"TEST")
    assert time.process_time() - t0 < 1.5  # was ~40 s (offset() re-summed the earlier lengths)
    assert len(box.chunks) == n and offsets[-1] == idx.payload_start == len(blob)
    mixed = pack_container(b"TEST", 1, {}, [Chunk("AAAA", b"x" * k) for k in range(50)])
    idx = read_index(mixed, magic=b"TEST")
    assert [idx.offset(i) for i in range(50)] == [idx.payload_start + k * (k - 1) // 2 for k in range(50)]
    # a table claiming more entries than the file can hold
    with pytest.raises(FormatError, match="does not fit"):
        read_index(bytes(blob[:200]), magic=b"TEST")
    # chunk lengths past the end of the file: refused at index time (not only when read)
    with pytest.raises(FormatError, match="truncated"):
        read_index(mixed[:-10], magic=b"TEST", path="t.bin")
    assert read_index(mixed[:-10], magic=b"TEST", whole=False).total_size == len(mixed)


# ---------------------------------------------------------------------- hostile headers
@pytest.mark.parametrize("raw", [
    b'{"count":' + b"9" * 5000 + b"}",
    b'{"count":Infinity}',
    b'{"count":NaN}',
    b'{"count":1e999}',
    b'{"count":"5"}',
    b'{"count":-1}',
    b'{"count":true}',
    b"[" * 100_000 + b"]" * 100_000,
    b'{"a":' + b"[" * 40 + b"]" * 40 + b"}",
    b'{"count":1,"sh_degree":0,"x":"a\\u0000b"}',
    b'{"count":1,"sh_degree":0,"x":"a\x00b"}',
    b"\xff\xfe",
    b"[]",
])
def test_hostile_json_headers_raise_format_error(raw):
    blob = raw_container(lgs.MAGIC, lgs.VERSION, raw, [])
    with pytest.raises(FormatError) as ei:
        lgs.decode(blob, "h.lgs")
    assert "h.lgs" in str(ei.value)


def test_ply_count_with_5000_digits():
    data = b"ply\nformat binary_little_endian 1.0\nelement vertex " + b"1" * 5000 + b"\nproperty float x\nend_header\n"
    with pytest.raises(FormatError, match="element"):
        ply.decode(data + b"\x00" * 64, "big.ply")


def test_lgs_quantizer_bound_of_1e308_is_refused():
    blob = lgs.encode(_scene(30, 0), config=lgs.QuantConfig(kmeans_iters=1))[0]
    idx, chunks = _parts(blob)
    for key in ("opacity", "log_scales", "sh_dc", "positions"):
        h = json.loads(json.dumps(idx.header))
        h[key]["hi"] = [1e308] * len(h[key]["hi"])
        with pytest.raises(FormatError, match="out of range"):
            lgs.decode(pack_container(lgs.MAGIC, lgs.VERSION, h, chunks), "q.lgs")


def test_truncated_gsv_is_refused_at_open(seeds, tmp_path):
    data = seeds["gsv"]
    for cut in (1, 100, len(data) // 2):
        p = tmp_path / "t.gsv"
        p.write_bytes(data[:-cut])
        with pytest.raises(FormatError, match="truncated") as ei:
            VideoReader(p)
        assert "t.gsv" in str(ei.value)


# ---------------------------------------------------------------------- messages name the file
def test_every_decoder_message_names_the_file(seeds):
    idx, chunks = _parts(seeds["m3"])
    bad_qrys = [(t, b"\x02" + d[1:] if t == "QRYS" else d) for t, d in chunks]
    with pytest.raises(FormatError, match="x.m3"):
        decode_m3(pack_container(idx.magic, idx.version, idx.header, bad_qrys), "x.m3")
    gidx, _ = _parts(seeds["gsi"])
    with pytest.raises(FormatError, match="y.gsi: .*missing chunk 'GAUS'"):
        gsi.decode(pack_container(gidx.magic, gidx.version, gidx.header, []), "y.gsi")
    # an intra clip whose keyframe decodes the header but not the streams: the frame error names the file
    vidx, vchunks = _parts(seeds["gsv-intra"])
    sidx, schunks = _parts(vchunks[0][1])
    kidx, kchunks = _parts(schunks[0][1])
    kchunks = [(t, b"\x00\x01" if t == "OPAC" else d) for t, d in kchunks]
    key = pack_container(kidx.magic, kidx.version, kidx.header, kchunks)
    seg = pack_container(sidx.magic, sidx.version, sidx.header, [(schunks[0][0], key)] + schunks[1:])
    clip = pack_container(vidx.magic, vidx.version, vidx.header, [(vchunks[0][0], seg)] + vchunks[1:])
    with pytest.raises(FormatError, match=r"z.gsv: (frame 0|segment 0)"):
        _open_and_decode(clip, "z.gsv")


def _open_and_decode(data: bytes, name: str) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        p = os.path.join(d, name)
        with open(p, "wb") as f:
            f.write(data)
        with VideoReader(p) as r:
            r.frame(0)


# ---------------------------------------------------------------------- directories, empty files
def test_directories_and_empty_files(tmp_path):
    for fn in (lgs.read_lgs, gsi.read_gsi, read_m3, VideoReader):
        with pytest.raises(FormatError, match="directory"):
            fn(tmp_path)
    (tmp_path / "e.splat").write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        dotsplat.read(tmp_path / "e.splat")
    (tmp_path / "e.sog").write_bytes(b"")
    with pytest.raises(FormatError, match="empty"):
        sog.read(tmp_path / "e.sog")


# ---------------------------------------------------------------------- writers refuse NaN/Inf
def test_every_writer_refuses_non_finite_values():
    bad = _scene(20, 1)
    bad.means[3, 1] = float("nan")
    inf = _scene(20, 1)
    inf.sh_rest[5, 0, 0] = float("inf")
    writers = {
        "ply": ply.encode, "splat": dotsplat.encode, "spz": spz.encode, "sog": sog.encode,
        "lgs": lambda s: lgs.encode(s, config=lgs.QuantConfig(kmeans_iters=1)),
        "gsv": lambda s: encode_video([s, s], VideoSettings(gop=2)),
        "m3": lambda s: encode_m3(Memory(s.with_extras(**{QUERY_EXTRA: torch.zeros(20, 4)}), _memory().models)),
    }
    for name, write in writers.items():
        for s in (bad, inf):
            with pytest.raises(ValueError, match="non-finite"):
                write(s)
    g = _image_gaussians()
    g.colors[0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        gsi.encode(g)
    mem = _memory()
    mem.models[0].bank[0, 0] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        encode_m3(mem)
    q = _memory()
    q.scene.extras[QUERY_EXTRA][0, 0] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        encode_m3(q)


def test_render_image_cli_max_pixels(tmp_path, capsys):
    import splat.cli as cli

    src = tmp_path / "a.gsi"
    src.write_bytes(gsi.encode(_image_gaussians()))  # 32 x 24
    assert cli.main(["render-image", str(src), "-o", str(tmp_path / "huge.png"), "--scale", "5000"]) == 2
    err = capsys.readouterr().err
    assert "pixels" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "huge.png").exists()
    argv = ["render-image", str(src), "-o", str(tmp_path / "x2.png"), "--scale", "2"]
    assert cli.main(argv + ["--max-pixels", str(64 * 48 - 1)]) == 2
    assert cli.main(argv + ["--max-pixels", str(64 * 48)]) == 0 and (tmp_path / "x2.png").exists()


def test_gsv_sparse_update_bomb_refused(seeds):
    """A tracked segment whose every frame 'updates' all Gaussians, coded in a few bytes."""
    idx, chunks = _parts(seeds["gsv"])
    sidx, schunks = _parts(chunks[0][1])
    n, frames = 65_536, 20_000
    parts = dict(schunks)
    parts.update({
        "KEYF": _lgs_bomb(n),  # 65,536 Gaussians in ~1 KB: within the keyframe's own cap
        "JIDX": one_symbol_stream(1),
        "JTRF": channels(frames - 1, 6),
        "POSU": pack_arrays(encode_ints(np.full(frames - 1, n)), one_symbol_stream(n * (frames - 1)),
                            channels(n * (frames - 1), 3)),
    })
    header = {**sidx.header, "frames": frames, "count": n, "joints": 1, "k": 1}
    seg = pack_container(sidx.magic, sidx.version, header, [(t, parts[t]) for t, _ in schunks])
    _bounded(lambda: DecodedSegment(seg), seconds=10, mib=200)  # was a 9.8 GiB allocation
