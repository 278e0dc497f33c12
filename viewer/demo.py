"""`make demo` step: publish the demo's scene (``scene/torus_knot.lgs``) and clip
(``video/performer.gsv``) as a static site in ``demo_out/site/``, serve that folder with a
plain static server (no Range requests: the clip streams as one progressive download), and,
when Debian's Chromium and Playwright are installed, play both in headless Chromium: the
scene's first frame, the clip to its last frame; report the URL and the bytes each fetched.

Steps that ran before write the assets; run alone (``--only viewer``) the step makes small
stand-ins: a generated torus scene and a 12-frame clip of it moving.
"""
from __future__ import annotations

import functools
import http.server
import os
import sys
import threading
import time
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


def demo_assets(out_dir: Path) -> tuple[Path, Path]:
    """(scene, clip) the earlier demo steps wrote, or stand-ins written into ``out_dir``."""
    from splat.atomic import atomic_write_bytes

    scene = out_dir.parent / "scene" / "torus_knot.lgs"
    clip = out_dir.parent / "video" / "performer.gsv"
    if not scene.is_file():
        from splat.io import write_scene

        scene = out_dir / "torus.ply"
        write_scene(_demo_scene(), scene)
    if not clip.is_file():
        from compress.video import VideoSettings, encode_video

        base = _demo_scene(6000)
        frames = [base.replace(means=base.means + torch.tensor([0.05 * k, 0.0, 0.0])) for k in range(12)]
        clip = out_dir / "torus.gsv"
        atomic_write_bytes(clip, encode_video(frames, VideoSettings(fps=12.0, gop=6)).data)
    return scene, clip


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    """``python -m http.server``'s handler (no Range support), without the request log."""

    def log_message(self, format, *args) -> None:  # noqa: A002 - the base class's name
        pass


def static_server(folder: Path) -> http.server.ThreadingHTTPServer:
    """A plain static server on ``folder`` at 127.0.0.1, any free port (background thread)."""
    handler = functools.partial(_QuietHandler, directory=str(folder))
    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    srv.daemon_threads = True
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def run(out_dir: Path) -> list[tuple[str, str]]:
    from .site import publish

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene, clip = demo_assets(out_dir)
    site = publish([scene, clip], out_dir.parent / "site", force=True)
    total = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
    rows = [("site", f"{site}/: {scene.name} ({scene.stat().st_size:,} B) and {clip.name} ({clip.stat().st_size:,} B), "
                     f"{total:,} bytes with the player; any static host serves it")]
    srv = static_server(site)
    url = f"http://127.0.0.1:{srv.server_address[1]}/"
    rows.append(("served", f"{url} (a plain static server without Range, as `python -m http.server -d {site}`)"))
    try:
        try:
            from playwright.sync_api import sync_playwright
        except ImportError:
            sync_playwright = None
        if sync_playwright is None or not os.path.exists(CHROMIUM):
            rows.append(("browser", "skipped: needs Debian's chromium and playwright (installed by `make test`)"))
        else:
            rows += play_in_chromium(sync_playwright, url, scene, clip, out_dir)
    finally:
        srv.shutdown()
        srv.server_close()
    return rows


def play_in_chromium(sync_playwright, url: str, scene: Path, clip: Path, out_dir: Path) -> list[tuple[str, str]]:
    """Open each asset's page of the site in headless Chromium and play it; rows for the summary."""
    tests = str(Path(__file__).resolve().parents[1] / "tests")
    if tests not in sys.path:
        sys.path.insert(0, tests)
    from viewer_browser import FLAGS  # noqa: E402  (the test suite's flags: WebGL on the CPU, no outside requests)

    from .site import make_assets

    names = [a.name for a in make_assets([scene, clip])]
    rows = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS)
        try:
            page = browser.new_page(viewport={"width": 960, "height": 600})
            page.set_default_timeout(300_000)
            t0 = time.perf_counter()
            page.goto(url + names[0] + ".html")
            page.wait_for_function("() => { const p = document.querySelector('splat-player'); return p && (p.error || p.frame >= 0); }")
            got = page.evaluate("() => { const p = document.querySelector('splat-player'); return {e: p.error, i: p.info, b: p.bytesFetched}; }")
            if got["e"]:
                raise RuntimeError(f"the scene did not play: {got['e']}")
            shot = out_dir / "site_scene.png"
            page.wait_for_timeout(500)
            page.screenshot(path=str(shot))
            rows.append(("scene", f"{url}{names[0]}.html: {got['i']['count']:,} Gaussians ({got['i']['format']}), first frame "
                                  f"{time.perf_counter() - t0:.1f} s after opening the page; "
                                  f"{got['b']:,} bytes fetched of {scene.stat().st_size:,}; {shot}"))
            page.goto(url + names[1] + ".html")
            page.wait_for_function("() => { const p = document.querySelector('splat-player'); return p && (p.error || (p.info && p.info.frames)); }")
            frames = page.evaluate("document.querySelector('splat-player').info?.frames ?? 0")
            page.evaluate("() => { document.querySelector('splat-player').loop = false; }")
            page.wait_for_function(f"() => {{ const p = document.querySelector('splat-player'); return p.error || p.frame >= {frames - 1}; }}")
            got = page.evaluate("""() => { const p = document.querySelector('splat-player');
                return {e: p.error, b: p.bytesFetched, s: p.stats, f: p.frame}; }""")
            if got["e"]:
                raise RuntimeError(f"the clip did not play: {got['e']}")
            rows.append(("clip", f"{url}{names[1]}.html: played to frame {got['f'] + 1} of {frames}; {got['b']:,} bytes "
                                 f"fetched of {clip.stat().st_size:,} (one progressive download: the server has no Range); "
                                 f"decode {got['s']['decodeMs']:.1f} ms/frame in the worker"))
        finally:
            browser.close()
    return rows
