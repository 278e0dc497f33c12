"""Render-supervised tracking of independently made frames (no shared Gaussians): motion, colour refresh, coding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.video import VideoReader, VideoSettings, detect_mode, encode_video
from compress.video.fidelity import eval_cameras, frame_fidelity
from compress.video.segment import DecodedSegment, encode_keyframe, encode_tracked
from compress.video.tracking import TrackSettings, fit_colours, track_frames, train_cameras

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
    res = track_frames(frames, TrackSettings(views=4, iters=10, size=56, coarse=1.0, target_psnr=0.0))
    assert len(res.frames) == len(frames) and all(len(f) == len(frames[0]) for f in res.frames)
    tracked = res.psnr[1:]
    # held-out views: the carried keyframe follows the motion it was never given directly
    assert all(t > s + 0.5 for t, s in zip(tracked, static)), (static, tracked)
    assert not any(res.refreshed) and [t.shape for t in res.transforms] == [res.transforms[0].shape] * 3


def test_colour_refresh_lifts_a_carried_frame_above_the_resampling_floor():
    """Two samplings of one pose differ by their sampling noise; re-fitting the carried set's
    colours to the other sampling's renders (training views) raises held-out PSNR."""
    from compress.video.bvh import read_bvh
    from compress.video.synth import Performer

    motion = read_bvh(shared_file("motion", "mocapbank_455f.bvh"))
    a, b = Performer(motion, 1500, seed=1).frame(0), Performer(motion, 1500, seed=2).frame(0)
    held = eval_cameras(a)
    floor = frame_fidelity(b, a, held).psnr
    cams = train_cameras(a, 8, 64)
    from render.metrics import mse
    from render.rasterize import rasterize

    ref = rasterize(b, cams, backend="cpu").colors.clamp(0, 1)
    out, steps = fit_colours(a, ref, cams, iters=6)
    assert steps == 6 and torch.equal(out.means, a.means) and torch.equal(out.opacity_logits, a.opacity_logits)
    assert frame_fidelity(b, out, held).psnr > floor + 1.0
    # least squares on the training views: the residual falls below the start's and stays in the codec's range
    err = [float(mse(rasterize(s, cams, backend="cpu").colors.clamp(0, 1), ref).mean()) for s in (a, out)]
    assert err[1] < 0.7 * err[0], err
    rgb = out.sh_dc * 0.28209479177387814 + 0.5
    changed = (out.sh_dc != a.sh_dc).any(1)
    assert changed.any() and rgb[changed].min() >= -1e-6 and rgb[changed].max() <= 1 + 1e-6


def test_independent_clip_is_tracked_and_smaller_than_intra(frames):
    quick = TrackSettings(views=4, iters=6, size=48)
    intra = encode_video(frames, VideoSettings(gop=3, mode="independent", track=False))
    res = encode_video(frames, VideoSettings(gop=3, target_psnr=0.0, tracking=quick))
    assert res.mode == "independent" and res.segment_modes == ["tracked"]
    assert len(res.data) < 0.6 * len(intra.data)
    # the codec reproduces the carried motion from the tracked joint transforms alone
    assert res.stream_bytes["position_updates"] <= 0.01 * 2 * len(frames[0])
    r = VideoReader(res.data)
    assert [len(r.frame(i)) for i in range(3)] == [len(frames[0])] * 3
    # an unreachable target: every frame starts its own (intra) segment
    strict = encode_video(frames, VideoSettings(gop=3, target_psnr=99.0, tracking=TrackSettings(views=4, iters=1, size=32)))
    assert strict.segment_modes == ["intra"] * 3 and VideoReader(strict.data).info.n_frames == 3


def _with_blob(scene, shift):
    """``scene`` plus a copy of its first 150 Gaussians moved by ``shift`` (metres, x)."""
    from splat.scene import GaussianScene

    blob = scene[torch.arange(150)]
    moved = GaussianScene(means=blob.means + torch.tensor([shift, 0.0, 0.0]), quats=blob.quats,
                          log_scales=blob.log_scales, opacity_logits=blob.opacity_logits, sh_dc=blob.sh_dc,
                          sh_rest=blob.sh_rest)
    return GaussianScene.cat([scene, moved])


def test_densify_births_and_deaths_round_trip():
    """A part of the keyframe vanishes and a new one appears: tracking kills the first and
    births the second (raising held-out PSNR), and the codec carries both through the clip
    with the counts changing, decoding to what tracking built."""
    from compress.video.bvh import read_bvh
    from compress.video.synth import Performer

    motion = read_bvh(shared_file("motion", "mocapbank_455f.bvh"))
    body = Performer(motion, 1500, seed=1).frames(3)
    frames = [_with_blob(body[0], 0.6), _with_blob(body[1], -0.6), _with_blob(body[2], -0.6)]
    ts = TrackSettings(views=4, size=48, iters=4, colour_iters=0, target_psnr=30.0)
    st = VideoSettings().segment_settings()
    key_blob, key, _ = encode_keyframe(frames[0], st.quant)
    res = track_frames(frames, ts, key=key)
    assert len(res.frames) == 3, res.psnr
    assert res.births[1] >= 140 and len(res.deaths[1]) >= 140 and res.births[2] == 0 and len(res.deaths[2]) == 0
    assert res.psnr[1] > res.motion_psnr[1] + 3.0 and min(res.psnr[1:]) >= 30.0
    blob, rep = encode_tracked(res.frames, st, keyframe=(key_blob, key), transforms=np.stack(res.transforms),
                               deaths=res.deaths)
    assert rep["births"] == res.births[1] and rep["deaths"] == len(res.deaths[1]) and rep["position_updates"] == 0
    seg = DecodedSegment(blob)
    for i in range(3):  # decoded = carried (up to the order of the births and quantization)
        dec, car = seg.frame(i), res.frames[i]
        assert len(dec) == len(car)
        a, b = np.sort(dec.means.numpy(), axis=0), np.sort(car.means.numpy(), axis=0)
        assert np.abs(a - b).max() < 0.35 * float(key.scales.median())
