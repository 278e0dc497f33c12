"""Tiled fitting of large images (compress/image/tiles.py): the grid, the seams, the file, memory."""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from compress.image import compress_image, decode
from compress.image.imageio import load_image
from compress.image.quant import BitDepths, make_spec
from compress.image.tiles import tile_grid, use_tiles, widen_spec
from splat.errors import UsageError
from tests.conftest import shared_file

ROOT = Path(__file__).resolve().parents[1]
SIDE, TILE = 256, 128


def _kodak(side: int = SIDE) -> np.ndarray:
    img = load_image(shared_file("images", "kodak", "kodim05.png")).pixels
    return np.ascontiguousarray(img[:side, 200:200 + side])


def test_grid_cores_cover_the_image_once_and_regions_add_the_apron():
    for w, h, tile, apron in [(256, 256, 128, 16), (300, 170, 64, 8), (50, 1000, 128, 32)]:
        tiles = tile_grid(w, h, tile, apron)
        hits = np.zeros((h, w), int)
        for t in tiles:
            x0, y0, x1, y1 = t.core
            hits[y0:y1, x0:x1] += 1
            assert x1 - x0 <= tile and y1 - y0 <= tile
            assert t.region == (max(0, x0 - apron), max(0, y0 - apron), min(w, x1 + apron), min(h, y1 + apron))
            bx0, by0, bx1, by1 = t.bounds()
            assert (bx0 + t.region[0], by0 + t.region[1]) == (x0, y0)  # nothing above / left of the core
        assert (hits == 1).all()
        assert [t.core[:2] for t in tiles] == sorted((t.core[:2] for t in tiles), key=lambda p: (p[1], p[0]))
    with pytest.raises(ValueError, match="tile"):
        tile_grid(100, 100, 8, 4)


def test_tiles_are_chosen_above_the_threshold_and_refused_where_they_cannot_work():
    assert use_tiles(2048 * 2048, None, False, "sum") == 0
    assert use_tiles(2048 * 2049, None, False, "sum") == 1024
    assert use_tiles(4096 * 4096, None, True, "sum") == 0  # a PSNR target fits whole
    assert use_tiles(100, 64, False, "sum") == 64  # forced
    assert use_tiles(10**8, 0, False, "sum") == 0  # never
    with pytest.raises(ValueError, match="PSNR"):
        compress_image(np.zeros((64, 64, 3), np.float32), psnr=30, tile=32)
    with pytest.raises(ValueError, match="sum"):
        compress_image(np.zeros((64, 64, 3), np.float32), gaussians=10, mode="topk", tile=32)
    with pytest.raises(UsageError, match="tiles"):
        compress_image(np.zeros((4001, 4001), np.uint8), gaussians=10, tile=0)


def test_the_shared_quantiser_holds_the_first_tiles_ranges():
    g = torch.Generator().manual_seed(0)
    means = torch.rand(500, 2, generator=g) * 100
    scales = torch.rand(500, 2, generator=g) * 5 + 0.5
    colors = torch.rand(500, 3, generator=g)
    spec = make_spec(means, scales, colors, 100, 100, BitDepths(), torch.rand(500, generator=g))
    wide = widen_spec(spec, max_scale=20.0)
    assert wide.size_lo <= spec.size_lo and wide.size_hi >= spec.size_hi and wide.aniso_max >= spec.aniso_max
    assert wide.size_hi <= math.log(20.0) + 2 / 64
    assert all(a <= b for a, b in zip(wide.color_lo, spec.color_lo))
    assert all(a >= b for a, b in zip(wide.color_hi, spec.color_hi))


def _band_psnr(img: np.ndarray, target: np.ndarray, tile: int, half: int = 4) -> tuple[float, float]:
    """(PSNR within ``half`` px of the tile borders, PSNR elsewhere)."""
    h, w = target.shape[:2]
    border = np.zeros((h, w), bool)
    for x in range(tile, w, tile):
        border[:, x - half:x + half] = True
    for y in range(tile, h, tile):
        border[y - half:y + half] = True
    se = ((img.astype(np.float64) - target) ** 2).mean(2)
    return 10 * math.log10(1 / se[border].mean()), 10 * math.log10(1 / se[~border].mean())


@pytest.fixture(scope="module")
def fits():
    """(target, tiled result in 2 x 2 tiles, whole result) with the same Gaussian count."""
    target = _kodak()
    tiled = compress_image(target, gaussians=1500, schedule="fast", steps=100, tile=TILE)
    whole = compress_image(target, gaussians=1500, schedule="fast", steps=100, tile=0)
    return target, tiled, whole


def test_tiled_fit_has_no_seam_and_is_an_ordinary_gsi(fits):
    """2 x 2 tiles of a Kodak crop against one whole fit with the same Gaussian count: the error
    along the tile borders, relative to the interior, is no worse than the whole fit's by more
    than 0.5 dB (the tiles meet without a visible seam), and the total is within 1 dB."""
    target, tiled, whole = fits
    tb, ti = _band_psnr(tiled.gaussians.render().clamp(0, 1).numpy(), target, TILE)
    wb, wi = _band_psnr(whole.gaussians.render().clamp(0, 1).numpy(), target, TILE)
    assert (tb - ti) - (wb - wi) > -0.5, (tb, ti, wb, wi)
    assert tiled.psnr > whole.psnr - 1.0, (tiled.psnr, whole.psnr)
    # one ordinary file: the Python decoder gives back exactly the result's Gaussians
    back = decode(tiled.data)
    assert (back.width, back.height, len(back)) == (SIDE, SIDE, len(tiled.gaussians))
    for key in ("means", "scales", "rotations", "colors"):
        assert torch.equal(getattr(back, key), getattr(tiled.gaussians, key))


def test_tiled_file_decodes_bit_for_bit_in_the_web_decoder(fits):
    from web_harness import assert_bits_equal, node_decode

    data = fits[1].data
    (r,) = node_decode([("gsi", data, {})])
    assert r.error is None, r.error
    want = decode(data)
    assert r.values["count"] == len(want) and (r.values["width"], r.values["height"]) == (SIDE, SIDE)
    for key in ("means", "scales", "rotations", "colors"):
        assert_bits_equal(r.arrays[key], getattr(want, key).numpy(), key)


def test_tiled_fit_lands_on_the_bpp_target():
    target = _kodak(192)
    res = compress_image(target, bpp=0.5, schedule="fast", steps=60, tile=96)
    assert 0.45 <= res.bpp() <= 0.5, res.bpp()
    assert res.psnr > 15


_PEAK = """
import json, resource, sys, numpy as np, torch
from compress.image import compress_image
from compress.image.fit import FitConfig
side, tile = int(sys.argv[1]), int(sys.argv[2])
rng = np.random.default_rng(0)
y, x = np.mgrid[0:side, 0:side] / 37.0
img = np.stack([0.5 + 0.4 * np.sin(x) * np.cos(y), 0.5 + 0.3 * np.sin(1.7 * x + y), (x * y % 1.0)], -1)
img = (img + 0.05 * rng.random(img.shape)).clip(0, 1).astype(np.float32)
cfg = FitConfig(steps=4, warmup_end=0.0, refill_every=0)
compress_image(img[:64, :64], gaussians=20, config=cfg, tile=32)  # compile and warm up first
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
compress_image(img, gaussians=side * side // 200, config=cfg, tile=tile)
print(json.dumps({"delta_kb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base}))
"""


def _peak_delta_kb(side: int, tile: int) -> int:
    # big blocks straight from mmap, so a freed block leaves the resident size at once
    env = dict(os.environ, PYTHONPATH=str(ROOT), MALLOC_MMAP_THRESHOLD_="65536")
    out = subprocess.run([sys.executable, "-c", _PEAK, str(side), str(tile)], capture_output=True, text=True,
                         env=env, cwd=ROOT, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads(out.stdout.strip().splitlines()[-1])["delta_kb"]


@pytest.mark.slow
def test_tiled_peak_memory_grows_with_the_image_not_the_tile_count():
    """The peak beyond start-up holds the image and one tile, not every tile: four times the
    tiles (and pixels) costs less than four times the memory, and far less than a whole fit
    (measured: 7.3 MB, 21.6 MB, whole 63 MB)."""
    _peak_delta_kb(256, 128)  # a first child fills numba's cache: compiling peaks above any fit here
    small = _peak_delta_kb(256, 128)  # 2 x 2 tiles
    large = _peak_delta_kb(512, 128)  # 4 x 4 tiles
    whole = _peak_delta_kb(512, 0)    # the same image fitted whole
    assert large < 0.5 * whole, (small, large, whole)
    assert large < 3.5 * max(small, 1), (small, large, whole)


def test_cli_fits_in_tiles_and_refuses_what_tiles_cannot_do(tmp_path, monkeypatch, capsys):
    from compress.image.imageio import save_image
    from tests.test_image_codec import _cli

    src = tmp_path / "in.png"
    save_image(src, _kodak(96))
    out = tmp_path / "out.gsi"
    assert _cli(["fit-image", str(src), "-o", str(out), "--gaussians", "60", "--steps", "8", "--tile", "48"],
                monkeypatch) == 0
    g = decode(out.read_bytes())
    assert (g.width, g.height) == (96, 96) and 0 < len(g) <= 60
    capsys.readouterr()
    for extra in (["--psnr", "30", "--tile", "48"], ["--gaussians", "9", "--mode", "topk", "--tile", "48"],
                  ["--gaussians", "9", "--tile", "8"]):
        assert _cli(["fit-image", str(src), "-o", str(tmp_path / "x.gsi"), *extra], monkeypatch) == 2
        err = capsys.readouterr().err
        assert "--tile" in err and "Traceback" not in err, err
    assert not (tmp_path / "x.gsi").exists()


def test_an_image_within_one_tile_is_fitted_whole():
    target = _kodak(64)
    a = compress_image(target, gaussians=30, steps=6, tile=64)
    b = compress_image(target, gaussians=30, steps=6, tile=0)
    assert a.data == b.data
