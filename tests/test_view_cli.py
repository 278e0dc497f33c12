"""`splat view` serves the web player (and `viewer.serve` in Python): its options reach the
page, bad input is one line with exit 2 before anything is served, and it stops on SIGTERM."""
from __future__ import annotations

import http.client
import os
import re
import signal
import subprocess
import sys

import pytest

from splat.cli import main
from test_view_api import blob_scene


@pytest.fixture(scope="module")
def scene_file(tmp_path_factory):
    from splat.io import write_scene

    path = tmp_path_factory.mktemp("view") / "ball.ply"
    write_scene(blob_scene(200), path)
    return path


def get(port: int, path: str = "/") -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    c.request("GET", path)
    r = c.getresponse()
    return r.status, r.read()


def test_help_and_bad_input_are_one_line(tmp_path, capsys):
    assert main(["view", "--help"]) == 0
    out = capsys.readouterr().out
    assert "Examples" in out and "--host" in out and "127.0.0.1" in out and "--render-dir" in out
    assert "viser" not in out.lower()
    for argv, words in [
        ([str(tmp_path / "missing.spz")], "missing.spz"),
        ([str(tmp_path), "--port", "0"], str(tmp_path.name)),
        ([str(tmp_path / "x.splat"), "--background", "1,2"], "--background"),
        ([str(tmp_path / "x.splat"), "--allow-origin", "evil.example"], "--allow-origin"),
        ([str(tmp_path / "x.splat"), "--speed", "9"], "--speed"),
        ([str(tmp_path / "x.splat"), "--up", "sideways"], "--up"),
        ([str(tmp_path / "bad.m3")], "bad.m3"),
        ([str(tmp_path / "bad.gsv")], "bad.gsv"),
    ]:
        (tmp_path / "x.splat").write_bytes(b"\0" * 64)
        (tmp_path / "bad.m3").write_bytes(b"GSM3" + b"\xff" * 60)
        (tmp_path / "bad.gsv").write_bytes(b"GSV1" + b"\xff" * 60)
        assert main(["view", *argv]) == 2, argv
        err = capsys.readouterr().err
        lines = [ln for ln in err.splitlines() if ln.strip()]
        assert len(lines) == 1 and words in lines[0] and "Traceback" not in err, (argv, err)


def test_python_api_serve_returns_the_web_server(scene_file, tmp_path):
    import viewer

    with viewer.serve(scene_file, port=0, budget=100, sh=False, background=(255, 255, 255), log=False,
                      render_dir=tmp_path / "r") as srv:
        assert isinstance(srv, viewer.WebPlayerServer)
        assert srv.url.startswith("http://127.0.0.1:")
        status, page = get(srv.port)
        assert status == 200
        for attr in (b'src="assets/ball.ply"', b'budget="100"', b'sh="off"', b'background="#ffffff"', b'api="api/"'):
            assert attr in page, attr
        assert get(srv.port, "/assets/ball.ply")[1] == scene_file.read_bytes()
    with pytest.raises(Exception):
        get(srv.port)  # stopped


def test_cli_view_options_reach_the_page_and_sigterm_stops_it(scene_file, tmp_path):
    env = dict(os.environ, COLUMNS="200")
    proc = subprocess.Popen([sys.executable, "-m", "splat.cli", "view", str(scene_file), "--no-open", "--port", "0",
                             "--budget", "50", "--no-sh", "--background", "10,20,30", "--paused",
                             "--render-dir", str(tmp_path / "renders"), "--web"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        lines = []
        port = None
        for line in proc.stdout:
            lines.append(line)
            m = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
                break
        assert port is not None, "".join(lines)
        text = "".join(lines)
        assert "ball.ply" in text and "decoded in the browser" in text and "renders" in text
        status, page = get(port)
        assert status == 200
        for attr in (b'budget="50"', b'sh="off"', b'background="#0a141e"', b'api="api/"'):
            assert attr in page, attr
        assert b"autoplay" not in page  # --paused
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
        assert proc.returncode == 0, out
        assert "stopping" in out
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.timeout(600)
def test_make_demo_viewer_step_publishes_and_plays_the_site(tmp_path):
    """`make demo`'s viewer step alone (stand-in assets): a site under demo_out/site/ that plays."""
    import viewer.demo as demo
    from viewer_browser import require_chromium

    require_chromium()
    rows = dict(demo.run(tmp_path / "viewer"))
    assert (tmp_path / "site" / "index.html").is_file() and (tmp_path / "site" / "assets" / "torus.gsv").is_file()
    assert "http://127.0.0.1:" in rows["served"]
    assert "played to frame 12 of 12" in rows["clip"], rows
    assert "20,000 Gaussians" in rows["scene"], rows


def test_a_scene_folder_is_served_as_spz(tmp_path):
    """A loose SOG folder (or a splatfacto run) cannot be fetched as one file: it is read by the
    toolkit and served as SPZ."""
    import viewer
    from splat.io import read_scene, write_scene

    folder = tmp_path / "loose_sog"
    write_scene(blob_scene(300), folder / "meta.json", format="sog")
    with viewer.serve(folder, port=0, log=False) as srv:
        a = srv.assets[0]
        assert a.name == "loose_sog.spz"
        assert len(read_scene(a.path)) == 300
        assert get(srv.port, "/assets/loose_sog.spz")[0] == 200
