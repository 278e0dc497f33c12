"""The version-2 .gsi streams: quadtree positions and context-modelled attributes round trip
bit-exactly, old version-1 files still decode, and hostile streams raise FormatError."""
from __future__ import annotations

import base64

import numpy as np
import pytest
import torch

from compress.container import pack_container, unpack_container
from compress.entropy import encode_ints
from compress.image import BitDepths, decode, encode
from compress.image.gsi import MAGIC, VERSION, layer_sizes, stream_sizes
from compress.image.model import ImageGaussians
from compress.image.quant import make_spec, quantize
from compress.image.streams import (decode_attributes, decode_positions, encode_attributes, encode_positions,
                                    tree_decode, tree_encode, tree_depth)
from splat.errors import FormatError
from splat.morton import morton_encode

# 40 Gaussians written by the version-1 encoder (commit c93c57e) from _gaussians(40, 24, 16, seed=5)
V1_FILE = base64.b64decode(
    "R1NJMQEAAABKAQAAeyJjaGFubmVscyI6MywiY291bnQiOjQwLCJkZWx0YSI6W10sImhlaWdodCI6MTYsImsiOjEwLCJsYXllcnMiOls1LDUs"
    "MTAsMjBdLCJtb2RlIjoic3VtIiwicXVhbnQiOnsiYW5pc29fYml0cyI6NywiYW5pc29fbWF4IjowLjgxMjUsImNvbG9yX2JpdHMiOls3LDYs"
    "Nl0sImNvbG9yX2hpIjpbMC44NzUsMC40MDYyNSwwLjM3NV0sImNvbG9yX2xvIjpbMC4yMTg3NSwtMC40NTMxMjUsLTAuMzkwNjI1XSwiY29s"
    "b3JfdHJhbnNmb3JtIjoieWNvY2ciLCJwb3Nfc3RlcCI6MC4yNSwic2l6ZV9iaXRzIjo3LCJzaXplX2hpIjoxLjEyNSwic2l6ZV9sbyI6LTAu"
    "MTU2MjV9LCJ3aWR0aCI6MjR9WtzybAEAAABHQVVTYwEAAAAAAAAVTPh4FNBj31QAKAACqgnABxYAtQnQBJ0I/gHJAs8KqQG6AkgAwQBVBncD"
    "XwGDAgsAhgBOCLkBRAIXAhkAPQFRASIC3wD/AQUBNQKlAHcBcwAzAC8FggCQAaAAWAAsACgAAS1CQ2BIP38uIj8UXVEEN3IaPA14QGFVNEpZ"
    "akpMaC8/NicHQF0KVAEsACgAAUhUOFBKNUA0UUY/IURDKD1XPC4+WTg7PUZIPBo1OwAqIy08b0IlICwsACgAATppO0UyMD0xT0QON0Q+WjEk"
    "TF07czM3P1ZbSUhCNzdEWEs6YkYeWWIsACgAAVJ0GVsaIXBjJioIPVgSYjUFRxgTIiVKKyITODMlbg1sHloWJnxBAGssACgAAQsfIyccGBE+"
    "Gy8wKycyKzc4GRIUHCYNOioBESIhJDsaGiEjOCsgMCwsACgAATojLio3LCMuASYPGC0NJBwUPxwjOCI7ICsUGRIrEwwtBRg1IioxDjA=")


def _gaussians(n: int, w: int, h: int, seed: int, clustered: bool = False) -> ImageGaussians:
    g = torch.Generator().manual_seed(seed)
    if clustered:  # most Gaussians near a few centres, as in a fitted image
        centres = torch.rand(8, 2, generator=g) * torch.tensor([w, h])
        means = centres[torch.randint(0, 8, (n,), generator=g)] + torch.randn(n, 2, generator=g) * 6
        means = means.clamp(torch.zeros(2), torch.tensor([w, h], dtype=torch.float32))
    else:
        means = torch.rand(n, 2, generator=g) * torch.tensor([w, h])
    return ImageGaussians(means, torch.rand(n, 2, generator=g) * 3 + 0.5, torch.rand(n, generator=g) * 6 - 3,
                          torch.rand(n, 3, generator=g), w, h)


def _params(g: ImageGaussians):
    return g.means, g.scales, g.rotations, g.colors


def test_version_1_files_still_decode():
    assert VERSION == 2 and unpack_container(V1_FILE, magic=MAGIC).version == 1
    g = _gaussians(40, 24, 16, seed=5)
    old, new = decode(V1_FILE), decode(encode(g, bits=BitDepths(pos_step=0.25)))  # the grid it was written on
    for a, b in zip(_params(old), _params(new)):
        assert torch.equal(a, b)


def test_newer_version_fails_clearly():
    c = unpack_container(V1_FILE, magic=MAGIC)
    data = pack_container(MAGIC, VERSION + 1, c.header, [("GAUS", c.get("GAUS"))])
    with pytest.raises(FormatError, match="version"):
        decode(data, path="new.gsi")


@pytest.mark.parametrize("dups", [False, True])
def test_quadtree_round_trip_is_exact(dups):
    rng = np.random.default_rng(1)
    depth = 9
    sizes = [7, 13, 40]
    xy = rng.integers(0, 1 << depth, (sum(sizes), 2))
    if dups:  # several Gaussians in one cell, and a whole layer in one cell
        xy[3:6] = xy[2]
        xy[7:20] = xy[7]
    codes = morton_encode(xy)
    starts = np.cumsum([0] + sizes[:-1])
    codes = np.concatenate([np.sort(codes[s:s + n]) for s, n in zip(starts, sizes)])
    masks, extra = tree_encode(codes, sizes, depth)
    assert ((masks >= 1) & (masks <= 15)).all() and (extra >= 0).all()
    leaves, per_layer = tree_decode(masks, sizes, depth)
    assert np.array_equal(np.repeat(leaves, extra + 1), codes) and per_layer.sum() == leaves.size
    kind, streams, nodes = encode_positions(codes, sizes, depth)
    assert np.array_equal(decode_positions(kind, streams, sizes, depth, nodes), codes)
    gaps = np.concatenate([np.diff(codes[s:s + n].astype(np.int64), prepend=0) for s, n in zip(starts, sizes)])
    assert np.array_equal(decode_positions("delta", [encode_ints(gaps)], sizes, depth, 0), codes)
    with pytest.raises(FormatError, match="cannot be in this file"):
        decode_positions("tree", streams, sizes, depth, sum(sizes) * depth + 1)
    with pytest.raises(FormatError, match="position tree"):
        tree_decode(np.concatenate([masks, [1]]), sizes, depth)
    with pytest.raises(FormatError, match="position tree"):
        tree_decode(np.where(np.arange(masks.size) == 0, 0, masks), sizes, depth)


def test_attribute_streams_round_trip_and_use_contexts():
    g = _gaussians(3000, 256, 192, seed=2, clustered=True)
    # a real-looking dependence: chroma follows luma, anisotropy follows size
    g.colors[:, 1] = g.colors[:, 0] * 0.8 + 0.05 * g.colors[:, 1]
    spec = make_spec(g.means, g.scales, g.colors, g.width, g.height, BitDepths(), g.rotations)
    q = quantize(spec, g.means.numpy(), g.scales.numpy(), g.rotations.numpy(), g.colors.numpy())
    sizes = layer_sizes(len(g))
    codes = np.sort(morton_encode(np.stack([q["px"], q["py"]], 1)))
    streams = encode_attributes(q, spec, 3, codes, sizes)
    back = decode_attributes(streams, spec, 3, codes, sizes)
    for k, v in back.items():
        assert np.array_equal(v, q[k]), k
    # the whole file round-trips bit-exactly and re-encodes to the same bytes
    data = encode(g, spec)
    d = decode(data)
    assert encode(d) == data
    # a corrupt attribute byte is a FormatError, never a crash or a silent change
    bad = bytearray(data)
    bad[-5] ^= 0x5A
    try:
        d2 = decode(bytes(bad), path="bad.gsi")
    except FormatError as e:
        assert "bad.gsi" in str(e)
    else:  # a flip that still decodes must decode to something else
        assert any(not torch.equal(a, b) for a, b in zip(_params(d2), _params(d)))


def test_bad_position_header_fields_raise_format_error():
    g = _gaussians(500, 64, 48, seed=3, clustered=True)
    data = encode(g, bits=BitDepths())
    c = unpack_container(data, magic=MAGIC)
    assert c.header["positions"] in ("tree", "delta")
    for key, value in [("tree_nodes", -1), ("tree_nodes", 10**9), ("tree_nodes", c.header["tree_nodes"] + 1),
                       ("positions", "zigzag"), ("positions", "delta" if c.header["positions"] == "tree" else "tree")]:
        h = dict(c.header, **{key: value})
        with pytest.raises(FormatError, match="x.gsi"):
            decode(pack_container(MAGIC, VERSION, h, [("GAUS", c.get("GAUS"))]), path="x.gsi")


def test_tree_depth_covers_the_grid():
    spec = make_spec(torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1, 3), 768, 512, BitDepths(pos_step=0.25))
    assert tree_depth(spec) == 12  # 768 px / 0.25 = 3072 cells + 1 edge <= 4096
    spec = make_spec(torch.zeros(1, 2), torch.ones(1, 2), torch.zeros(1, 3), 768, 512, BitDepths(pos_step=0.125))
    assert tree_depth(spec) == 13  # 6144 cells + 1 edge <= 8192


def test_stream_sizes_add_up_to_the_file():
    g = _gaussians(800, 96, 64, seed=4, clustered=True)
    for data in (encode(g, bits=BitDepths()), V1_FILE):
        parts = stream_sizes(data)
        assert sum(parts.values()) == len(data)
        assert list(parts)[-4:] == ["sv", "c0", "c1", "c2"] and ("pos" in parts) != ("tree" in parts)
