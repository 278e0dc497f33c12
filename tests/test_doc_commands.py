"""Executable examples: every `splat ...` command in the README and in each page's quick-start
block runs and exits with status 0, in a temporary folder, on small built-in stand-ins for
the files it names (see tests/doc_commands.py for the rules and the size options it lowers).
A block opts out only with a visible first line ``# not run by the tests: REASON``.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import SHARED
from doc_commands import ROOT, blocks_of, documented_blocks

BLOCKS = documented_blocks()
BVH = SHARED / "motion" / "mocapbank_455f.bvh"


def test_every_journey_and_guide_has_commands_to_run():
    pages = {b.page for b in BLOCKS}
    assert "README.md" in pages
    assert sum(1 for b in BLOCKS if b.page == "README.md") >= 3, "the README's three journeys"
    for guide in sorted((ROOT / "docs" / "guides").glob("*.md")):
        rel = str(guide.relative_to(ROOT))
        assert rel in pages, f"{rel} has no '## Quick start' block with splat commands"
    for b in BLOCKS:
        assert b.commands or b.opt_out, b.id


def test_opt_out_needs_a_reason(tmp_path):
    page = tmp_path / "p.md"
    page.write_text("## Quick start\n\n```bash\n# not run by the tests: needs a GPU\nsplat render x -o y\n```\n")
    # the page must live under the repository for its relative name; check the parser directly
    import doc_commands
    old = doc_commands.ROOT
    doc_commands.ROOT = tmp_path
    try:
        (b,) = blocks_of(page, quick_start_only=True)
    finally:
        doc_commands.ROOT = old
    assert b.opt_out == "needs a GPU" and b.commands == ["splat render x -o y"]


def _needs_bvh(block) -> bool:
    return any(c.startswith("splat video synth") for c in block.commands)


@pytest.fixture(scope="module")
def block_results(tmp_path_factory):
    """Every runnable block, each in its own working folder, run by one runner process (one
    interpreter start for all of them): ({block id: results}, the runner's CompletedProcess)."""
    jobs = {}
    for b in BLOCKS:
        if b.opt_out or (_needs_bvh(b) and not BVH.exists()):
            continue
        work = tmp_path_factory.mktemp("block") / "work"
        work.mkdir()
        jobs[b.id] = [str(work), b.commands]
    spec = tmp_path_factory.mktemp("jobs") / "jobs.json"
    spec.write_text(json.dumps(jobs))
    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""), "COLUMNS": "120"}
    if BVH.exists():
        env["SPLAT_BVH"] = str(BVH)
    r = subprocess.run([sys.executable, str(ROOT / "tests" / "doc_commands.py"), str(spec)],
                       cwd=spec.parent, env=env, capture_output=True, text=True, timeout=540 * max(1, len(jobs)))
    results = {}
    for line in r.stdout.splitlines():
        if line.startswith("RESULTS "):
            results.update(json.loads(line[len("RESULTS "):]))
    return results, r


@pytest.mark.timeout(1800)  # the first case runs every block (the module fixture)
@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_documented_commands_run(block, block_results):
    if block.opt_out:
        pytest.skip(f"{block.id}: {block.opt_out}")
    if _needs_bvh(block) and not BVH.exists():
        pytest.skip(f"shared test data not found: {BVH} (the motion capture `splat video synth` animates)")
    got, r = block_results
    assert block.id in got, f"{block.id}: the runner failed (status {r.returncode}):\n{r.stderr[-3000:]}"
    results = got[block.id]
    for res in results:
        assert res["rc"] == 0, (f"{block.id}: `{res['command']}` (run as splat {' '.join(res['argv'])}) exited "
                                f"with status {res['rc']}:\n{res['output']}\n{r.stderr[-3000:]}")
    assert len(results) == len(block.commands)
