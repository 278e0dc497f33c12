"""The `.gsv` streaming engine (viewer/web/src/stream, dist/stream.mjs) in Node, against a local
HTTP server that counts the bytes it sends (tests/web_harness.CountingServer), with and without
Range support: wire bytes, seeking, the progressive fallback, looping from the cache, a corrupt
segment as a gap, HTTP faults, and every presented frame against VideoReader's (the parity
tolerances of tests/test_web_gsv.py), through the in-thread and the worker decoder.
"""
from __future__ import annotations

import json
import time

import numpy as np
import pytest

from compress.video import VideoReader, VideoSettings, encode_video

from conftest import shared_file
from web_harness import CountingServer, compare_gsv_frame, node_stream

SEGMENTS = 20
PATH = "/clip.gsv"


@pytest.fixture(scope="module")
def clip() -> bytes:
    """A 20-segment tracked clip: 600 Gaussians, 40 frames, 2 frames a segment (a few seconds to encode)."""
    from compress.video.synth import performer_frames

    frames, fps = performer_frames(600, 2 * SEGMENTS, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=2)
    data = encode_video(frames, VideoSettings(gop=2, fps=fps)).data
    with VideoReader(data) as r:
        assert r.info.n_segments == SEGMENTS
    return data


def _ranges(data: bytes) -> list[tuple[int, int]]:
    with VideoReader(data) as r:
        return [r.segment_range(s) for s in range(r.info.n_segments)]


def _check_frames(res, data: bytes, frames: list[int], name: str) -> None:
    """Every frame in ``frames`` was presented and equals VideoReader's."""
    got_frames = {k.split(".", 1)[0] for k in res.arrays if k.startswith("f")}
    with VideoReader(data) as reader:
        info = reader.info
        extent = float(np.abs(np.concatenate([info.bounds_min, info.bounds_max])).max())
        for i in frames:
            assert f"f{i}" in got_frames, f"{name}: frame {i} was not presented"
            got = {k.split(".", 1)[1]: v for k, v in res.arrays.items() if k.startswith(f"f{i}.")}
            want = reader.frame(i)
            s = info.segment_of(i)
            predicted = reader.segment(s).mode == "tracked" and i != info.segment_first[s]
            assert res.values[f"f{i}.count"] == len(want), f"{name}: frame {i}'s count"
            compare_gsv_frame(name, got, want, i, predicted, extent)


def _events(res) -> list[dict]:
    return json.loads(res.values["events"])


@pytest.mark.parametrize("decoder", ["thread", "worker", "workers2"])  # workers2: alternate segments, as the page
def test_plays_end_to_end_within_the_file_bytes(clip, decoder):
    """Range host: every frame in order, equal to VideoReader's; the server sends <= 1.02x the file."""
    with CountingServer({PATH: clip}, ranges=True) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "play", "decoder": decoder, "dump": True})
    assert res.error is None, res.error
    assert res.values["mode"] == "range" and res.values["decoderKind"] == {"workers2": "worker"}.get(decoder, decoder)
    n = 2 * SEGMENTS
    assert res.arrays["order"].tolist() == list(range(n))
    assert [e["type"] for e in _events(res)][-1] == "ended"
    assert srv.bytes_sent <= 1.02 * len(clip), f"sent {srv.bytes_sent} bytes for a {len(clip)}-byte file"
    assert res.values["bytesFetched"] == srv.bytes_sent  # the engine counts what the server sent
    assert all(r[1] and r[1].startswith("bytes=") for r in srv.requests)
    _check_frames(res, clip, list(range(n)), f"{decoder} decoder")
    stats = json.loads(res.values["stats"])
    assert stats["frames"] == n and stats["decodeMs"] > 0 and stats["gaps"] == []


def test_plays_when_content_range_is_hidden(clip):
    """A 206 without Content-Range (cross-origin, not exposed) is trusted: every frame, the file's bytes."""
    with CountingServer({PATH: clip}, ranges=True, hide_content_range=True) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "play"})
    assert res.error is None and res.values["mode"] == "range", res.error
    assert res.arrays["order"].tolist() == list(range(2 * SEGMENTS))
    assert srv.bytes_sent <= 1.02 * len(clip)


def test_seek_to_the_last_segment_fetches_only_the_header_and_that_segment(clip):
    """Seeking to the last segment of a 20-segment clip costs <= the header plus 2 segments, and
    presents the right frame."""
    ranges = _ranges(clip)
    header = ranges[0][0]
    last = len(clip)
    with CountingServer({PATH: clip}, ranges=True) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "seek", "frame": 2 * SEGMENTS - 1, "dump": True})
    assert res.error is None, res.error
    biggest = max(n for _, n in ranges)
    assert srv.bytes_sent <= header + 2 * biggest, (srv.bytes_sent, header, biggest)
    # nothing between the header and the last segment was asked for
    for _, rng in srv.requests:
        a, b = (int(x) for x in rng.split("=")[1].split("-"))
        assert b < ranges[1][0] or a >= ranges[-1][0], f"fetched {rng} (last segment starts at {ranges[-1][0]}, file {last})"
    assert {"type": "seekResolved", "index": 2 * SEGMENTS - 1} in _events(res)
    _check_frames(res, clip, [2 * SEGMENTS - 1], "seek")


def test_seek_while_playing_skips_the_segments_between(clip):
    """Playing with a short buffer, a seek to segment 10 fetches that segment next, read-ahead
    resumes after it, and nothing between the buffer and the seek target is ever fetched."""
    ranges = _ranges(clip)
    target = 10
    with CountingServer({PATH: clip}, ranges=True) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "playSeek", "frame": 2 * target, "dump": True,
                           "options": {"realtime": True, "bufferSeconds": 0.2}})
    assert res.error is None, res.error
    order = res.arrays["order"].tolist()
    assert order[0] == 0 and order[-(2 * SEGMENTS - 2 * target):] == list(range(2 * target, 2 * SEGMENTS)), order
    assert _events(res)[-1]["type"] == "ended"
    fetched = set()
    for _, rng in srv.requests[1:]:
        a, b = (int(x) for x in rng.split("=")[1].split("-"))
        fetched |= {s for s, (o, n) in enumerate(ranges) if a < o + n and b >= o}
    assert fetched == {0, 1} | set(range(target, SEGMENTS)), sorted(fetched)
    _check_frames(res, clip, [2 * target, 2 * SEGMENTS - 1], "seek while playing")


def test_host_without_range_plays_every_frame_from_one_download(clip):
    """A host that answers 200 (python -m http.server): one request, the file once, every frame."""
    with CountingServer({PATH: clip}, ranges=False) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "play", "decoder": "worker", "dump": True})
    assert res.error is None, res.error
    assert res.values["mode"] == "progressive"
    assert len(srv.requests) == 1 and srv.bytes_sent == len(clip)
    assert res.arrays["order"].tolist() == list(range(2 * SEGMENTS))
    _check_frames(res, clip, list(range(2 * SEGMENTS)), "no-Range host")


@pytest.mark.parametrize("ranges", [True, False])
def test_looping_twice_fetches_nothing_the_second_time(clip, ranges):
    with CountingServer({PATH: clip}, ranges=ranges) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "loop", "passes": 2})
    assert res.error is None, res.error
    first, second = json.loads(res.values["passBytes"])
    assert first == second, f"the second pass fetched {second - first} bytes"
    assert srv.bytes_sent <= 1.02 * len(clip)
    order = res.arrays["order"].tolist()
    assert order == list(range(2 * SEGMENTS)) * 2


def test_memory_budget_bounds_the_cache(clip):
    """With room for 3 segments, looping re-fetches what it dropped, and the cache stays in budget."""
    budget = 3 * max(n for _, n in _ranges(clip))
    with CountingServer({PATH: clip}, ranges=True) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "loop", "passes": 2,
                           "options": {"memoryBytes": budget, "bufferSeconds": 0.2}})
    assert res.error is None, res.error
    first, second = json.loads(res.values["passBytes"])
    assert second > first  # dropped segments came back over the wire
    assert json.loads(res.values["stats"])["memoryBytes"] <= budget
    assert res.arrays["order"].tolist() == list(range(2 * SEGMENTS)) * 2


def _bad_content(clip: bytes, s: int) -> bytes:
    """The clip with segment s replaced by a well-formed segment container (valid CRCs) whose
    content the decoder refuses: the fault surfaces in the decoder, not in the byte check."""
    from compress.container import pack_container, unpack_container
    from compress.video.codec import MAGIC
    from compress.video.segment import SEG_MAGIC

    box = unpack_container(clip, magic=MAGIC, max_version=2)
    chunks = [(c.tag, c.data) for c in box.chunks]
    chunks[s] = ("SEGM", pack_container(SEG_MAGIC, 2, {"mode": "tracked"}, []))
    return pack_container(MAGIC, box.version, box.header, chunks)


@pytest.mark.parametrize("decoder,fault", [("thread", "checksum"), ("worker", "checksum"), ("worker", "content"),
                                           ("workers2", "content")])
def test_corrupt_segment_is_a_gap_and_the_rest_plays(clip, decoder, fault):
    bad = 7
    if fault == "checksum":
        off, n = _ranges(clip)[bad]
        data = bytearray(clip)
        data[off + n // 2] ^= 0x40
    else:
        data = _bad_content(clip, bad)
    with CountingServer({PATH: bytes(data)}, ranges=True) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "play", "decoder": decoder, "dump": True})
    assert res.error is None, res.error
    events = _events(res)
    gaps = [e for e in events if e["type"] == "gap"]
    assert len(gaps) == 1 and gaps[0]["segment"] == bad and gaps[0]["first"] == 2 * bad and gaps[0]["frames"] == 2
    msg = gaps[0]["message"]
    assert "\n" not in msg and PATH in msg and f"segment {bad}" in msg and ("checksum" in msg) == (fault == "checksum"), msg
    assert not any(e["type"] == "error" for e in events) and events[-1]["type"] == "ended"
    rest = [i for i in range(2 * SEGMENTS) if i // 2 != bad]
    assert res.arrays["order"].tolist() == rest
    assert json.loads(res.values["stats"])["gaps"] == [bad]
    _check_frames(res, clip, rest, "beside a corrupt segment")


def test_close_aborts_the_download(clip):
    """Closing the player mid-download (a slow host without Range) stops the transfer: the server
    sends a fraction of the file and nothing is received after the close, with no error event."""
    with CountingServer({PATH: clip}, ranges=False, chunk_delay_s=0.05) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "abort", "waitMs": 500})
        time.sleep(0.2)
        sent = srv.bytes_sent
    events = _events(res)
    closed = [e for e in events if e["type"] == "closed"]
    assert closed and res.values["bytesFetched"] == closed[0]["bytes"], events
    assert not any(e["type"] == "error" for e in events), events
    assert sent < len(clip) // 2, f"the server sent {sent} of {len(clip)} bytes after the close"


def test_http_faults_are_one_line_naming_the_url(clip):
    with CountingServer({PATH: clip, "/half.gsv": clip[: len(clip) // 2]}, ranges=True) as srv:
        missing = node_stream({"url": srv.url("/nope.gsv"), "scenario": "play"})
        half = node_stream({"url": srv.url("/half.gsv"), "scenario": "play"})
    with CountingServer({PATH: clip}, ranges=True, short_by=100) as srv:
        short = node_stream({"url": srv.url(PATH), "scenario": "play"})
    with CountingServer({PATH: clip}, ranges=False, short_by=100) as srv:
        short_whole = node_stream({"url": srv.url(PATH), "scenario": "play"})
    for res, want in ((missing, "HTTP 404"), (half, "truncated"), (short, "short read"), (short_whole, "short read")):
        errors = [e for e in _events(res) if e["type"] == "error"]
        assert len(errors) == 1, _events(res)
        msg = errors[0]["message"]
        assert "\n" not in msg and want in msg and msg.startswith("http://127.0.0.1:"), msg


def test_realtime_playback_follows_the_clock(clip):
    """At speed 4 the 40 frames (2.67 s of video) take at least 0.67 s of wall time, in order."""
    with CountingServer({PATH: clip}, ranges=True) as srv:
        res = node_stream({"url": srv.url(PATH), "scenario": "play", "options": {"realtime": True, "speed": 4}})
    assert res.arrays["order"].tolist() == list(range(2 * SEGMENTS))
    duration = 2 * SEGMENTS / res.values["fps"]
    assert res.values["elapsedMs"] >= 0.95 * 1000 * duration / 4
