"""`make demo` step: serve a generated scene, open it in headless Chromium when one is
installed, and report the time to first frame (with a screenshot)."""
from __future__ import annotations

import os
import time
import urllib.request
from pathlib import Path

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
            return rows
        import sys

        sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
        from viewer_browser import FLAGS  # noqa: E402

        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
            page = browser.new_page(viewport={"width": 960, "height": 600})
            page.goto(srv.url)
            ttff = srv.wait_first_frame(300)
            page.wait_for_timeout(500)
            shot = out_dir / "viewer.png"
            page.screenshot(path=str(shot))
            browser.close()
        rows.append(("time to first frame", f"{ttff:.2f} s from start, browser launch included (headless Chromium, SwiftShader)"))
        rows.append(("screenshot", str(shot)))
    finally:
        srv.stop()
    return rows
