"""The web player's HTTP server (viewer/web_server.py) and `splat publish` (viewer/site.py),
over plain HTTP: Range answers, the allow-list against traversal tricks, Host and Origin
checks, and the published folder's layout. No browser (see test_web_player_browser.py)."""
from __future__ import annotations

import http.client
import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

from splat.errors import UsageError
from viewer.site import CLIENT_DIR, CLIENT_FILES, publish
from viewer.web_server import clean_path, parse_range, serve_web
from viewer_browser import needs_client

pytestmark = needs_client()


@pytest.fixture(scope="module")
def asset(tmp_path_factory) -> Path:
    p = tmp_path_factory.mktemp("asset") / "scene.spz"
    p.write_bytes(bytes(range(256)) * 40)  # 10,240 bytes; the server never parses assets
    return p


@pytest.fixture(scope="module")
def server(asset):
    srv = serve_web([asset], port=0)
    yield srv
    srv.stop()


def request(srv, path: str, headers: dict[str, str] | None = None, host: str | None = None,
            method: str = "GET") -> tuple[int, dict[str, str], bytes]:
    """Send exactly ``path`` (no client-side normalisation) with ``host`` as the Host header."""
    c = http.client.HTTPConnection("127.0.0.1", srv.port, timeout=10)
    try:
        c.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        c.putheader("Host", host if host is not None else f"127.0.0.1:{srv.port}")
        for k, v in (headers or {}).items():
            c.putheader(k, v)
        c.endheaders()
        r = c.getresponse()
        return r.status, {k.lower(): v for k, v in r.getheaders()}, r.read()
    finally:
        c.close()


def test_serves_page_client_and_asset(server, asset):
    status, h, body = request(server, "/")
    assert status == 200 and h["content-type"].startswith("text/html")
    assert b'<splat-player src="assets/scene.spz"' in body and b"autoplay" in body
    for name in CLIENT_FILES:
        status, h, body = request(server, "/" + name)
        assert status == 200 and h["content-type"].startswith("text/javascript")
        assert body == (CLIENT_DIR / name).read_bytes()
    status, h, body = request(server, "/assets/scene.spz")
    assert (status, body) == (200, asset.read_bytes())
    assert h["accept-ranges"] == "bytes" and h["content-length"] == str(len(body))
    status, h, body = request(server, "/assets/scene.spz", method="HEAD")
    assert status == 200 and body == b"" and h["content-length"] == str(asset.stat().st_size)
    sent = server.bytes_sent["/assets/scene.spz"]
    request(server, "/assets/scene.spz", method="HEAD")
    assert server.bytes_sent["/assets/scene.spz"] == sent  # HEAD sends no body


@pytest.mark.parametrize("rng,want", [
    ("bytes=0-99", (0, 99)), ("bytes=100-", (100, 10239)), ("bytes=-10", (10230, 10239)),
    ("bytes=10000-99999", (10000, 10239)), ("bytes=-99999", (0, 10239)), ("bytes=5-5", (5, 5)),
])
def test_range_requests_get_206(server, asset, rng, want):
    data = asset.read_bytes()
    status, h, body = request(server, "/assets/scene.spz", {"Range": rng})
    assert status == 206
    assert h["content-range"] == f"bytes {want[0]}-{want[1]}/{len(data)}"
    assert body == data[want[0]: want[1] + 1] and h["content-length"] == str(len(body))


@pytest.mark.parametrize("rng", ["bytes=10240-", "bytes=20000-30000", "bytes=5-3", "bytes=-0", "bytes=abc",
                                 "bytes=-", "bytes=1-2-3", "bytes=99999999999999999999-"])
def test_bad_ranges_get_416(server, rng):
    status, h, _ = request(server, "/assets/scene.spz", {"Range": rng})
    assert status == 416 and h["content-range"] == "bytes */10240"


@pytest.mark.parametrize("rng", ["items=0-5", "bytes=0-1,5-6"])
def test_other_units_and_multiple_ranges_get_the_whole_file(server, asset, rng):
    status, _, body = request(server, "/assets/scene.spz", {"Range": rng})
    assert status == 200 and body == asset.read_bytes()


def test_parse_range_unit():
    assert parse_range("bytes=0-0", 1) == (0, 0)
    assert parse_range("bytes=0-", 0) == "bad"  # nothing to send from an empty file
    assert parse_range("Bytes = 2-3", 10) is None  # not the "bytes=" syntax: ignored, whole file


TRICKS = [
    "/../etc/passwd", "/assets/../../etc/passwd", "/assets/%2e%2e/%2e%2e/etc/passwd", "/%2e%2e/etc/passwd",
    "/assets/..%2fscene.spz", "/assets%2fscene.spz", "/assets/%252e%252e/x", "//etc/passwd", "/assets//scene.spz",
    "/assets\\scene.spz", "/assets/%5cscene.spz", "/assets/scene.spz%00.js", "/./assets/scene.spz",
    "/assets/./scene.spz", "/assets/%ff", "/assets/scene.spz/..", "/%2E%2E/%2E%2E/etc/passwd",
]


@pytest.mark.parametrize("path", TRICKS)
def test_traversal_tricks_are_refused(server, path):
    status, _, body = request(server, path)
    assert status in (400, 404), (path, status)
    assert b"root:" not in body and body != b""


def test_raw_nul_and_absolute_targets_are_refused(server):
    import socket

    for target in (b"/a\x00b", b"http://127.0.0.1/assets/scene.spz", b"*", b"assets/scene.spz"):
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
            s.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n" % server.port)
            reply = b""
            while chunk := s.recv(65536):
                reply += chunk
        assert reply.split(b" ", 2)[1] in (b"400", b"404"), (target, reply[:80])


@pytest.mark.parametrize("path", ["/etc/passwd", "/assets/", "/assets", "/assets/other.spz", "/viewer/client/splat-player.js",
                                  "/splat-player.js.map", "/index.htm", "/assets/scene.spz.cameras.json", "/api/render"])
def test_nothing_but_the_allow_list(server, path):
    assert request(server, path)[0] == 404


def test_clean_path_unit():
    assert clean_path("/assets/a%20b.spz?x=1") == "/assets/a b.spz"
    assert clean_path("http://evil/x") is None and clean_path("*") is None
    assert clean_path("/a/%2e/b") is None


def test_symlink_swapped_in_after_start_is_refused(tmp_path):
    real = tmp_path / "a.spz"
    real.write_bytes(b"x" * 100)
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    srv = serve_web([real], port=0)
    try:
        assert request(srv, "/assets/a.spz")[0] == 200
        real.unlink()
        os.symlink(secret, real)
        status, _, body = request(srv, "/assets/a.spz")
        assert status == 404 and b"secret" not in body
    finally:
        srv.stop()


def test_a_symlink_named_on_the_command_line_serves_its_target_only(tmp_path):
    target = tmp_path / "data" / "scene.ply"
    target.parent.mkdir()
    target.write_bytes(b"ply\n" + b"0" * 50)
    (tmp_path / "data" / "other.ply").write_bytes(b"other")
    link = tmp_path / "link.ply"
    os.symlink(target, link)
    srv = serve_web([link], port=0)
    try:
        assert request(srv, "/assets/link.ply")[2] == target.read_bytes()
        assert request(srv, "/assets/other.ply")[0] == 404
        assert request(srv, "/assets/scene.ply")[0] == 404
    finally:
        srv.stop()


@pytest.mark.parametrize("host", ["evil.example", "evil.example:{port}", "127.0.0.1:1", "localhost.evil.example:{port}",
                                  "", "127.0.0.1:{port}@evil.example"])
def test_foreign_host_header_is_refused(server, host):
    """DNS rebinding: a page on evil.example resolving to 127.0.0.1 sends its own Host."""
    for path in ("/", "/assets/scene.spz", "/api/assets"):
        status, _, body = request(server, path, host=host.format(port=server.port))
        assert status == 403, (host, path)
        assert b"\x00\x01\x02" not in body


@pytest.mark.parametrize("host", ["127.0.0.1:{port}", "localhost:{port}", "[::1]:{port}", "LOCALHOST:{port}"])
def test_own_host_names_are_accepted(server, host):
    assert request(server, "/", host=host.format(port=server.port))[0] == 200


@pytest.mark.parametrize("origin", ["http://evil.example", "null", "http://127.0.0.1:1", "https://127.0.0.1:{port}", "garbage"])
def test_api_refuses_foreign_origin(server, origin):
    status, _, body = request(server, "/api/assets", {"Origin": origin.format(port=server.port)})
    assert status == 403 and b"scene.spz" not in body


def test_api_answers_its_own_page(server, asset):
    for origin in (None, f"http://127.0.0.1:{server.port}", f"http://localhost:{server.port}"):  # noqa: B007
        status, _, body = request(server, "/api/assets", {"Origin": origin} if origin else {})
        assert status == 200
        assert json.loads(body)["assets"] == [{"name": "scene.spz", "url": "assets/scene.spz",
                                               "bytes": asset.stat().st_size, "cameras": None}]


def test_allow_origin_extends_host_and_origin(asset):
    srv = serve_web([asset], port=0, allow_origins=["https://viewer.example"])
    try:
        assert request(srv, "/", host="viewer.example:443")[0] == 200
        assert request(srv, "/api/assets", {"Origin": "https://viewer.example"})[0] == 200
        assert request(srv, "/api/assets", {"Origin": "https://other.example"})[0] == 403
    finally:
        srv.stop()


def test_only_get_and_head(server):
    assert request(server, "/", method="POST")[0] == 405
    assert request(server, "/assets/scene.spz", method="PUT")[0] == 405


def test_missing_asset_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="no such file"):
        serve_web([tmp_path / "nope.spz"], port=0)
    with pytest.raises(UsageError, match="not a file"):
        serve_web([tmp_path], port=0)


def test_busy_port_takes_the_next(asset):
    a = serve_web([asset], port=0)
    try:
        b = serve_web([asset], port=a.port)
        try:
            assert b.port != a.port and request(b, "/")[0] == 200
        finally:
            b.stop()
    finally:
        a.stop()


def test_camera_presets_beside_the_asset_are_served_converted(tmp_path):
    from splat.camera import Camera, save_inria_cameras

    import torch

    asset = tmp_path / "scene.spz"
    asset.write_bytes(b"x")
    cam = Camera(100.0, 100.0, 50.0, 40.0, 100, 80, torch.eye(4, dtype=torch.float64), name="front")
    save_inria_cameras([cam], tmp_path / "cameras.json")
    srv = serve_web([asset], port=0)
    try:
        _, _, page = request(srv, "/")
        assert b'cameras="assets/scene.spz.cameras.json"' in page
        status, h, body = request(srv, "/assets/scene.spz.cameras.json")
        assert status == 200 and h["content-type"] == "application/json"
        got = json.loads(body)
        assert got[0]["img_name"] == "front" and got[0]["position"] == [0.0, 0.0, 0.0]
    finally:
        srv.stop()


# ---------------------------------------------------------------------- splat publish
def test_publish_one_asset(tmp_path, asset):
    site = publish([asset], tmp_path / "site")
    names = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert names == ["assets/scene.spz", "embed.html", "index.html", "splat-player.js", "splat-worker.js"]
    assert (site / "assets" / "scene.spz").read_bytes() == asset.read_bytes()
    for name in CLIENT_FILES:
        assert (site / name).read_bytes() == (CLIENT_DIR / name).read_bytes()
    index = (site / "index.html").read_text()
    assert '<splat-player src="assets/scene.spz" autoplay>' in index and 'src="splat-player.js"' in index
    embed = (site / "embed.html").read_text()
    assert "&lt;splat-player src=&quot;https://YOUR.HOST/site/assets/scene.spz&quot;" in embed
    for p in site.rglob("*"):  # nothing refers to another host
        if p.suffix == ".html":
            assert "http://" not in p.read_text() and "cdn" not in p.read_text().lower()


def test_publish_several_lists_them(tmp_path, asset):
    other = tmp_path / "b c.sog"
    other.write_bytes(b"PK\x03\x04rest")
    site = publish([asset, other], tmp_path / "site", autoplay=False)
    index = (site / "index.html").read_text()
    assert 'href="scene.spz.html"' in index and 'href="b_c.sog.html"' in index
    assert '<splat-player src="assets/b_c.sog">' in (site / "b_c.sog.html").read_text()  # no autoplay
    assert (site / "assets" / "b_c.sog").read_bytes() == other.read_bytes()


def test_publish_refuses_to_overwrite_without_force(tmp_path, asset):
    out = tmp_path / "site"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="--force"):
        publish([asset], out)
    assert (out / "keep.txt").read_text() == "mine"
    publish([asset], out, force=True)
    assert not (out / "keep.txt").exists() and (out / "index.html").is_file()
    leftovers = [p.name for p in tmp_path.iterdir() if p.name.startswith(".")]
    assert leftovers == []  # the temporary folder was renamed into place


def test_publish_failure_leaves_nothing(tmp_path, asset):
    with pytest.raises(UsageError, match="no such file"):
        publish([asset, tmp_path / "missing.spz"], tmp_path / "site")
    assert not (tmp_path / "site").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_publish_honours_umask(tmp_path, asset):
    old = os.umask(0o027)
    try:
        site = publish([asset], tmp_path / "site")
    finally:
        os.umask(old)
    assert (site / "index.html").stat().st_mode & 0o777 == 0o640
    assert (site / "assets").stat().st_mode & 0o777 == 0o750
    assert site.stat().st_mode & 0o777 == 0o750


def test_publish_cli(tmp_path, asset):
    from splat.cli import main

    out = tmp_path / "site"
    assert main(["publish", str(asset), "-o", str(out)]) == 0
    assert (out / "index.html").is_file()
    assert main(["publish", str(asset), "-o", str(out)]) == 2  # exists: refused
    assert main(["publish", str(asset), "-o", str(out), "--force"]) == 0


@contextmanager
def view_web(*args: str):
    """Run `splat view ARGS --web --no-open --port 0`; yields (process, port) once the URL is
    printed; the process must exit 0 on SIGTERM."""
    import re
    import signal
    import subprocess
    import sys

    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "splat.cli", "view", *args, "--web", "--no-open", "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        port = None
        for line in proc.stdout:
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        assert port is not None, "no URL printed"
        yield proc, port
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_splat_view_web_cli(tmp_path, asset):
    """`splat view FILE --web --no-open --port 0` prints its URL, serves the page, stops on SIGTERM."""
    with view_web(str(asset), "--no-autoplay") as (_, port):
        c = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        c.request("GET", "/")
        r = c.getresponse()
        page = r.read()
        assert r.status == 200 and b'src="assets/scene.spz"' in page and b"autoplay" not in page


@pytest.fixture(scope="module")
def clip(tmp_path_factory) -> Path:
    """A small real .gsv (8 frames, 2 segments) from the Python encoder."""
    from compress.video import VideoSettings, encode_video
    from compress.video.synth import performer_frames

    from conftest import shared_file

    frames, fps = performer_frames(200, 8, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=2)
    p = tmp_path_factory.mktemp("clip") / "clip.gsv"
    p.write_bytes(encode_video(frames, VideoSettings(gop=4, fps=fps)).data)
    return p


def test_splat_view_web_serves_a_clip_by_range(clip):
    """`splat view clip.gsv --web`: the page streams the clip (autoplay, loop unless told), and the
    server answers the Range requests the stream makes (the head, then segments' byte ranges)."""
    import re
    from types import SimpleNamespace

    data = clip.read_bytes()
    with view_web(str(clip), "--no-loop", "--speed", "0.5") as (_, port):
        srv = SimpleNamespace(port=port)
        status, _, page = request(srv, "/")
        assert status == 200 and b'src="assets/clip.gsv"' in page
        assert re.search(rb"<splat-player [^>]*\bautoplay\b", page) and not re.search(rb"\bloop\b", page)
        assert b'speed="0.5"' in page
        status, headers, body = request(srv, "/assets/clip.gsv", {"Range": "bytes=0-4095"})
        assert status == 206 and body == data[:4096]
        assert headers["content-range"] == f"bytes 0-4095/{len(data)}"
        a, b = len(data) // 2, len(data)  # a read from the middle to the end, as a segment's
        status, headers, body = request(srv, "/assets/clip.gsv", {"Range": f"bytes={a}-{b - 1}"})
        assert status == 206 and body == data[a:b] and headers["content-range"] == f"bytes {a}-{b - 1}/{len(data)}"


def test_publish_a_clip(tmp_path, clip):
    """`splat publish clip.gsv -o site/`: the clip unchanged under assets/, a page that streams it."""
    from splat.cli import main

    out = tmp_path / "site"
    assert main(["publish", str(clip), "-o", str(out), "--no-autoplay"]) == 0
    assert (out / "assets" / "clip.gsv").read_bytes() == clip.read_bytes()
    page = (out / "index.html").read_text()
    assert 'src="assets/clip.gsv"' in page and " loop" in page and "autoplay" not in page
    assert all((out / f).is_file() for f in CLIENT_FILES)
