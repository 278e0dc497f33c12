"""Progress reporting and summary tables shared by every long-running command.

Library code reports progress through one protocol, :class:`Progress`, and never prints. A
function that takes ``progress: Progress | None`` calls ``start(desc, total)`` for each stage
it runs, ``advance(n, info)`` as work is done and ``end()`` when the stage is over; a helper
that runs inside its caller's stage (documented as such) only advances it. The CLI passes
:class:`RichProgress` (a rich bar); :class:`NullProgress` ignores everything.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Protocol, Sequence, runtime_checkable

if TYPE_CHECKING:  # rich loads only where a bar or table is drawn (library code imports this module)
    import rich.progress
    from rich.console import Console
    from rich.table import Table


@runtime_checkable
class Progress(Protocol):
    """Where library code reports long work: one stage at a time."""

    def start(self, desc: str, total: int | None) -> None:
        """A stage named ``desc`` begins, with ``total`` units of work (None: unknown)."""

    def advance(self, n: int = 1, info: str = "") -> None:
        """``n`` more units are done; ``info`` is a short status (e.g. "loss 0.0123")."""

    def end(self) -> None:
        """The current stage is over (shown as complete)."""


class NullProgress:
    """A :class:`Progress` that ignores everything."""

    def start(self, desc: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1, info: str = "") -> None:
        pass

    def end(self) -> None:
        pass


class RichProgress:
    """A :class:`Progress` drawn as one rich bar per stage on ``bar`` (from :func:`make_progress`)."""

    def __init__(self, bar: rich.progress.Progress) -> None:
        self.bar = bar
        self.task: rich.progress.TaskID | None = None

    def start(self, desc: str, total: int | None) -> None:
        self.end()
        self.task = self.bar.add_task(desc, total=total or None, info="")

    def advance(self, n: int = 1, info: str = "") -> None:
        if self.task is not None:
            self.bar.update(self.task, advance=n, info=info)

    def end(self) -> None:
        if self.task is None:
            return
        t = next(x for x in self.bar.tasks if x.id == self.task)
        done = t.total if t.total is not None else max(t.completed, 1)
        self.bar.update(self.task, total=done, completed=done)
        self.task = None


def make_progress(console: Console | None = None, transient: bool = False) -> rich.progress.Progress:
    """A progress bar with description, bar, count, elapsed and remaining time, and a free-text field."""
    import rich.progress
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn

    return rich.progress.Progress(
        TextColumn("[bold blue]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        TextColumn("{task.fields[info]}"),
        console=console or Console(stderr=True),
        transient=transient,
    )


def summary_table(title: str, columns: Sequence[str], rows: Iterable[Sequence[object]]) -> Table:
    """A rich table for the end-of-command summary (size, ratio, PSNR, time...)."""
    from rich.table import Table

    t = Table(title=title, title_justify="left")
    for i, c in enumerate(columns):
        t.add_column(c, justify="left" if i == 0 else "right")
    for r in rows:
        t.add_row(*[v if isinstance(v, str) else _fmt(v) for v in r])
    return t


def _fmt(v: object) -> str:
    if isinstance(v, float):
        if v != 0 and (abs(v) >= 1e5 or abs(v) < 1e-3):
            return f"{v:.3g}"
        return f"{v:.3f}" if abs(v) < 10 else f"{v:.2f}" if abs(v) < 1000 else f"{v:,.0f}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if abs(n) < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024.0
    return f"{n} B"
