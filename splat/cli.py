"""The ``splat`` command line.

splat/ owns the application object and the core commands; every other package adds
its sub-commands through the ``splat.commands`` entry-point group (a ``register(app)``
function), so the dependency direction splat -> render -> compress -> viewer holds.

User mistakes (bad files, bad options) print one clear line and exit with status 2;
no traceback. Anything unexpected prints one line and exits with status 1.
``SPLAT_DEBUG=1`` shows tracebacks anyway.
"""
from __future__ import annotations

import os
import sys
from functools import cache
from importlib.metadata import entry_points
from pathlib import Path

import typer
from rich.console import Console
from rich.markup import escape

from .cli_options import rewrite_deprecated
from .errors import SplatError

err_console = Console(stderr=True)
console = Console()

app = typer.Typer(
    name="splat",
    help=(
        "Compress and render Gaussian splats.\n\n"
        "Examples:\n\n"
        "  splat info scene.ply\n\n"
        "  splat convert scene.ply scene.spz\n\n"
        "  splat render scene.splat --cameras orbit -o views/\n\n"
        "Run 'splat COMMAND --help' for a command's options and examples."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="rich",
)


def _load_plugins(application: typer.Typer) -> None:
    for ep in sorted(entry_points(group="splat.commands"), key=lambda e: e.name):
        try:
            register = ep.load()
        except Exception as e:  # a broken optional package must not take the CLI down
            if os.environ.get("SPLAT_DEBUG"):
                raise
            err_console.print(f"[yellow]warning:[/] commands from {ep.name!r} unavailable ({e})")
            continue
        register(application)


def _register_core() -> None:
    from . import cli_core  # noqa: F401  (defines info, convert on `app`)


@cache
def build_app() -> typer.Typer:
    """The application with the core commands and every plugin's, registered once per process
    (each ``register(app)`` adds its commands again, so a second registration would double them)."""
    _register_core()
    _load_plugins(app)
    return app


def main(argv: list[str] | None = None) -> int:
    from .heap import bound_heap

    bound_heap()  # freed arrays go back to the system (long jobs: see splat/heap.py)
    application = build_app()
    debug = bool(os.environ.get("SPLAT_DEBUG"))
    argv = rewrite_deprecated(list(sys.argv[1:] if argv is None else argv),
                              lambda text: err_console.print(f"[yellow]warning:[/] {text}", highlight=False))
    try:
        rv = application(args=argv, prog_name="splat", standalone_mode=False)
        if isinstance(rv, int):
            return rv
    except SplatError as e:
        if debug:
            raise
        err_console.print(f"[bold red]error:[/] {escape(str(e))}", highlight=False, soft_wrap=True)
        return 2
    except KeyboardInterrupt:
        err_console.print("[bold red]interrupted[/]")
        return 130
    except SystemExit as e:  # typer/click exits (e.g. --help) arrive here with standalone_mode=False
        return int(e.code or 0)
    except Exception as e:
        click_exc = _click_exceptions()
        if isinstance(e, click_exc.ClickException):  # usage errors: click prints them itself
            e.show()
            return e.exit_code
        if isinstance(e, getattr(click_exc, "Abort", ())):  # Ctrl-C at a prompt
            return 1
        if debug:
            raise
        return _unexpected(e)
    return 0


def _unexpected(e: BaseException) -> int:
    """Last resort: one line naming the exception, a hint for the traceback, exit status 1."""
    text = " ".join(str(e).split())
    if len(text) > 300:
        text = text[:300] + "..."
    where = ""
    tb = e.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    if tb is not None:
        where = f" (in {Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno})"
    err_console.print(
        f"[bold red]internal error:[/] {escape(type(e).__name__)}: {escape(text)}{escape(where)}; "
        "rerun with SPLAT_DEBUG=1 for the traceback", highlight=False, soft_wrap=True)
    return 1


def _click_exceptions():
    try:
        from typer._click import exceptions
    except ImportError:  # older typer depends on click itself
        from click import exceptions
    return exceptions


if __name__ == "__main__":
    # `python -m splat.cli` runs this file as __main__; the commands live on splat.cli.app
    from splat.cli import main as _main

    sys.exit(_main())
