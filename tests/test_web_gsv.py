"""The TypeScript `.gsv` decoder (viewer/web) against `VideoReader`, on clips the Python encoder
writes in the test: tracked, re-sorted (deaths and births), intra, and a version-1 file.

What is bit for bit and what is not (docs/formats/gsv.md section 3.5): keyframes, intra frames,
every appearance value (colours, SH rest, opacities, log-scales: float64 maths rounded once to
float32) and every count are exact. A predicted frame's centres and rotations come from float32
skinning whose rounding the reference leaves to torch (a vectorised exp for the skin weights,
vectorised sin/cos for the joint rotations, an MKL sparse product in its own summation order):
the TypeScript decoder follows the spec's formulas, accumulates in float64 and rounds once, so
those two arrays agree to a few float32 ulps of the scene's extent, not bit for bit.
"""
from __future__ import annotations

import numpy as np
import pytest
import torch

from compress.container import pack_container, unpack_container
from compress.video import VideoReader, VideoSettings, encode_video
from compress.video.codec import MAGIC
from compress.video.segment import SEG_MAGIC
from splat.scene import GaussianScene

from pathlib import Path

from conftest import shared_file
from web_harness import assert_bits_equal, compare_gsv_frame, node_decode

GOLDEN = Path(__file__).with_name("data") / "video_golden.gsv"


@pytest.fixture(scope="module")
def frames():
    from compress.video.synth import performer_frames

    fr, _ = performer_frames(1500, 8, bvh=shared_file("motion", "mocapbank_455f.bvh"), frame_step=2)
    return fr


def _shuffle(frames, seed):
    g = torch.Generator().manual_seed(seed)
    return [f[torch.randperm(len(f), generator=g)] for f in frames]


@pytest.fixture(scope="module")
def clips(frames):
    """name -> .gsv bytes."""
    out = {"tracked": encode_video(frames, VideoSettings(gop=4)).data}
    sh = _shuffle(frames[:6], seed=5)
    extra = frames[0][:40]
    extra = GaussianScene(means=extra.means + 0.5, quats=extra.quats, log_scales=extra.log_scales,
                          opacity_logits=extra.opacity_logits, sh_dc=extra.sh_dc, sh_rest=extra.sh_rest)
    seq = [sh[0], sh[1][:1300], sh[2][:1300], GaussianScene.cat([sh[3], extra]), GaussianScene.cat([sh[4], extra]),
           sh[5][100:]]
    res = encode_video(seq, VideoSettings(gop=6, mode="resorted"))
    assert res.mode == "resorted" and res.segment_modes == ["tracked"]
    assert res.stream_bytes["deaths"] >= 300 and res.stream_bytes["births"] >= 40  # both are exercised
    out["resorted"] = res.data
    res = encode_video(_shuffle(frames[:3], seed=1), VideoSettings(gop=2, mode="independent", track=False))
    assert set(res.segment_modes) == {"intra"}
    out["intra"] = res.data
    out["version 1"] = _as_version_1(out["tracked"])
    return out


def _as_version_1(data: bytes) -> bytes:
    """The same clip as a version-1 file: no `coding` key, version-1 segments."""
    box = unpack_container(data, magic=MAGIC, max_version=2)
    h = {k: v for k, v in box.header.items() if k != "coding"}
    segs = []
    for c in box.chunks:
        s = unpack_container(c.data, magic=SEG_MAGIC, max_version=2)
        assert "correspondence" not in s.header
        segs.append(("SEGM", pack_container(SEG_MAGIC, 1, s.header, [(x.tag, x.data) for x in s.chunks])))
    return pack_container(MAGIC, 1, h, segs)


def _check_clip(name: str, data: bytes, r) -> dict:
    """The Node result ``r`` of clip ``data`` against VideoReader, frame by frame; worst deviations."""
    assert r.error is None, f"{name}: {r.error}"
    worst = {"pos": 0.0, "rot": 0.0}
    with VideoReader(data) as reader:
        info = reader.info
        assert r.values["frames"] == info.n_frames and r.values["segments"] == info.n_segments
        assert r.values["coding"] == info.coding
        extent = float(np.abs(np.concatenate([info.bounds_min, info.bounds_max])).max())
        for i in range(info.n_frames):
            want = reader.frame(i)
            s = info.segment_of(i)
            predicted = reader.segment(s).mode == "tracked" and i != info.segment_first[s]
            got = {k.split(".", 1)[1]: v for k, v in {**r.arrays, **r.values}.items() if k.startswith(f"f{i}.")}
            assert got["count"] == len(want) and got["shDegree"] == want.sh_degree, f"{name} frame {i}"
            for k, v in compare_gsv_frame(name, got, want, i, predicted, extent).items():
                worst[k] = max(worst[k], v)
    return worst


def test_gsv_matches_video_reader(clips):
    names = list(clips)
    worst = {"pos": 0.0, "rot": 0.0}
    for name, r in zip(names, node_decode([("gsv", clips[n], {}) for n in names])):
        for k, v in _check_clip(name, clips[name], r).items():
            worst[k] = max(worst[k], v)
    print(f"worst predicted-frame deviation: centres {worst['pos']:.3g} x extent, rotations {worst['rot']:.3g}")


def test_gsv_golden_file_matches_video_reader():
    """The frozen re-sorted clip (deaths and births; tests/data/make_web_goldens.py)."""
    data = GOLDEN.read_bytes()
    with VideoReader(data) as reader:
        seg = reader.segment(0)
        assert seg.mode == "tracked" and seg.u.born is not None and len(seg.u.kill[1]) > 0
    _check_clip("golden", data, node_decode([("gsv", data, {})])[0])


def test_gsv_segments_decode_alone_and_refuse_corruption(clips):
    """A segment decodes from its own byte range; a corrupt segment fails alone; truncation is an error at open."""
    data = clips["tracked"]
    reader = VideoReader(data)
    off, ln = reader.segment_range(1)
    bad = bytearray(data)
    bad[off + ln // 2] ^= 0x40
    cases = [bytes(bad), bytes(bad), data[:off + ln // 3], data[:off + ln // 3], data + b"\0", b"GSVX" + data[4:]]
    opts = [{"frames": [1]}, {"frames": [5]}, {"frames": [0]}, {"frames": [0], "partial": True}, {"frames": [0]},
            {"frames": [0]}]
    res = node_decode([("gsv", c, o) for c, o in zip(cases, opts)])
    assert res[0].error is None  # segment 0 is intact
    assert_bits_equal(res[0].arrays["f1.shDc"], reader.frame(1).sh_dc.numpy(), "frame 1 beside a corrupt segment")
    assert res[1].error is not None and "segment 1" in res[1].error and "checksum" in res[1].error
    assert res[2].error is not None and "truncated" in res[2].error
    assert res[3].error is None  # partial=True: the intact segment still decodes
    assert res[4].error is not None and "trailing" in res[4].error
    assert res[5].error is not None and "not a .gsv" in res[5].error
    reader.close()


def test_cli_writes_a_frame_as_the_python_ply(clips, tmp_path):
    """`decode.mjs clip.gsv out.ply --frame N`: intra frames and keyframes as the exact PLY bytes of
    the Python decode (predicted frames differ only by the centre/rotation rounding above)."""
    import subprocess

    from splat.io import ply
    from web_harness import WEB, require_node

    cli = WEB / "cli" / "decode.mjs"
    for name, frame in (("intra", 1), ("tracked", 4)):
        src = tmp_path / f"{name}.gsv"
        src.write_bytes(clips[name])
        out = tmp_path / f"{name}.ply"
        r = subprocess.run([require_node(), str(cli), str(src), str(out), "--frame", str(frame)], capture_output=True,
                           text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        with VideoReader(clips[name]) as reader:
            assert reader.segment(reader.info.segment_of(frame)).mode == name  # frame 4 starts a tracked segment
            assert out.read_bytes() == ply.encode(reader.frame(frame)), name
    r = subprocess.run([require_node(), str(cli), str(tmp_path / "intra.gsv"), str(tmp_path / "x.ply"), "--frame", "99"],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "frames" in r.stderr
    assert not (tmp_path / "x.ply").exists()


def test_gsv_reads_only_the_index_and_the_segments_it_needs(clips):
    """openGsv reads one 64 KiB prefix; a frame fetches exactly its segment's byte range; a
    segment's bytes alone decode to the same frames."""
    data = clips["tracked"]
    with VideoReader(data) as reader:
        ranges = [reader.segment_range(s) for s in range(reader.info.n_segments)]
        want = reader.frame(6)
        res = node_decode([("gsv", data, {"frames": [6], "size": False}),
                           ("gsvSegment", data[ranges[1][0]:sum(ranges[1])], {"frame": 2})])
    reads = res[0].arrays["reads"].reshape(-1, 2).astype(np.int64).tolist()
    assert reads[0] == [0, 65536]  # one speculative read holds the prefix, header and table
    assert reads[1:] == [[ranges[1][0], sum(ranges[1])]]  # then segment 1 alone
    assert_bits_equal(res[0].arrays["f6.shDc"], want.sh_dc.numpy(), "frame 6")
    assert_bits_equal(res[1].arrays["shDc"], want.sh_dc.numpy(), "frame 6 from its segment's bytes")
    assert_bits_equal(res[1].arrays["means"], res[0].arrays["f6.means"], "frame 6 from its segment's bytes")


def test_gsv_skin_binding_is_exact():
    """Which joints bind each Gaussian (section 3.3, float32 decisions) is bit for bit the Python
    binding, for the keyframe and after deaths and births; the weights (float32 exp) agree to 1e-6."""
    data = GOLDEN.read_bytes()
    with VideoReader(data) as reader:
        off, ln = reader.segment_range(0)
        seg = reader.segment(0)
        frames = [0, 3, seg.frames - 1]
        want = []
        for f in frames:
            seg.frame(f)
            want.append((seg.state.bind_idx.numpy().copy(), seg.state.bind_w.numpy().copy()))
    res = node_decode([("gsvSegment", data[off:off + ln], {"frame": f}) for f in frames])
    for f, r, (idx, w) in zip(frames, res, want):
        assert r.error is None, r.error
        assert_bits_equal(r.arrays["bindIdx"], idx, f"frame {f}: bound joints")
        assert np.abs(r.arrays["bindW"] - w.reshape(-1)).max() <= 1e-6, f"frame {f}: weights"


@pytest.mark.parametrize("layout", ["clustered", "uniform", "line", "duplicates"])
def test_binding_kernels_match_python(layout):
    """The joint table (grid search and its brute-force reference) and each point's k nearest
    joints with their float32 squared distances, bit for bit against compress.video.motion."""
    from compress.video.motion import _joint_table, knn_joints

    rng = np.random.default_rng(7)
    if layout == "clustered":
        c = (rng.normal(size=(300, 3)) * 0.1 + rng.normal(size=(6, 3))[rng.integers(0, 6, 300)]).astype(np.float32)
    elif layout == "uniform":
        c = (rng.random((200, 3)) * 4 - 2).astype(np.float32)
    elif layout == "line":
        c = np.stack([np.linspace(-3, 3, 150), np.zeros(150), np.zeros(150)], 1).astype(np.float32) + 100.0
    else:  # coincident joints: ties everywhere, resolved by the lower index
        c = np.repeat((rng.random((40, 3)) * 2).astype(np.float32), 3, axis=0)
    x = (c[rng.integers(0, len(c), 3000)] + rng.normal(size=(3000, 3)) * 0.2).astype(np.float32)
    x[:50] = c[:50]  # points exactly at joints
    k = 8
    m = min(len(c), 2 * k + 8)
    r = node_decode([("joints", c.tobytes() + x.tobytes(), {"joints": len(c), "k": k})])[0]
    assert r.error is None, r.error
    table = _joint_table(c, m)
    assert_bits_equal(r.arrays["table"], table, f"{layout}: joint table (grid)")
    assert_bits_equal(r.arrays["tableRef"], table, f"{layout}: joint table (brute force)")
    idx, d2 = knn_joints(torch.from_numpy(x), torch.from_numpy(c), k)
    assert_bits_equal(r.arrays["idx"], idx.numpy(), f"{layout}: bound joints")
    assert_bits_equal(r.arrays["d2"], d2.numpy(), f"{layout}: squared distances")
