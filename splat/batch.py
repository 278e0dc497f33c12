"""Batches of input files for the commands that take a folder or a glob: which files, and
where each output goes. Shared by ``splat compress`` and ``splat fit-image``."""
from __future__ import annotations

import glob
from pathlib import Path
from typing import Sequence

from .errors import UsageError


def is_batch(input: Path) -> bool:
    """True when ``input`` names several files: a folder or a glob pattern."""
    return input.is_dir() or any(ch in str(input) for ch in "*?[")


def batch_inputs(input: Path, suffixes: Sequence[str]) -> list[Path]:
    """Files named by a folder (those ending in one of ``suffixes``, case-insensitive, not
    recursive) or a glob (every file it matches), sorted; UsageError when there are none."""
    if input.is_dir():
        ends = tuple(s.lower() for s in suffixes)
        found = [p for p in input.iterdir() if p.is_file() and p.name.lower().endswith(ends)]
    else:
        found = [Path(p) for p in glob.glob(str(input)) if Path(p).is_file()]
    if not found and input.is_dir():
        raise UsageError(f"folder {input} holds no input files (ending in {', '.join(suffixes)})")
    if not found:
        raise UsageError(f"no input files match {input}")
    return sorted(found)


def batch_outputs(inputs: Sequence[Path], out_dir: Path, ext: str, force: bool = False) -> list[Path]:
    """``out_dir/<name><ext>`` per input (name: the file name up to its first dot; a
    ``meta.json`` is named by its folder). UsageError when ``out_dir`` is a file, two inputs
    share a name, or an output exists and not ``force``."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o must be a folder when the input is a folder or glob, and {out_dir} is a file")
    outs: list[Path] = []
    seen: dict[Path, Path] = {}
    for p in inputs:
        stem = p.parent.name if p.name.lower() == "meta.json" else p.name.split(".")[0]
        o = out_dir / f"{stem}{ext}"
        if o in seen:
            raise UsageError(f"{seen[o]} and {p} would both be written to {o}")
        seen[o] = p
        outs.append(o)
    clash = [o for o in outs if o.exists()]
    if clash and not force:
        raise UsageError(f"{clash[0]} exists (pass --force to overwrite)")
    return outs


def write_batch(outs: Sequence[Path], data: Sequence[bytes]) -> None:
    """Write every output, each atomically (call only once every part is in)."""
    from .atomic import atomic_write_bytes

    if outs:
        outs[0].parent.mkdir(parents=True, exist_ok=True)
    for o, d in zip(outs, data):
        atomic_write_bytes(o, d)
