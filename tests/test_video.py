"""Volumetric video (.gsv): round trips, seeking, untracked input, corruption, kernels, CLI."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.video import FrameStream, VideoReader, VideoSettings, encode_video, is_tracked, read_frames
from compress.video.motion import (blend_positions, blend_positions_reference, farthest_point_sampling, knn_joints,
                                   knn_joints_reference,
                                   matrix_to_quat, procrustes, procrustes_reference, quat_to_matrix, quat_to_rotvec,
                                   rotvec_to_quat, skin_weights)
from render.metrics import psnr
from render.rasterize import rasterize
from splat.camera import orbit_cameras
from splat.errors import FormatError

from conftest import shared_file
from io_helpers import corrupt_segment


@pytest.fixture(scope="module")
def clip():
    from compress.video.synth import performer_frames

    frames, fps = performer_frames(3000, 12, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=2)
    res = encode_video(frames, VideoSettings(gop=6, fps=fps))
    return frames, res


def _psnr(a, b, cams) -> float:
    x = rasterize(a, cams, backend="cpu").colors.clamp(0, 1)
    y = rasterize(b, cams, backend="cpu").colors.clamp(0, 1)
    return float(psnr(x, y).mean())


def test_tracked_round_trip_psnr(clip):
    frames, res = clip
    assert res.info.tracked and res.segment_modes == ["tracked", "tracked"]
    r = VideoReader(res.data)
    assert r.info.n_frames == 12 and r.info.n_segments == 2 and r.info.n_gaussians == len(frames[0])
    assert r.info.segment_of(5) == 0 and r.info.segment_of(6) == 1
    cams = orbit_cameras(frames[0], 2, width=96, height=96, up="+y")
    for i in (0, 3, 5, 8, 11):
        p = _psnr(frames[i], r.frame(i), cams)
        assert p > 35.0, (i, p)
    # compact: far below the independent per-frame keyframes
    assert len(res.data) < 0.5 * 6 * res.stream_bytes["KEYF"]
    r.close()


def test_seek_equals_sequential(clip):
    _, res = clip
    r = VideoReader(res.data)
    seq = [r.frame(i) for i in range(12)]
    r2 = VideoReader(res.data)
    for i in (11, 2, 7, 7, 0, 5, 9):
        assert r2.frame(i).equal(seq[i]), i
    with FrameStream(VideoReader(res.data), start=4, capacity=3, loop=True) as fs:
        got = [fs.next(timeout=30) for _ in range(10)]
        assert [g.index for g in got] == [4, 5, 6, 7, 8, 9, 10, 11, 0, 1]
        assert all(g.scene.equal(seq[g.index]) for g in got)
        assert fs.buffered() <= 3
        fs.seek(9)
        g = fs.next(timeout=30)
        assert g.index == 9 and g.scene.equal(seq[9]) and g.decode_ms >= 0 and g.bytes > 0


def test_untracked_detected_and_decoded(clip):
    frames, _ = clip
    g = torch.Generator().manual_seed(1)
    shuffled = [f[torch.randperm(len(f), generator=g)] for f in frames[:4]]
    assert is_tracked(frames) and not is_tracked(shuffled)
    res = encode_video(shuffled, VideoSettings(gop=2, mode="independent", track=False))
    assert not res.info.tracked and set(res.segment_modes) == {"intra"}
    r = VideoReader(res.data)
    cams = orbit_cameras(frames[0], 2, width=96, height=96, up="+y")
    for i in range(4):
        assert _psnr(shuffled[i], r.frame(i), cams) > 35.0
    from compress.scene.codec import encode
    independent = sum(len(encode(f, None, VideoSettings().quant)[0]) for f in shuffled)
    assert len(res.data) <= independent + 4096  # container overhead only


def test_corrupt_and_truncated_segments(clip, tmp_path):
    _, res = clip
    good = VideoReader(res.data)
    off, ln = good.segment_range(1)
    path = tmp_path / "bad.gsv"
    corrupt_segment(res.data, 1, path)
    r = VideoReader(path)
    assert r.frame(2).equal(good.frame(2))  # segment 0 still decodes
    with pytest.raises(FormatError, match=r"bad\.gsv.*segment 1"):
        r.frame(7)
    r.close()
    trunc = tmp_path / "trunc.gsv"
    trunc.write_bytes(res.data[: off + ln // 3])
    with pytest.raises(FormatError, match=r"trunc\.gsv.*truncated.*chunk 1"):
        VideoReader(trunc)  # truncation is an error at open (`video info` must not list missing segments)
    r = VideoReader(trunc, partial=True)  # ... unless the caller wants what is intact
    assert r.frame(0).equal(good.frame(0))
    with pytest.raises(FormatError, match=r"trunc\.gsv.*segment 1.*truncated"):
        r.frame(6)
    r.close()
    with pytest.raises(FormatError, match="not a .gsv"):
        VideoReader(b"XXXX" + res.data[4:])


def test_bvh_parser():
    from compress.video.bvh import parse_bvh, read_bvh

    m = read_bvh(shared_file("motion", "mocapbank_455f.bvh"))
    assert m.n_frames == 455 and len(m.joints) == 19 and m.n_channels == 6 + 18 * 3
    assert m.joints[0].channels[:3] == ["Xposition", "Yposition", "Zposition"]
    assert abs(m.frame_time - 1 / 30) < 1e-4
    R, P = m.global_transforms(0.01)
    assert np.allclose(R @ R.transpose(0, 1, 3, 2), np.eye(3), atol=1e-9)
    bone = np.linalg.norm(P[:, 5] - P[:, 4], axis=1)  # rigid bone: constant length
    assert np.ptp(bone) < 1e-9
    with pytest.raises(FormatError, match="MOTION holds"):
        parse_bvh("HIERARCHY ROOT a { OFFSET 0 0 0 CHANNELS 1 Xposition } MOTION Frames: 2 Frame Time: 0.1 1.0")


def test_kernels_vs_float64_reference():
    g = torch.Generator().manual_seed(0)
    n, J = 400, 12
    x0 = torch.randn(n, 3, generator=g, dtype=torch.float64)
    jidx = torch.from_numpy(farthest_point_sampling(x0.numpy(), J))
    centers = x0[jidx]
    idx, d2 = knn_joints(x0, centers, 8)
    ref_d2 = ((x0[:, None] - centers[None]) ** 2).sum(-1).sort(1).values[:, :8]
    assert torch.allclose(d2, ref_d2)
    w = skin_weights(d2, 0.7)
    assert torch.allclose(w.sum(1), torch.ones(n, dtype=torch.float64))
    R_true = quat_to_matrix(torch.nn.functional.normalize(torch.randn(J, 4, generator=g, dtype=torch.float64), dim=1))
    t_true = torch.randn(J, 3, generator=g, dtype=torch.float64)
    xt = blend_positions(x0, idx, w, R_true, t_true, centers) + 0.01 * torch.randn(n, 3, generator=g, dtype=torch.float64)
    ref = blend_positions_reference(x0.numpy(), idx.numpy(), w.numpy(), R_true.numpy(), t_true.numpy(), centers.numpy())
    assert np.allclose(blend_positions(x0, idx, w, R_true, t_true, centers).numpy(), ref, atol=1e-10)
    R, t = procrustes(x0, xt, idx, w, centers)
    Rr, tr = procrustes_reference(x0.numpy(), xt.numpy(), idx.numpy(), w.numpy(), centers.numpy())
    assert np.allclose(R.numpy(), Rr, atol=1e-8) and np.allclose(t.numpy(), tr, atol=1e-8)
    assert np.allclose(np.linalg.det(Rr), 1.0)
    # float32 fast path vs float64
    R32, t32 = procrustes(x0.float(), xt.float(), idx, w.float(), centers.float())
    assert np.allclose(R32.numpy(), Rr, atol=1e-4)
    # rigid data: the fit recovers the transform exactly
    Rg = R_true[0]
    xr = (x0 - centers[3]) @ Rg.T + centers[3] + t_true[0]
    Rf, tf = procrustes(x0, xr, idx, w, centers)
    assert torch.allclose(Rf[3], Rg, atol=1e-9) and torch.allclose(tf[3], t_true[0], atol=1e-9)
    # sparse fast path == gathered blend (float32 and float64)
    from compress.video.motion import SparseSkin, blend_quats
    for dt, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
        sk = SparseSkin(idx, w.to(dt), J)
        assert torch.allclose(sk.positions(x0.to(dt), R_true.to(dt), t_true.to(dt), centers.to(dt)),
                              blend_positions(x0, idx, w, R_true, t_true, centers).to(dt), atol=tol)
        qj = torch.nn.functional.normalize(torch.randn(J, 4, generator=g, dtype=torch.float64), dim=1)
        assert torch.allclose(sk.quats(qj.to(dt)), blend_quats(idx, w, qj).to(dt), atol=tol)
    q = matrix_to_quat(R_true)
    assert torch.allclose(quat_to_matrix(q), R_true, atol=1e-12)
    assert torch.allclose(quat_to_matrix(rotvec_to_quat(quat_to_rotvec(q))), R_true, atol=1e-9)


def test_read_frames_natural_order(tmp_path):
    from splat.io import write_scene
    from splat.scene import GaussianScene

    s = GaussianScene.random(10)
    for i in (10, 2, 1):
        write_scene(s, tmp_path / f"f_{i}.ply")
    assert [p.name for p in read_frames(tmp_path)] == ["f_1.ply", "f_2.ply", "f_10.ply"]
    assert [p.name for p in read_frames(str(tmp_path / "f_1*.ply"))] == ["f_1.ply", "f_10.ply"]


def test_cli_round_trip_and_errors(tmp_path, capsys):
    from splat.cli import main
    from splat.io import read_scene

    frames_dir = tmp_path / "frames"
    assert main(["video", "synth", "-o", str(frames_dir), "--gaussians", "1500", "--frames", "6",
                 "--bvh", str(shared_file("motion", "mocapbank_455f.bvh"))]) == 0
    clip = tmp_path / "clip.gsv"
    assert main(["video", "encode", str(frames_dir), "-o", str(clip), "--gop", "3"]) == 0
    assert main(["video", "info", str(clip)]) == 0
    out = tmp_path / "dec"
    assert main(["video", "decode", str(clip), "-o", str(out), "--format", "ply"]) == 0
    files = sorted(out.glob("*.ply"))
    assert len(files) == 6 and len(read_scene(files[5])) == 1500
    capsys.readouterr()
    (tmp_path / "junk.gsv").write_bytes(b"not a video at all")
    assert main(["video", "info", str(tmp_path / "junk.gsv")]) != 0
    err = capsys.readouterr().err.strip()
    assert "junk.gsv" in err and len(err.splitlines()) == 1 and "Traceback" not in err
    assert main(["video", "encode", str(tmp_path / "nothing_here"), "-o", str(tmp_path / "x.gsv")]) != 0
    assert main(["video", "encode", str(frames_dir), "-o", str(clip)]) != 0  # exists, no --force


@pytest.mark.parametrize("layout", ["blob", "flat", "outliers"])
def test_knn_grid_matches_brute_force(layout):
    g = np.random.default_rng(1)
    x = g.normal(size=(3000, 3))
    if layout == "flat":
        x[:, 2] = 0.0  # a degenerate axis
    jidx = farthest_point_sampling(x, 60)
    joints = x[jidx]
    if layout == "outliers":
        x = np.concatenate([x, g.normal(size=(50, 3)) * 40.0])  # far outside the joints' grid
    idx, d2 = knn_joints(torch.from_numpy(x), torch.from_numpy(joints), 8)
    ridx, rd2 = knn_joints_reference(x, joints, 8)
    assert np.array_equal(idx.numpy(), ridx)
    assert np.allclose(d2.numpy(), rd2, rtol=1e-12, atol=0)
