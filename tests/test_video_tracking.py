"""Render-supervised tracking of independently made frames (no shared Gaussians)."""
from __future__ import annotations

import pytest

from compress.video import VideoReader, VideoSettings, detect_mode, encode_video
from compress.video.eval import eval_cameras, frame_fidelity
from compress.video.tracking import TrackSettings, track_frames

from conftest import shared_file


@pytest.fixture(scope="module")
def frames():
    from compress.video.synth import resampled_performer_frames

    fr, _ = resampled_performer_frames(1500, 3, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=3)
    return fr


def test_tracking_by_rendering_raises_fidelity(frames):
    assert detect_mode(frames) == "independent"
    held = eval_cameras(frames[0])
    static = [frame_fidelity(f, frames[0], held).psnr for f in frames[1:]]
    res = track_frames(frames, TrackSettings(iters=10, size=56, target_psnr=0.0))
    assert len(res.frames) == len(frames) and all(len(f) == len(frames[0]) for f in res.frames)
    tracked = res.psnr[1:]
    # held-out views: the carried keyframe follows the motion it was never given directly
    assert all(t > s + 1.0 for t, s in zip(tracked, static)), (static, tracked)


def test_independent_clip_is_tracked_and_smaller_than_intra(frames):
    quick = TrackSettings(iters=6, size=48)
    intra = encode_video(frames, VideoSettings(gop=3, mode="independent", track=False))
    res = encode_video(frames, VideoSettings(gop=3, target_psnr=0.0, tracking=quick))
    assert res.mode == "independent" and res.segment_modes == ["tracked"]
    assert len(res.data) < 0.6 * len(intra.data)
    r = VideoReader(res.data)
    assert [len(r.frame(i)) for i in range(3)] == [len(frames[0])] * 3
    # an unreachable target: every frame starts its own (intra) segment
    strict = encode_video(frames, VideoSettings(gop=3, target_psnr=99.0, tracking=TrackSettings(iters=1, size=32)))
    assert strict.segment_modes == ["intra"] * 3 and VideoReader(strict.data).info.n_frames == 3
