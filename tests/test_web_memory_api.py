"""`viewer/memory_web.py` without a browser: the text-query endpoint's answers to good and bad
requests and to a failing encoder, the scene a `.m3` references as the server and `splat
publish` see it, and the refusals (a reference leading outside, two files at one name)."""
from __future__ import annotations

import json
import sys
import types

import pytest
import torch

from compress.memory.m3file import encode_m3, write_m3
from splat.errors import FormatError, UsageError
from splat.scene import GaussianScene
from viewer.memory_web import TextQueryApi
from viewer.site import scene_files
from viewer.site import make_assets, publish


def _memory(n: int = 32):
    from compress.memory import QUERY_EXTRA, Memory, ModelMemory

    g = torch.Generator().manual_seed(0)
    scene = GaussianScene.random(n, seed=0)
    model = ModelMemory("clip", 0, 4, torch.randn(5, 8, generator=g), torch.randn(4, 8, generator=g), 0.05, True, (8, 8), (2, 2))
    return Memory(scene.with_extras(**{QUERY_EXTRA: torch.randn(n, 4, generator=g)}), [model])


@pytest.fixture
def encoders(monkeypatch):
    mod = types.ModuleType("memory_api_test_encoders")
    mod.good = lambda text: torch.full((8,), float(len(text)))
    mod.nan = lambda text: [float("nan")] * 8

    def boom(text):
        raise RuntimeError("model not loaded")

    mod.boom = boom
    monkeypatch.setitem(sys.modules, mod.__name__, mod)
    return mod.__name__


def test_text_query_answers(encoders):
    api = TextQueryApi(f"{encoders}:good")
    status, reply = api.answer(json.dumps({"text": " abc ", "model": "clip"}).encode())
    assert status == 200 and reply == {"vector": [3.0] * 8, "model": "clip", "dim": 8}
    assert api.advertise() == {"url": "query", "encoder": f"{encoders}:good"}
    for body in (b"\xff", b"[1]", b'{"text": ""}', b'{"text": "   "}', b'{"text": 1}', b'{"text": "a", "model": 3}',
                 json.dumps({"text": "a" * 2001}).encode(), b"[" * 100_000):
        status, reply = api.answer(body)
        assert status == 400 and reply["error"], body[:40]
    status, reply = TextQueryApi(f"{encoders}:boom").answer(b'{"text": "a"}')
    assert status == 500 and "model not loaded" in reply["error"]
    status, reply = TextQueryApi(f"{encoders}:nan").answer(b'{"text": "a"}')
    assert status == 500 and "finite" in reply["error"]
    with pytest.raises(UsageError):
        TextQueryApi("no_such_module_for_memory_api:f")


def test_referenced_scene_is_served_and_published_beside_the_m3(tmp_path):
    mem = _memory()
    (tmp_path / "scenes").mkdir()
    scene = tmp_path / "scenes" / "s.spz"
    from splat.io import write_scene

    write_scene(mem.scene.replace(extras={}), scene)
    write_m3(mem, tmp_path / "a.m3", embed_scene=False, scene_path=scene)
    write_m3(mem, tmp_path / "b.m3")  # embedded: nothing more to serve
    assets = make_assets([tmp_path / "a.m3", tmp_path / "b.m3"])
    assert scene_files(assets) == {"assets/scenes/s.spz": scene.resolve()}
    site = publish([tmp_path / "a.m3", tmp_path / "b.m3"], tmp_path / "site")
    assert (site / "assets" / "scenes" / "s.spz").read_bytes() == scene.read_bytes()

    # a reference leading outside the .m3's folder is refused, by name
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "c.m3").write_bytes(encode_m3(mem, embed_scene=False, scene_ref="../scenes/s.spz",
                                                      scene_sha256="0" * 64))
    with pytest.raises(FormatError, match="c.m3"):
        scene_files(make_assets([tmp_path / "sub" / "c.m3"]))
    # a referenced scene that would take another asset's name (a different file called b.m3)
    (tmp_path / "d.m3").write_bytes(encode_m3(mem, embed_scene=False, scene_ref="b.m3", scene_sha256="0" * 64))
    (tmp_path / "other").mkdir()
    write_m3(mem, tmp_path / "other" / "b.m3", query_bits=6)
    with pytest.raises(UsageError, match="another asset"):
        scene_files(make_assets([tmp_path / "d.m3", tmp_path / "other" / "b.m3"]))
    assert scene_files(make_assets([tmp_path / "d.m3", tmp_path / "b.m3"])) == {}  # the same file: served once
