"""`make demo` step: serve a generated scene, open it in headless Chromium when one is
installed, and report the time to first frame (with a screenshot); then open the feature
memory the memory step wrote (``memory/blobs.m3``), click the red ball and report the
query's latency (click -> recoloured splats drawn by the tab)."""
from __future__ import annotations

import os
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np
import torch

CHROMIUM = "/usr/bin/chromium"


def _demo_scene(n: int = 20000):
    """A generated object: a torus of Gaussians with a colour ramp and some view-dependent colour."""
    from splat.scene import GaussianScene

    g = torch.Generator().manual_seed(0)
    u = torch.rand(n, generator=g) * 6.2832
    v = torch.rand(n, generator=g) * 6.2832
    R, r = 1.0, 0.35
    means = torch.stack([(R + r * torch.cos(v)) * torch.cos(u), r * torch.sin(v), (R + r * torch.cos(v)) * torch.sin(u)], 1)
    rgb = torch.stack([0.5 + 0.45 * torch.cos(u), 0.5 + 0.45 * torch.cos(u + 2.1), 0.5 + 0.45 * torch.cos(u + 4.2)], 1)
    scales = 0.035 * (0.5 + torch.rand(n, 3, generator=g))
    quats = torch.randn(n, 4, generator=g)
    op = 0.5 + 0.5 * torch.rand(n, generator=g)
    rest = 0.15 * torch.randn(n, 8, 3, generator=g)
    return GaussianScene.from_activated(means, quats, scales, op, rgb.clamp(0, 1), sh_rest=rest)


def run(out_dir: Path) -> list[tuple[str, str]]:
    from .scene_view import scene_asset_from_memory
    from .server import ViewerServer

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    scene = _demo_scene()
    srv = ViewerServer(scene_asset_from_memory(scene, name="generated torus"), port=0, log=None, t_start=t0)
    rows = [("server", f"{srv.url} (127.0.0.1 only), {len(scene):,} Gaussians, SH degree {scene.sh_degree}")]
    try:
        with urllib.request.urlopen(srv.url, timeout=30) as r:
            rows.append(("viewer page", f"HTTP {r.status}, {len(r.read()):,} bytes, bundled client"))
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            sync_playwright = None
        if sync_playwright is None or not os.path.exists(CHROMIUM):
            rows.append(("browser", "skipped: needs Debian's chromium and playwright (installed by `make test`)"))
            sync_playwright = None
        else:
            with sync_playwright() as pw:
                browser, page, ttff = _open_page(pw, srv)
                page.wait_for_timeout(500)
                shot = out_dir / "viewer.png"
                page.screenshot(path=str(shot))
                browser.close()
            rows.append(("time to first frame", f"{ttff:.2f} s from start, browser launch included (headless Chromium, SwiftShader)"))
            rows.append(("screenshot", str(shot)))
    finally:
        srv.stop()
    rows += memory_query(out_dir, sync_playwright)
    return rows


def _open_page(pw, srv, size: tuple[int, int] = (960, 600)):
    """Headless Chromium (the test suite's flags, from tests/viewer_browser.py) with one page on
    ``srv``: (browser, page, time to first frame in s) once the tab has drawn its first frame."""
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from viewer_browser import FLAGS  # noqa: E402

    browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.goto(srv.url)
    return browser, page, srv.wait_first_frame(300)


def memory_query(out_dir: Path, sync_playwright) -> list[tuple[str, str]]:
    """Open the demo's ``.m3`` in the viewer, click the red ball, report the query latency."""
    from splat.progress import human_bytes

    from .assets import open_asset
    from .server import ViewerServer

    m3 = out_dir.parent / "memory" / "blobs.m3"
    if not m3.is_file():
        return [("feature memory", f"skipped: {m3} not found (the memory step writes it)")]
    if sync_playwright is None:
        return memory_query_without_browser(m3)
    srv = ViewerServer(open_asset(m3), port=0, log=None, render_dir=out_dir)
    try:
        from viewer_browser import measure_click, project_point  # noqa: E402  (_open_page put tests/ on the path)

        from .scene_view import camera_to_pose
        from .server import camera_pose_to_viser

        with sync_playwright() as pw:
            browser, page, _ = _open_page(pw, srv)
            sess = srv.session(srv.client_ids()[0])
            cam0 = _left_ball_camera(srv.asset.cameras, 960, 600)
            if cam0 is not None:
                camera_pose_to_viser(sess.ctx.client, camera_to_pose(cam0, focus=srv.asset.prepared.center))
                deadline = time.monotonic() + 30
                while (time.monotonic() < deadline
                       and np.abs(np.asarray(sess.ctx.client.camera.position) - cam0.position.numpy()).max() > 1e-4):
                    time.sleep(0.05)
            cam = sess.view.camera()
            x, y = project_point(cam, (-0.8, 0.0, 0.0))  # the red ball of compress.memory.demo.blob_scene
            seconds, nbytes = measure_click(page, sess, x, y)
            r = sess.view.result
            page.wait_for_timeout(300)
            shot = out_dir / "viewer_memory.png"
            page.screenshot(path=str(shot))
            browser.close()
        n_match = int(sess.view.matches().sum())
        return [
            ("feature memory", f"{m3.name}: clicked pixel ({r.pixel[0]}, {r.pixel[1]}); {n_match:,} of "
                               f"{len(r.scores):,} Gaussians above {sess.view.threshold_value():.2f}; {shot}"),
            ("query latency", f"{seconds * 1000:.0f} ms click -> recoloured splats drawn (pick {r.ms['pick']:.0f} ms, "
                              f"similarity {r.ms['similarity']:.0f} ms, colours {r.ms['colors']:.0f} ms), "
                              f"{human_bytes(nbytes)} pushed"),
        ]
    finally:
        srv.stop()


def _left_ball_camera(cameras, width: int, height: int):
    """Of the memory's stored views (resized), one where the red ball is in the left part of the
    canvas, clear of the GUI panel on the right (None when there are no stored views)."""
    from viewer_browser import project_point

    best = None
    for c in cameras:
        c = c.resized(width, height)
        x, y = project_point(c, (-0.8, 0.0, 0.0))
        if 0.15 * width < x < 0.6 * width and 0.1 * height < y < 0.9 * height:
            return c
        best = best or c
    return best


def memory_query_without_browser(m3: Path) -> list[tuple[str, str]]:
    """The same query through the asset's API (no tab): pick the red ball in the first stored view."""
    from .assets import open_asset

    asset = open_asset(m3)
    try:
        cam = asset.cameras[0]
        c = cam.world_to_camera[:3, :3] @ torch.tensor([-0.8, 0.0, 0.0], dtype=torch.float64) + cam.world_to_camera[:3, 3]
        x = int(min(max(cam.fx * c[0] / c[2] + cam.cx, 0), cam.width - 1))
        y = int(min(max(cam.fy * c[1] / c[2] + cam.cy, 0), cam.height - 1))
        model = asset.model_names[0]
        t0 = time.perf_counter()
        vec = asset.pick(cam, x, y, model)
        t1 = time.perf_counter()
        scores = asset.scores(vec, model)
        t2 = time.perf_counter()
        asset.tint(scores, 0.8)
        t3 = time.perf_counter()
        return [("feature memory", f"{m3.name}: pixel ({x}, {y}) of view 0 (no browser: the viewer's query API)"),
                ("query latency", f"{(t3 - t0) * 1000:.0f} ms (pick {(t1 - t0) * 1000:.0f} ms, similarity incl. "
                                  f"decoding every Gaussian's feature once {(t2 - t1) * 1000:.0f} ms, "
                                  f"colours {(t3 - t2) * 1000:.0f} ms)")]
    finally:
        asset.close()
