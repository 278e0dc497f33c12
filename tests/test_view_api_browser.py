"""The local API against the browser's own frame, in headless Chromium: "render this view"
must show what the player shows (same camera convention, same settings), and the budget's
"keep: largest contribution" must keep the Gaussians the server ranked first.

Spark and the toolkit's renderer differ in detail (antialiasing, 8-bit splat encoding), so
the check is on the drawn region: its overlap (IoU) with the browser's and its centroid.
"""
from __future__ import annotations

import io
import time

import numpy as np
import pytest

from test_view_api import blob_scene
from viewer.web_server import serve_web
from viewer_browser import checked_chromium, client_page_marks, screenshot_rgb, watch

pytestmark = client_page_marks()

BACKGROUND = (32, 48, 64)
SIZE = (320, 240)


def drawn(img: np.ndarray, tol: int = 40) -> np.ndarray:
    return np.abs(img.astype(np.int16) - np.asarray(BACKGROUND, np.int16)).max(-1) > tol


def settled(page, timeout: float = 30.0) -> np.ndarray:
    shot = screenshot_rgb(page)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.4)
        again = screenshot_rgb(page)
        if np.array_equal(again, shot):
            return shot
        shot = again
    return shot


def compare(browser_img: np.ndarray, server_img: np.ndarray) -> tuple[float, float]:
    """(IoU of the drawn regions, distance of their centroids in pixels)."""
    a, b = drawn(browser_img), drawn(server_img)
    iou = float((a & b).sum() / max(1, (a | b).sum()))
    ca = np.array(np.nonzero(a)).mean(1)
    cb = np.array(np.nonzero(b)).mean(1)
    return iou, float(np.linalg.norm(ca - cb))


def test_render_this_view_and_contribution_match_the_browser(tmp_path):
    from PIL import Image

    from splat.io import write_scene

    scene_path = tmp_path / "ball.ply"
    write_scene(blob_scene(4000, seed=1), scene_path)
    renders = tmp_path / "renders"
    with checked_chromium() as browser, serve_web([scene_path], port=0, render_dir=renders,
                                                       settings={"budget": 4000, "sh": False}) as srv:
        page = browser.new_page(viewport={"width": SIZE[0], "height": SIZE[1]})
        page.set_default_timeout(120_000)
        log = watch(page)
        page.goto(srv.url)
        page.wait_for_function("() => { const p = document.querySelector('splat-player'); return p && (p.error || p.frame >= 0); }")
        assert page.evaluate("document.querySelector('splat-player').error") is None
        # `splat view --budget 4000 --no-sh` reach the page's settings and its controls
        got = page.evaluate("""() => { const p = document.querySelector('splat-player');
            return [p.settings, p.shadowRoot.querySelector('input[name=budget]').value, p.shadowRoot.querySelector('input[name=sh]').checked]; }""")
        assert got[0]["budget"] == 4000 and got[0]["sh"] is False and got[1] == "4000" and got[2] is False, got
        # the controls exist only because the page came from `splat view`
        assert page.evaluate("!!document.querySelector('splat-player').shadowRoot.querySelector('select[name=keep]')")
        page.evaluate("""bg => { const p = document.querySelector('splat-player');
            p.setAttribute('controls', 'none'); p.setSettings({background: bg}); }""",
                      "#%02x%02x%02x" % BACKGROUND)
        # an off-centre view, so a flipped axis would show
        page.evaluate("""() => { const v = document.querySelector('splat-player').view;
            v.camera.position.set(0.6, -0.4, -3.2); v.controls.target.set(0.25, 0.1, 0); v.controls.update(); v.invalidate(); }""")
        shot = settled(page)
        req = page.evaluate("document.querySelector('splat-player').viewApi.request()")
        assert req["width"] == SIZE[0] and req["height"] == SIZE[1] and req["sh"] is False
        name = page.evaluate("async () => (await document.querySelector('splat-player').viewApi.renderView({download: false})).name")
        server = np.asarray(Image.open(renders / name).convert("RGB"))
        assert server.shape == shot.shape
        iou, dist = compare(shot, server)
        assert 0.02 < drawn(shot).mean() < 0.8
        print(f"render this view vs browser: IoU {iou:.3f}, centroid {dist:.2f} px")
        assert iou > 0.9 and dist < 2, (iou, dist)

        # keep the 300 largest contributions: the page hides the rest, as the server's render does
        page.evaluate("""async () => { const p = document.querySelector('splat-player');
            const b = p.shadowRoot.querySelector('input[name=budget]'); b.value = '300';
            b.dispatchEvent(new Event('input')); await p.viewApi.setKeep('contribution'); }""")
        assert page.evaluate("document.querySelector('splat-player').error") is None
        shot2 = settled(page)
        req2 = page.evaluate("document.querySelector('splat-player').viewApi.request()")
        assert req2["keep"] == "contribution" and req2["budget"] == 300
        name2 = page.evaluate("async () => (await document.querySelector('splat-player').viewApi.renderView({download: false})).name")
        server2 = np.asarray(Image.open(renders / name2).convert("RGB"))
        iou2, dist2 = compare(shot2, server2)
        assert drawn(shot2).mean() < 0.9 * drawn(shot).mean()  # fewer Gaussians drawn
        print(f"keep 300 largest contributions: IoU {iou2:.3f}, centroid {dist2:.2f} px")
        assert iou2 > 0.85 and dist2 < 3, (iou2, dist2)
        # back to "most significant": every Gaussian's opacity is restored
        page.evaluate("""async () => { const p = document.querySelector('splat-player');
            const b = p.shadowRoot.querySelector('input[name=budget]'); b.value = '0';
            b.dispatchEvent(new Event('input')); await p.viewApi.setKeep('significance'); }""")
        back = settled(page)
        assert compare(back, shot)[0] > 0.97
        assert sorted(p.name for p in renders.iterdir()) == ["ball_001.png", "ball_002.png"]
        assert not log.errors and not log.foreign()
