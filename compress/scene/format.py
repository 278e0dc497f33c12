"""``.lgs`` as a ``splat.formats`` entry point, so ``splat convert``, ``splat info`` and the
viewer read and write it. Writing through this path only quantizes (no pruning, which
needs renders): use ``splat compress`` for the full pipeline."""
from __future__ import annotations

import os

from splat.io import FormatSpec
from splat.scene import GaussianScene

from .codec import MAGIC, read_lgs, write_lgs
from .rate import level_config


def sniff(head: bytes) -> bool:
    return head[:4] == MAGIC


def reader(path: str | os.PathLike) -> GaussianScene:
    return read_lgs(path)


def writer(scene: GaussianScene, path: str | os.PathLike, level: int = 1) -> None:
    """Quantize and entropy-code every Gaussian (``level`` 0, 1 or 2: 8, 10 or 12 bits)."""
    write_lgs(scene, path, config=level_config(level))


FORMAT = FormatSpec(
    name="lgs",
    extensions=(".lgs",),
    description="splatkit compressed scene (LightGaussian-style: VecTree SH, coded positions)",
    sniff=sniff,
    reader=reader,
    writer=writer,
    priority=10,
)
