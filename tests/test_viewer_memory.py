"""Feature memories (.m3) in the viewer: opening, click-to-query through the view's own API,
the threshold and "show only matches", text queries, exports. No browser here (see
test_viewer_browser.py for the click in headless Chromium)."""
from __future__ import annotations

import contextlib
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch

from compress.memory import QUERY_EXTRA, Memory, ModelMemory, gaussian_similarity, pick_feature, read_m3, \
    render_features, render_queries, similarity, write_m3
from splat.camera import Camera
from splat.errors import FormatError, UsageError
from splat.scene import GaussianScene
from test_viewer import FakeSceneApi, unpack

W, H = 64, 48


def small_memory(n: int = 600, seed: int = 0) -> Memory:
    """A scene in front of ``camera()`` with random queries for two models (attention logits of
    order 10, as distilled memories have, so that float32 rounding stays small)."""
    g = torch.Generator().manual_seed(seed)
    scene = GaussianScene.random(n, sh_degree=1, seed=seed)
    q = torch.randn(n, 10, generator=g)
    models = [
        ModelMemory("clip", 0, 6, torch.randn(40, 24, generator=g) / 5, torch.randn(6, 24, generator=g) / 5, 0.05),
        ModelMemory("dino", 6, 4, torch.randn(25, 16, generator=g) / 4, torch.randn(4, 16, generator=g) / 4, 0.1),
    ]
    return Memory(scene.with_extras(**{QUERY_EXTRA: q}), models)


def camera() -> Camera:
    return Camera.look_at((0.3, -0.4, -3.2), (0, 0, 0), (0, -1, 0), fov_y_deg=50, width=W, height=H)


# ---------------------------------------------------------------------- a tab without a browser
class Handle:
    def __init__(self, value=None):
        self.value = value
        self.content = value
        self.disabled = False
        self.callbacks = []

    def on_update(self, fn):
        self.callbacks.append(fn)
        return fn

    on_click = on_update

    def set(self, value):
        """What a user's edit in the browser does: set the value, run the callbacks."""
        self.value = value
        for cb in self.callbacks:
            cb(None)

    def click(self):
        for cb in self.callbacks:
            cb(None)


class Gui:
    def __init__(self):
        self.controls: dict[str, Handle] = {}
        self.markdown: list[Handle] = []

    def add_folder(self, *_a, **_k):
        return contextlib.nullcontext()

    def add_markdown(self, content):
        h = Handle(content)
        self.markdown.append(h)
        return h

    def _add(self, label, value=None):
        self.controls[label] = Handle(value)
        return self.controls[label]

    def add_slider(self, label, min, max, step, initial_value, **_k):
        return self._add(label, initial_value)

    def add_dropdown(self, label, options, initial_value, **_k):
        return self._add(label, initial_value)

    def add_checkbox(self, label, initial_value, **_k):
        return self._add(label, initial_value)

    def add_text(self, label, initial_value, **_k):
        return self._add(label, initial_value)

    def add_button(self, label, **_k):
        return self._add(label)


class Scene(FakeSceneApi):
    def __init__(self):
        super().__init__()
        self.click_callbacks = []

    def on_click(self):
        def register(fn):
            self.click_callbacks.append(fn)
            return fn
        return register

    def set_background_image(self, *_a, **_k):
        pass


class Server:
    def __init__(self, render_dir: Path):
        from viewer.server import ViewerServer

        self.render_dir = render_dir
        self.save_render = lambda img, stem: ViewerServer.save_render(self, img, stem)
        self.lines: list[str] = []
        self.log = self.lines.append


class Ctx:
    """Stands in for viewer.server.ClientContext: the tab's camera is ``cam``."""

    def __init__(self, cam: Camera, render_dir: Path):
        self.gui, self.scene, self.server = Gui(), Scene(), Server(render_dir)
        self.client = types.SimpleNamespace(send_file_download=lambda *a: None)
        self.background = (0, 0, 0)
        self.notes: list[str] = []
        self.cam = cam

    def camera_state(self):
        """(position, wxyz, vertical fov, width, height) as viser reports a tab's camera."""
        import viser.transforms as vtf

        c2w = self.cam.camera_to_world.numpy()
        wxyz = vtf.SO3.from_matrix(c2w[:3, :3]).wxyz
        fov = 2 * np.arctan(0.5 * self.cam.height / self.cam.fy)
        return c2w[:3, 3], np.asarray(wxyz), float(fov), self.cam.width, self.cam.height

    def guard(self, fn):
        return fn

    def notify(self, title, body, **_k):
        self.notes.append(f"{title}: {body}")


def open_tab(memory: Memory, tmp_path: Path, encoder=None):
    from viewer.memory_view import memory_asset_from_memory

    asset = memory_asset_from_memory(memory, encoder=encoder, render_backend="auto")
    ctx = Ctx(camera(), tmp_path)
    view = asset.attach(ctx)
    return asset, ctx, view


def last_rgba(ctx) -> np.ndarray:
    return unpack(ctx.scene.buffers[-1])[2]


# ---------------------------------------------------------------------- tests
def test_m3_opens_embedded_and_referenced(tmp_path):
    from viewer.assets import open_asset
    from viewer.memory_view import MemoryAsset

    mem = small_memory()
    write_m3(mem, tmp_path / "emb.m3")
    from splat.io import write_scene

    write_scene(mem.scene.replace(extras={}), tmp_path / "scene.ply")
    write_m3(mem, tmp_path / "ref.m3", embed_scene=False, scene_path=tmp_path / "scene.ply")
    for name, where in (("emb.m3", "embedded"), ("ref.m3", "referenced: scene.ply")):
        asset = open_asset(tmp_path / name)
        assert isinstance(asset, MemoryAsset) and asset.info.count == len(mem.scene)
        assert asset.info.extra["scene"] == where and asset.model_names == ["clip", "dino"]
        assert torch.equal(asset.scene.means, mem.scene.means)
        asset.close()
    # the referenced scene changed: a clear error, not a wrong view
    (tmp_path / "scene.ply").write_bytes((tmp_path / "scene.ply").read_bytes() + b"\0")
    with pytest.raises(FormatError, match="SHA-256"):
        open_asset(tmp_path / "ref.m3")
    with pytest.raises(UsageError, match="cannot load text encoder"):
        open_asset(tmp_path / "emb.m3", encoder="no_such_module_xyz:f")


def test_scripted_click_equals_compress_memory_similarity(tmp_path):
    mem = small_memory()
    asset, ctx, view = open_tab(mem, tmp_path)
    try:
        cam = camera()
        feats = render_features(mem, cam, "clip")
        # a pixel where the rendered query is large (where it is near zero, its direction, and
        # so the decoded feature, is ill-conditioned: 1e-7 render differences would show)
        qn = render_queries(mem, cam)[..., mem.model("clip").slice].norm(dim=-1)
        y, x = np.unravel_index(int(torch.argmax(qn)), qn.shape)
        ctx.scene.click_callbacks[0](types.SimpleNamespace(screen_pos=((x + 0.5) / W, (y + 0.5) / H)))
        r = view.result
        assert r is not None and r.pixel == (x, y) and view.queries == 1
        ref_vec = pick_feature(feats, x, y)
        torch.testing.assert_close(r.vector, ref_vec, rtol=1e-4, atol=1e-5)
        # per-Gaussian similarity is compress.memory's; the pixel map of the same vector too
        torch.testing.assert_close(r.scores, gaussian_similarity(mem, ref_vec, "clip"), rtol=1e-4, atol=1e-5)
        sim = similarity(mem, cam, ref_vec, "clip", features=feats)
        assert abs(float(sim[y, x]) - 1.0) < 1e-4  # the clicked pixel is most similar to itself
        png = view.save_similarity_png()
        from PIL import Image

        from compress.memory import similarity_colors
        from viewer.splats import to_uint8

        np.testing.assert_array_equal(np.asarray(Image.open(png).convert("RGB")),
                                      to_uint8(similarity_colors(sim, view.threshold_value()).numpy()))
        # the tab got colours only: same geometry words, same count, RGB changed
        before, after = ctx.scene.buffers[0], ctx.scene.buffers[-1]
        assert view.layer.flush(10)
        after = ctx.scene.buffers[-1]
        assert after.shape == before.shape
        np.testing.assert_array_equal(after[:, :7], before[:, :7])
        assert not np.array_equal(after[:, 7], before[:, 7])
        # another model: the same pixel, that model's features
        ctx.gui.controls["Model"].set("dino")
        assert view.result.model == "dino" and view.queries == 2
        torch.testing.assert_close(view.result.vector, pick_feature(render_features(mem, cam, "dino"), x, y),
                                   rtol=1e-4, atol=1e-5)
    finally:
        view.detach()


def test_threshold_dims_and_show_only_hides(tmp_path):
    mem = small_memory()
    asset, ctx, view = open_tab(mem, tmp_path)
    try:
        r = view.query_pixel(W // 2, H // 2)
        th = float(torch.quantile(r.scores, 0.7))
        ctx.gui.controls["Similarity threshold"].set(th)
        assert view.layer.flush(10)
        match = (r.scores >= th).numpy()
        shown = view.layer.indices
        assert len(shown) == len(mem.scene)  # dimmed, not hidden
        rgba = last_rgba(ctx)
        own = (asset.prepared.base_rgb[shown] * 255)
        below = ~match[shown]
        # below the threshold: dimmed own colour (30 % of it over dark grey)
        expect = np.clip(0.3 * own[below] + 0.7 * 0.15 * 255 + 0.5, 0, 255).astype(np.uint8)
        assert np.abs(rgba[below, :3].astype(int) - expect).max() <= 1
        assert rgba[~below, :3].astype(int).sum() > 0
        ctx.gui.controls["Show only matches"].set(True)
        assert view.layer.flush(10)
        assert set(view.layer.indices.tolist()) == set(np.flatnonzero(match).tolist())
        assert len(ctx.scene.buffers[-1]) == int(match.sum())
        # a stricter threshold hides more, without a new query
        n_q = view.queries
        ctx.gui.controls["Similarity threshold"].set(float(torch.quantile(r.scores, 0.95)))
        assert view.layer.flush(10) and view.queries == n_q
        assert len(view.layer.indices) == int((r.scores >= view.threshold_value()).sum()) < int(match.sum())
        # export the matches as a scene file
        from splat.io import read_scene

        path = view.export(".ply")
        back = read_scene(path)
        assert len(back) == len(view.layer.indices)
        torch.testing.assert_close(back.means, mem.scene.means[torch.from_numpy(view.matches())])
        # clear: everything back in its own colours
        view.clear()
        assert view.layer.flush(10) and len(view.layer.indices) == len(mem.scene)
    finally:
        view.detach()


def test_text_queries_need_an_encoder(tmp_path):
    mem = small_memory()
    asset, ctx, view = open_tab(mem, tmp_path)
    try:
        assert "Text query" not in ctx.gui.controls
        assert any("--encoder" in (m.content or "") for m in ctx.gui.markdown)
        with pytest.raises(UsageError, match="--encoder"):
            view.query_text("chair")
    finally:
        view.detach()
    # an encoder plug-in: module:function, as `splat memory query --text`
    target = mem.models[0].bank[3]
    mod = types.ModuleType("fake_text_encoder_m3")
    mod.encode = lambda text: target if text == "chair" else -target
    sys.modules["fake_text_encoder_m3"] = mod
    try:
        from compress.memory import load_text_encoder

        asset, ctx, view = open_tab(mem, tmp_path, encoder=load_text_encoder("fake_text_encoder_m3:encode"))
        ctx.gui.controls["Text query"].value = "chair"
        ctx.gui.controls["Search text"].click()
        torch.testing.assert_close(view.result.scores, gaussian_similarity(mem, target, "clip"))
        with pytest.raises(UsageError, match="dims"):  # a 24-dim text vector for the 16-dim model
            ctx.gui.controls["Model"].set("dino")
    finally:
        sys.modules.pop("fake_text_encoder_m3", None)
        view.detach()


def test_per_gaussian_similarity_is_fast_for_115k():
    """<= 100 ms for 115k Gaussians once the model's features are decoded (median of 5, 1 thread)."""
    import time

    from viewer.memory_view import memory_asset_from_memory

    g = torch.Generator().manual_seed(1)
    n = 115_000
    scene = GaussianScene.random(n, seed=2)
    models = [ModelMemory("m", 0, 8, torch.randn(256, 64, generator=g), torch.randn(8, 64, generator=g))]
    mem = Memory(scene.with_extras(**{QUERY_EXTRA: torch.randn(n, 8, generator=g)}), models)
    asset = memory_asset_from_memory(mem)
    asset.gaussian_features("m")
    vec = torch.randn(64, generator=g)
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        s = asset.scores(vec, "m")
        tint = asset.tint(s, 0.5)
        times.append(time.perf_counter() - t0)
    assert tint.shape == (n, 3) and tint.dtype == np.uint8
    assert sorted(times)[2] < 0.1, times


def test_render_this_view_shows_the_heat_map(tmp_path):
    """'render this view' on a memory tab renders what the tab shows: its own colours before a
    query, the similarity tint after one, and only the matches with "show only matches"."""
    from splat.scene import rgb_to_sh_dc
    from viewer.scene_view import render_shown

    mem = small_memory()
    asset, ctx, view = open_tab(mem, tmp_path)
    try:
        assert view.layer.flush(10)
        before = view.render_view(ctx)
        r = view.query_pixel(W // 2, H // 2)
        th = float(torch.quantile(r.scores, 0.7))
        ctx.gui.controls["Similarity threshold"].set(th)
        assert view.layer.flush(10)
        tinted = view.render_view(ctx)
        assert tinted.shape == before.shape == (H, W, 3)
        assert np.abs(tinted.astype(int) - before.astype(int)).mean() > 2  # the heat map is visible
        # reference: the scene re-coloured with the tab's tint, rendered directly
        tint = asset.tint(r.scores, th)
        flat = mem.scene.with_sh_degree(0).replace(
            sh_dc=rgb_to_sh_dc(torch.from_numpy(tint.astype(np.float32) / 255.0)), extras={})
        ref = render_shown(flat, camera(), np.arange(len(mem.scene)), view.layer.settings, backend="auto")
        assert np.abs(tinted.astype(int) - ref.astype(int)).max() <= 2
        ctx.gui.controls["Show only matches"].set(True)
        assert view.layer.flush(10)
        only = view.render_view(ctx)
        keep = np.flatnonzero(r.scores.numpy() >= th)
        ref_only = render_shown(flat, camera(), keep, view.layer.settings, backend="auto")
        assert np.abs(only.astype(int) - ref_only.astype(int)).max() <= 2
        assert np.abs(only.astype(int) - tinted.astype(int)).mean() > 0.5  # fewer Gaussians drawn
    finally:
        view.detach()
