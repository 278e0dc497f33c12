"""`splat info` reads every format we write: scenes (.lgs included), .gsi images, .gsv videos, .m3 memories."""
from __future__ import annotations

import json

import pytest
import torch

import compress.describe as describe
from splat import GaussianScene
from splat.cli import main


def _info_json(path, capsys) -> dict:
    assert main(["info", str(path), "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_magic_bytes_match_the_codecs():
    from compress.image.gsi import MAGIC as GSI
    from compress.memory.m3file import MAGIC as M3
    from compress.video.codec import MAGIC as GSV

    assert describe.GSI.sniff(GSI) and describe.GSV.sniff(GSV) and describe.M3.sniff(M3)
    assert not describe.GSI.sniff(GSV)


def test_info_on_gsi(tmp_path, capsys):
    from compress.image.gsi import encode
    from compress.image.model import ImageGaussians

    g = torch.Generator().manual_seed(0)
    n, w, h = 120, 32, 24
    img = ImageGaussians(torch.rand(n, 2, generator=g) * torch.tensor([w, h]), torch.rand(n, 2, generator=g) + 0.5,
                         torch.rand(n, generator=g), torch.rand(n, 3, generator=g), w, h)
    path = tmp_path / "a.img"  # detected by magic bytes, not the extension
    path.write_bytes(encode(img, extra={"bit_depth": 16, "source": "x.png"}))
    d = _info_json(path, capsys)
    assert (d["format"], d["width"], d["height"], d["channels"], d["gaussians"]) == ("gsi", 32, 24, 3, 120)
    assert d["file_size"] == path.stat().st_size and d["source bit depth"] == 16
    assert d["bits per pixel"] == pytest.approx(path.stat().st_size * 8 / (32 * 24))
    assert main(["info", str(path)]) == 0
    assert "Gaussian image" in capsys.readouterr().out


def test_info_on_gsv_and_lgs(tmp_path, capsys):
    from compress.scene.codec import write_lgs
    from compress.video.codec import VideoSettings, write_video

    frames = [GaussianScene.random(200, sh_degree=1, seed=i) for i in range(4)]
    write_video(frames, tmp_path / "c.gsv", VideoSettings(fps=24, gop=2, tracked=False))
    d = _info_json(tmp_path / "c.gsv", capsys)
    assert (d["format"], d["frames"], d["fps"], d["segments"], d["gaussians"]) == ("gsv", 4, 24.0, 2, 200)
    write_lgs(frames[0], tmp_path / "s.lgs")
    d = _info_json(tmp_path / "s.lgs", capsys)
    assert d["format"] == "lgs" and d["gaussians"] == 200


def test_info_on_m3(tmp_path, capsys):
    from compress.memory.m3file import write_m3
    from compress.memory.memory import QUERY_EXTRA, Memory, ModelMemory

    g = torch.Generator().manual_seed(0)
    scene = GaussianScene.random(150, sh_degree=0, seed=1)
    model = ModelMemory("clip", 0, 4, torch.randn(20, 8, generator=g), torch.randn(4, 8, generator=g), 0.05, True,
                        (48, 64), (6, 8))
    write_m3(Memory(scene.with_extras(**{QUERY_EXTRA: torch.randn(150, 4, generator=g)}), [model]), tmp_path / "a.m3")
    d = _info_json(tmp_path / "a.m3", capsys)
    assert (d["format"], d["gaussians"], d["query channels"], d["scene"]) == ("m3", 150, 4, "embedded")
    assert d["models"] == ["clip (dim 8, query 4, bank 20)"]


def test_info_on_a_corrupt_gsi_is_one_line(tmp_path, capsys):
    (tmp_path / "bad.gsi").write_bytes(b"GSI1" + bytes(40))
    assert main(["info", str(tmp_path / "bad.gsi")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "bad.gsi" in err
