"""Options every ``splat`` command spells the same way: ``-o/--output``, ``--backend``, ``--force``.

Commands declare them with these helpers, and check values with :func:`check_backend` /
:func:`check_range`, so a bad value gives one line naming the option.
"""
from __future__ import annotations

import math
from typing import Any, Sequence

import typer

from .errors import UsageError

BACKENDS = ("auto", "cpu", "gsplat")
DEPRECATED_ALIASES = {"--out": "--output"}


def output_option(help: str) -> Any:
    """The required ``-o/--output`` option."""
    return typer.Option(..., "--output", "-o", help=help, show_default=False)


def force_option(help: str = "Overwrite an existing output.") -> Any:
    return typer.Option(False, "--force", help=help)


def allow_outside_ref_option() -> Any:
    """``--allow-outside-ref``: follow a file's reference (a ``.m3``'s scene) even when it is absolute
    or leads outside the referring file's folder. The referenced file's SHA-256 is checked still."""
    return typer.Option(False, "--allow-outside-ref",
                        help="follow a .m3's scene reference even when it leads outside the .m3's folder "
                             "(only for files you trust; the scene's SHA-256 is still checked)")


def backend_option(help: str = "Renderer: auto (gsplat on a CUDA GPU when installed, else cpu), cpu or gsplat.") -> Any:
    return typer.Option("auto", "--backend", help=help)


def check_backend(value: str, allowed: Sequence[str] = BACKENDS, why: str = "") -> str:
    """``value`` if it is one of ``allowed``, else a one-line ``UsageError`` (``why`` explains a restriction)."""
    if value not in allowed:
        extra = f" ({why})" if why and value in BACKENDS else ""
        raise UsageError(f"--backend must be {', '.join(allowed[:-1])} or {allowed[-1]}, not {value!r}{extra}")
    return value


def check_range(name: str, value: float | int | None, lo: float | None = None, hi: float | None = None,
                *, lo_open: bool = False, hi_open: bool = False) -> None:
    """One-line ``UsageError`` unless ``value`` (when given) is finite and within the interval."""
    if value is None:
        return
    bad = not math.isfinite(float(value))
    bad = bad or (lo is not None and (value <= lo if lo_open else value < lo))
    bad = bad or (hi is not None and (value >= hi if hi_open else value > hi))
    if bad:
        if hi is None:
            want = f"{'>' if lo_open else '>='} {lo:g}"
        elif lo is None:
            want = f"{'<' if hi_open else '<='} {hi:g}"
        else:
            want = f"in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
        raise UsageError(f"{name} must be {want}, got {value:g}")


def rewrite_deprecated(argv: list[str], warn) -> list[str]:
    """Replace deprecated option spellings (``--out``) by the current ones, warning once each."""
    out: list[str] = []
    for i, arg in enumerate(argv):
        if arg == "--":
            return out + argv[i:]
        name, eq, rest = arg.partition("=")
        if name in DEPRECATED_ALIASES:
            new = DEPRECATED_ALIASES[name]
            warn(f"{name} is deprecated; use {new}")
            arg = new + eq + rest
        out.append(arg)
    return out
