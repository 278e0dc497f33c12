"""`node viewer/web/cli/decode.mjs IN OUT.ply`: the TypeScript decode written as the same PLY
bytes the Python reader + writer produce; bad input is one line naming the file, exit 2."""
from __future__ import annotations

import os
import subprocess
from pathlib import Path

from compress.scene.codec import decode
from splat.io import ply
from web_harness import WEB, require_node

CLI = WEB / "cli" / "decode.mjs"
GOLDEN = Path(__file__).with_name("data") / "scene_v2_golden.lgs"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([require_node(), str(CLI), *map(str, args)], capture_output=True, text=True, timeout=120)


def test_cli_writes_the_python_ply_bytes(tmp_path):
    out = tmp_path / "golden.ply"
    r = _run(GOLDEN, out)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == ply.encode(decode(GOLDEN.read_bytes()))
    assert oct(out.stat().st_mode & 0o777) == oct(0o666 & ~_umask())
    assert [p.name for p in tmp_path.iterdir()] == ["golden.ply"]  # no temporary file left


def _umask() -> int:
    m = os.umask(0)
    os.umask(m)
    return m


def test_cli_bad_input_is_one_line_exit_2_and_no_output(tmp_path):
    bad = tmp_path / "cut.lgs"
    bad.write_bytes(GOLDEN.read_bytes()[:-10])
    out = tmp_path / "cut.ply"
    r = _run(bad, out)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and str(bad) in lines[0] and "truncated" in lines[0], r.stderr
    assert not out.exists() and [p.name for p in tmp_path.iterdir()] == ["cut.lgs"]

    unknown = tmp_path / "x.bin"
    unknown.write_bytes(b"hello world")
    r = _run(unknown, out)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and str(unknown) in r.stderr

    r = _run(tmp_path / "missing.lgs", out)
    assert r.returncode == 2 and "missing.lgs" in r.stderr and "at " not in r.stderr


def test_cli_refuses_to_overwrite_without_force(tmp_path):
    out = tmp_path / "o.ply"
    out.write_bytes(b"keep")
    r = _run(GOLDEN, out)
    assert r.returncode == 2 and "--force" in r.stderr and out.read_bytes() == b"keep"
    r = _run(GOLDEN, out, "--force")
    assert r.returncode == 0 and out.read_bytes()[:3] == b"ply"
    r = _run(GOLDEN, out, "--force", "--frame", "1")
    assert r.returncode == 2 and "video" in r.stderr
    r = _run("--help")
    assert r.returncode == 0 and "examples" in r.stdout
