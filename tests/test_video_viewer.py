"""Video playback in the viewer without a browser: the playback controller (play, pause,
seek, speed, loop, dropping late frames, bounded buffering) on a real small ``.gsv``
made by ``encode_video``, and the ``.gsv`` viewer asset (info rows, bad files).
The browser side is in tests/test_viewer_browser.py."""
from __future__ import annotations

import math
import time

import numpy as np
import pytest
import torch

from splat.errors import FormatError
from splat.scene import GaussianScene

video = pytest.importorskip("compress.video", reason="the .gsv video codec is not in this build yet")

N_FRAMES, FPS, GOP, N_GAUSSIANS = 12, 12.0, 4, 300


def moving_sequence(n_frames: int = N_FRAMES, n: int = N_GAUSSIANS, seed: int = 0) -> list[GaussianScene]:
    """A tracked toy clip: a blob of Gaussians turning about y and drifting along x."""
    base = GaussianScene.random(n, sh_degree=1, seed=seed)
    frames = []
    for k in range(n_frames):
        a = 0.15 * k
        rot = torch.tensor([[math.cos(a), 0.0, math.sin(a)], [0.0, 1.0, 0.0], [-math.sin(a), 0.0, math.cos(a)]])
        means = base.means @ rot.T + torch.tensor([0.05 * k, 0.0, 0.0])
        frames.append(base.replace(means=means))
    return frames


def encode(frames: list[GaussianScene], fps: float = FPS, gop: int = GOP) -> bytes:
    settings = video.VideoSettings(fps=fps, gop=gop)
    return bytes(video.encode_video(frames, settings).data)


@pytest.fixture(scope="module")
def clip_bytes() -> bytes:
    return encode(moving_sequence())


@pytest.fixture(scope="module")
def clip_path(clip_bytes, tmp_path_factory):
    p = tmp_path_factory.mktemp("video") / "clip.gsv"
    p.write_bytes(clip_bytes)
    return p


class Player:
    """A controller on a real FrameStream that records what it shows."""

    def __init__(self, data: bytes, *, capacity: int = 4, clock=time.monotonic, **kw) -> None:
        from viewer.playback import PlaybackController

        self.reader = video.VideoReader(data)
        self.stream = video.FrameStream(self.reader, start=0, capacity=capacity, loop=True)
        self.shown: list[tuple[int, float]] = []
        self.scenes: dict[int, GaussianScene] = {}
        self.max_buffered = 0
        info = self.reader.info

        def show(f) -> None:
            self.shown.append((int(f.index), time.monotonic()))
            self.scenes[int(f.index)] = f.scene
            self.max_buffered = max(self.max_buffered, self.stream.buffered())

        self.c = PlaybackController(self.stream, fps=float(info.fps), n_frames=int(info.n_frames), show=show,
                                    clock=clock, **kw)

    @property
    def indices(self) -> list[int]:
        return [i for i, _ in self.shown]

    def close(self) -> None:
        self.c.close()
        self.reader.close()


@pytest.fixture
def player(clip_bytes):
    p = Player(clip_bytes)
    yield p
    p.close()


def steps(indices: list[int], n: int = N_FRAMES) -> list[int]:
    return [(b - a) % n for a, b in zip(indices, indices[1:])]


# ---------------------------------------------------------------------- controller
def test_play_in_order_loops_and_pause_holds(player):
    c = player.c
    c.set_speed(4.0)  # 48 fps: the clip (12 frames) loops within a second
    c.play()
    assert c.wait(lambda c: len(player.shown) >= N_FRAMES + 4, 10), player.indices
    c.pause()
    idx = player.indices
    assert idx[0] == 0 and all(s >= 1 for s in steps(idx)), idx  # forward only
    assert sum(steps(idx)) >= N_FRAMES and min(idx[1:]) < max(idx)  # it wrapped around
    held, n_shown = c.frame, len(player.shown)
    time.sleep(0.3)
    assert c.frame == held and len(player.shown) == n_shown and not c.playing
    c.play()
    assert c.wait(lambda c: len(player.shown) > n_shown, 5)
    assert player.shown[n_shown][0] == (held + 1) % N_FRAMES  # resumes where it paused


def test_seek_shows_the_frame_random_access_decodes(player, clip_bytes):
    c = player.c
    for target in (7, 2, 11, 0):
        c.seek(target)
        assert c.wait(lambda c: c.frame == target, 10), (target, player.indices)
    assert not c.playing
    reader = video.VideoReader(clip_bytes)
    try:
        for i in (7, 2, 11, 0):
            want = reader.frame(i)
            torch.testing.assert_close(player.scenes[i].means, want.means)
            torch.testing.assert_close(player.scenes[i].sh_dc, want.sh_dc)
    finally:
        reader.close()
    c.seek(99)  # clamped to the last frame
    assert c.wait(lambda c: c.frame == N_FRAMES - 1, 10)
    c.seek(5)
    c.play()  # playing continues after the seek target
    assert c.wait(lambda c: len(player.shown) >= 2 and player.indices[-2:] == [5, 6], 10), player.indices


def test_speed_sets_the_pace(clip_bytes):
    from viewer.playback import clamp_speed

    assert clamp_speed(0.01) == 0.25 and clamp_speed(99) == 4.0 and clamp_speed(float("nan")) == 1.0
    for speed in (0.5, 2.0):
        p = Player(clip_bytes, speed=speed)
        try:
            p.c.play()
            assert p.c.wait(lambda c: len(p.shown) >= 5, 10)
            p.c.pause()
            t = [t for _, t in p.shown[:5]]
            period = 1.0 / (FPS * speed)
            # never early: 4 intervals take at least 4 periods (a loaded machine may take longer)
            assert t[-1] - t[0] >= 4 * period * 0.95, (speed, np.diff(t))
            assert p.c.speed == speed
        finally:
            p.close()


def test_late_frames_are_dropped_not_queued(clip_bytes):
    # a clock running 8x faster than real time: the player is always late and must skip
    p = Player(clip_bytes, clock=lambda: 8.0 * time.monotonic())
    try:
        p.c.play()
        assert p.c.wait(lambda c: c.stats.dropped >= 10, 10)
        p.c.pause()
        assert any(s > 1 for s in steps(p.indices)), p.indices  # frames were skipped on screen
        assert p.c.stats.shown + p.c.stats.dropped >= 10
    finally:
        p.close()


class SlowDecoder:
    """A real FrameStream behind a decoder that takes two frame periods per frame."""

    def __init__(self, stream, delay: float) -> None:
        self.stream, self.delay = stream, delay

    def next(self, timeout=None):
        time.sleep(self.delay)
        return self.stream.next(timeout)

    def seek(self, frame):
        self.stream.seek(frame)

    def buffered(self):
        return 0  # never a frame waiting: the decoder is the bottleneck

    def close(self):
        self.stream.close()


def test_slow_decoder_slows_playback_without_skipping(clip_bytes):
    from viewer.playback import PlaybackController

    reader = video.VideoReader(clip_bytes)
    stream = SlowDecoder(video.FrameStream(reader, capacity=2), delay=2.0 / FPS)
    shown = []
    c = PlaybackController(stream, fps=FPS, n_frames=N_FRAMES, show=lambda f: shown.append(int(f.index)))
    try:
        c.play()
        assert c.wait(lambda c: len(shown) >= 6, 10)
        c.pause()
        assert shown[:6] == [0, 1, 2, 3, 4, 5] and c.stats.dropped == 0  # late, but every frame shown
    finally:
        c.close()
        reader.close()


def test_corrupt_segment_is_reported_and_skipped(clip_bytes):
    reader = video.VideoReader(clip_bytes)
    off, length = reader.segment_range(1)  # frames 4..7
    reader.close()
    data = bytearray(clip_bytes)
    data[off + length // 2] ^= 0xFF  # fails the segment's CRC
    errors = []
    p = Player(bytes(data), speed=2.0, on_error=errors.append, next_segment_start=lambda i: (i // GOP + 1) * GOP)
    try:
        p.c.play()
        assert p.c.wait(lambda c: 9 in p.indices, 15), p.indices
        p.c.pause()
        assert errors and isinstance(errors[0], FormatError) and "segment 1" in str(errors[0])
        idx = p.indices[: p.indices.index(9) + 1]
        # segment 1 skipped, playback went on (a late frame may be dropped on a busy machine)
        assert idx[0] == 0 and 8 in idx and not set(idx) & {4, 5, 6, 7}, p.indices
        assert idx == sorted(idx)
        assert p.c.stats.errors >= 1
    finally:
        p.close()


def test_loop_off_stops_on_last_frame_then_restarts(player):
    c = player.c
    c.set_loop(False)
    c.set_speed(4.0)
    c.seek(N_FRAMES - 3)
    c.play()
    assert c.wait(lambda c: c.at_end, 10), player.indices
    assert c.frame == N_FRAMES - 1 and not c.playing
    tail = player.indices[player.indices.index(N_FRAMES - 3):]
    assert tail[-1] == N_FRAMES - 1 and tail == sorted(set(tail)), player.indices  # the last frame is never dropped
    n = len(player.shown)
    time.sleep(0.2)
    assert len(player.shown) == n  # stays on the last frame
    c.play()  # at the end, play starts again from frame 0
    assert c.wait(lambda c: len(player.shown) > n, 10)
    assert player.shown[n][0] == 0


def test_buffer_stays_bounded(clip_bytes):
    p = Player(clip_bytes, capacity=3, speed=4.0)
    try:
        samples = []
        p.c.play()
        t_end = time.monotonic() + 1.0
        while time.monotonic() < t_end:
            samples.append(p.stream.buffered())
            time.sleep(0.01)
        p.c.pause()
        assert max(samples + [p.max_buffered]) <= 3
        assert p.c.stats.decode_ms > 0
    finally:
        p.close()


# ---------------------------------------------------------------------- the viewer asset
def test_gsv_asset_info_and_registration(clip_path):
    from viewer.assets import open_asset
    from viewer.video_view import VideoAsset

    threads = torch.get_num_threads()
    asset = open_asset(clip_path, paused=True)
    try:
        assert isinstance(asset, VideoAsset)
        assert torch.get_num_threads() == 1  # decoding beside a browser: one intra-op thread
        info = asset.info
        assert info.kind == "video" and info.count == N_GAUSSIANS and info.file_size == clip_path.stat().st_size
        rows = dict(info.rows())
        assert rows["frames"].startswith(f"{N_FRAMES}") and rows["fps"] == "12"
        assert "bitrate" in rows and "file size" in rows and "bytes / Gaussian" not in rows
        # per-segment bitrate: segment bytes x 8 x fps / frames in the segment
        reader = video.VideoReader(clip_path)
        try:
            n_seg = reader.info.n_segments
            assert n_seg == math.ceil(N_FRAMES / GOP)
            want = [reader.segment_bytes(s) * 8 * FPS / GOP for s in range(n_seg)]
            first = reader.frame(0)
        finally:
            reader.close()
        np.testing.assert_allclose(asset.segment_bps, want)
        assert asset.next_segment_start(5) == 8 and asset.next_segment_start(N_FRAMES - 1) is None
        torch.testing.assert_close(asset.first_scene.means, first.means)  # shown before any tab plays
        torch.testing.assert_close(first.means.mean(0), moving_sequence()[0].means.mean(0), atol=0.02, rtol=0)
    finally:
        asset.close()
    assert torch.get_num_threads() == threads  # restored


def test_bad_gsv_is_a_clear_error(tmp_path, clip_bytes):
    from viewer.assets import open_asset

    threads = torch.get_num_threads()
    bad = tmp_path / "bad.gsv"
    bad.write_bytes(b"not a video at all" * 10)
    with pytest.raises(FormatError, match="bad.gsv"):
        open_asset(bad)
    assert torch.get_num_threads() == threads
    cut = tmp_path / "cut.gsv"
    cut.write_bytes(clip_bytes[:40])
    with pytest.raises(FormatError, match="cut.gsv"):
        open_asset(cut)
    with pytest.raises(FormatError, match="missing.gsv"):
        open_asset(tmp_path / "missing.gsv")
