"""Splat file formats: one module per format, dispatched by magic bytes, then extension.

Built in: INRIA PLY (and nerfstudio's ``ns-export`` PLYs), antimatter15 ``.splat``,
Niantic SPZ, PlayCanvas SOG v1 (read) and v2, PlayCanvas streamed SOG (``lod-meta.json``),
PlayCanvas compressed PLY (read only) and nerfstudio splatfacto checkpoints. Other packages add formats without splat/
importing them, through the ``splat.formats`` entry-point group: each entry point
loads to a :class:`FormatSpec` (or any object with the same attributes, or a callable
returning one or a list of them)::

    [project.entry-points."splat.formats"]
    lgs = "compress.scene.format:FORMAT"

A reader is ``reader(path, **options) -> GaussianScene`` and raises only
:class:`splat.FormatError` on bad input; a writer is ``writer(scene, path, **options)``
and must write atomically (see :mod:`splat.atomic`); ``sniff(head: bytes) -> bool``
looks at the first 64 KiB of a file; ``sniff_dir(path: Path) -> bool`` claims folders.
"""
from __future__ import annotations

import functools
import inspect
import os
import warnings
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any, Callable, Iterable

from ..atomic import atomic_write_bytes, check_input_file
from ..bounded import open_regular
from ..errors import FormatError, UsageError
from ..scene import GaussianScene
from . import compressed_ply, dotsplat, nerfstudio, ply, sog, spz, streamed_sog
from ._common import FormatWarning

__all__ = [
    "FormatSpec",
    "FormatRegistry",
    "FormatWarning",
    "default_registry",
    "detect_format",
    "get_format",
    "list_formats",
    "read_scene",
    "write_scene",
]

SNIFF_BYTES = 64 << 10
ENTRY_POINT_GROUP = "splat.formats"


@dataclass(frozen=True)
class FormatSpec:
    """How to recognise, read and write one file format.

    ``extensions`` are matched case-insensitively against the end of the file name
    (so ``".compressed.ply"`` and ``"meta.json"`` work); ``priority`` orders the
    sniffers (more specific formats first).
    """

    name: str
    extensions: tuple[str, ...]
    description: str = ""
    sniff: Callable[[bytes], bool] | None = None
    reader: Callable[..., GaussianScene] | None = None
    writer: Callable[..., None] | None = None
    priority: int = 0
    origin: str = field(default="builtin", compare=False)
    sniff_dir: Callable[[Path], bool] | None = None

    @property
    def can_read(self) -> bool:
        return self.reader is not None

    @property
    def can_write(self) -> bool:
        return self.writer is not None


def _bytes_writer(encode: Callable[..., bytes]) -> Callable[..., None]:
    def write(scene: GaussianScene, path: str | os.PathLike, **options: Any) -> None:
        atomic_write_bytes(path, encode(scene, **options))

    write.__signature__ = inspect.signature(encode)  # type: ignore[attr-defined]
    write.__doc__ = encode.__doc__
    return write


def builtin_formats() -> list[FormatSpec]:
    return [
        FormatSpec(ply.NAME, ply.EXTENSIONS, "INRIA 3DGS PLY (float32, any SH degree)",
                   ply.sniff, ply.read, ply.write, priority=0),
        FormatSpec(compressed_ply.NAME, compressed_ply.EXTENSIONS,
                   "PlayCanvas compressed PLY (256-Gaussian chunks, packed 32-bit words)",
                   compressed_ply.sniff, compressed_ply.read, None, priority=10),
        FormatSpec(dotsplat.NAME, dotsplat.EXTENSIONS, "antimatter15 .splat (32 bytes a Gaussian, no SH)",
                   dotsplat.sniff, dotsplat.read, _bytes_writer(dotsplat.encode)),
        FormatSpec(spz.NAME, spz.EXTENSIONS, "Niantic SPZ v1-4 (quantised, gzip or zstd)",
                   spz.sniff, spz.read, _bytes_writer(spz.encode), priority=5),
        FormatSpec(sog.NAME, sog.EXTENSIONS, "PlayCanvas SOG v1 (read) and v2 (WebP textures + meta.json; zip or folder)",
                   sog.sniff, sog.read, sog.write, priority=5, sniff_dir=sog.sniff_dir),
        FormatSpec(nerfstudio.NAME, nerfstudio.EXTENSIONS,
                   "nerfstudio splatfacto checkpoint (.ckpt, its nerfstudio_models or run folder)",
                   nerfstudio.sniff, nerfstudio.read, nerfstudio.write, priority=6,
                   sniff_dir=nerfstudio.sniff_dir),
        FormatSpec(streamed_sog.NAME, streamed_sog.EXTENSIONS,
                   "PlayCanvas streamed SOG (lod-meta.json + level-of-detail SOG folders)",
                   streamed_sog.sniff, streamed_sog.read, streamed_sog.write, priority=7,
                   sniff_dir=streamed_sog.sniff_dir),
    ]


def _as_specs(obj: Any, origin: str) -> list[FormatSpec]:
    if not hasattr(obj, "name") and callable(obj):
        obj = obj()
    items = obj if isinstance(obj, (list, tuple)) else [obj]
    out = []
    for it in items:
        name, exts = getattr(it, "name", None), getattr(it, "extensions", None)
        if not isinstance(name, str) or not name or exts is None or isinstance(exts, str):
            raise TypeError(f"{it!r} is not a format spec (needs a name and a list of extensions)")
        out.append(FormatSpec(
            name=name,
            extensions=tuple(str(e).lower() for e in exts),
            description=str(getattr(it, "description", "") or ""),
            sniff=getattr(it, "sniff", None),
            reader=getattr(it, "reader", None),
            writer=getattr(it, "writer", None),
            priority=int(getattr(it, "priority", 0) or 0),
            origin=origin,
            sniff_dir=getattr(it, "sniff_dir", None),
        ))
    return out


class FormatRegistry:
    """A set of formats with detection, reading and writing on top."""

    def __init__(self, specs: Iterable[FormatSpec] = (), *, plugins: bool = False):
        self._specs: dict[str, FormatSpec] = {}
        for s in specs:
            self.register(s)
        if plugins:
            self.load_entry_points()

    def register(self, spec: FormatSpec, *, replace: bool = False) -> None:
        if spec.name in self._specs and not replace:
            raise ValueError(f"format {spec.name!r} is already registered")
        self._specs[spec.name] = spec

    def load_entry_points(self, group: str = ENTRY_POINT_GROUP) -> None:
        """Add the formats other installed packages declare (a broken one only warns)."""
        for ep in sorted(entry_points(group=group), key=lambda e: e.name):
            try:
                specs = _as_specs(ep.load(), origin=f"entry point {ep.name} ({ep.value})")
                for s in specs:
                    if s.name in self._specs:
                        raise ValueError(f"format name {s.name!r} is already taken")
                for s in specs:
                    self.register(s)
            except Exception as e:  # a broken optional package must not take the built-ins down
                if os.environ.get("SPLAT_DEBUG"):
                    raise
                warnings.warn(f"file format plug-in {ep.name!r} unavailable: {e}", FormatWarning, stacklevel=2)

    # ------------------------------------------------------------------ lookup
    def formats(self) -> list[FormatSpec]:
        return sorted(self._specs.values(), key=lambda s: s.name)

    def get(self, name: str) -> FormatSpec:
        spec = self._specs.get(name.lower()) if isinstance(name, str) else None
        if spec is None:
            raise UsageError(f"unknown format {name!r} (known: {', '.join(sorted(self._specs))})")
        return spec

    def by_extension(self, path: str | os.PathLike) -> FormatSpec | None:
        """The format whose longest extension ends the file name, if any."""
        fname = Path(path).name.lower()
        best, best_len = None, 0
        for spec in self._specs.values():
            for ext in spec.extensions:
                if fname.endswith(ext.lower()) and len(ext) > best_len:
                    best, best_len = spec, len(ext)
        return best

    def detect(self, path: str | os.PathLike) -> str:
        """Format name for a path: magic bytes first (when the file exists), then extension."""
        p = Path(path)
        if p.is_dir():
            for spec in sorted(self._specs.values(), key=lambda s: (-s.priority, s.name)):
                if spec.sniff_dir is not None and spec.sniff_dir(p):
                    return spec.name
            raise FormatError("is a directory without a meta.json (not a SOG folder) or a "
                              "nerfstudio_models/ folder (not a splatfacto run)", p)
        if p.exists():
            try:
                with open_regular(p) as f:  # a FIFO or device is refused, never read
                    head = f.read(SNIFF_BYTES)
            except OSError as e:
                raise FormatError(f"cannot read file ({e.strerror or e})", p) from None
            for spec in sorted(self._specs.values(), key=lambda s: (-s.priority, s.name)):
                if spec.sniff is None:
                    continue
                try:
                    if spec.sniff(head):
                        return spec.name
                except Exception:  # a sniffer must never decide by crashing
                    continue
        spec = self.by_extension(p)
        if spec is None:
            known = sorted({e for s in self._specs.values() for e in s.extensions})
            if p.exists():
                raise FormatError(f"unrecognised file format (no known magic bytes or extension; known: {', '.join(known)})", p)
            raise FormatError(f"no such file, and its extension names no known format ({', '.join(known)})", p)
        return spec.name

    def output_format(self, path: str | os.PathLike, format: str | None = None) -> FormatSpec:
        """The format to write ``path`` in: ``format`` if given, else by extension."""
        if format is not None:
            return self.get(format)
        spec = self.by_extension(path)
        if spec is None:
            writable = sorted(s.name for s in self._specs.values() if s.can_write)
            raise UsageError(f"cannot tell the output format from the name {Path(path).name!r}; "
                             f"name a format explicitly (one of: {', '.join(writable)})")
        return spec

    # ------------------------------------------------------------------ I/O
    def read(self, path: str | os.PathLike, format: str | None = None, **options: Any) -> GaussianScene:
        if Path(path).exists():
            check_input_file(path, folder_ok=True)  # a FIFO or device would block the reader
        spec = self.get(format) if format is not None else self.get(self.detect(path))
        if spec.reader is None:
            raise UsageError(f"format {spec.name!r} cannot be read")
        _check_options(spec, spec.reader, options, "reading")
        scene = spec.reader(Path(path), **options)
        if not isinstance(scene, GaussianScene):
            raise TypeError(f"reader of format {spec.name!r} returned {type(scene).__name__}, not GaussianScene")
        return scene

    def write(self, scene: GaussianScene, path: str | os.PathLike, format: str | None = None, **options: Any) -> FormatSpec:
        spec = self.output_format(path, format)
        if spec.writer is None:
            writable = sorted(s.name for s in self._specs.values() if s.can_write)
            raise UsageError(f"format {spec.name!r} is read-only here; writable formats: {', '.join(writable)}")
        _check_options(spec, spec.writer, options, "writing")
        spec.writer(scene, Path(path), **options)
        return spec


def _check_options(spec: FormatSpec, fn: Callable, options: dict, what: str) -> None:
    if not options:
        return
    try:
        params = inspect.signature(fn).parameters
    except (TypeError, ValueError):
        return
    if any(p.kind == p.VAR_KEYWORD for p in params.values()):
        return
    allowed = [n for n, p in params.items() if p.kind == p.KEYWORD_ONLY]
    unknown = [k for k in options if k not in allowed]
    if unknown:
        raise UsageError(f"format {spec.name!r} takes no option {unknown[0]!r} when {what} "
                         f"(options: {', '.join(allowed) or 'none'})")


@functools.lru_cache(maxsize=1)
def default_registry() -> FormatRegistry:
    """The built-in formats plus every ``splat.formats`` entry point (loaded once)."""
    return FormatRegistry(builtin_formats(), plugins=True)


def list_formats() -> list[FormatSpec]:
    """Every known format, sorted by name."""
    return default_registry().formats()


def get_format(name: str) -> FormatSpec:
    return default_registry().get(name)


def detect_format(path: str | os.PathLike) -> str:
    """The name of a file's format: magic bytes first, then extension (FormatError if unknown)."""
    return default_registry().detect(path)


def read_scene(path: str | os.PathLike, format: str | None = None, **options: Any) -> GaussianScene:
    """Read a scene from any known format (detected unless ``format`` is given).

    Raises :class:`splat.FormatError` naming the file on malformed input.
    """
    return default_registry().read(path, format, **options)


def write_scene(scene: GaussianScene, path: str | os.PathLike, format: str | None = None, **options: Any) -> FormatSpec:
    """Write a scene atomically, in ``format`` or the format named by the extension; returns the format used.

    Writers warn (:class:`FormatWarning`) when the format cannot hold part of the scene.
    """
    return default_registry().write(scene, path, format, **options)
