"""Bytes on disk of an asset: one file, or a loose SOG / LOD tree of a JSON index plus the files it names."""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Iterator

from ..bounded import read_regular, resolve_inside
from ..errors import FormatError

INDEX_NAMES = ("meta.json", "lod-meta.json")
MAX_FILES = 100_000  # a hostile index cannot make sizing walk forever


def _strings(obj, depth: int = 0) -> Iterator[str]:
    if depth > 64:
        return
    if isinstance(obj, str):
        yield obj
    elif isinstance(obj, dict):
        for v in obj.values():
            yield from _strings(v, depth + 1)
    elif isinstance(obj, list):
        for v in obj:
            yield from _strings(v, depth + 1)


def referenced_files(index: str | os.PathLike) -> list[Path]:
    """Files a JSON index names (relative to its folder, never outside it), following nested
    ``*.json`` indexes (LOD trees); the index itself first. Unreadable indexes name nothing."""
    index = Path(index)
    seen: set[Path] = set()
    out: list[Path] = []
    todo = [index]
    while todo and len(out) < MAX_FILES:
        p = todo.pop()
        try:
            rp = p.resolve()
        except OSError:
            continue
        if rp in seen or not rp.is_file():
            continue
        seen.add(rp)
        out.append(p)
        if p.suffix.lower() != ".json":
            continue
        try:
            doc = json.loads(read_regular(p, 64 << 20))
        except (FormatError, ValueError, RecursionError):
            continue
        for s in _strings(doc):
            q = p.parent / s if s and "\x00" not in s else None
            try:
                if q is not None and resolve_inside(index.parent, q.relative_to(index.parent)).is_file():
                    todo.append(q)
            except (FormatError, ValueError, OSError):
                continue
    return out


def asset_files(path: str | os.PathLike) -> list[Path]:
    """The files that make up the asset at ``path``: the file itself; for a JSON index (or a
    folder holding ``meta.json`` / ``lod-meta.json``) the index plus what it names; for a
    splatfacto run folder its latest checkpoint; for any other folder every file in it."""
    p = Path(path)
    if p.is_dir():
        from . import nerfstudio  # a splatfacto run folder: its latest checkpoint

        if nerfstudio.sniff_dir(p):
            return [nerfstudio.find_checkpoint(p)[0]]
        for name in INDEX_NAMES:
            if (p / name).is_file():
                return referenced_files(p / name)
        return [q for q in p.rglob("*") if q.is_file()][:MAX_FILES]
    if p.suffix.lower() == ".json":
        return referenced_files(p)
    return [p]


def asset_size(path: str | os.PathLike) -> int:
    """Bytes on disk of the asset at ``path`` (see :func:`asset_files`)."""
    total = 0
    for f in asset_files(path):
        try:
            total += f.stat().st_size
        except OSError:
            pass
    return total
