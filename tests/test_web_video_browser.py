"""Volumetric video in the web player: `<splat-player src="clip.gsv">` in headless Chromium,
driven through its scripting API, from a local server that counts the bytes it sends.

A small clip made by the Python encoder autoplays: the frame counter advances in order to the
last frame, the wire carries no more than 1.02x the file's bytes, and a seek lands on the
frame whose decoded arrays (reported by the player) equal the Python decoder's. A clip with one
corrupt segment marks that segment as a gap and plays the rest.
"""
from __future__ import annotations

import numpy as np
import pytest

from compress.video import VideoReader, VideoSettings, encode_video
from conftest import shared_file
from viewer.site import CLIENT_DIR, CLIENT_FILES
from viewer_browser import checked_chromium, client_page_marks
from web_harness import POS_TOL, CountingServer

pytestmark = client_page_marks(600)

FRAMES, GOP = 12, 4

PAGE = """<!doctype html><meta charset="utf-8"><title>video</title>
<script type="module" src="./splat-player.js"></script>
<splat-player src="./{clip}" autoplay style="display:block;width:320px;height:240px"></splat-player>
<script type="module">
const p = document.querySelector("splat-player");
window.log = {{ frames: [], errors: [], gaps: [], ended: false, loaded: null }};
p.addEventListener("load", () => {{ log.loaded = p.info; }});
p.addEventListener("frame", (e) => log.frames.push(e.detail.frame));
p.addEventListener("ended", () => {{ log.ended = true; }});
p.addEventListener("error", (e) => log.errors.push(e.detail.message));
p.addEventListener("gap", (e) => log.gaps.push(e.detail));
</script>"""

SEEK = """async (frame) => {
  const p = document.querySelector("splat-player");
  p.pause();
  const fps = p.info.fps;
  const index = await p.seek((frame + 0.5) / fps);
  const s = p.currentSplats;
  return { index, frame: p.frame, drawn: p.framesDrawn, currentTime: p.currentTime, bytes: p.bytesFetched, decodeMs: p.decodeMs,
           stats: p.stats, means: Array.from(s.means), shDc: Array.from(s.shDc), count: s.count };
}"""


@pytest.fixture(scope="module")
def clip() -> bytes:
    from compress.video.synth import performer_frames

    frames, fps = performer_frames(300, FRAMES, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=2)
    return encode_video(frames, VideoSettings(gop=GOP, fps=fps)).data


@pytest.fixture(scope="module")
def browser():
    with checked_chromium() as b:
        yield b


def _files(name: str, data: bytes) -> dict[str, bytes]:
    files = {"/" + f: (CLIENT_DIR / f).read_bytes() for f in CLIENT_FILES}
    files["/index.html"] = PAGE.format(clip=name).encode()
    files["/" + name] = data
    return files


@pytest.mark.parametrize("ranges", [True, False], ids=["range", "no-range"])
def test_clip_plays_seeks_to_the_python_frame_and_streams_its_bytes_once(browser, clip, ranges):
    """With Range (segments as they are needed) and without (`python -m http.server`: one
    progressive download), the wire carries the file once."""
    with CountingServer(_files("clip.gsv", clip), ranges=ranges) as srv:
        page = browser.new_page()
        page.goto(srv.url("/index.html"))
        page.wait_for_function("window.log && (window.log.ended || window.log.errors.length > 0)", timeout=300_000)
        log = page.evaluate("window.log")
        assert log["errors"] == [], log["errors"]
        sent_play = srv.bytes_by_path["/clip.gsv"]
        seek_to = GOP + 2  # a predicted frame of segment 1
        got = page.evaluate(SEEK, seek_to)
        requests = [r for r in srv.requests if r[0] == "/clip.gsv"]
        page.close()
    frames = log["frames"]
    # the frame counter advances: in order, from the first frame to the last (a slow page may skip some)
    assert frames[0] == 0 and frames[-1] == FRAMES - 1 and len(frames) >= 3, frames
    assert all(b > a for a, b in zip(frames, frames[1:])), frames
    assert log["loaded"]["frames"] == FRAMES and log["loaded"]["format"].startswith(".gsv")
    # the wire: every request a range request (or the one download), a full play <= 1.02x the file, the seek from the cache
    if ranges:
        assert all(r[1] for r in requests), requests
    else:
        assert len(requests) == 1, requests
    assert sent_play <= 1.02 * len(clip), (sent_play, len(clip))
    assert got["bytes"] <= 1.02 * len(clip)
    # the seek lands on the frame asked for, and the arrays on screen are the Python decoder's
    assert got["index"] == seek_to and got["frame"] == seek_to
    assert got["drawn"] > 0  # Spark drew the splats
    assert got["decodeMs"] > 0 and got["stats"]["frames"] >= len(frames)
    assert got["stats"]["meshes"] == 1  # every frame after the first was written over the same splats
    with VideoReader(clip) as reader:
        want = reader.frame(seek_to)
        extent = float(np.abs(np.concatenate([reader.info.bounds_min, reader.info.bounds_max])).max())
    assert got["count"] == want.means.shape[0]
    np.testing.assert_array_equal(np.float32(got["shDc"]), want.sh_dc.numpy().reshape(-1))
    dm = np.abs(np.float32(got["means"]).reshape(-1, 3) - want.means.numpy()).max() / extent
    assert dm <= POS_TOL, f"frame {seek_to}: centres off by {dm:.3g} x extent"


def test_a_bad_segment_is_a_gap_and_the_rest_plays(browser, clip):
    with VideoReader(clip) as reader:
        off, n = reader.segment_range(1)
    bad = bytearray(clip)
    bad[off + n // 2] ^= 0x40  # segment 1's CRC no longer matches
    with CountingServer(_files("bad.gsv", bytes(bad)), ranges=True) as srv:
        page = browser.new_page()
        page.goto(srv.url("/index.html"))
        page.wait_for_function("window.log && (window.log.ended || window.log.errors.length > 0)", timeout=300_000)
        log = page.evaluate("window.log")
        gaps = page.evaluate("document.querySelector('splat-player').gaps")
        page.close()
    assert log["errors"] == [], log["errors"]
    assert [g["segment"] for g in log["gaps"]] == [1] and gaps[0]["first"] == GOP and gaps[0]["frames"] == GOP
    frames = log["frames"]
    assert not any(GOP <= f < 2 * GOP for f in frames), frames
    assert frames[0] == 0 and frames[-1] == FRAMES - 1, frames


def test_splat_view_web_plays_a_clip(browser, clip, tmp_path):
    """The page `splat view clip.gsv --web` serves (its own server, which counts what it sends)
    plays the clip to its end (at the speed it was given) with Range requests, sending no more than 1.02x the file."""
    from viewer.web_server import serve_web

    path = tmp_path / "clip.gsv"
    path.write_bytes(clip)
    srv = serve_web([path], port=0, loop=False, speed=2)
    try:
        page = browser.new_page()
        page.goto(srv.url)
        page.wait_for_function("""(() => { const p = document.querySelector("splat-player");
            return p && p.info && p.info.frames && (p.frame === p.info.frames - 1 && p.paused || p.error); })()""",
                               timeout=300_000)
        state = page.evaluate("""(() => { const p = document.querySelector("splat-player");
            return { error: p.error, frame: p.frame, bytes: p.bytesFetched, speed: p.speed }; })()""")
        page.close()
    finally:
        srv.stop()
    assert state["error"] is None, state["error"]
    assert state["frame"] == FRAMES - 1 and state["speed"] == 2
    sent = srv.bytes_sent["/assets/clip.gsv"]
    assert 0 < sent <= 1.02 * len(clip), (sent, len(clip))
