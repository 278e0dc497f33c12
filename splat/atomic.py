"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or an error never leaves a partial output behind.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator, Sequence

from .errors import UsageError


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".part", dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.replace(tmp_path, path)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())


def check_output_path(out: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (), force: bool = False) -> Path:
    """Refuse to overwrite an input file (or any existing file) unless ``force``."""
    out_p = Path(out)
    for inp in inputs:
        try:
            if out_p.exists() and Path(inp).exists() and out_p.resolve() == Path(inp).resolve():
                if not force:
                    raise UsageError(f"refusing to overwrite the input file {out_p} (pass --force to allow it)")
        except OSError:
            pass
    if out_p.exists() and out_p.is_dir():
        raise UsageError(f"{out_p} is a directory, expected a file path")
    if out_p.exists() and not force:
        raise UsageError(f"{out_p} exists (pass --force to overwrite it)")
    return out_p
