"""Describers: what ``splat info`` shows for files that are not scenes (images, videos, memories).

Packages add one through the ``splat.describe`` entry-point group (a :class:`Describer`),
so ``splat info`` reads every format we write without splat/ importing the codecs
(dependencies point splat -> render -> compress -> viewer).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable

from .bounded import open_regular

HEAD_BYTES = 16


@dataclass(frozen=True)
class Describer:
    """``sniff(first bytes) -> bool``; ``describe(path) -> {field: JSON-able value}`` (FormatError on bad input).

    A describer of a file that references another (a ``.m3``'s scene) also takes the keyword
    ``allow_outside_ref`` (``splat info --allow-outside-ref``)."""

    name: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes], bool]
    describe: Callable[[str | os.PathLike], dict[str, Any]]
    description: str = ""


def describers() -> list[Describer]:
    """Every registered describer (entry points that fail to load are skipped)."""
    out: list[Describer] = []
    for ep in sorted(entry_points(group="splat.describe"), key=lambda e: e.name):
        try:
            d = ep.load()
        except Exception:  # an optional package that cannot load only loses its describer
            if os.environ.get("SPLAT_DEBUG"):
                raise
            continue
        if isinstance(d, Describer):
            out.append(d)
    return out


def find_describer(path: str | os.PathLike) -> Describer | None:
    """The describer for ``path``: by magic bytes, then by extension; None for scenes and folders."""
    p = Path(path)
    if p.is_dir() or not p.exists():
        return None
    with open_regular(p) as f:  # a FIFO or device is refused, never read
        head = f.read(HEAD_BYTES)
    found = describers()
    for d in found:
        try:
            if d.sniff(head):
                return d
        except Exception:  # a sniffer must never decide by crashing
            continue
    name = p.name.lower()
    return next((d for d in found if any(name.endswith(e) for e in d.extensions)), None)
