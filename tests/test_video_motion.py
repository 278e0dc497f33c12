"""Video under large, non-rigid motion: the synthetic motion generator, registration
(appearance anchors + coarse-to-fine deformation), auto mode and coding of twisted clips."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.video import VideoSettings, decode_video, detect_mode, encode_video
from compress.video.correspondence import gaussian_features, match_gaussians, spacing
from compress.video.register import appearance_anchors, appearance_descriptors, recovered_share, register_frames
from compress.video.segment import encode_keyframe
from compress.video.synth_motion import motion_clip
from splat.scene import GaussianScene

from conftest import shared_file


@pytest.fixture(scope="module")
def scene():
    """A real scene (fruit drops, 4.7k Gaussians, SH 3)."""
    from splat.io import read_scene

    return read_scene(shared_file("scenes", "fruit_drops_sh3.ply")).to(dtype=torch.float32)


def _plain(a, b):
    return match_gaussians(a.means.double().numpy(), gaussian_features(a), b.means.double().numpy(),
                           gaussian_features(b))


def test_motion_clip_knows_the_permutation_and_speed(scene):
    clip = motion_clip(scene, "twist", speed=6.0, frames=4, cycle=12)
    # frame f's Gaussian g (at truth[f][g]) keeps the scene's appearance
    for f, fr in enumerate(clip.frames):
        back = fr[torch.from_numpy(clip.truth[f])]
        assert torch.equal(back.sh_dc, scene.sh_dc) and torch.equal(back.log_scales, scene.log_scales)
        assert not np.array_equal(clip.truth[f], np.arange(len(scene)))  # re-sorted every frame
    assert max(clip.speeds) == pytest.approx(6.0, rel=0.02)
    # rotations follow the motion: a Gaussian's rotation changes by its position's turn
    a = clip.frames[0][torch.from_numpy(clip.truth[0])]
    b = clip.frames[1][torch.from_numpy(clip.truth[1])]
    assert float((a.means - b.means).norm(dim=1).max()) == pytest.approx(6.0 * clip.spacing, rel=0.02)
    assert float((a.unit_quats * b.unit_quats).sum(1).abs().min()) < 0.9999
    with pytest.raises(ValueError, match="unknown motion"):
        motion_clip(scene, "spin")


@pytest.mark.parametrize("kind", ["twist", "swing"])
def test_registration_recovers_fast_motion(scene, kind):
    """At 10 neighbour spacings per frame the plain matcher loses most pairs; the
    registration recovers >= 95% (also from the decoded, quantized keyframe)."""
    clip = motion_clip(scene, kind, speed=10.0, frames=2, cycle=12, seed=1)
    a, b = clip.frames
    assert recovered_share(_plain(a, b), clip.truth[0], clip.truth[1]) < 0.7
    reg = register_frames(a, b)
    assert recovered_share(reg.match, clip.truth[0], clip.truth[1]) >= 0.95
    m = reg.match[reg.match >= 0]
    assert len(np.unique(m)) == len(m)  # one to one
    _, dec, perm = encode_keyframe(a, VideoSettings().quant)
    truth_dec = torch.argsort(perm).numpy()[clip.truth[0]]
    assert recovered_share(register_frames(dec, b).match, truth_dec, clip.truth[1]) >= 0.95


def test_registration_survives_dropped_frames(scene):
    clip = motion_clip(scene, "twist", speed=5.0, frames=9, cycle=12, keep=[0, 4, 8])
    assert min(clip.speeds[1:]) > 8.0  # four steps per kept frame
    for f in (1, 2):
        reg = register_frames(clip.frames[f - 1], clip.frames[f])
        assert recovered_share(reg.match, clip.truth[f - 1], clip.truth[f]) >= 0.95


def test_anchors_use_only_motion_invariant_attributes(scene):
    """Descriptors do not change under rotation/translation; anchors of a scene against a
    moved, shuffled copy of itself pair each Gaussian with itself."""
    perm = torch.randperm(len(scene), generator=torch.Generator().manual_seed(0))
    moved = scene.replace(means=scene.means + 5.0, quats=scene.quats.flip(1))[perm]
    da, db = appearance_descriptors(scene), appearance_descriptors(moved)
    np.testing.assert_allclose(da[perm.numpy()], db)
    ia, ib = appearance_anchors(da, db)
    assert len(ia) > 0.5 * len(scene)
    assert (perm.numpy()[ib] == ia).all()


def test_registration_handles_births_and_empty(scene):
    clip = motion_clip(scene, "swing", speed=8.0, frames=2, cycle=12)
    a, b = clip.frames
    keep = torch.arange(len(b)) % 10 != 0  # 10% of the next frame is gone
    reg = register_frames(a, b[keep])
    assert (reg.match >= 0).sum() <= int(keep.sum())
    new_index = torch.cumsum(keep.long(), 0).numpy() - 1
    alive = keep.numpy()[clip.truth[1]]
    got = reg.match[clip.truth[0][alive]]
    assert (got == new_index[clip.truth[1][alive]]).mean() >= 0.95
    empty = register_frames(a, GaussianScene.empty(a.sh_degree))
    assert (empty.match == -1).all()


def test_auto_mode_codes_a_twist_resorted_not_intra(scene):
    """A twisted clip at 8 spacings per frame: auto mode finds the correspondence, codes the
    clip re-sorted, far below intra, with at least 40 dB on every frame."""
    from render.metrics import psnr
    from render.rasterize import rasterize
    from splat.camera import orbit_cameras

    from compress.scene import codec as lgs

    clip = motion_clip(scene, "twist", speed=8.0, frames=4, cycle=12)
    res = encode_video(clip.frames, VideoSettings(gop=4))
    assert res.mode_detected == "resorted" and res.mode == "resorted"
    assert res.stream_bytes["births"] <= 0.05 * len(scene) * 3
    intra = sum(len(lgs.encode(f, None, VideoSettings().quant)[0]) for f in clip.frames)
    assert len(res.data) < 0.6 * intra
    cams = orbit_cameras(clip.frames[0], 2, width=96, height=96, up="+y", elevation_deg=10)
    for d, o in zip(decode_video(res.data), clip.frames):
        ref = rasterize(o, cams, backend="cpu").colors.clamp(0, 1)
        assert float(psnr(rasterize(d, cams, backend="cpu").colors.clamp(0, 1), ref).mean()) >= 40.0


def test_spacing_is_scale_free(scene):
    assert spacing(scene.means.double().numpy() * 3) == pytest.approx(3 * spacing(scene.means.double().numpy()))


def _smooth_mixamo_bvh(path, frames: int = 6) -> None:
    """The Mixamo-style skeleton of ``test_video_cli`` (zero-length bones, end sites) with
    smooth, large per-joint motion (up to 40 degrees amplitude)."""
    from test_video_cli import mixamo_bvh

    text, nj = mixamo_bvh(2)
    g = np.random.default_rng(1)
    amp, ph = g.uniform(5, 40, 3 * nj), g.uniform(0, 2 * np.pi, 3 * nj)
    lines = ["MOTION", f"Frames: {frames}", "Frame Time: 0.0333333"]
    for f in range(frames):
        vals = [0.5 * f, 95.0, 0.0] + list(amp * np.sin(2 * np.pi * f / 30 + ph))
        lines.append(" ".join(f"{v:.4f}" for v in vals))
    path.write_text(text[:text.index("MOTION")] + "\n".join(lines) + "\n")


@pytest.mark.parametrize("which", ["mocap", "mixamo"])
def test_shuffled_performer_costs_at_most_1_3x_ordered(which, tmp_path):
    """Under a real motion capture and a synthetic Mixamo skeleton with zero-length bones:
    the shuffled clip is detected re-sorted and costs <= 1.3x the ordered (tracked) clip."""
    from compress.video.synth import performer_frames

    if which == "mocap":
        bvh = shared_file("motion", "mocapbank_455f.bvh")
    else:
        bvh = tmp_path / "mixamo.bvh"
        _smooth_mixamo_bvh(bvh)
    frames, _ = performer_frames(1200, 6, bvh=bvh)
    g = torch.Generator().manual_seed(0)
    shuffled = [f[torch.randperm(len(f), generator=g)] for f in frames]
    ordered = encode_video(frames, VideoSettings(gop=6))
    res = encode_video(shuffled, VideoSettings(gop=6))
    assert ordered.mode == "tracked" and res.mode == "resorted"
    assert len(res.data) <= 1.3 * len(ordered.data)
