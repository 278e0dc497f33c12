"""`splat video` commands: degenerate BVH bones, up-front output checks, partial decode, per-command help."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import splat.io as sio
from splat.cli import main

FINGERS = ("Thumb", "Index", "Middle", "Ring")


def _joint(name: str, offset: tuple[float, float, float], children: list[str], depth: int, end: bool = False) -> list[str]:
    pad = "  " * depth
    out = [f"{pad}JOINT mixamorig:{name}", f"{pad}{{", f"{pad}  OFFSET {offset[0]:.4f} {offset[1]:.4f} {offset[2]:.4f}",
           f"{pad}  CHANNELS 3 Zrotation Xrotation Yrotation"]
    out += children
    if end:  # Mixamo's *_End joints: an End Site of length zero
        out += [f"{pad}  End Site", f"{pad}  {{", f"{pad}    OFFSET 0.0000 0.0000 0.0000", f"{pad}  }}"]
    out.append(f"{pad}}}")
    return out


def _chain(names: list[str], offsets: list[tuple[float, float, float]], depth: int, tail: list[str] | None = None) -> list[str]:
    """Nested joints name[0] > name[1] > ...; the last ends in a zero-length End Site (or holds ``tail``)."""
    if not names:
        return tail or []
    inner = _chain(names[1:], offsets[1:], depth + 1, tail)
    return _joint(names[0], offsets[0], inner, depth, end=len(names) == 1 and not tail)


def mixamo_bvh(frames: int = 8) -> tuple[str, int]:
    """A Mixamo-style BVH: 54 joints named ``mixamorig:*``, zero-length bones and end sites."""
    body: list[str] = []
    for side, sx in (("Left", 1.0), ("Right", -1.0)):
        hand = []
        for k, f in enumerate(FINGERS):
            hand += _chain([f"{side}Hand{f}{i}" for i in range(1, 5)],
                           [(sx * 3.0, -1.0, 2.0 - k), (0.0, -2.5, 0.0), (0.0, -2.0, 0.0), (0.0, 0.0, 0.0)], 7)
        body += _chain([f"{side}Shoulder", f"{side}Arm", f"{side}ForeArm", f"{side}Hand"],
                       [(sx * 6.0, 10.0, 0.0), (sx * 12.0, 0.0, 0.0), (0.0, -26.0, 0.0), (0.0, -24.0, 0.0)], 4, hand)
    body += _chain(["Neck", "Head"], [(0.0, 14.0, 0.0), (0.0, 9.0, 0.0)], 4)
    spine = _chain(["Spine", "Spine1", "Spine2"], [(0.0, 0.0, 0.0), (0.0, 12.0, 0.0), (0.0, 12.0, 0.0)], 1, body)
    legs: list[str] = []
    for side, sx in (("Left", 1.0), ("Right", -1.0)):
        legs += _chain([f"{side}UpLeg", f"{side}Leg", f"{side}Foot", f"{side}ToeBase"],
                       [(sx * 9.0, -6.0, 0.0), (0.0, -42.0, 0.0), (0.0, -40.0, 0.0), (0.0, -5.0, 12.0)], 1)
    lines = ["HIERARCHY", "ROOT mixamorig:Hips", "{", "  OFFSET 0.0000 95.0000 0.0000",
             "  CHANNELS 6 Xposition Yposition Zposition Zrotation Xrotation Yrotation", *spine, *legs, "}"]
    n_joints = sum(1 for line in lines if line.strip().startswith(("ROOT", "JOINT")))
    g = np.random.default_rng(0)
    lines += ["MOTION", f"Frames: {frames}", "Frame Time: 0.0333333"]
    for f in range(frames):
        vals = [0.5 * f, 95.0, 0.0] + list(g.normal(0, 10.0, 3 * n_joints))
        lines.append(" ".join(f"{v:.4f}" for v in vals))
    return "\n".join(lines) + "\n", n_joints


@pytest.fixture
def mixamo(tmp_path: Path) -> Path:
    text, n = mixamo_bvh()
    assert n == 54
    path = tmp_path / "mixamo.bvh"
    path.write_text(text)
    return path


def test_mixamo_bvh_gives_finite_frames(mixamo, tmp_path):
    out = tmp_path / "frames"
    assert main(["video", "synth", "-o", str(out), "--bvh", str(mixamo), "--gaussians", "400", "--frames", "3"]) == 0
    files = sorted(out.iterdir())
    assert [p.name for p in files] == ["frame_0000.ply", "frame_0001.ply", "frame_0002.ply"]
    for p in files:
        s = sio.read_scene(p)
        assert len(s) == 400
        for t in (s.means, s.quats, s.log_scales, s.opacity_logits, s.sh_dc, s.sh_rest):
            assert bool(t.isfinite().all())
    # random per-joint motion reads as independent frames; the synth output is tracked by construction
    assert main(["video", "encode", str(out), "-o", str(tmp_path / "m.gsv"), "--gop", "3", "--mode", "tracked"]) == 0


def test_synth_refuses_to_overwrite_without_force(mixamo, tmp_path, capsys):
    out = tmp_path / "frames"
    args = ["video", "synth", "-o", str(out), "--bvh", str(mixamo), "--gaussians", "200", "--frames", "2"]
    assert main(args) == 0
    before = (out / "frame_0000.ply").read_bytes()
    capsys.readouterr()
    assert main([*args, "--shuffle"]) == 2
    err = capsys.readouterr().err
    assert "frame_0000.ply and 1 more exist" in err and "--force" in err
    assert (out / "frame_0000.ply").read_bytes() == before
    assert main([*args, "--shuffle", "--force"]) == 0
    assert (out / "frame_0000.ply").read_bytes() != before
    (tmp_path / "file").write_text("x")
    assert main(["video", "synth", "-o", str(tmp_path / "file"), "--bvh", str(mixamo), "--gaussians", "200"]) == 2
    assert "is a file, expected a folder" in capsys.readouterr().err


def test_synth_without_default_bvh_is_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPLAT_BVH", str(tmp_path / "absent.bvh"))
    assert main(["video", "synth", "-o", str(tmp_path / "f")]) == 2
    err = capsys.readouterr().err
    assert "no default motion capture" in err and "--bvh" in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "f").exists()


@pytest.fixture
def clip(mixamo, tmp_path) -> Path:
    frames = tmp_path / "frames"
    assert main(["video", "synth", "-o", str(frames), "--bvh", str(mixamo), "--gaussians", "300", "--frames", "6"]) == 0
    path = tmp_path / "c.gsv"
    assert main(["video", "encode", str(frames), "-o", str(path), "--gop", "2", "--untracked"]) == 0
    return path


def test_decode_checks_every_frame_up_front(clip, tmp_path, capsys):
    out = tmp_path / "dec"
    out.mkdir()
    (out / "frame_0004.ply").write_bytes(b"mine")
    assert main(["video", "decode", str(clip), "-o", str(out)]) == 2
    assert "frame_0004.ply exist" in capsys.readouterr().err
    assert sorted(p.name for p in out.iterdir()) == ["frame_0004.ply"]  # nothing written before the check
    assert main(["video", "decode", str(clip), "-o", str(out), "--force"]) == 0
    assert len(list(out.iterdir())) == 6 and len(sio.read_scene(out / "frame_0004.ply")) == 300


def test_decode_keeps_intact_segments(clip, tmp_path, capsys):
    from compress.video.codec import VideoReader

    with VideoReader(clip) as r:
        off, ln = r.segment_range(1)
        assert r.info.n_segments == 3
    data = bytearray(clip.read_bytes())
    data[off + ln // 2: off + ln // 2 + 16] = bytes(16) if any(data[off + ln // 2: off + ln // 2 + 16]) else b"\xff" * 16
    bad = tmp_path / "bad.gsv"
    bad.write_bytes(bytes(data))
    out = tmp_path / "dec"
    capsys.readouterr()
    assert main(["video", "decode", str(bad), "-o", str(out)]) == 2
    captured = capsys.readouterr()
    assert sorted(p.name for p in out.iterdir()) == ["frame_0000.ply", "frame_0001.ply", "frame_0004.ply", "frame_0005.ply"]
    assert "segment 1 (frames 2..3)" in captured.out and "2 frame(s) not written" in captured.err


@pytest.mark.parametrize("cmd,example", [("encode", "splat video encode frames/"), ("decode", "splat video decode clip.gsv"),
                                         ("info", "splat video info clip.gsv"), ("synth", "splat video synth -o")])
def test_each_video_command_has_its_own_examples(cmd, example, capsys):
    assert main(["video", cmd, "--help"]) == 0
    out = capsys.readouterr().out
    assert example in out
    for other in {"encode", "decode", "info", "synth"} - {cmd}:
        assert f"splat video {other} " not in out


def test_target_psnr_missed_writes_and_names_the_frames(mixamo, tmp_path, capsys):
    """A target the clip cannot reach: the clip is written, the summary says how many checked
    frames reach it, and one warning line names the frames below it with their PSNR."""
    frames = tmp_path / "frames"
    assert main(["video", "synth", "-o", str(frames), "--bvh", str(mixamo), "--gaussians", "300", "--frames", "3"]) == 0
    path = tmp_path / "c.gsv"
    capsys.readouterr()
    assert main(["video", "encode", str(frames), "-o", str(path), "--gop", "3", "--untracked",
                 "--target-psnr", "99"]) == 0
    out, err = capsys.readouterr()
    from compress.video.codec import VideoReader

    assert VideoReader(path).info.n_frames == 3
    assert "0 of 3 checked frames reach it" in out
    line = [x for x in err.splitlines() if "warning:" in x]
    assert len(line) == 1 and "3 of 3 checked frames are below --target-psnr 99" in line[0]
    assert all(f"frame {i} " in line[0] for i in range(3)) and "dB" in line[0]
    # a reachable target: no warning
    capsys.readouterr()
    assert main(["video", "encode", str(frames), "-o", str(path), "--gop", "3", "--untracked", "--target-psnr", "20",
                 "--force"]) == 0
    out, err = capsys.readouterr()
    assert "warning" not in err and "3 of 3 checked frames reach it" in out
