"""Give freed memory back to the operating system (glibc's allocator; a no-op elsewhere).

glibc serves a large block with its own ``mmap`` and unmaps it when freed, but after the
first such free it raises that threshold to the block's size (up to 32 MB), so later
arrays of a few MB come from the heap. A long job that renders, frees and renders again
(the scene compressor's fine-tuning) then keeps freed blocks resident and fragments the
heap: the resident set grows by hundreds of MB above what is live.

* :func:`bound_heap` fixes the thresholds (blocks >= ``mmap_threshold`` bytes are mapped
  and unmapped on their own; free heap tops above ``trim_threshold`` are returned). The
  ``splat`` CLI calls it at start; a value the user set in ``MALLOC_MMAP_THRESHOLD_`` /
  ``MALLOC_TRIM_THRESHOLD_`` is kept.
* :func:`trim` returns free heap pages now (``malloc_trim(0)``), e.g. after a stage.
* :func:`steady_heap` lifts those bounds for a loop that frees and allocates the same
  arrays of a few MB every iteration (an image fit's renders, loss and gradients): with the
  bounds each iteration maps, faults in and zeroes fresh pages (about a tenth of such a
  fit's CPU time); inside the block they come back from the heap.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
from contextlib import contextmanager
from functools import cache
from typing import Iterator

M_TRIM_THRESHOLD = -1  # mallopt parameters (malloc.h)
M_MMAP_THRESHOLD = -3
MMAP_THRESHOLD = 1 << 20
TRIM_THRESHOLD = 8 << 20
STEADY_MMAP_THRESHOLD = 32 << 20  # glibc's largest mmap threshold on 64-bit systems
STEADY_TRIM_THRESHOLD = 256 << 20
_bound: dict[int, int] = {}  # the thresholds bound_heap set (parameter -> bytes)
_steady_depth = 0


@cache
def _libc() -> ctypes.CDLL | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt, libc.malloc_trim  # glibc only
    except (OSError, AttributeError):
        return None
    return libc


def bound_heap(mmap_threshold: int = MMAP_THRESHOLD, trim_threshold: int = TRIM_THRESHOLD) -> bool:
    """Fix glibc's mmap and trim thresholds (bytes) for this process. True when applied
    (glibc present; each threshold the user set in the environment is left alone)."""
    libc = _libc()
    if libc is None:
        return False
    if "MALLOC_MMAP_THRESHOLD_" not in os.environ:
        libc.mallopt(M_MMAP_THRESHOLD, int(mmap_threshold))
        _bound[M_MMAP_THRESHOLD] = int(mmap_threshold)
    if "MALLOC_TRIM_THRESHOLD_" not in os.environ:
        libc.mallopt(M_TRIM_THRESHOLD, int(trim_threshold))
        _bound[M_TRIM_THRESHOLD] = int(trim_threshold)
    return True


@contextmanager
def steady_heap(mmap_threshold: int = STEADY_MMAP_THRESHOLD, trim_threshold: int = STEADY_TRIM_THRESHOLD
                ) -> Iterator[None]:
    """Within the block, blocks below ``mmap_threshold`` bytes come from the heap and up to
    ``trim_threshold`` bytes of free heap top stay mapped, so that arrays freed and made
    again every iteration reuse their pages; on leaving, :func:`bound_heap`'s thresholds
    return and the free pages are trimmed. Only the thresholds :func:`bound_heap` set are
    changed (none without it: glibc's own dynamic threshold already keeps such arrays on the
    heap). Nests."""
    global _steady_depth
    libc = _libc()
    if libc is None or not _bound or _steady_depth > 0:
        _steady_depth += 1
        try:
            yield
        finally:
            _steady_depth -= 1
        return
    steady = {M_MMAP_THRESHOLD: int(mmap_threshold), M_TRIM_THRESHOLD: int(trim_threshold)}
    _steady_depth += 1
    try:
        for param in _bound:
            libc.mallopt(param, steady[param])
        yield
    finally:
        _steady_depth -= 1
        for param, value in _bound.items():
            libc.mallopt(param, value)
        libc.malloc_trim(0)


def trim() -> None:
    """Return the heap's free pages to the operating system now (glibc; else nothing)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)
