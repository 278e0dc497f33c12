"""The `splat ...` commands the documentation tells a user to run, and a runner for them.

Which commands: every line starting with ``splat `` in the README's ```` ```bash ```` blocks, and
in the first fenced block under a "Quick start" heading of any page under docs/. A block opts
out with a first line ``# not run by the tests: REASON`` (the reason is required), which
readers see too.

How they run (``python tests/doc_commands.py JOBS.json``, JOBS: ``{block id: [WORKDIR,
[command, ...]]}``; one process runs every block in turn): in each block's temporary working folder
whose ``../shared/data/`` holds small stand-ins for the files the commands name, made from the
toolkit's built-in procedural data under the same names (a 1,500-Gaussian scene for every
scene file, a 64x48 picture for every image, a few frames for a glob). A few size and time
options are lowered (``SMALL``, ``EXTRA``) so the whole set stays short; the command, its
arguments and its code path are otherwise the documented ones. ``splat view`` is a server:
it passes when it prints its address and is still serving, and is then stopped.
"""
from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OPT_OUT = re.compile(r"^#\s*not run by the tests:\s*(\S.*)$", re.I)
FENCE = re.compile(r"^```(\w*)\s*$")

# Options whose documented value is replaced by a smaller one (per sub-command).
SMALL: dict[tuple[str, ...], dict[str, str]] = {
    ("video", "synth"): {"--gaussians": "1500", "--frames": "4"},
    ("memory", "extract"): {"--views": "8", "--width": "96", "--height": "72"},
    ("memory", "build"): {"--max-seconds": "10"},
    ("memory", "query"): {"--pixel": "48,36"},
}
# Options added when the command does not give them (per sub-command): time budgets and sizes.
EXTRA: dict[tuple[str, ...], list[str]] = {
    ("compress",): ["--max-seconds", "10", "--max-side", "96"],
    ("eval",): ["--max-side", "96"],
    ("fit-image",): ["--steps", "40"],
    ("render",): ["--num-views", "2"],
    ("mesh",): ["--num-views", "6", "--width", "96", "--height", "96"],
    ("view",): ["--port", "0", "--no-open"],
}
ALIASES = {"-n": "--num-views"}


@dataclass
class Block:
    """One fenced code block of a page: where it is and its `splat` command lines."""

    page: str
    line: int
    commands: list[str]
    opt_out: str | None = None

    @property
    def id(self) -> str:
        return f"{self.page}:{self.line}"


def blocks_of(path: Path, *, quick_start_only: bool) -> list[Block]:
    """The fenced blocks of a Markdown page that hold `splat` commands (README: ```bash blocks;
    other pages: the first block under a "Quick start" heading)."""
    lines = path.read_text().splitlines()
    rel = str(path.relative_to(ROOT))
    out: list[Block] = []
    in_block, lang, start, body = False, "", 0, []
    armed = not quick_start_only  # quick-start pages: only the block after the heading
    for i, line in enumerate(lines, 1):
        m = FENCE.match(line.strip()) if line.startswith("```") else None
        if not in_block:
            if re.match(r"^#{1,6}\s+Quick start\b", line, re.I):
                armed = True
            elif line.startswith("#") and quick_start_only:
                armed = False
            if m:
                in_block, lang, start, body = True, m.group(1), i, []
            continue
        if m and not m.group(1):
            in_block = False
            if armed and (lang == "bash" or quick_start_only):
                cmds = [l.strip() for l in body if l.strip().startswith("splat ")]
                opt = OPT_OUT.match(body[0].strip()) if body else None
                if cmds or opt:
                    out.append(Block(rel, start, cmds, opt.group(1) if opt else None))
                if quick_start_only:
                    armed = False
            continue
        body.append(line)
    return out


def documented_blocks() -> list[Block]:
    blocks = blocks_of(ROOT / "README.md", quick_start_only=False)
    for page in sorted((ROOT / "docs").rglob("*.md")):
        blocks += blocks_of(page, quick_start_only=True)
    return blocks


def argv_of(command: str) -> list[str]:
    """The command line as `splat` receives it (comments stripped), with the test's sizes."""
    args = shlex.split(command, comments=True)[1:]
    sub = tuple(args[:2]) if args and args[0] in ("video", "memory") else tuple(args[:1])
    small = SMALL.get(sub, {})
    out = []
    i = 0
    while i < len(args):
        a = args[i]
        name = ALIASES.get(a, a)
        if name in small and i + 1 < len(args):
            out += [a, small[name]]
            i += 2
            continue
        out.append(a)
        i += 1
    present = {ALIASES.get(a, a) for a in out}
    extra = EXTRA.get(sub, [])
    for j in range(0, len(extra), 2):
        if extra[j] not in present:
            out += extra[j:j + 2]
    return out


def shared_paths(argvs: list[list[str]]) -> list[str]:
    return sorted({a for argv in argvs for a in argv if a.startswith("../shared/data/")})


def make_stand_ins(workdir: Path, paths: list[str]) -> None:
    """Small files under WORKDIR/../shared/data with the names the commands use."""
    import splat  # noqa: F401  (threading set-up first)
    from compress.image.demo import sample_image
    from compress.image.imageio import save_image
    from compress.scene.demo import procedural_scene
    from splat.io import write_scene

    scene = procedural_scene(1500, sh_degree=1)
    for rel in paths:
        p = (workdir / rel).resolve()
        p.parent.mkdir(parents=True, exist_ok=True)
        targets = [p.with_name(p.name.replace("*", f"{k:04d}")) for k in range(1, 4)] if "*" in p.name else [p]
        for k, t in enumerate(targets):
            if t.suffix.lower() in (".png", ".jpg", ".jpeg"):
                save_image(t, sample_image(64, 48))
            else:
                moved = scene.replace(means=scene.means + 0.01 * k)
                write_scene(moved, t)


def run_view(argv: list[str], env: dict, cwd: Path, timeout: float = 240.0) -> tuple[int, str]:
    """Start `splat view`, wait for its address, check it still serves, stop it."""
    proc = subprocess.Popen([sys.executable, "-m", "splat.cli", *argv], cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    out = []
    t0 = time.monotonic()
    try:
        for line in proc.stdout:
            out.append(line)
            if "http://" in line:
                time.sleep(1.0)
                alive = proc.poll() is None
                return (0 if alive else (proc.returncode or 1)), "".join(out)
            if time.monotonic() - t0 > timeout:
                return 124, "".join(out) + "\n(no address printed in time)"
        return proc.wait() or 1, "".join(out) + "\n(exited before serving)"
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()


def run_block(workdir: Path, commands: list[str]) -> list[dict]:
    """Run a block's commands in order in WORKDIR (one process; `splat view` in its own)."""
    from splat.cli import main

    argvs = [argv_of(c) for c in commands]
    make_stand_ins(workdir, shared_paths(argvs))
    os.chdir(workdir)
    results = []
    for command, argv in zip(commands, argvs):
        t0 = time.perf_counter()
        if argv[:1] == ["view"]:
            rc, out = run_view(argv, dict(os.environ), workdir)
        else:
            out = ""
            try:
                rc = main(argv)
            except SystemExit as e:  # pragma: no cover - main returns codes itself
                rc = int(e.code or 0)
        results.append({"command": command, "argv": argv, "rc": rc, "seconds": time.perf_counter() - t0,
                        "output": out[-3000:]})
        if rc != 0:
            break
    return results


if __name__ == "__main__":
    # one line per block as it finishes, so a crash still reports the blocks before it
    for block_id, (wd, commands) in json.loads(Path(sys.argv[1]).read_text()).items():
        print("RESULTS " + json.dumps({block_id: run_block(Path(wd), commands)}), flush=True)
