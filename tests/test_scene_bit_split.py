"""Per-class bit accounting of .lgs files (compress/scene/bit_split.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from compress.scene.bit_split import SHARED, class_split, value_bits
from compress.scene.codec import QuantConfig, decode, encode
from splat.scene import GaussianScene

GOLDEN = Path(__file__).parent / "data" / "scene_v2_golden.lgs"


def test_the_split_adds_up_to_the_file_and_coarse_gaussians_cost_less():
    data = GOLDEN.read_bytes()
    split = class_split(data)
    assert split.counts == {"0": 1000, "1": 1000}
    assert abs(sum(split.total(c) for c in ("0", "1", SHARED)) - len(data)) < 1e-6
    for tag in ("SCAL", "ROTV", "COLR"):  # stored 2 bits coarser in class 1
        assert split.bytes[tag]["1"] < 0.85 * split.bytes[tag]["0"], tag
    assert split.bytes["SHCB"] == {SHARED: split.bytes["SHCB"][SHARED]}
    assert split.bytes_per_gaussian(1) < split.bytes_per_gaussian(0)


def test_model_prices_match_the_coded_sizes():
    """The price of every value under its record's model sums to the record's real size."""
    records = []
    decode(GOLDEN.read_bytes(), on_channel=lambda tag, c, rec, v, ctx, n_ctx: records.append((tag, rec, v.copy(), ctx)))
    assert {r[1][0] for r in records} >= {0, 2}  # static and context-modelled records both seen
    for tag, rec, v, ctx in records:
        bits = value_bits(rec, v, ctx).sum()
        if rec[0] == 2 and len(rec) > 200:  # adaptive model: the rANS output is its cost + a few bytes
            assert abs(bits / 8 - len(rec)) < 0.02 * len(rec) + 12, tag
        assert np.isfinite(bits) and bits >= 0


def test_a_file_without_classes_has_one_class():
    g = torch.Generator().manual_seed(1)
    n = 500
    scene = GaussianScene(torch.randn(n, 3, generator=g), torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1),
                          -3 + 0.3 * torch.randn(n, 3, generator=g), torch.randn(n, generator=g),
                          torch.randn(n, 3, generator=g), torch.zeros(n, 0, 3))
    data, _ = encode(scene, None, QuantConfig())
    split = class_split(data)
    assert split.counts == {"0": n}
    assert abs(split.total("0") + split.total(SHARED) - len(data)) < 1e-6


def test_the_compress_summary_shows_the_class_split(tmp_path, capsys):
    """The default (fine-tuned) path writes precision classes; `splat compress` prints their split."""
    from conftest import shared_file
    from splat.cli import main

    src = shared_file("scenes", "fruit_drops_sh3.ply")
    out = tmp_path / "f.lgs"
    capsys.readouterr()
    rc = main(["compress", str(src), "-o", str(out), "--max-side", "64", "--steps", "3", "--max-seconds", "1"])
    text = capsys.readouterr().out
    assert rc == 0
    assert "Bytes per precision class" in text and "bytes per Gaussian" in text
    split = class_split(out.read_bytes())
    assert set(split.counts) == {"0", "1"} and split.counts["1"] > split.counts["0"]  # 75% coarser by default


def test_version3_files_split_over_every_declared_class():
    """A version-3 file declares any number of classes (precision.drops): each one is counted,
    the split still adds up to the file, and a coarser class costs less per Gaussian."""
    g = torch.Generator().manual_seed(3)
    n = 2000
    scene = GaussianScene(torch.randn(n, 3, generator=g), torch.nn.functional.normalize(torch.randn(n, 4, generator=g), dim=1),
                          -3 + 0.3 * torch.randn(n, 3, generator=g), torch.randn(n, generator=g),
                          torch.randn(n, 3, generator=g), torch.zeros(n, 0, 3))
    weights = torch.rand(n, generator=g).numpy()
    data, _ = encode(scene, weights, QuantConfig(max_drop=3))
    split = class_split(data)
    assert len(split.counts) >= 3 and sum(split.counts.values()) == n
    assert abs(sum(split.total(c) for c in [*split.counts, SHARED]) - len(data)) < 1e-6
    used = [c for c, k in split.counts.items() if k > 50]
    assert split.bytes_per_gaussian(used[-1]) < split.bytes_per_gaussian(used[0])
