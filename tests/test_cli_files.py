"""CLI files and paths: one-line errors, output modes, stale temporaries, atomic SOG folders, special inputs."""
from __future__ import annotations

import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

import splat.cli_core
import splat.io as sio
from splat import GaussianScene
from splat.atomic import _HOST, atomic_dir, atomic_write_bytes, check_input_file, check_output_path, remove_stale
from splat.cli import main
from splat.errors import FormatError, UsageError


@pytest.fixture
def small_ply(tmp_path: Path) -> Path:
    path = tmp_path / "s.ply"
    sio.write_scene(GaussianScene.random(50, sh_degree=1, seed=2), path)
    return path


def _lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip()]


def test_unexpected_error_is_one_line(small_ply, monkeypatch, capsys):
    def boom(*a, **k):
        raise RuntimeError("something\nbroke")

    monkeypatch.setattr(splat.cli_core, "read_scene", boom)
    monkeypatch.delenv("SPLAT_DEBUG", raising=False)
    assert main(["info", str(small_ply)]) == 1
    err = capsys.readouterr().err
    assert len(_lines(err)) == 1, err
    assert "RuntimeError: something broke" in err and "SPLAT_DEBUG=1" in err and "Traceback" not in err
    monkeypatch.setenv("SPLAT_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["info", str(small_ply)])


def test_issue_repro_has_no_traceback(tmp_path, capsys, monkeypatch):
    """The issue's repro (a PLY claiming one vertex followed by 5,000 zeros) never prints a traceback."""
    props = ["x", "y", "z", "f_dc_0", "f_dc_1", "f_dc_2", "opacity", "scale_0", "scale_1", "scale_2",
             "rot_0", "rot_1", "rot_2", "rot_3"]
    head = "ply\nformat binary_little_endian 1.0\nelement vertex 1\n" + "".join(f"property float {p}\n" for p in props)
    path = tmp_path / "zeros.ply"
    path.write_bytes((head + "end_header\n").encode() + bytes(5000))
    monkeypatch.delenv("SPLAT_DEBUG", raising=False)
    rc = main(["convert", str(path), str(tmp_path / "o.splat")])
    err = capsys.readouterr().err
    assert rc in (0, 2) and "internal error" not in err and len(_lines(err)) <= 2  # read, or one clear line


def _umask() -> int:
    old = os.umask(0o022)
    os.umask(old)
    return old


def test_new_outputs_honour_the_umask(tmp_path):
    old = os.umask(0o027)
    try:
        atomic_write_bytes(tmp_path / "a.bin", b"x")
        assert stat.S_IMODE((tmp_path / "a.bin").stat().st_mode) == 0o640
    finally:
        os.umask(old)
    atomic_write_bytes(tmp_path / "b.bin", b"x")
    assert stat.S_IMODE((tmp_path / "b.bin").stat().st_mode) == 0o666 & ~_umask()


def test_force_keeps_the_mode_of_an_overwritten_file(small_ply, tmp_path):
    out = tmp_path / "o.spz"
    out.write_bytes(b"old")
    os.chmod(out, 0o604)
    assert main(["convert", str(small_ply), str(out), "--force"]) == 0
    assert stat.S_IMODE(out.stat().st_mode) == 0o604
    assert len(sio.read_scene(out)) == 50


def test_stale_part_files_are_removed(tmp_path):
    target = tmp_path / "scene.spz"
    # a killed writer's leftovers: a pid that cannot be running, and one that is (ours)
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    host = _HOST
    elsewhere = "0000" if host != "0000" else "0001"
    stale = tmp_path / f".scene.spz.splat-{host}-{dead.pid}-0a1b2c3d.part"
    stale_dir = tmp_path / f".scene.spz.splat-{host}-{dead.pid}-0a1b2c3e.dir"
    live = tmp_path / f".scene.spz.splat-{host}-{os.getpid()}-0a1b2c3d.part"
    other = tmp_path / f".other.spz.splat-{host}-{dead.pid}-0a1b2c3d.part"
    remote = tmp_path / f".scene.spz.splat-{elsewhere}-{dead.pid}-0a1b2c3d.part"  # another host's writer (NFS)
    for p in (stale, live, other, remote):
        p.write_bytes(b"partial")
    stale_dir.mkdir()
    (stale_dir / "means_l.webp").write_bytes(b"x")
    atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"new"
    assert not stale.exists() and not stale_dir.exists()
    assert live.exists() and other.exists() and remote.exists()  # a running writer's, another target's, another host's
    assert remove_stale(target) == []
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([target.name, live.name, other.name, remote.name])


def test_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_dir(tmp_path / "out") as tmp:
            (tmp / "a.webp").write_bytes(b"x")
            raise RuntimeError("killed")
    assert list(tmp_path.iterdir()) == []


def test_loose_sog_is_swapped_in_whole(tmp_path, monkeypatch):
    folder = tmp_path / "loose"
    a, b = GaussianScene.random(40, sh_degree=0, seed=1), GaussianScene.random(60, sh_degree=1, seed=2)
    sio.write_scene(a, folder / "meta.json", sort=False)
    (folder / "notes.txt").write_text("mine")
    inode = (folder / "meta.json").stat().st_ino
    # a write that dies after some textures leaves the old scene intact
    import splat.io.sog as sog

    real = sog.write_folder

    class Dying(dict):
        def items(self):  # the process dies after writing two textures
            for i, item in enumerate(super().items()):
                if i == 2:
                    raise KeyboardInterrupt
                yield item

    def dying(folder_, files, **kw):
        real(folder_, Dying(files), **kw)

    monkeypatch.setattr(sog, "write_folder", dying)
    with pytest.raises(KeyboardInterrupt):
        sio.write_scene(b, folder / "meta.json", sort=False)
    assert sio.read_scene(folder).equal(sio.read_scene(folder / "meta.json"))
    assert len(sio.read_scene(folder)) == 40 and (folder / "meta.json").stat().st_ino == inode
    monkeypatch.setattr(sog, "write_folder", real)
    sio.write_scene(b, folder / "meta.json", sort=False)
    got = sio.read_scene(folder)
    assert len(got) == 60 and got.sh_degree == 1
    assert (folder / "notes.txt").read_text() == "mine"  # a file of the user's is carried over
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_loose_sog_refuses_a_folder_with_subfolders(tmp_path):
    folder = tmp_path / "loose"
    (folder / "sub").mkdir(parents=True)
    with pytest.raises(UsageError, match="holds the folder 'sub'"):
        sio.write_scene(GaussianScene.random(10), folder / "meta.json")


def test_output_checks_before_any_work(small_ply, tmp_path, capsys):
    cases = [
        (["convert", str(small_ply), str(small_ply / "x.spz")], "is a file, not a folder"),
        (["convert", str(small_ply), str(tmp_path / ("n" * 300 + ".spz"))], "is too long"),
        (["convert", str(small_ply), str(tmp_path / "d.spz")], "is a directory"),
        (["convert", str(tmp_path), str(tmp_path / "o.spz")], "directory without a meta.json"),
    ]
    (tmp_path / "d.spz").mkdir()
    for argv, text in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert len(_lines(err)) == 1 and text in err, err
    with pytest.raises(UsageError, match="too long"):
        check_output_path(tmp_path / ("n" * 240))


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
def test_fifo_and_device_inputs_fail_at_once(tmp_path, capsys):
    fifo = tmp_path / "pipe.ply"
    os.mkfifo(fifo)
    for path, kind in ((fifo, "a FIFO"), (Path("/dev/zero"), "a device")):
        if not path.exists():
            continue
        for argv in (["info", str(path)], ["convert", str(path), str(tmp_path / "o.spz")]):
            assert main(argv) == 2  # returns at once: the FIFO is never opened
            err = capsys.readouterr().err
            assert len(_lines(err)) == 1 and kind in err, err
        with pytest.raises(FormatError, match=kind):
            sio.read_scene(path, "ply")
    with pytest.raises(FormatError, match="is a folder"):
        check_input_file(tmp_path)


def test_asset_size_counts_what_the_index_names(tmp_path, capsys):
    import json

    from splat.io.sizes import asset_files, asset_size

    folder = tmp_path / "loose"
    sio.write_scene(GaussianScene.random(80, sh_degree=1, seed=5), folder / "meta.json", sort=False)
    total = sum(p.stat().st_size for p in folder.iterdir())
    assert total > (folder / "meta.json").stat().st_size + 1000
    (folder / "notes.txt").write_text("not part of the scene")
    assert asset_size(folder) == asset_size(folder / "meta.json") == total
    assert main(["info", str(folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["file_size"] == total
    # a LOD tree: lod-meta.json names chunk indexes, which name their textures; a cycle and an escape are ignored
    lod = tmp_path / "lod"
    for i in range(2):
        sio.write_scene(GaussianScene.random(30, seed=i), lod / f"{i}_0" / "meta.json", sort=False)
    (lod / "lod-meta.json").write_text(json.dumps({"lodLevels": 2, "filenames": ["0_0/meta.json", "1_0/meta.json"],
                                                   "self": "lod-meta.json", "escape": "../loose/meta.json"}))
    want = sum(p.stat().st_size for p in lod.rglob("*") if p.is_file())
    assert asset_size(lod) == asset_size(lod / "lod-meta.json") == want
    assert len(asset_files(lod)) == 1 + 2 * (1 + len(list((lod / "0_0").iterdir())) - 1)
    assert asset_size(tmp_path / "plain.bin") == 0


SPECIAL_INPUT_COMMANDS = [
    ["info", "{x}"], ["convert", "{x}", "{tmp}/o.spz"], ["decompress", "{x}", "-o", "{tmp}/o.ply"],
    ["eval", "{x}", "{x}"], ["render", "{x}", "-o", "{tmp}/v"], ["compress", "{x}", "-o", "{tmp}/o.lgs"],
    ["fit-image", "{x}", "-o", "{tmp}/o.gsi"], ["render-image", "{x}", "-o", "{tmp}/o.png"],
    ["memory", "render", "{x}", "-o", "{tmp}/o.npy"], ["memory", "query", "{x}", "--pixel", "1,1", "-o", "{tmp}/o.png"],
    ["video", "info", "{x}"], ["video", "decode", "{x}", "-o", "{tmp}/out"], ["view", "{x}", "--port", "0"],
]


@pytest.mark.timeout(120)
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs mkfifo")
@pytest.mark.parametrize("kind", ["fifo", "folder"])
def test_special_inputs_fail_at_once_everywhere(tmp_path, capsys, kind):
    x = tmp_path / "in.bin"
    if kind == "fifo":
        os.mkfifo(x)
    else:
        x.mkdir()
    for argv in SPECIAL_INPUT_COMMANDS:
        argv = [a.format(x=x, tmp=tmp_path) for a in argv]
        assert main(argv) == 2, argv  # a FIFO is never opened (it would block)
        err = capsys.readouterr().err
        assert len(_lines(err)) == 1 and "in.bin" in err, (argv, err)
        assert ("FIFO" in err) if kind == "fifo" else ("folder" in err or "directory" in err), (argv, err)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.bin"]


CHILD = r"""
import os, sys, time
import splat.atomic as atomic
import splat.io as sio
from splat import GaussianScene

real_fsync, count = os.fsync, [0]

def slow_fsync(fd):  # after the second texture is on disk, say so and wait to be killed
    real_fsync(fd)
    count[0] += 1
    if count[0] == 2:
        print("mid-write", flush=True)
        time.sleep(60)

os.fsync = slow_fsync
sio.write_scene(GaussianScene.random(90, sh_degree=1, seed=9), sys.argv[1], sort=False)
"""


def test_kill_9_mid_write_leaves_the_old_loose_sog(tmp_path):
    import signal

    folder = tmp_path / "loose"
    sio.write_scene(GaussianScene.random(40, seed=1), folder / "meta.json", sort=False)
    before = sorted((p.name, p.read_bytes()) for p in folder.iterdir())
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(folder / "meta.json")], stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "mid-write"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    assert sorted((p.name, p.read_bytes()) for p in folder.iterdir()) == before  # untouched, not mixed
    assert len(sio.read_scene(folder)) == 40
    leftovers = [p for p in tmp_path.iterdir() if p.name.startswith(".loose.splat-")]
    assert len(leftovers) == 1 and leftovers[0].is_dir()
    sio.write_scene(GaussianScene.random(70, seed=2), folder / "meta.json", sort=False)
    assert len(sio.read_scene(folder)) == 70
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loose"]  # the killed writer's folder is gone
