"""Atomic file output: write to a temporary file beside the target, then rename.

A crash or an error never leaves a partial output behind. Temporary names carry the
writer's host and process id (``.NAME.splat-HOST-PID-RANDOM.part``, HOST a 4-hex-digit hash of
the host name), so a later write on the same host removes the leftovers of a killed one. New files get the umask's mode (like
``open``); an overwritten file keeps its mode.
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import secrets
import shutil
import socket
import stat
import zlib
from pathlib import Path
from typing import Iterator, Sequence

from .bounded import file_kind
from .errors import FormatError, UsageError

_TMP_AFFIX = 40  # bytes a temporary name adds to the target's name
_TMP_RE = re.compile(r"^\.(?P<name>.+)\.splat-(?P<host>[0-9a-f]{4})-(?P<pid>\d+)-[0-9a-f]+\.(?:part|dir|old)$")
_HOST = f"{zlib.crc32(socket.gethostname().encode()) & 0xFFFF:04x}"  # a writer elsewhere (NFS) is never judged dead


def _umask() -> int:
    """The process umask, read without changing it where /proc allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    old = os.umask(0o022)
    os.umask(old)
    return old


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def _tmp_name(path: Path, kind: str) -> Path:
    return path.parent / f".{path.name}.splat-{_HOST}-{os.getpid()}-{secrets.token_hex(4)}.{kind}"


def remove_stale(path: str | os.PathLike) -> list[Path]:
    """Delete temporary files/folders left beside ``path`` by writers on this host that no longer run."""
    path = Path(path)
    parent = path.parent if str(path.parent) else Path(".")
    removed: list[Path] = []
    try:
        entries = list(os.scandir(parent))
    except OSError:
        return removed
    for entry in entries:
        m = _TMP_RE.match(entry.name)
        if not m or m["name"] != path.name or m["host"] != _HOST or _pid_alive(int(m["pid"])):
            continue
        p = Path(entry.path)
        with contextlib.suppress(OSError):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(p)
            else:
                p.unlink()
            removed.append(p)
    return removed


def _output_mode(path: Path) -> int:
    """Mode for a new file at ``path``: the existing file's, else 0666 less the umask."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _prepare_parent(path: Path) -> Path:
    parent = path.parent if str(path.parent) else Path(".")
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise UsageError(f"cannot write {path}: {parent} is a file, not a folder") from None
    except NotADirectoryError:
        raise UsageError(f"cannot write {path}: a parent of it is a file, not a folder") from None
    remove_stale(path)
    return parent


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; rename it onto ``path`` on success."""
    path = Path(path)
    _prepare_parent(path)
    mode = _output_mode(path)
    tmp_path = _tmp_name(path, "part")
    fd = os.open(tmp_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    try:
        yield tmp_path
        os.chmod(tmp_path, mode)
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


def _exchange(a: Path, b: Path) -> bool:
    """Swap two paths in one step (Linux renameat2 RENAME_EXCHANGE); False where unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    if rc == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), str(a))


@contextlib.contextmanager
def atomic_dir(path: str | os.PathLike) -> Iterator[Path]:
    """Yield an empty temporary folder; on success it replaces the folder ``path`` in one rename.

    An existing ``path`` is swapped out (atomically on Linux) and deleted, so readers see
    the old folder or the new one, never a mix. Its mode is kept.
    """
    path = Path(path)
    _prepare_parent(path)
    if path.exists() and not path.is_dir():
        raise UsageError(f"{path} is a file, expected a folder")
    tmp = _tmp_name(path, "dir")
    tmp.mkdir()
    try:
        yield tmp
        if path.is_dir():
            os.chmod(tmp, stat.S_IMODE(path.stat().st_mode))
            if _exchange(tmp, path):
                shutil.rmtree(tmp)
            else:
                old = _tmp_name(path, "old")
                os.replace(path, old)
                os.replace(tmp, path)
                shutil.rmtree(old, ignore_errors=True)
        else:
            os.chmod(tmp, 0o777 & ~_umask())
            os.replace(tmp, path)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def write_folder(folder: str | os.PathLike, files: dict[str, bytes], *, replaces: Sequence[str] = ()) -> None:
    """Write ``files`` (name -> bytes) into ``folder`` so that readers see all of them or none.

    The files go into a temporary folder that is then swapped in (:func:`atomic_dir`). Other
    files already in ``folder`` are carried over (hard links, else copies) unless named in
    ``replaces``; a subfolder there is refused, as it could not be carried over atomically.
    """
    folder = Path(folder)
    keep: list[Path] = []
    if folder.is_dir():
        for entry in os.scandir(folder):
            if entry.name in files or entry.name in replaces or _TMP_RE.match(entry.name):
                continue
            if entry.is_dir(follow_symlinks=False):
                raise UsageError(f"cannot replace {folder} atomically: it holds the folder {entry.name!r}; "
                                 "write to a folder of its own")
            keep.append(Path(entry.path))
    with atomic_dir(folder) as tmp:
        for src in keep:
            try:
                os.link(src, tmp / src.name, follow_symlinks=False)
            except OSError:
                shutil.copy2(src, tmp / src.name, follow_symlinks=False)
        for name, data in files.items():
            with open(tmp / name, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp / name, 0o666 & ~_umask())


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def check_output_path(out: str | os.PathLike, inputs: Sequence[str | os.PathLike] = (), force: bool = False,
                      *, folder: bool = False) -> Path:
    """Check an output path before any work; refuse to overwrite (an input, or anything) unless ``force``.

    Raises ``UsageError`` (one line) when a parent is a file, a name is too long, the path
    is a folder where a file is expected (or the reverse), or it exists without ``force``.
    """
    out_p = Path(out)
    _check_parents(out_p)
    if folder:
        if out_p.exists() and not out_p.is_dir():
            raise UsageError(f"{out_p} is a file, expected a folder")
        return out_p
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


def _check_parents(out_p: Path) -> None:
    parts = out_p.parts
    for i in range(1, len(parts)):
        p = Path(*parts[:i])
        if p.exists() and not p.is_dir():
            raise UsageError(f"cannot write {out_p}: {p} is a file, not a folder")
    existing = next((p for p in [out_p.parent, *out_p.parent.parents] if p.is_dir()), Path("."))
    limit = _name_max(existing)
    for i, part in enumerate(parts):
        # the file name needs room for the temporary name's affixes (".NAME.splat-HOST-PID-XXXXXXXX.part")
        room = limit - (_TMP_AFFIX if i == len(parts) - 1 else 0)
        if len(os.fsencode(part)) > room:
            raise UsageError(f"cannot write {out_p}: the name {part[:40]}... is too long "
                             f"({len(os.fsencode(part))} bytes, at most {room} here)")


def check_input_file(path: str | os.PathLike, *, folder_ok: bool = False) -> Path:
    """Check that ``path`` is a readable regular file (or a folder where ``folder_ok``) before any work.

    FIFOs, devices and sockets are refused (reading one can block forever): ``FormatError``.
    """
    p = Path(path)
    try:
        st = p.stat()
    except FileNotFoundError:
        raise FormatError("no such file", p) from None
    except OSError as e:
        raise FormatError(f"cannot read ({e.strerror or e})", p) from None
    if stat.S_ISDIR(st.st_mode):
        if folder_ok:
            return p
        raise FormatError("is a folder, expected a file", p)
    if not stat.S_ISREG(st.st_mode):
        raise FormatError(f"is {file_kind(st.st_mode)}, expected a regular file", p)
    if not os.access(p, os.R_OK):
        raise FormatError("permission denied", p)
    return p
