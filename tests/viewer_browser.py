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
import socket
import subprocess
import tempfile
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from urllib.parse import urlparse

import numpy as np
import pytest

def needs_client():
    """Skip mark for tests of the built web client (``viewer/client/``, ``make client``)."""
    from viewer.site import CLIENT_DIR, CLIENT_FILES

    return pytest.mark.skipif(not all((CLIENT_DIR / f).is_file() for f in CLIENT_FILES),
                              reason="viewer/client/ is not built (run `make client`)")


def client_page_marks(timeout: int = 300) -> list:
    """The marks of a module of browser tests of the web client: browser, a timeout (s), needs_client."""
    return [pytest.mark.browser, pytest.mark.timeout(timeout), needs_client()]


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
    "--disable-extensions",
    "--disable-component-extensions-with-background-pages",
    "--disable-default-apps",
    "--disable-client-side-phishing-detection",
    "--no-pings",
    "--disable-features=Translate,MediaRouter,OptimizationHints,NetworkTimeServiceQuerying,"
    "AutofillServerCommunication,CertificateTransparencyComponentUpdater",
    "--metrics-recording-only",
]
# Chromium's own background services that the flags above do not silence (sign-in account
# check, component updater). Tests run Chromium behind RefusingProxy, so these never leave
# the machine; any *other* outside host would have come from the page and fails the tests.
BROWSER_SERVICE_HOSTS = frozenset({
    "accounts.google.com", "update.googleapis.com", "clients2.google.com", "redirector.gvt1.com",
    "content-autofill.googleapis.com", "optimizationguide-pa.googleapis.com", "safebrowsing.googleapis.com",
})
# Hide every DOM overlay (GUI panel, notifications) so a screenshot shows the WebGL canvas only.
CANVAS_ONLY_CSS = "* { visibility: hidden !important; } canvas { visibility: visible !important; }"


class RefusingProxy:
    """An HTTP proxy on loopback that records every request sent to it and refuses it.

    Chromium is started with ``--proxy-server`` pointing here; it always bypasses the proxy
    for loopback, so anything that reaches this proxy (from the page, a worker, or the
    browser itself) was an attempt to leave the machine. ``requests`` lists them.
    """

    def __init__(self) -> None:
        self.requests: list[str] = []
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(16)
        self.port = self._sock.getsockname()[1]
        self._closed = False
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def flag(self) -> str:
        return f"--proxy-server=http://127.0.0.1:{self.port}"

    @staticmethod
    def host(request_line: str) -> str:
        target = request_line.split()[1] if len(request_line.split()) > 1 else ""
        if "://" in target:
            return urlparse(target).hostname or ""
        return target.rsplit(":", 1)[0]  # CONNECT host:port

    def page_requests(self) -> list[str]:
        """Requests other than Chromium's own background services (i.e. from a page)."""
        return [r for r in self.requests if self.host(r) not in BROWSER_SERVICE_HOSTS]

    def _serve(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(5)
                try:
                    head = conn.recv(4096).split(b"\r\n", 1)[0].decode("latin-1", "replace")
                    if head:
                        self.requests.append(head)
                    conn.sendall(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                except OSError:
                    pass

    def close(self) -> None:
        self._closed = True
        self._sock.close()


def require_chromium():
    """Skip (with the reason) unless Chromium and Playwright are usable."""
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)):
        pytest.skip(f"headless Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium "
                    "with apt-get; install it (apt-get install chromium) to run the browser tests")
    return pytest.importorskip("playwright.sync_api", reason="playwright is not installed (pip install playwright)")


@contextmanager
def launched_chromium(proxy: RefusingProxy):
    """Debian's Chromium under Playwright, every outside request sent to ``proxy``; skips (with the
    reason) when Chromium or Playwright is missing or does not start. Yields the Browser
    (``browser.proxy`` is ``proxy``)."""
    sync_api = require_chromium()
    pw = sync_api.sync_playwright().start()
    try:
        # Playwright gives every launch a fresh temporary profile (its --user-data-dir).
        b = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS + [proxy.flag], headless=True)
    except Exception as e:  # pragma: no cover - a broken chromium install
        pw.stop()
        pytest.skip(f"Chromium at {CHROMIUM} does not start under Playwright: {e}")
    b.proxy = proxy
    try:
        yield b
    finally:
        b.close()
        pw.stop()



@contextmanager
def checked_chromium():
    """``launched_chromium`` with a proxy of its own; on leaving, asserts that no page tried to
    reach a host outside loopback (every such request lands on the proxy and is refused)."""
    proxy = RefusingProxy()
    try:
        with launched_chromium(proxy) as b:
            yield b
    finally:
        proxy.close()
    assert proxy.page_requests() == [], f"pages tried to reach outside hosts: {proxy.page_requests()}"

def is_local(url: str) -> bool:
    p = urlparse(url)
    if p.scheme in ("data", "blob", "about", "chrome-error"):
        return True
    return p.hostname in ("127.0.0.1", "localhost", "::1")


@dataclass
class PageLog:
    requests: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def foreign(self) -> list[str]:
        return [u for u in self.requests if not is_local(u)]


def watch(page) -> PageLog:
    """Record every request and page error of ``page`` (the browser-wide check is
    :class:`RefusingProxy`)."""
    log = PageLog()
    page.on("request", lambda r: log.requests.append(r.url))
    page.on("pageerror", lambda e: log.errors.append(str(e)))
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
def killable_chromium(extra_flags: list[str] = ()):
    """A Chromium process of our own (fresh profile, the flags above) that a test may SIGKILL,
    driven through the DevTools protocol: yields (process, cdp_ws_url)."""
    profile = tempfile.mkdtemp(prefix="splat-chromium-")
    proc = subprocess.Popen(
        [CHROMIUM, *FLAGS, *extra_flags, f"--user-data-dir={profile}", "--remote-debugging-port=0", "--remote-debugging-address=127.0.0.1",
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


def clustered_memory(scene, k: int = 6, dim: int = 16, seed: int = 0, labels=None):
    """A feature memory for ``scene`` without distillation: Gaussians are split into ``k``
    clusters (``labels`` [N] in 0..k-1, or the nearest of k centres picked among the means) and
    every cluster's Gaussians carry the same query (plus 2 % noise), decoding to that cluster's
    bank vector. A click therefore lights up the clicked cluster (browser test, benchmark)."""
    import torch

    from compress.memory import QUERY_EXTRA, Memory, ModelMemory

    g = torch.Generator().manual_seed(seed)
    means = scene.means.float()
    if labels is None:
        centres = means[torch.randperm(len(scene), generator=g)[:k]]
        label = torch.cdist(means, centres).argmin(dim=1)
    else:
        label = torch.as_tensor(labels, dtype=torch.int64)
    queries = torch.nn.functional.one_hot(label, k).float() + 0.02 * torch.randn(len(scene), k, generator=g)
    bank = torch.nn.functional.normalize(torch.randn(k, dim, generator=g), dim=1)
    proj = bank.clone()  # query e_i -> bank row i
    model = ModelMemory("clusters", 0, k, bank, proj, temperature=0.05)
    return Memory(scene.replace(extras={}).with_extras(**{QUERY_EXTRA: queries}), [model]), label


def project_point(cam, point) -> tuple[float, float]:
    """Pixel (x, y) of world ``point`` [3] in toolkit camera ``cam``."""
    import torch

    c = cam.world_to_camera[:3, :3].double() @ torch.as_tensor(point, dtype=torch.float64) + cam.world_to_camera[:3, 3].double()
    return float(cam.fx * c[0] / c[2] + cam.cx), float(cam.fy * c[1] / c[2] + cam.cy)
