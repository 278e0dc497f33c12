"""The streaming engine in headless Chromium: dist/stream.mjs on a page, decoding in a real
module Web Worker (dist/stream-worker.mjs), a `.gsv` clip over Range requests from a local
server that counts what it sends. Frames arrive in order, the wire carries the file's bytes, and
a keyframe and a predicted frame equal VideoReader's (the tolerances of tests/test_web_gsv.py).
"""
from __future__ import annotations

import numpy as np
import pytest

from compress.video import VideoReader, VideoSettings, encode_video

from conftest import shared_file
from viewer_browser import CHROMIUM, FLAGS, RefusingProxy, require_chromium
from web_harness import POS_TOL, WEB, CountingServer, require_node

pytestmark = [pytest.mark.browser, pytest.mark.timeout(300)]

PAGE = """<!doctype html><meta charset="utf-8"><title>stream</title>
<script type="module">
import { GsvPlayer, WorkerDecoder } from "./stream.mjs";
const worker = new Worker("./stream-worker.mjs", { type: "module" });
const player = new GsvPlayer("./clip.gsv", { decoder: new WorkerDecoder(worker), realtime: false });
const order = [], keep = {};
player.on("frame", (e) => {
  order.push(e.index);
  if (e.index === 4 || e.index === player.header.frames - 1) keep[e.index] = { means: Array.from(e.splats.means), shDc: Array.from(e.splats.shDc) };
});
player.on("ended", () => { window.result = { order, keep, bytes: player.bytesFetched, mode: player.source.mode, decoder: player.decoder.kind }; });
player.on("error", (e) => { window.result = { error: e.message }; });
</script>"""


def test_stream_plays_in_chromium_with_a_module_worker():
    sync_api = require_chromium()
    require_node()  # builds dist/
    from compress.video.synth import performer_frames

    frames, fps = performer_frames(400, 8, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=2)
    clip = encode_video(frames, VideoSettings(gop=4, fps=fps)).data
    files = {"/index.html": PAGE.encode(), "/clip.gsv": clip,
             "/stream.mjs": (WEB / "dist" / "stream.mjs").read_bytes(),
             "/stream-worker.mjs": (WEB / "dist" / "stream-worker.mjs").read_bytes()}
    proxy = RefusingProxy()
    with CountingServer(files, ranges=True) as srv, sync_api.sync_playwright() as pw:
        try:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=FLAGS + [proxy.flag], headless=True)
        except Exception as e:  # pragma: no cover - a broken chromium install
            pytest.skip(f"Chromium at {CHROMIUM} does not start under Playwright: {e}")
        page = browser.new_page()
        page.goto(srv.url("/index.html"))
        page.wait_for_function("window.result !== undefined", timeout=120_000)
        result = page.evaluate("window.result")
        browser.close()
        gsv_requests = [r for r in srv.requests if r[0] == "/clip.gsv"]
    proxy.close()
    assert "error" not in result, result.get("error")
    assert result["order"] == list(range(len(frames))) and result["decoder"] == "worker" and result["mode"] == "range"
    assert all(r[1] for r in gsv_requests)  # every request for the clip is a range request
    assert result["bytes"] <= 1.02 * len(clip)
    with VideoReader(clip) as reader:
        extent = float(np.abs(np.concatenate([reader.info.bounds_min, reader.info.bounds_max])).max())
        for i in (4, len(frames) - 1):  # gop 4: segment 1's keyframe (exact), then a predicted frame
            got = result["keep"][str(i)]
            want = reader.frame(i)
            np.testing.assert_array_equal(np.float32(got["shDc"]), want.sh_dc.numpy().reshape(-1))
            means = np.float32(got["means"]).reshape(-1, 3)
            if i == 4:
                np.testing.assert_array_equal(means, want.means.numpy())
            dm = np.abs(means - want.means.numpy()).max() / extent
            assert dm <= POS_TOL, f"frame {i}: centres off by {dm:.3g} x extent"
