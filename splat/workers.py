"""Run independent tasks serially or on Ray: the one place the package uses Ray.

``run_tasks(fn, items, workers=N, address=ADDR)`` returns ``[fn(x) for x in items]`` in
order. With ``workers <= 1`` and no address it is that loop, in this process. Otherwise
each item is a Ray task (``num_cpus=1``): with no address a local Ray starts inside this
process (``workers`` CPUs) and stops when the tasks are done; each task runs with one
torch and one numba thread (it holds one CPU); with ``address`` it joins
that cluster (``ray start --head`` on the machines). A Ray session that is already running
(``ray.init`` called by the caller) is used as is and left running.

A task whose worker process dies is retried (``retries`` times, by Ray); an exception
raised by ``fn`` is not retried and is re-raised here. Nothing is written by this module:
callers write their outputs after every task is in, so a failure leaves no partial output.
Progress is one stage advanced as each task finishes, whichever worker ran it.

Ray is the optional extra ``splatkit[ray]``; :func:`require_ray` says what to install.
"""
from __future__ import annotations

import importlib
from typing import Callable, Sequence, TypeVar

from .errors import UsageError
from .progress import NullProgress, Progress

T = TypeVar("T")
R = TypeVar("R")

INSTALL_HINT = "pip install ray (the package's 'ray' extra)"


def require_ray():
    """The ``ray`` module, or UsageError saying what to install."""
    try:
        return importlib.import_module("ray")
    except ImportError:
        raise UsageError(f"--workers > 1 and --ray-address need Ray, which is not installed: {INSTALL_HINT}") from None


def check_workers(workers: int, address: str | None) -> None:
    """Validate ``--workers``/``--ray-address`` before any work starts (UsageError)."""
    if workers < 1:
        raise UsageError(f"--workers must be >= 1, got {workers}")
    if workers > 1 or address:
        require_ray()


def run_tasks(
    fn: Callable[[T], R],
    items: Sequence[T],
    *,
    workers: int = 1,
    address: str | None = None,
    retries: int = 3,
    progress: Progress | None = None,
    desc: str = "tasks",
    units: Sequence[int] | None = None,
) -> list[R]:
    """``[fn(x) for x in items]``, serially or as Ray tasks (see the module docstring).

    ``fn`` must be importable by name (a module-level function) when Ray runs it;
    ``progress`` gets one stage ``desc``, advanced by ``units[i]`` (default 1) when item i is done."""
    check_workers(workers, address)
    pg = progress or NullProgress()
    units = [1] * len(items) if units is None else list(units)
    pg.start(desc, sum(units))
    try:
        if workers <= 1 and not address:
            out = []
            for x, u in zip(items, units):
                out.append(fn(x))
                pg.advance(u)
            return out
        return _run_ray(fn, items, workers, address, retries, pg, units)
    finally:
        pg.end()


def _one_thread(fn: Callable[[T], R], x: T) -> R:
    """``fn(x)`` with one torch and one numba thread: a Ray task holds one CPU, and a worker
    that ran kernels on every core would slow the worker beside it."""
    from .threads import threads

    with threads(1):
        return fn(x)


def _run_ray(fn, items, workers: int, address: str | None, retries: int, pg: Progress, units: list[int]) -> list:
    ray = require_ray()
    started = False
    if not ray.is_initialized():
        if address:
            ray.init(address=address, log_to_driver=False)
        else:
            ray.init(num_cpus=workers, include_dashboard=False, log_to_driver=False)
        started = True
    try:
        remote = ray.remote(num_cpus=1, max_retries=retries, retry_exceptions=False)(_one_thread)
        refs = [remote.remote(fn, x) for x in items]
        index = {ref: i for i, ref in enumerate(refs)}
        out: list = [None] * len(refs)
        pending = list(refs)
        while pending:
            ready, pending = ray.wait(pending, num_returns=1)
            for ref in ready:
                try:
                    out[index[ref]] = ray.get(ref)
                except ray.exceptions.RayTaskError as e:  # fn raised: re-raise its own exception
                    for r in pending:
                        ray.cancel(r, force=True)
                    cause = e.as_instanceof_cause()
                    raise cause from None
                pg.advance(units[index[ref]])
        return out
    finally:
        if started:
            ray.shutdown()
