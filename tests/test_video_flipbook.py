"""Flipbooks (independently made frames, no shared Gaussians): every decoded frame reaches the
clip's --target-psnr on the held-out views, at no more than half the per-frame SOG bytes."""
from __future__ import annotations

import numpy as np
import pytest

from compress.video import VideoReader, VideoSettings, encode_video
from compress.video.codec import _first_short
from compress.video.fidelity import eval_cameras, frame_fidelity, held_psnr, render_views
from compress.video.segment import encode_keyframe, encode_tracked
from compress.video.tracking import TrackSettings, track_frames

from conftest import shared_file

TARGET = 30.0  # dB: what a carried 2,000-Gaussian sampling reaches after the colour refresh
SMALL = TrackSettings(views=6, size=64)


@pytest.fixture(scope="module")
def flipbook():
    from compress.video.synth import resampled_performer_frames

    fr, _ = resampled_performer_frames(2000, 3, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=3)
    return fr


def _sog_bytes(frames, tmp_path) -> int:
    """Sum of the frames written one by one as SOG (splat.io's writer, as the bench measures)."""
    from splat.io import write_scene

    total = 0
    for i, f in enumerate(frames):
        p = tmp_path / f"f{i}.sog"
        write_scene(f, p, format="sog")
        total += p.stat().st_size
    return total


def test_every_frame_reaches_the_target_at_half_the_sog_bytes(flipbook, tmp_path):
    res = encode_video(flipbook, VideoSettings(gop=30, target_psnr=TARGET, tracking=SMALL))
    assert res.mode == "independent" and "tracked" in res.segment_modes
    assert res.stream_bytes["colour_refreshes"] >= 1  # the carried frames needed (and got) new colours
    r = VideoReader(res.data)
    held = eval_cameras(flipbook[0])  # what `splat video eval` measures
    got = [frame_fidelity(flipbook[i], r.frame(i), held, i).psnr for i in range(len(flipbook))]
    assert min(got) >= TARGET, got
    sog = _sog_bytes(flipbook, tmp_path)
    assert len(res.data) <= 0.5 * sog, (len(res.data), sog)


def test_closed_loop_finds_the_first_decoded_frame_below_the_target(flipbook):
    """The encoder measures the decoded segment, not the carried frames it fed the codec:
    the first frame below the target is where the segment ends."""
    st = VideoSettings().segment_settings()
    key_blob, key, _ = encode_keyframe(flipbook[0], st.quant)
    tr = track_frames(flipbook, SMALL.__class__(**{**SMALL.__dict__, "target_psnr": 0.0}), key=key)
    blob, _ = encode_tracked(tr.frames, st, keyframe=(key_blob, key), transforms=np.stack(tr.transforms))
    cams = eval_cameras(flipbook[0])
    from compress.video.segment import DecodedSegment

    seg = DecodedSegment(blob)
    p = [held_psnr(seg.frame(f), render_views(flipbook[f], cams), cams) for f in range(3)]
    assert _first_short(blob, flipbook, cams, 0.0) is None
    assert _first_short(blob, flipbook, cams, min(p[1:]) + 0.01) == 1 + int(np.argmin(p[1:]))
    assert _first_short(blob, flipbook, cams, max(p[1:]) + 0.01) == 1
