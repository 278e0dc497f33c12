"""The viewer in real headless Chromium (WebGL through SwiftShader).

Every page asserts that it made no request outside loopback. Scenes stay small
(<= 20k splats drawn, 256-512 px) so the module runs in about a minute on 2 cores.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import ROOT, shared_file
from splat.camera import Camera
from splat.scene import GaussianScene
from viewer_browser import (
    CHROMIUM,
    FLAGS,
    RefusingProxy,
    coverage,
    killable_chromium,
    checked_chromium,
    screenshot_rgb,
    watch,
)

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

SCREENSHOT = ROOT / "docs" / "images" / "viewer.png"


def serve(path, *, port: int = 0, log=None, render_dir="splat_view_renders", background=(0, 0, 0), **opts):
    """The viser viewer on ``path`` (what `splat view` served before the web player)."""
    from viewer.assets import open_asset
    from viewer.server import ViewerServer

    asset = open_asset(path, **opts)
    return ViewerServer(asset, port=port, log=log, render_dir=render_dir, background=background)


# ---------------------------------------------------------------------- fixtures and helpers
@pytest.fixture(scope="module")
def browser():
    """Chromium whose outside requests land on a refusing proxy; asserts at the end that none were made."""
    with checked_chromium() as b:
        yield b


def render_backend() -> str:
    try:
        import render.cpu  # noqa: F401
        return "auto"
    except ImportError:
        return "reference"


def start(asset, **kw):
    from viewer.server import ViewerServer

    return ViewerServer(asset, port=0, log=None, **kw)


def open_tab(browser, srv, size=(384, 384)):
    """A new tab on ``srv``; returns (page, log, session) once the tab drew its first frame."""
    before = set(srv.client_ids())
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    log = watch(page)
    page.goto(srv.url)
    sess = wait_for(lambda: next((srv.session(i) for i in srv.client_ids() if i not in before), None), 120,
                    "the tab never connected")
    wait_for(lambda: sess.first_frame_s is not None, 90, "the tab never drew its first frame")
    return page, log, sess


def wait_for(fn, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = fn()
        if v:
            return v
        time.sleep(0.05)
    pytest.fail(f"timed out: {what}")


def settle(sess, page) -> None:
    """Everything pushed has reached the tab and been drawn (get_render is an in-order round
    trip that makes the client process its queue and sort), then one more animation frame."""
    view = sess.view
    if hasattr(view, "layer"):
        assert view.layer.flush(30)
    elif hasattr(view, "_worker"):
        assert view._worker.wait_idle(30)
    sess.ctx.client.get_render(height=32, width=32, transport_format="jpeg", timeout=60)
    page.wait_for_timeout(300)


def set_number(page, label: str, value) -> None:
    """Type ``value`` into the number box of the GUI control labelled ``label``."""
    row = page.locator("label", has_text=label).first.locator(
        "xpath=ancestor::*[.//input[not(@type='hidden')]][1]")
    box = row.locator("input:not([type=hidden])").first
    box.fill(str(value))
    box.press("Enter")


def set_camera(sess, cam: Camera) -> None:
    from viewer.scene_view import camera_to_pose
    from viewer.server import camera_pose_to_viser

    camera_pose_to_viser(sess.ctx.client, camera_to_pose(cam, focus=np.zeros(3)))
    pos = cam.position.numpy()
    wait_for(lambda: np.allclose(sess.ctx.client.camera.position, pos, atol=1e-4), 30, "camera did not move")


def check_clean(log, browser=None) -> None:
    assert log.foreign() == [], f"requests outside loopback: {log.foreign()}"
    assert log.errors == [], f"page errors: {log.errors}"
    if browser is not None:
        assert browser.proxy.page_requests() == [], f"pages tried to reach outside hosts: {browser.proxy.page_requests()}"


def assert_like_toolkit(shot: np.ndarray, sess, label: str) -> None:
    """The browser's picture matches the toolkit's render of the same view and settings."""
    ours = sess.view.render_view(sess.ctx)
    assert shot.shape == ours.shape, (shot.shape, ours.shape)
    assert abs(coverage(shot) - coverage(ours)) < 0.05, (label, coverage(shot), coverage(ours))
    diff = np.abs(shot.astype(float) - ours.astype(float)).mean()
    assert diff < 6.0, f"{label}: mean |browser - toolkit| = {diff:.2f} / 255"


def shell_object(n: int, sh_degree: int = 1, seed: int = 0) -> GaussianScene:
    """A generated object: Gaussians on a sphere shell coloured by direction, some SH."""
    g = torch.Generator().manual_seed(seed)
    d = torch.randn(n, 3, generator=g)
    d = d / d.norm(dim=1, keepdim=True)
    means = d * (0.8 + 0.1 * torch.rand(n, 1, generator=g))
    rgb = 0.15 + 0.7 * (d * 0.5 + 0.5)
    scales = torch.full((n, 3), 0.06) * (0.5 + torch.rand(n, 3, generator=g))
    quats = torch.randn(n, 4, generator=g)
    op = 0.4 + 0.55 * torch.rand(n, generator=g)
    k = (sh_degree + 1) ** 2 - 1
    rest = 0.25 * torch.randn(n, k, 3, generator=g)
    return GaussianScene.from_activated(means, quats, scales, op, rgb, sh_rest=rest)


# ---------------------------------------------------------------------- screenshot vs the toolkit's render
def test_screenshot_matches_toolkit_render(browser, tmp_path):
    from viewer.scene_view import scene_asset_from_memory

    backend = render_backend()
    n = 3000 if backend == "auto" else 300
    asset = scene_asset_from_memory(shell_object(n, sh_degree=1), render_backend=backend)
    srv = start(asset, render_dir=tmp_path)
    try:
        page, log, sess = open_tab(browser, srv, size=(320, 256))
        for k, (eye, label) in enumerate((((0.4, -0.6, -3.0), "front"), ((2.6, -1.2, 1.0), "side"))):
            set_camera(sess, Camera.look_at(eye, (0, 0, 0), (0, -1, 0), fov_y_deg=50, width=320, height=256))
            settle(sess, page)
            shot = screenshot_rgb(page)
            ours = sess.view.render_view(sess.ctx)
            assert coverage(shot) > 0.25, f"{label}: only {coverage(shot):.0%} of the canvas shows splats"
            assert_like_toolkit(shot, sess, label)
            assert np.abs(shot.reshape(-1, 3).mean(0) - ours.reshape(-1, 3).mean(0)).max() < 4.0
            if k == 1:  # the camera moved: SH colours were refreshed for the new position
                assert sess.view.layer.stats.sh_refreshes >= 1
        # "Render this view" writes the toolkit's render of exactly this view
        page.get_by_role("button", name="Render this view (PNG)").click()
        pngs = wait_for(lambda: list(srv.render_dir.glob("*.png")), 60, "no PNG was written")
        from PIL import Image

        np.testing.assert_array_equal(np.asarray(Image.open(pngs[0]).convert("RGB")), ours)
        check_clean(log, browser)
        page.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------- GUI
def test_gui_sliders_change_what_is_drawn(browser):
    from viewer.scene_view import scene_asset_from_memory

    asset = scene_asset_from_memory(shell_object(4000, sh_degree=2, seed=1))
    srv = start(asset)
    try:
        page, log, sess = open_tab(browser, srv, size=(384, 320))
        set_camera(sess, Camera.look_at((0.2, -0.5, -2.6), (0, 0, 0), (0, -1, 0), width=384, height=320))
        settle(sess, page)
        layer = sess.view.layer
        base = screenshot_rgb(page)
        c0 = coverage(base)
        assert c0 > 0.3

        set_number(page, "Splat scale", 0.3)
        wait_for(lambda: abs(layer.settings.splat_scale - 0.3) < 1e-6, 20, "splat scale did not reach the server")
        settle(sess, page)
        small = screenshot_rgb(page)
        assert coverage(small) < 0.75 * c0
        assert_like_toolkit(small, sess, "splat scale 0.3")

        set_number(page, "Splat scale", 1)
        set_number(page, "Opacity threshold", 0.9)
        wait_for(lambda: layer.settings.opacity_threshold > 0.85 and layer.settings.splat_scale == 1.0, 20,
                 "opacity threshold did not reach the server")
        settle(sess, page)
        assert layer.stats.shown == int((asset.prepared.opacities >= 0.9).sum())
        thin = screenshot_rgb(page)
        assert coverage(thin) < 0.9 * c0
        assert np.abs(thin.astype(float) - base.astype(float)).mean() > 3.0

        set_number(page, "Opacity threshold", 0)
        set_number(page, "Gaussian budget", 60)
        wait_for(lambda: layer.settings.budget == 60 and layer.settings.opacity_threshold == 0, 20,
                 "budget did not reach the server")
        settle(sess, page)
        assert layer.stats.shown == 60
        few = screenshot_rgb(page)
        assert coverage(few) < 0.8 * c0
        assert np.abs(few.astype(float) - base.astype(float)).mean() > 3.0
        assert_like_toolkit(few, sess, "budget 60")

        set_number(page, "Gaussian budget", 4000)
        wait_for(lambda: layer.settings.budget is None, 20, "budget reset did not reach the server")
        settle(sess, page)
        np.testing.assert_allclose(coverage(screenshot_rgb(page)), c0, atol=0.02)

        page.get_by_label("View-dependent colour (SH)").click()  # SH off: base colours only
        wait_for(lambda: not layer.settings.sh, 20, "SH toggle did not reach the server")
        settle(sess, page)
        flat = screenshot_rgb(page)
        assert np.abs(flat.astype(float) - base.astype(float)).mean() > 1.0
        assert "off" in sess.view.sh_md.content
        check_clean(log, browser)
        page.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------- several tabs, abrupt disconnect
def test_second_tab_and_abrupt_disconnect_leave_server_serving(browser):
    from viewer.scene_view import scene_asset_from_memory

    asset = scene_asset_from_memory(shell_object(6000, sh_degree=3, seed=2), min_sh_interval=0.02)
    srv = start(asset)
    try:
        page1, log1, s1 = open_tab(browser, srv, size=(320, 256))
        # a second browser process that we kill with SIGKILL while its tab receives updates
        with killable_chromium([browser.proxy.flag]) as (proc, cdp):
            victim_browser = browser.browser_type.connect_over_cdp(cdp)
            vpage = victim_browser.contexts[0].new_page()
            vlog = watch(vpage)
            before = set(srv.client_ids())
            vpage.goto(srv.url)
            s2 = wait_for(lambda: next((srv.session(i) for i in srv.client_ids() if i not in before), None), 60,
                          "second tab never connected")
            wait_for(lambda: s2.first_frame_s is not None, 90, "second tab never drew")
            assert len(srv.client_ids()) == 2
            # keep the victim busy: orbit its camera so SH colour pushes are in flight, then kill it
            stop = time.monotonic() + 1.0
            k = 0
            while time.monotonic() < stop:
                a = math.radians(7 * k)
                s2.ctx.client.camera.position = (3 * math.sin(a), -0.5, 3 * math.cos(a))
                s2.view.layer.update(splat_scale=1.0 + 0.01 * (k % 5))
                k += 1
                time.sleep(0.02)
            check_clean(vlog)
            proc.kill()
            proc.wait(timeout=30)
        wait_for(lambda: len(srv.client_ids()) == 1, 60, "the killed tab was never dropped")
        # the surviving tab still gets updates, and a new tab still loads
        s1.view.layer.update(budget=500)
        settle(s1, page1)
        assert s1.view.layer.stats.shown == 500
        page3, log3, s3 = open_tab(browser, srv, size=(320, 256))
        settle(s3, page3)
        assert coverage(screenshot_rgb(page3)) > 0.1
        assert len(srv.client_ids()) == 2
        for lg in (log1, log3):
            check_clean(lg)
        page1.close()
        page3.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------- 2D Gaussian images
class GaussianImageDouble:
    """An ImageModel test double: anisotropic 2D Gaussians (in units of the image size),
    summed in numpy, stored in importance order."""

    channels = 3

    def __init__(self, means, sigmas, angles, colors, width=96, height=64):
        self.means, self.sigmas, self.angles, self.colors = means, sigmas, angles, colors
        self.width, self.height = width, height

    def __len__(self):
        return len(self.means)

    def _k(self, lod):
        return max(1, round(lod * len(self)))

    def render(self, width, height, lod):
        ys, xs = np.mgrid[0:height, 0:width]
        u, v = (xs + 0.5) / width, (ys + 0.5) / height
        img = np.zeros((height, width, 3))
        for i in range(self._k(lod)):
            c, s = math.cos(self.angles[i]), math.sin(self.angles[i])
            du, dv = u - self.means[i, 0], v - self.means[i, 1]
            a = (c * du + s * dv) / self.sigmas[i, 0]
            b = (-s * du + c * dv) / self.sigmas[i, 1]
            img += np.exp(-0.5 * (a * a + b * b))[..., None] * self.colors[i]
        return np.clip(img, 0, 1)

    def ellipses(self, width, height, lod):
        k = self._k(lod)
        return self.means[:k] * [width, height], self.sigmas[:k] * [width, height], self.angles[:k]


def two_blob_image(n_small: int = 38) -> GaussianImageDouble:
    rng = np.random.default_rng(0)
    means = np.vstack([[0.25, 0.25], [0.75, 0.75], rng.uniform(0.05, 0.95, (n_small, 2))])
    sigmas = np.vstack([[0.12, 0.08], [0.12, 0.08], rng.uniform(0.01, 0.03, (n_small, 2))])
    angles = np.concatenate([[0.3, -0.3], rng.uniform(0, math.pi, n_small)])
    colors = np.vstack([[1.0, 0.1, 0.1], [0.1, 1.0, 0.1], rng.uniform(0.2, 1.0, (n_small, 3))])
    return GaussianImageDouble(means, sigmas, angles, colors)


def test_image_view_lod_resolution_overlay(browser, tmp_path):
    from viewer.assets import AssetInfo
    from viewer.image_view import ImageAsset

    model = two_blob_image()
    info = AssetInfo(path=None, format="test image", kind="image", count=len(model), file_size=None, decode_s=0.0)
    srv = start(ImageAsset(model, info), render_dir=tmp_path / "renders")
    try:
        page, log, sess = open_tab(browser, srv, size=(384, 288))
        view = sess.view
        settle(sess, page)
        shot = screenshot_rgb(page)
        assert view.last_image.shape == (64, 96, 3)
        # upright, not mirrored: the red blob is up-left of the green one on screen
        red = (shot[..., 0] > 150) & (shot[..., 1] < 90)
        green = (shot[..., 1] > 150) & (shot[..., 0] < 90)
        assert red.sum() > 200 and green.sum() > 200
        ry, rx = np.argwhere(red).mean(0)
        gy, gx = np.argwhere(green).mean(0)
        assert rx < gx - 40 and ry < gy - 20, ((rx, ry), (gx, gy))

        set_number(page, "LOD", 0.05)  # 2 of 40 Gaussians: the small ones vanish
        wait_for(lambda: abs(view.settings()[2] - 0.05) < 1e-6, 20, "LOD did not reach the server")
        settle(sess, page)
        np.testing.assert_allclose(view.last_image, (np.clip(model.render(96, 64, 0.05), 0, 1) * 255 + 0.5).astype(np.uint8), atol=1)
        assert np.abs(screenshot_rgb(page).astype(float) - shot.astype(float)).mean() > 1.0

        page.get_by_label("Show Gaussian ellipses").click()  # at native size, magnified on screen
        wait_for(lambda: view.settings()[3], 20, "overlay toggle did not reach the server")
        settle(sess, page)
        yellow = lambda im: ((im[..., 0] > 160) & (im[..., 1] > 140) & (im[..., 2] < 100)).sum()  # noqa: E731
        assert yellow(view.last_image) > 50
        assert yellow(screenshot_rgb(page)) > 200

        page.get_by_label("Resolution").click()
        page.get_by_role("option", name="384 × 256 (4×)", exact=True).click()
        wait_for(lambda: view.settings()[:2] == (384, 256), 20, "resolution did not reach the server")
        settle(sess, page)
        assert view.last_image.shape == (256, 384, 3)

        page.get_by_role("button", name="Render this view (PNG)").click()
        wait_for(lambda: list((tmp_path / "renders").glob("*.png")), 30, "no PNG was written")
        from PIL import Image

        png = np.asarray(Image.open(next((tmp_path / "renders").glob("*.png"))).convert("RGB"))
        np.testing.assert_array_equal(png, view.last_image)
        check_clean(log, browser)
        page.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------- real files, every asset type
def _scene_file(kind: str, tmp_path: Path) -> tuple[Path, dict]:
    """A real asset of ``kind`` and the viewer options to open it with (skip when unavailable)."""
    pytest.importorskip("splat.io", reason="scene readers (splat.io) not in this build")
    try:
        from splat.io import read_scene  # noqa: F401
    except ImportError:
        pytest.skip("splat.io.read_scene not in this build yet")
    if kind == "ply":  # real SH-3 scene, 4.7k Gaussians
        return shared_file("scenes", "fruit_drops_sh3.ply"), {}
    if kind == "spz":  # biker, 152k decoded; 20k drawn so the suite stays fast
        return shared_file("scenes", "biker.spz"), {"budget": 20000}
    if kind == "lgs":
        codec = pytest.importorskip("compress.scene.codec", reason="the .lgs scene codec is not in this build yet")
        from splat.io import read_scene

        out = tmp_path / "fruit_drops.lgs"
        codec.write_lgs(read_scene(shared_file("scenes", "fruit_drops_sh3.ply")), out)
        return out, {}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["ply", "spz", "lgs"])
def test_page_loads_scene_file(browser, tmp_path, kind):

    path, opts = _scene_file(kind, tmp_path)
    readme = kind == "spz" and (not SCREENSHOT.exists() or os.environ.get("SPLAT_UPDATE_SCREENSHOT"))
    bg = (36, 40, 48) if kind == "spz" else (0, 0, 0)
    srv = serve(path, port=0, log=None, render_dir=tmp_path / "renders", background=bg, **opts)
    try:
        page, log, sess = open_tab(browser, srv, size=(960, 600) if readme else (512, 384))
        settle(sess, page)
        info = srv.asset.info
        assert info.count > 0 and info.file_size == path.stat().st_size and info.decode_s > 0
        shot = screenshot_rgb(page)
        assert coverage(shot, background=bg) > 0.02, f"{path.name}: almost nothing drawn"
        if kind == "spz":  # the background colour option (biker leaves the corners empty)
            assert np.abs(shot[2, 2].astype(int) - bg).max() <= 3
        assert sess.view.layer.stats.shown == min(info.count, opts.get("budget", info.count))
        # the info panel shows the asset's numbers
        panel = page.inner_text("body")
        assert f"{info.count:,}" in panel and "bytes / Gaussian" in panel and "decode time" in panel
        if readme:
            from splat.atomic import atomic_path

            SCREENSHOT.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(SCREENSHOT) as tmp:  # the README's screenshot: GUI panel included,
                # viser's "software WebGL" notice (true of headless Chromium only) left out
                page.screenshot(path=str(tmp), type="png", style=".mantine-Notifications-root { display: none !important; }")
        check_clean(log, browser)
        page.close()
    finally:
        srv.stop()


def test_page_loads_gsi_file(browser, tmp_path):
    gsi = pytest.importorskip("compress.image.gsi", reason="the .gsi image codec is not in this build yet")
    from compress.image.model import ImageGaussians


    model = two_blob_image()
    w, h = 96, 64
    g = ImageGaussians(
        means=torch.tensor(model.means * [w, h], dtype=torch.float32),
        scales=torch.tensor(model.sigmas * [w, h], dtype=torch.float32),
        rotations=torch.tensor(model.angles, dtype=torch.float32),
        colors=torch.tensor(model.colors, dtype=torch.float32),
        width=w, height=h,
    )
    path = tmp_path / "blobs.gsi"
    path.write_bytes(gsi.encode(g))
    srv = serve(path, port=0, log=None)
    try:
        page, log, sess = open_tab(browser, srv, size=(384, 288))
        settle(sess, page)
        assert srv.asset.info.kind == "image" and srv.asset.info.count == len(model)
        shot = screenshot_rgb(page)
        red = (shot[..., 0] > 150) & (shot[..., 1] < 90)
        green = (shot[..., 1] > 150) & (shot[..., 0] < 90)
        assert red.sum() > 100 and green.sum() > 100
        assert np.argwhere(red).mean(0)[1] < np.argwhere(green).mean(0)[1]  # left of the green blob
        check_clean(log, browser)
        page.close()
    finally:
        srv.stop()


def test_camera_presets_and_reset(browser):
    from splat.camera import orbit_cameras
    from viewer.scene_view import scene_asset_from_memory, viser_to_camera

    scene = shell_object(2000, sh_degree=1, seed=3)
    presets = orbit_cameras(scene, 3, width=320, height=256, elevation_deg=35.0, phase_deg=40.0)
    asset = scene_asset_from_memory(scene, cameras=presets)
    srv = start(asset)
    try:
        page, log, sess = open_tab(browser, srv, size=(320, 256))
        page.get_by_label("Camera preset").click()
        page.get_by_role("option", name="2: orbit_002", exact=True).click()
        want = presets[2]
        wait_for(lambda: np.allclose(sess.ctx.client.camera.position, want.position.numpy(), atol=1e-3), 20,
                 "the preset did not move the camera")
        settle(sess, page)
        pos, wxyz, fov, w, h = sess.ctx.camera_state()
        got = viser_to_camera(pos, wxyz, fov, w, h)
        np.testing.assert_allclose(got.world_to_camera.numpy(), want.world_to_camera.numpy(), atol=2e-3)
        assert abs(got.fov_y - want.fov_y) < 1e-3
        assert_like_toolkit(screenshot_rgb(page), sess, "preset 2")

        set_number(page, "Background", "rgb(40, 60, 200)")  # the colour input takes CSS text
        wait_for(lambda: sess.ctx.background == (40, 60, 200), 20, "background did not reach the server")
        settle(sess, page)
        shot = screenshot_rgb(page)
        assert np.abs(shot[2, 2].astype(int) - (40, 60, 200)).max() <= 3, shot[2, 2]
        assert_like_toolkit(shot, sess, "blue background")  # the toolkit composites the same background

        page.get_by_role("button", name="Reset camera").click()
        home = asset.initial_view()
        wait_for(lambda: np.allclose(sess.ctx.client.camera.position, home.position, atol=1e-3), 20,
                 "reset did not move the camera home")
        check_clean(log, browser)
        page.close()
    finally:
        srv.stop()


def test_outside_requests_would_be_caught(browser):
    """The no-outside-traffic checks can fail: a page asking for an outside URL is recorded
    by the refusing proxy (nothing leaves the machine: the proxy answers 403 itself)."""
    probe = RefusingProxy()
    try:
        b2 = browser.browser_type.launch(executable_path=CHROMIUM, args=FLAGS + [probe.flag])
        try:
            page = b2.new_page()
            try:
                page.goto("http://outside.invalid/probe", timeout=15000)
            except Exception:
                pass
        finally:
            b2.close()
        assert any("outside.invalid" in r for r in probe.page_requests()), probe.requests
    finally:
        probe.close()


# ---------------------------------------------------------------------- volumetric video
def test_video_plays_and_frames_advance(browser, tmp_path):
    import re

    video = pytest.importorskip("compress.video", reason="the .gsv video codec is not in this build yet")

    base = shell_object(3000, sh_degree=1, seed=4)
    frames = [base.replace(means=base.means * 0.6 + torch.tensor([0.1 * k - 0.55, 0.0, 0.0])) for k in range(12)]
    path = tmp_path / "clip.gsv"
    path.write_bytes(video.encode_video(frames, video.VideoSettings(fps=8.0, gop=4)).data)
    srv = serve(path, port=0, log=None, paused=True, speed=0.5)  # 4 fps: a loop takes 3 s
    try:
        page, log, sess = open_tab(browser, srv, size=(320, 256))
        view = sess.view
        set_camera(sess, Camera.look_at((0.0, -0.3, -2.6), (0, 0, 0), (0, -1, 0), fov_y_deg=50, width=320, height=256))
        settle(sess, page)

        def counter() -> int:
            m = re.search(r"frame (\d+) of 12", page.inner_text("body"))
            return int(m.group(1)) if m else -1

        wait_for(lambda: counter() == 0, 20, "the GUI does not show frame 0")
        assert "Loop" in page.inner_text("body")
        first = screenshot_rgb(page)
        assert coverage(first) > 0.05, coverage(first)
        page.get_by_role("button", name="Play").click()
        wait_for(lambda: view.controller.playing, 20, "Play did not reach the server")
        wait_for(lambda: counter() >= 3, 60, "the frame counter in the GUI did not advance")
        page.get_by_role("button", name="Pause").click()
        wait_for(lambda: not view.controller.playing, 20, "Pause did not reach the server")
        settle(sess, page)
        assert view.controller.stats.shown >= 3 and view.frame_index >= 2, view.frame_index
        wait_for(lambda: counter() == view.frame_index, 10, "the GUI does not show the frame on screen")
        later = screenshot_rgb(page)
        # the splats moved across the canvas
        cols = lambda img: np.argwhere(np.abs(img.astype(int)).max(-1) > 12)[:, 1].mean()  # noqa: E731
        assert abs(cols(later) - cols(first)) > 5, (view.frame_index, cols(first), cols(later))
        assert_like_toolkit(later, sess, f"video frame {view.frame_index}")  # the frame the server says it shows
        panel = page.inner_text("body")
        assert "delivered" in panel and "buffer" in panel and "bitrate" in panel and "decode" in panel
        check_clean(log, browser)
        page.close()
    finally:
        srv.stop()


# ---------------------------------------------------------------------- feature memory: click to query
MEMORY_SCREENSHOT = ROOT / "docs" / "images" / "viewer_memory.png"


def save_panel_screenshot(page, path: Path, collapse: tuple[str, ...] = ()) -> None:
    """A screenshot for the docs with the GUI panel, its ``collapse`` folders folded (then
    unfolded again) and notifications hidden."""
    heads = [page.get_by_text(name, exact=True).first for name in collapse]
    for h in heads:
        h.click()
    box = heads[0].bounding_box() if heads else None
    if box is not None:  # back to the top of the panel
        page.mouse.move(box["x"], box["y"])
        page.mouse.wheel(0, -5000)
    page.wait_for_timeout(400)
    from splat.atomic import atomic_path

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        page.screenshot(path=str(tmp), type="png",
                        style=".mantine-Notification-root, .mantine-Notifications-root { display: none !important; }")
    for h in heads:
        h.click()


def test_memory_click_recolours_the_splats(browser, tmp_path):
    """A click on the canvas queries the memory at that pixel; the tab's colours change to the
    similarity heat map (the clicked cluster bright, the rest dimmed), and the toggle hides the rest."""
    from compress.memory.demo import blob_scene
    from viewer.memory_view import memory_asset_from_memory
    from viewer_browser import clustered_memory

    scene = blob_scene(n_per_object=600)  # ball, box, ring, floor: 600 Gaussians each, in that order
    mem, label = clustered_memory(scene, k=4, labels=torch.arange(len(scene)) // 600)
    asset = memory_asset_from_memory(mem, render_backend=render_backend())
    srv = start(asset, render_dir=tmp_path)
    try:
        size = (720, 420)
        page, log, sess = open_tab(browser, srv, size=size)
        cam = Camera.look_at((0.0, -1.6, -2.6), (0, 0, 0), (0, -1, 0), fov_y_deg=55, width=size[0], height=size[1])
        set_camera(sess, cam)
        settle(sess, page)
        before = screenshot_rgb(page)
        assert coverage(before) > 0.2
        # click the red ball (left of centre, clear of the GUI panel on the right)
        c = cam.world_to_camera[:3, :3] @ torch.tensor([-0.8, 0.0, 0.0], dtype=torch.float64) + cam.world_to_camera[:3, 3]
        px, py = float(cam.fx * c[0] / c[2] + cam.cx), float(cam.fy * c[1] / c[2] + cam.cy)
        assert 0 < px < 0.6 * size[0] and 0 < py < size[1]
        view = sess.view
        page.mouse.click(px, py)
        wait_for(lambda: view.queries >= 1, 60, "the click never reached the server as a query")
        settle(sess, page)
        if not MEMORY_SCREENSHOT.exists() or os.environ.get("SPLAT_UPDATE_SCREENSHOT"):
            save_panel_screenshot(page, MEMORY_SCREENSHOT, collapse=("Asset", "Splats"))
        after = screenshot_rgb(page)
        assert np.abs(after.astype(float) - before.astype(float)).mean() > 3.0, "colours did not change"
        r = view.result
        assert r.pixel is not None and abs(r.pixel[0] - px) <= 2 and abs(r.pixel[1] - py) <= 2
        # the clicked point's cluster is what matches
        assert bool((r.scores[label == 0] > 0.9).all()) and bool((r.scores[label != 0] < 0.5).all())
        # show only matches: fewer splats drawn, fewer pixels covered
        page.get_by_label("Show only matches").click()
        wait_for(lambda: sess.view.layer.stats.shown == int(view.matches().sum()), 30, "toggle did not hide")
        settle(sess, page)
        only = screenshot_rgb(page)
        assert coverage(only) < 0.8 * coverage(after)
        check_clean(log, browser)
        page.close()
    finally:
        srv.stop()
