"""Reading with a hard limit: decompression (zstd, zip entries) and files an asset names.

A compressed frame may claim any size in its header and may expand far beyond it; these
helpers stream the output and stop at ``limit + 1`` bytes, so memory never exceeds the
size the caller's own header implies. Corrupt data becomes :class:`FormatError`.

Files are opened the same way everywhere (:func:`read_regular`, :func:`open_regular`,
:func:`stat_regular`, :func:`resolve_inside`): a name that an asset holds resolves inside
the asset's folder (symlinks followed, then containment checked), only regular files are
opened (non-blocking, so a FIFO never hangs), and no read goes past a size cap.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import stat
import zipfile
import zlib
from pathlib import Path
from typing import Iterator

from .errors import FormatError

_CHUNK = 1 << 20


def _read_capped(reader, limit: int) -> bytes:
    out = bytearray()
    while len(out) <= limit:
        block = reader.read(min(_CHUNK, limit + 1 - len(out)))
        if not block:
            break
        out += block
    return bytes(out)


def zstd_decompress_bounded(data: bytes | memoryview, limit: int, path: str | os.PathLike | None = None,
                            what: str = "zstd data", exact: bool = False) -> bytes:
    """Decompress one zstd frame to at most ``limit`` bytes (exactly ``limit`` when ``exact``)."""
    import zstandard

    try:
        reader = zstandard.ZstdDecompressor().stream_reader(io.BytesIO(bytes(data)), read_across_frames=False)
        with reader:
            out = _read_capped(reader, limit)
    except zstandard.ZstdError as e:
        raise FormatError(f"{what}: corrupt zstd data ({e})", path) from None
    if len(out) > limit:
        raise FormatError(f"{what}: decompressed to more than the {limit:,} bytes declared", path)
    if exact and len(out) != limit:
        raise FormatError(f"{what}: decompressed to {len(out):,} bytes, expected {limit:,}", path)
    return out


def zip_read_bounded(archive: zipfile.ZipFile, info: zipfile.ZipInfo, limit: int,
                     path: str | os.PathLike | None = None) -> bytes:
    """An archive member, refusing to produce more than ``min(limit, info.file_size)`` bytes."""
    cap = min(int(limit), int(info.file_size))
    try:
        with archive.open(info) as f:
            out = _read_capped(f, cap)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, ValueError, OSError, EOFError, NotImplementedError,
            RuntimeError, zlib.error) as e:
        raise FormatError(f"cannot extract {info.filename!r} from the archive ({e})", path) from None
    if len(out) > cap:
        raise FormatError(f"{info.filename!r} expands beyond the {cap:,} bytes the archive declares", path)
    return out


# ---------------------------------------------------------------------- files an asset names
_OPEN_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0) | getattr(os, "O_CLOEXEC", 0)


def file_kind(mode: int) -> str:
    """'a FIFO', 'a device', 'a socket', 'a directory' or 'not a regular file' for an ``st_mode``."""
    return ("a directory" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode)
            else "a device" if stat.S_ISCHR(mode) or stat.S_ISBLK(mode)
            else "a socket" if stat.S_ISSOCK(mode) else "not a regular file")


def resolve_inside(root: str | os.PathLike, name: str | os.PathLike, *,
                   owner: str | os.PathLike | None = None) -> Path:
    """The real path of ``root/name``, refused unless it ends inside ``root``.

    ``name`` comes from an asset (a texture in ``meta.json``, a unit in ``lod-meta.json``,
    a scene reference in a ``.m3``): it must be relative, hold no NUL, and resolve (every
    symlink followed, ``..`` included) to ``root``'s real path or below. The target need
    not exist yet. :class:`FormatError` names ``owner`` (the file that holds the name;
    default ``root/name``); the symlink's target is never printed.
    """
    s = os.fspath(name)
    label = owner if owner is not None else Path(root) / (s if isinstance(s, str) and "\x00" not in s else "?")
    if not isinstance(s, str) or not s or "\x00" in s or len(s) > 4096:
        raise FormatError(f"names an invalid file {_short(s)}", label)
    if os.path.isabs(s) or s.startswith(("/", "\\")) or (len(s) > 1 and s[1] == ":"):
        raise FormatError(f"names the absolute path {_short(s)}; only files inside the asset's folder are read", label)
    try:
        real_root = Path(root).resolve(strict=True)
        target = (real_root / s).resolve()
    except (OSError, RuntimeError, ValueError) as e:  # a symlink loop (RuntimeError before 3.13)
        raise FormatError(f"cannot resolve {_short(s)} ({getattr(e, 'strerror', None) or e})", label) from None
    if target != real_root and real_root not in target.parents:
        raise FormatError(f"{_short(s)} leads outside the asset's folder (refused)", label)
    return target


def _short(s) -> str:
    r = repr(s)
    return r if len(r) <= 80 else r[:77] + "..."


def _open_regular(path: Path, label, nofollow: bool) -> int:
    """A read-only descriptor of a regular file; a FIFO, device or socket is refused without blocking."""
    flags = _OPEN_FLAGS | (getattr(os, "O_NOFOLLOW", 0) if nofollow else 0)
    try:
        fd = os.open(path, flags)
    except FileNotFoundError:
        raise FormatError("no such file", label) from None
    except PermissionError:
        raise FormatError("permission denied", label) from None
    except OSError as e:
        if e.errno == errno.ENXIO:  # a socket (or a FIFO opened for writing)
            raise FormatError("is a socket, expected a regular file", label) from None
        if e.errno == errno.ELOOP:
            raise FormatError("changed into a symlink while being opened (refused)", label) from None
        if e.errno == errno.EISDIR:
            raise FormatError("is a directory, expected a file", label) from None
        raise FormatError(f"cannot read file ({e.strerror or e})", label) from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise FormatError(f"is {file_kind(st.st_mode)}, expected a regular file", label)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _target(path, root, owner) -> tuple[Path, object, bool]:
    if root is None:
        p = Path(path)
        return p, p, False
    p = resolve_inside(root, path, owner=owner)
    return p, Path(root) / os.fspath(path), True


def stat_regular(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
                 owner: str | os.PathLike | None = None) -> os.stat_result:
    """``os.stat`` of a regular file (with ``root``: of ``root/path``, resolved inside ``root``,
    see :func:`resolve_inside`); FormatError for anything else. Never opens the file."""
    p, label, _ = _target(path, root, owner)
    try:
        st = os.stat(p)
    except FileNotFoundError:
        raise FormatError("no such file", label) from None
    except OSError as e:
        raise FormatError(f"cannot read file ({e.strerror or e})", label) from None
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(f"is {file_kind(st.st_mode)}, expected a regular file", label)
    return st


def read_regular(path: str | os.PathLike, limit: int | None = None, *, root: str | os.PathLike | None = None,
                 owner: str | os.PathLike | None = None, what: str = "file") -> bytes:
    """The bytes of a regular file, never more than ``limit`` (default: its size when opened).

    The one way a reader opens a file: with ``root`` (for a name an asset holds),
    ``root/path`` must resolve inside ``root`` (:func:`resolve_inside`) and its last
    component is opened without following a symlink. The file is opened non-blocking and
    checked with ``fstat`` before any read, so a FIFO, device or socket is refused at once;
    a file over ``limit`` bytes (the most its format can need) is refused before reading,
    and one that grows while read is cut at ``limit + 1`` bytes and refused.
    Errors are :class:`FormatError` naming ``root/path`` (or ``path``).
    """
    p, label, nofollow = _target(path, root, owner)
    fd = _open_regular(p, label, nofollow)
    try:
        size = os.fstat(fd).st_size
        if limit is not None and size > limit:
            raise FormatError(f"{what} of {size:,} bytes is larger than the {int(limit):,} bytes this format "
                              "can need (refused)", label)
        cap = size if limit is None else int(limit)
        out = bytearray()
        try:
            while len(out) <= cap:
                block = os.read(fd, min(_CHUNK, cap + 1 - len(out)))
                if not block:
                    break
                out += block
        except OSError as e:
            raise FormatError(f"cannot read file ({e.strerror or e})", label) from None
        if len(out) > cap:
            raise FormatError(f"{what} grew past {cap:,} bytes while being read (refused)", label)
        return bytes(out)
    finally:
        os.close(fd)


@contextlib.contextmanager
def open_regular(path: str | os.PathLike, *, root: str | os.PathLike | None = None,
                 owner: str | os.PathLike | None = None) -> Iterator[io.BufferedReader]:
    """A binary file object for a regular file, with the checks of :func:`read_regular`
    (for readers that stream or memory-map instead of reading everything)."""
    p, label, nofollow = _target(path, root, owner)
    fd = _open_regular(p, label, nofollow)
    with os.fdopen(fd, "rb") as f:
        yield f
