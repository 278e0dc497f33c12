"""Feature memories (`.m3`) in the web player, in headless Chromium (WebGL through SwiftShader),
driven through `<splat-player>`'s scripting API.

A query (a Gaussian's own feature, the Gaussian under a screen point, or a text through
`splat view --web --encoder`'s `POST /api/query`) gives every Gaussian's similarity computed in
the page; it must equal `compress.memory.gaussian_similarity` within float32 rounding, and it
must recolour the splats on screen (and clearing must restore them). Matches export as the PLY
the Python writer writes. A `.m3` referencing a real 152,746-Gaussian scene, published with
`splat publish`, draws its first frame from a static Range server (the time is printed), and a
changed scene file is refused by its SHA-256. A foreign Origin on /api/query gets 403.
"""
from __future__ import annotations

import json
import shutil
import sys
import textwrap
import time
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import shared_file
from range_server import RangeFolderServer
from test_web_player_browser import load, open_page, settled_shot
from viewer.site import publish
from viewer.web_server import serve_web
from viewer_browser import checked_chromium, client_page_marks

pytestmark = client_page_marks()

ENCODER_DIM = 24  # the "clip" model's D
TOL = 2e-6  # float32 rounding of a cosine (TypeScript: float64 attention stored as float32; torch: float32)
PLAYER = "document.querySelector('splat-player')"


@pytest.fixture(scope="module")
def browser():
    with checked_chromium() as b:
        yield b


def _memory(scene, seed: int = 0):
    """A two-model memory on ``scene``: clustered queries (so a query lights up a region), random banks."""
    from compress.memory import QUERY_EXTRA, Memory, ModelMemory

    g = torch.Generator().manual_seed(seed)
    n = len(scene)
    centres = scene.means[torch.randperm(n, generator=g)[:6]]
    label = torch.cdist(scene.means.float(), centres.float()).argmin(dim=1)
    q = torch.cat([torch.nn.functional.one_hot(label, 6).float(), torch.zeros(n, 4)], 1) + 0.05 * torch.randn(n, 10, generator=g)
    models = []
    for name, off, qd, dim, k, temp in (("clip", 0, 6, ENCODER_DIM, 12, 0.05), ("dino", 6, 4, 16, 9, 0.1)):
        bank = torch.randn(k, dim, generator=g)
        proj = torch.randn(qd, dim, generator=g)
        if name == "clip":
            proj = bank[:qd].clone()
        models.append(ModelMemory(name, off, qd, bank, proj, temp, True, (480, 640), (30, 40)))
    return Memory(scene.replace(extras={}).with_extras(**{QUERY_EXTRA: q}), models)


def _python_scores(mem, model: str, vector) -> np.ndarray:
    from compress.memory.query import gaussian_similarity

    return gaussian_similarity(mem, torch.as_tensor(vector, dtype=torch.float32), model).numpy()


def _features(mem, model: str) -> np.ndarray:
    from compress.memory.query import gaussian_features

    return gaussian_features(mem, model).numpy()


@pytest.fixture(scope="module")
def encoder(tmp_path_factory):
    """A text encoder module (``web_text_encoder_m3:encode``): a fixed vector [24] per text."""
    d = tmp_path_factory.mktemp("encoder")
    (d / "web_text_encoder_m3.py").write_text(textwrap.dedent(f"""
        import hashlib
        import torch

        def encode(text):
            seed = int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "little")
            return torch.randn({ENCODER_DIM}, generator=torch.Generator().manual_seed(seed))
    """))
    sys.path.insert(0, str(d))
    yield "web_text_encoder_m3:encode"
    sys.path.remove(str(d))
    sys.modules.pop("web_text_encoder_m3", None)


def _post(url: str, body: bytes, origin: str | None, ctype: str = "application/json") -> tuple[int, bytes]:
    req = urllib.request.Request(url, data=body, method="POST", headers={"Content-Type": ctype})
    if origin is not None:
        req.add_header("Origin", origin)
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _shot(page) -> np.ndarray:
    return settled_shot(page).astype(np.float64)


def test_queries_recolour_and_match_compress_memory(browser, tmp_path, encoder):
    """Embedded scene (a real SH-3 scene, 4,721 Gaussians), two models: a Gaussian's feature, a
    screen point, a model switch, a text query, only-matches, export and clear; /api/query guards."""
    from compress.memory.m3file import read_m3, write_m3
    from splat.io import read_scene, write_scene

    scene = read_scene(shared_file("scenes", "fruit_drops_sh3.ply"))
    path = tmp_path / "fruit.m3"
    write_m3(_memory(scene), path)
    mem = read_m3(path)  # the dequantised memory the page decodes
    srv = serve_web([path], port=0, encoder=encoder)
    try:
        page, log = open_page(browser, srv.url)
        got = load(page, None)
        assert got["error"] is None and got["info"]["count"] == len(scene), got
        assert got["info"]["format"] == ".m3 feature memory"
        page.wait_for_function(f"{PLAYER}.textQueries", timeout=30_000)  # /api/assets advertises the encoder
        assert page.evaluate(f"{PLAYER}.memoryModels") == ["clip", "dino"]
        page.evaluate(f"{PLAYER}.setAttribute('controls', 'none')")
        # the pictures below are compared with each other: hold the drawing resolution where it
        # is (on a busy machine the view lowers it between shots; that is not what is tested)
        assert page.evaluate(f"(() => {{ const v = {PLAYER}.view; v.adaptScale = () => {{}}; return v.renderScale; }})()") > 0
        before = _shot(page)
        sent = dict(srv.bytes_sent)  # from here on, queries fetch nothing: only colours change, on the GPU

        # a Gaussian's own feature: every similarity as compress.memory computes it
        i = int(np.argmax(mem.scene.opacities.numpy()))
        q = page.evaluate(f"async i => {{ const q = await {PLAYER}.queryGaussian(i); return {{q, s: Array.from({PLAYER}.similarity)}}; }}", i)
        want = _python_scores(mem, "clip", _features(mem, "clip")[i])
        err = np.abs(np.asarray(q["s"]) - want).max()
        print(f"\npage vs compress.memory similarity: max |diff| {err:.2e} over {len(want):,} Gaussians")
        assert err < TOL, f"page vs compress.memory similarity differ by {err:.2e}"
        assert q["q"]["gaussian"] == i and q["q"]["model"] == "clip" and q["q"]["matches"] == int((want >= 0.8).sum())
        after = _shot(page)
        changed = np.abs(after - before).mean()
        assert changed > 3, f"the query changed the picture by only {changed:.2f} per channel"

        # a real mouse click on the canvas's centre, then queryAt on the same point: the same
        # Gaussian, and the same check
        page.evaluate(f"{PLAYER}.clearQuery()")
        page.mouse.click(160, 120)
        page.wait_for_function(f"{PLAYER}.memoryQuery !== null", timeout=30_000)
        clicked = page.evaluate(f"{PLAYER}.memoryQuery.gaussian")
        q = page.evaluate(f"async () => {{ const q = await {PLAYER}.queryAt(160, 120); return {{q, s: Array.from({PLAYER}.similarity)}}; }}")
        assert q["q"] is not None and q["q"]["gaussian"] == clicked, (clicked, q["q"])
        j = q["q"]["gaussian"]
        assert np.abs(np.asarray(q["s"]) - _python_scores(mem, "clip", _features(mem, "clip")[j])).max() < TOL

        # another model: the query runs again in its space
        s = page.evaluate(f"async () => {{ await {PLAYER}.setMemorySettings({{model: 'dino'}}); return Array.from({PLAYER}.similarity); }}")
        assert np.abs(np.asarray(s) - _python_scores(mem, "dino", _features(mem, "dino")[j])).max() < TOL
        page.evaluate(f"{PLAYER}.setMemorySettings({{model: 'clip'}})")

        # text through the server's encoder
        q = page.evaluate(f"async () => {{ const q = await {PLAYER}.queryText('a red fruit'); return {{q, s: Array.from({PLAYER}.similarity)}}; }}")
        vec = __import__("web_text_encoder_m3").encode("a red fruit")
        assert np.allclose(q["q"]["vector"], vec.numpy(), atol=0, rtol=1e-7)
        assert np.abs(np.asarray(q["s"]) - _python_scores(mem, "clip", vec)).max() < TOL

        # only matches hides the rest; export writes exactly the matches, as the Python writer does
        th = float(np.quantile(q["s"], 0.7))
        page.evaluate(f"{PLAYER}.setMemorySettings({{threshold: {th}, onlyMatches: false}})")
        shown = _shot(page)
        page.evaluate(f"{PLAYER}.setMemorySettings({{onlyMatches: true}})")
        only = _shot(page)
        assert np.abs(only - shown).mean() > 1
        ply = bytes(page.evaluate(f"Array.from({PLAYER}.exportMatches())"))
        keep = np.flatnonzero(np.asarray(q["s"], np.float32) >= np.float32(th))
        write_scene(mem.scene.replace(extras={})[torch.from_numpy(keep)], tmp_path / "want.ply")
        assert ply == (tmp_path / "want.ply").read_bytes()

        # clear: the scene's own colours again
        page.evaluate(f"{PLAYER}.clearQuery()")
        assert page.evaluate(f"{PLAYER}.similarity") is None
        back = np.abs(_shot(page) - before).mean()
        assert back < 0.5, f"clearing left the picture {back:.2f} per channel away"
        assert dict(srv.bytes_sent) == sent, "a query fetched something again"
        assert log.foreign() == [] and log.errors == [], (log.foreign(), log.errors)
        page.close()

        # /api/query: same origin answers, a foreign Origin, bad JSON, a wrong type and a big body do not
        api = srv.url + "api/query"
        own = srv.url.rstrip("/")
        status, body = _post(api, json.dumps({"text": "x", "model": "clip"}).encode(), own)
        assert status == 200 and len(json.loads(body)["vector"]) == ENCODER_DIM
        assert _post(api, b'{"text": "x", "model": "clip"}', "http://evil.example")[0] == 403
        assert _post(api, b"{not json", own)[0] == 400
        assert _post(api, b'{"text": 5}', own)[0] == 400
        assert _post(api, b'{"text": "x"}', own, ctype="text/plain")[0] == 415
        assert _post(api, json.dumps({"text": "x" * 40_000}).encode(), own)[0] == 413
        assert srv.refused["origin"] == 1
    finally:
        srv.stop()


def test_published_memory_of_a_large_scene_draws_and_checks_its_scene(browser, tmp_path):
    """biker (152,746 Gaussians, SPZ v4) referenced by a .m3, published with `splat publish`
    (the scene is copied beside it), served by a static Range server: the first frame draws and
    a query runs; the same site with the scene changed shows the SHA-256 error line."""
    from compress.memory.m3file import write_m3
    from splat.io import read_scene

    d = tmp_path / "src"
    d.mkdir()
    shutil.copyfile(shared_file("scenes", "biker.spz"), d / "biker.spz")
    scene = read_scene(d / "biker.spz")
    mem = _memory(scene, seed=1)
    write_m3(mem, d / "biker.m3", embed_scene=False, scene_path=d / "biker.spz")
    site = publish([d / "biker.m3"], tmp_path / "site")
    assert (site / "assets" / "biker.spz").read_bytes() == (d / "biker.spz").read_bytes()
    with RangeFolderServer(site) as srv:
        page, log = open_page(browser, srv.url + "index.html")
        t0 = time.perf_counter()
        got = load(page, None)
        wall = time.perf_counter() - t0
        assert got["error"] is None, got["error"]
        info = got["info"]
        assert info["count"] == 152_746
        assert info["bytesFetched"] == (site / "assets" / "biker.m3").stat().st_size + (site / "assets" / "biker.spz").stat().st_size
        page.wait_for_function(f"{PLAYER}.info.firstFrameMs !== null", timeout=30_000)
        first = page.evaluate(f"{PLAYER}.info.firstFrameMs")
        print(f"\n.m3 of 152,746 Gaussians (referenced SPZ v4): first frame {first / 1000:.2f} s in the page "
              f"(decode {info['decodeMs'] / 1000:.2f} s), {wall:.2f} s from load() here")
        t1 = time.perf_counter()
        q = page.evaluate(f"async () => {{ const q = await {PLAYER}.queryGaussian(0); return {{q, n: {PLAYER}.similarity.length}}; }}")
        print(f"first query (features of 152,746 Gaussians, then similarity): {time.perf_counter() - t1:.2f} s")
        assert q["n"] == 152_746 and q["q"]["matches"] >= 1
        assert page.evaluate(f"{PLAYER}.textQueries") is False  # a static host: no /api/query, no text box

        bad = bytearray((site / "assets" / "biker.spz").read_bytes())
        bad[-1] ^= 1
        (site / "assets" / "biker.spz").write_bytes(bytes(bad))
        got = load(page, "assets/biker.m3?again")
        assert got["error"] is not None and "SHA-256 mismatch" in got["error"] and got["error"].startswith("biker.m3"), got["error"]

        # references the readers refuse are refused in the page too, before any fetch
        from compress.memory.m3file import encode_m3
        from splat.scene import GaussianScene

        small = _memory(GaussianScene.random(16, seed=0))
        for i, ref in enumerate(["../biker.m3", "/assets/biker.spz", "http://evil.example/biker.spz", "sub/../../x.spz"]):
            (site / "assets" / f"bad{i}.m3").write_bytes(encode_m3(small, embed_scene=False, scene_ref=ref, scene_sha256="0" * 64))
            got = load(page, f"assets/bad{i}.m3")
            assert got["error"] is not None and got["error"].startswith(f"bad{i}.m3: ") and "scene reference" in got["error"], got["error"]
        assert log.foreign() == [], log.foreign()
        page.close()
