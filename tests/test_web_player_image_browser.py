"""`.gsi` images in `<splat-player>` (headless Chromium, software WebGL), driven through the
player's scripting API.

The frozen golden `.gsi` is published with `splat publish` and served by a server that counts
the bytes it sends: the player's `readPixels` at twice the native size, at 4x zoom and at LOD
0.25 must match `splat render-image` at the same size, window and LOD (PSNR >= 35 dB), and
zooming (API and mouse wheel) must draw again without fetching another byte. Through
`splat view --web`'s server, a corrupt `.gsi` must show its one error line and leave the
player usable.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from viewer.site import publish
from viewer.web_server import serve_web
from viewer_browser import checked_chromium, client_page_marks, watch
from web_harness import CountingServer

pytestmark = client_page_marks()

GOLDEN = Path(__file__).with_name("data") / "image_golden.gsi"  # 48 x 32 RGB, 400 Gaussians
PLAYER = "document.querySelector('splat-player')"


def psnr(a: np.ndarray, b: np.ndarray) -> float:
    mse = float(np.mean((a.astype(np.float64) - b.astype(np.float64)) ** 2))
    return float("inf") if mse == 0 else 10 * np.log10(255.0 ** 2 / mse)


@pytest.fixture(scope="module")
def browser():
    with checked_chromium() as b:
        yield b


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("gsi")
    photo = d / "photo.gsi"
    shutil.copyfile(GOLDEN, photo)
    cut = d / "cut.gsi"
    cut.write_bytes(GOLDEN.read_bytes()[:-9])
    renamed = d / "image.dat"  # told by its magic bytes
    shutil.copyfile(GOLDEN, renamed)
    return {"photo": photo, "cut": cut, "renamed": renamed}


def render_image(gsi: Path, tmp: Path, *args: str) -> np.ndarray:
    """`splat render-image GSI -o PNG ARGS...` as 8-bit RGBA."""
    from PIL import Image

    from splat.cli import main

    out = tmp / f"ref{len(list(tmp.glob('ref*.png')))}.png"
    assert main(["render-image", str(gsi), "-o", str(out), *args]) == 0
    return np.asarray(Image.open(out).convert("RGBA"))


def open_player(browser, url: str, size=(480, 360)):
    page = browser.new_page(viewport={"width": size[0], "height": size[1]})
    page.set_default_timeout(60_000)
    log = watch(page)
    page.goto(url)
    page.wait_for_function("customElements.get('splat-player') !== undefined")
    return page, log


def wait_loaded(page, src: str | None = None) -> dict:
    """Load ``src`` (None: the page's own) and wait for a drawn frame or an error."""
    if src is not None:
        page.evaluate(f"src => {{ {PLAYER}.src = src; }}", src)
    page.wait_for_function(f"() => {{ const p = {PLAYER}; return p.error || p.frame >= 0; }}")
    return page.evaluate(f"() => {{ const p = {PLAYER}; return {{info: p.info, error: p.error, frame: p.frame, "
                         f"view: p.imageView, bytesFetched: p.bytesFetched}}; }}")


def read_pixels(page, w: int, h: int) -> np.ndarray:
    data = page.evaluate(f"([w, h]) => Array.from({PLAYER}.readPixels(w, h).data)", [w, h])
    return np.asarray(data, np.uint8).reshape(h, w, 4)


def test_gsi_matches_render_image_and_zoom_fetches_nothing(browser, files, tmp_path):
    photo = files["photo"]
    size = photo.stat().st_size
    site = publish([photo], tmp_path / "site")  # `splat publish photo.gsi -o site/`
    served = {"/" + p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    asset = "/assets/photo.gsi"
    assert asset in served
    with CountingServer(served, ranges=True) as srv:
        page, log = open_player(browser, srv.url("/index.html"))
        got = wait_loaded(page)
        assert got["error"] is None and got["frame"] == 0, got
        info = got["info"]
        assert info["format"] == ".gsi" and info["count"] == 400
        assert (info["width"], info["height"], info["channels"]) == (48, 32, 3)
        assert info["fileBytes"] == info["bytesFetched"] == size
        assert abs(info["bitsPerPixel"] - 8 * size / (48 * 32)) < 1e-9
        assert info["decodeMs"] >= 0 and got["view"] == {"zoom": 1, "centerX": 24, "centerY": 16, "lod": 1, "ellipses": False}
        assert srv.bytes_by_path[asset] == size
        # by default at the canvas's size (its drawing buffer: CSS size x devicePixelRatio)
        dims = page.evaluate(f"""() => {{ const p = {PLAYER}, d = p.readPixels(), c = p.shadowRoot.querySelector('canvas.image-canvas');
                                          return [d.width, d.height, c.width, c.height, d.data.length]; }}""")
        assert dims[:2] == dims[2:4] and dims[0] >= 400 and dims[4] == 4 * dims[0] * dims[1], dims

        # fitted: the whole image at 2x the native size, as `render-image --width 96`
        p1 = psnr(read_pixels(page, 96, 64), render_image(photo, tmp_path, "--width", "96"))
        # zoom 4 about the centre: the scale is 4 x 2 = 8 and the 96 x 64 window starts at (144, 96)
        drawn = page.evaluate(f"{PLAYER}.framesDrawn")
        view = page.evaluate(f"{PLAYER}.setView({{zoom: 4}})")
        assert view["zoom"] == 4
        page.wait_for_function(f"{PLAYER}.framesDrawn > {drawn}")  # it draws
        p4 = psnr(read_pixels(page, 96, 64), render_image(photo, tmp_path, "--scale", "8", "--crop", "144,96,96,64"))
        # LOD 0.25: the first 100 Gaussians in file order, as `render-image --lod 0.25`
        page.evaluate(f"{PLAYER}.setView({{zoom: 1, lod: 0.25}})")
        pl = psnr(read_pixels(page, 96, 64), render_image(photo, tmp_path, "--width", "96", "--lod", "0.25"))
        full = render_image(photo, tmp_path, "--width", "96")
        pl_full = psnr(read_pixels(page, 96, 64), full)
        print(f"\nplayer vs render-image: fitted 96x64 {p1:.1f} dB, 4x zoom {p4:.1f} dB, LOD 0.25 {pl:.1f} dB "
              f"(LOD 0.25 vs full: {pl_full:.1f} dB)")
        assert p1 >= 35 and p4 >= 35 and pl >= 35, (p1, p4, pl)
        assert pl_full < pl - 5, "LOD 0.25 should differ clearly from the full image"
        assert page.evaluate(f"{PLAYER}.shadowRoot.querySelector('.lodnote').textContent") == "100 of 400 Gaussians"

        # the mouse wheel zooms about the cursor, a drag pans, and the ellipses draw over the image
        page.evaluate(f"{PLAYER}.setView({{lod: 1}})")
        before = page.evaluate(f"{PLAYER}.imageView")
        drawn = page.evaluate(f"{PLAYER}.framesDrawn")
        page.mouse.move(120, 180)
        page.mouse.wheel(0, -700)
        page.wait_for_function(f"{PLAYER}.imageView.zoom > {before['zoom'] * 3} && {PLAYER}.framesDrawn > {drawn}")
        zoomed = page.evaluate(f"{PLAYER}.imageView")
        page.mouse.down()
        page.mouse.move(180, 200, steps=3)
        page.mouse.up()
        page.wait_for_function(f"{PLAYER}.imageView.centerX < {zoomed['centerX'] - 0.1}")
        shot = lambda: page.screenshot(clip={"x": 0, "y": 0, "width": 200, "height": 360})  # noqa: E731
        page.evaluate(f"{PLAYER}.setView({{zoom: 16}})")  # 16x the fitted view: 120 screen px per image px
        plain = shot()
        page.evaluate(f"{PLAYER}.setView({{ellipses: true}})")
        page.wait_for_function(f"{PLAYER}.shadowRoot.querySelector('input[name=imageEllipses]').checked")
        assert shot() != plain, "the ellipse overlay changed nothing"

        assert srv.bytes_by_path[asset] == size, "zoom or LOD fetched the file again"
        assert sum(p == asset for p, _ in srv.requests) == 1
        assert page.evaluate(f"{PLAYER}.bytesFetched") == size
        assert log.foreign() == [] and log.errors == [], (log.foreign(), log.errors)
        page.close()


def test_corrupt_gsi_shows_its_error_line_and_the_player_stays_usable(browser, files):
    """Through `splat view --web`'s server: the image, then a truncated file, then the image
    again under a name that does not say `.gsi`."""
    from compress.image import decode
    from splat.errors import FormatError

    with pytest.raises(FormatError):  # the Python decoder refuses it too
        decode(files["cut"].read_bytes(), files["cut"])
    srv = serve_web([files["photo"], files["cut"], files["renamed"]], port=0)
    try:
        page, log = open_player(browser, srv.url)
        assert wait_loaded(page)["frame"] == 0
        got = wait_loaded(page, "assets/cut.gsi")
        assert got["info"] is None and got["frame"] == -1 and got["view"] is None
        assert got["error"].startswith("cut.gsi: ") and "\n" not in got["error"], got["error"]
        text = page.evaluate(f"() => {{ const e = {PLAYER}.shadowRoot.querySelector('.error'); return e.hidden ? null : e.textContent; }}")
        assert text == got["error"]
        assert page.evaluate(f"{PLAYER}.shadowRoot.querySelector('canvas.image-canvas').hidden")
        got = wait_loaded(page, "assets/image.dat")
        assert got["error"] is None and got["frame"] == 0, got
        assert got["info"]["format"] == ".gsi" and got["info"]["count"] == 400
        assert page.evaluate(f"{PLAYER}.shadowRoot.querySelector('.error').hidden")
        assert log.foreign() == [] and log.errors == [], (log.foreign(), log.errors)
        page.close()
    finally:
        srv.stop()
