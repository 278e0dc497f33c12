"""The package's CPU threading, set in one place.

* ``configure()`` runs when ``splat`` is imported (before numba or torch start threads):
  numba's threading layer is ``omp`` (GNU OpenMP, the runtime torch's CPU wheel also uses,
  so one pool serves both) with the ``PASSIVE`` wait policy: a worker that finishes a
  parallel region sleeps instead of spinning, so numba's kernels and torch's ops stop
  stealing each other's cores on a busy machine (issue 13; ``bench/threads.py`` measures
  it). ``workqueue`` was not chosen because it aborts the process when two Python threads
  launch parallel kernels at once, which the viewer does.
  A value the user set (``NUMBA_THREADING_LAYER``, ``OMP_WAIT_POLICY``) is kept.
* ``threads(n)`` is the one scoped way to change thread counts: torch's intra-op threads
  and numba's threads, restored on exit (library code never changes them for good).
"""
from __future__ import annotations

import contextlib
import os
import sys
from typing import Iterator

THREADING_LAYER = "omp"
WAIT_POLICY = "PASSIVE"

_state: dict[str, object] = {}


def configure() -> None:
    """Choose numba's threading layer and OpenMP's wait policy (idempotent).

    The wait policy is read by the OpenMP runtime when it loads (with ``import torch`` or
    numba's first parallel kernel), so it only takes effect if ``splat`` is imported first;
    ``threading_info()`` says whether it did."""
    if _state:
        return
    _state["torch_loaded_first"] = "torch" in sys.modules
    os.environ.setdefault("OMP_WAIT_POLICY", WAIT_POLICY)
    os.environ.setdefault("NUMBA_THREADING_LAYER", THREADING_LAYER)
    numba_config = sys.modules.get("numba.core.config")
    if numba_config is not None:  # numba already imported: its config read the environment before us
        numba_config.THREADING_LAYER = os.environ["NUMBA_THREADING_LAYER"]


def threading_info() -> dict[str, object]:
    """The threading set-up in effect: numba's configured and active layer, wait policy,
    thread counts, and whether the wait policy could still take effect."""
    import numba
    import torch

    try:
        active = numba.threading_layer()
    except ValueError:  # no parallel kernel has run yet
        active = None
    return {
        "numba_layer_configured": numba.config.THREADING_LAYER,
        "numba_layer_active": active,
        "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
        "wait_policy_effective": not _state.get("torch_loaded_first", True),
        "numba_threads": numba.get_num_threads(),
        "torch_threads": torch.get_num_threads(),
    }


@contextlib.contextmanager
def threads(n: int | None, *, numba_too: bool = True) -> Iterator[None]:
    """Run the block with ``n`` torch intra-op threads and ``n`` numba threads (capped at
    numba's pool size; numba's count is per Python thread), restoring both on exit.
    ``None`` changes nothing; ``numba_too=False`` leaves numba's count alone."""
    if n is None:
        yield
        return
    if n < 1:
        raise ValueError(f"thread count must be at least 1, got {n}")
    import numba
    import torch

    torch_before, numba_before = torch.get_num_threads(), numba.get_num_threads()
    torch.set_num_threads(n)
    if numba_too:
        numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
    try:
        yield
    finally:
        torch.set_num_threads(torch_before)
        numba.set_num_threads(numba_before)
