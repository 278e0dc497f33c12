"""Headless Chromium for the viewer tests: Debian's ``chromium`` driven by Playwright.

Playwright's own browser download is never used (``executable_path``), the profile is
fresh for every browser, and every request a page makes is recorded so tests can assert
that nothing leaves the loopback interface.
"""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np
import pytest

CHROMIUM = os.environ.get("SPLAT_CHROMIUM", "/usr/bin/chromium")
FLAGS = [
    "--headless=new",
    "--use-angle=swiftshader",  # WebGL on the CPU
    "--enable-unsafe-swiftshader",
    "--no-sandbox",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--disable-domain-reliability",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    "--metrics-recording-only",
]
# Hide every DOM overlay (GUI panel, notifications) so a screenshot shows the WebGL canvas only.
CANVAS_ONLY_CSS = "* { visibility: hidden !important; } canvas { visibility: visible !important; }"


def require_chromium():
    """Skip (with the reason) unless Chromium and Playwright are usable."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"headless Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium "
                    "with apt-get; install it (apt-get install chromium) to run the browser tests")
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


def is_local(url: str) -> bool:
    p = urlparse(url)
    if p.scheme in ("data", "blob", "about", "chrome-error"):
        return True
    return p.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass
class PageLog:
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    ws_bytes: int = 0

    def foreign(self) -> list[str]:
        return [u for u in self.requests if not is_local(u)]


def watch(page) -> PageLog:
    """Record every request, websocket byte received and page error of ``page``."""
    log = PageLog()
    page.on("request", lambda r: log.requests.append(r.url))
    page.on("pageerror", lambda e: log.errors.append(str(e)))

    def on_ws(ws):
        log.requests.append(ws.url)

        def frame(payload):
            nonlocal log
            log.ws_bytes += len(payload) if payload is not None else 0

        ws.on("framereceived", frame)

    page.on("websocket", on_ws)
    return log


def screenshot_rgb(page, canvas_only: bool = True, path: str | None = None) -> np.ndarray:
    """The page as RGB uint8 [H,W,3]; with ``canvas_only`` the DOM overlays are hidden."""
    import io

    from PIL import Image

    png = page.screenshot(style=CANVAS_ONLY_CSS if canvas_only else None, path=path)
    return np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))


def coverage(img: np.ndarray, background=(0, 0, 0), tol: int = 12) -> float:
    """Fraction of pixels that differ from ``background`` by more than ``tol`` in some channel."""
    diff = np.abs(img.astype(np.int16) - np.asarray(background, np.int16)).max(axis=-1)
    return float((diff > tol).mean())


@contextmanager
def killable_chromium():
    """A Chromium process of our own (fresh profile, the flags above) that a test may SIGKILL,
    driven through the DevTools protocol: yields (process, cdp_ws_url)."""
    profile = tempfile.mkdtemp(prefix="splat-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
         "about:blank"],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    try:
        url = None
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and url is None:
            line = proc.stderr.readline()
            if not line and proc.poll() is not None:
                break
            m = re.search(r"DevTools listening on (ws://\S+)", line)
            if m:
                url = m.group(1)
        if url is None:
            pytest.fail("Chromium did not report its DevTools endpoint")
        yield proc, url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        shutil.rmtree(profile, ignore_errors=True)
