"""Re-sorted volumetric video: correspondence recovery, births and deaths, mode detection."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.container import pack_container, unpack_container
from compress.video import VideoReader, VideoSettings, detect_mode, encode_video
from compress.video.correspondence import gaussian_features, match_gaussians
from compress.video.segment import SEG_MAGIC, DecodedSegment, encode_tracked
from splat.errors import FormatError, UsageError
from splat.scene import GaussianScene

from conftest import shared_file
from io_helpers import corrupt_segment


@pytest.fixture(scope="module")
def frames():
    from compress.video.synth import performer_frames

    fr, _ = performer_frames(2000, 8, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=2)
    return fr


@pytest.fixture(scope="module")
def resorted(frames):
    shuffled, _ = _shuffle(frames)
    return shuffled, encode_video(shuffled, VideoSettings(gop=4))


def _shuffle(frames, seed=0):
    g = torch.Generator().manual_seed(seed)
    perms = [torch.randperm(len(f), generator=g) for f in frames]
    return [f[p] for f, p in zip(frames, perms)], perms


def _nn_error(a: GaussianScene, b: GaussianScene) -> float:
    """Largest distance from a Gaussian of ``a`` to the nearest of ``b`` and back."""
    from scipy.spatial import cKDTree

    d1, _ = cKDTree(b.means.double().numpy()).query(a.means.double().numpy())
    d2, _ = cKDTree(a.means.double().numpy()).query(b.means.double().numpy())
    return float(max(d1.max(), d2.max()))


def test_exact_permutation_recovered(frames):
    a = frames[3]
    (b,), (perm,) = _shuffle([frames[4]], seed=3)
    m = match_gaussians(a.means.double().numpy(), gaussian_features(a), b.means.double().numpy(), gaussian_features(b))
    # frame 4 Gaussian i sits at b index inv[i]; every Gaussian must find itself
    inv = torch.argsort(perm).numpy()
    assert (m == inv).all()
    # a pure permutation of the same frame: recovered exactly as well
    m3 = match_gaussians(a.means.double().numpy(), gaussian_features(a),
                         a[perm].means.double().numpy(), gaussian_features(a[perm]))
    assert (m3 == inv).all()


def test_ambiguous_duplicates_resolved_one_to_one():
    """Two identical Gaussians per site: mutual-best fails, the block assignment pairs them."""
    base = GaussianScene.random(200, seed=0)
    dup = GaussianScene.cat([base, base])
    m = match_gaussians(dup.means.double().numpy(), gaussian_features(dup), dup.means.double().numpy(),
                        gaussian_features(dup))
    assert (m >= 0).all() and len(np.unique(m)) == len(m)
    assert (dup.means[torch.from_numpy(m)] == dup.means).all()


def test_resorted_clip_detected_and_round_trips(frames, resorted):
    shuffled, res = resorted
    assert detect_mode(shuffled) == "resorted" and detect_mode(frames) == "tracked"
    assert res.mode == "resorted" and res.info.coding == "resorted" and set(res.segment_modes) == {"tracked"}
    tracked = encode_video(frames, VideoSettings(gop=4))
    assert len(res.data) <= 1.3 * len(tracked.data)
    r = VideoReader(res.data)
    thr = 0.35 * float(frames[0].scales.median())
    for i in range(len(frames)):
        d = r.frame(i)
        assert len(d) == len(frames[i]) and _nn_error(d, shuffled[i]) < 1.5 * thr
    # random access matches sequential decoding
    assert VideoReader(res.data).frame(6).equal(r.frame(6))


def test_births_and_deaths_round_trip(frames):
    from compress.video.codec import VideoSettings as VS

    shuffled, _ = _shuffle(frames[:6], seed=5)
    extra = frames[0][:40]
    extra = GaussianScene(means=extra.means + 5.0, quats=extra.quats, log_scales=extra.log_scales,
                          opacity_logits=extra.opacity_logits, sh_dc=extra.sh_dc, sh_rest=extra.sh_rest)
    seq = [shuffled[0], shuffled[1][:1700], shuffled[2][:1700], GaussianScene.cat([shuffled[3], extra]),
           GaussianScene.cat([shuffled[4], extra]), shuffled[5][100:]]
    counts = [len(s) for s in seq]
    assert len(set(counts)) > 2
    blob, rep = encode_tracked(seq, VS().segment_settings(), match=True)
    assert rep["deaths"] >= 300 + 40 and rep["births"] >= 300 + 40
    seg = DecodedSegment(blob)
    thr = 0.35 * float(frames[0].scales.median())
    for i, s in enumerate(seq):
        d = seg.frame(i)
        assert len(d) == counts[i]
        assert _nn_error(d, s) < 1.5 * thr
    with pytest.raises(UsageError, match="same Gaussian count"):
        encode_video(seq, VideoSettings(mode="tracked"))


def _rewrite(blob: bytes, tag: str, data: bytes) -> bytes:
    box = unpack_container(blob, magic=SEG_MAGIC, max_version=2, what="segment")
    chunks = [(c.tag, data if c.tag == tag else c.data) for c in box.chunks]
    return pack_container(SEG_MAGIC, 2, box.header, chunks)


def test_inconsistent_births_and_deaths_rejected(frames):
    from compress.entropy import encode_ints
    from compress.video.segment import pack_sparse

    shuffled, _ = _shuffle(frames[:3], seed=7)
    seq = [shuffled[0], shuffled[1][:1900], shuffled[2]]
    blob, _ = encode_tracked(seq, VideoSettings().segment_settings(), match=True)
    DecodedSegment(blob)
    with pytest.raises(FormatError, match="birth"):
        DecodedSegment(_rewrite(blob, "BORN", encode_ints(np.array([0, 7]))))
    with pytest.raises(FormatError, match="frame 1: death index 2050 outside"):
        DecodedSegment(_rewrite(blob, "KILL", pack_sparse(np.array([1, 0]), np.array([2050]), None)))


def test_corrupt_resorted_segment_fails_alone(resorted, tmp_path):
    _, res = resorted
    good = VideoReader(res.data)
    path = tmp_path / "bad.gsv"
    corrupt_segment(res.data, 1, path)
    with VideoReader(path) as r:
        assert r.frame(3).equal(good.frame(3))
        with pytest.raises(FormatError, match=r"bad\.gsv.*segment 1"):
            r.frame(5)


def test_cli_encode_mode_and_eval(frames, resorted, tmp_path, capsys):
    from splat.cli import main
    from splat.io import write_scene

    shuffled, _ = resorted
    src = tmp_path / "frames"
    src.mkdir()
    for i, f in enumerate(shuffled[:4]):
        write_scene(f, src / f"f_{i}.ply")
    out = tmp_path / "clip.gsv"
    assert main(["video", "encode", str(src), "-o", str(out), "--gop", "4"]) == 0
    text = capsys.readouterr().out
    assert "re-sorted" in text and "detected" in text and "fidelity" in text
    assert main(["video", "encode", str(src), "-o", str(tmp_path / "x.gsv"), "--mode", "sideways"]) != 0
    capsys.readouterr()
    assert main(["video", "eval", str(src), str(out), "--frames", "2", "--size", "64", "-o", str(tmp_path)]) == 0
    rows = (tmp_path / "clip_eval.csv").read_text().splitlines()
    assert rows[0].startswith("frame,psnr_db,ssim") and len(rows) == 3
    assert float(rows[1].split(",")[1]) > 35.0
    capsys.readouterr()
    assert main(["video", "eval", str(src), str(out), "-o", str(tmp_path)]) != 0  # exists, no --force
    err = capsys.readouterr().err
    assert "clip_eval.csv exists" in err and "Traceback" not in err
