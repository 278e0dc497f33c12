"""Errors raised for bad user input (files, arguments)."""
from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Iterator


class SplatError(Exception):
    """Base class of every error this toolkit raises on purpose."""


class FormatError(SplatError, ValueError):
    """A file is not what it claims to be: wrong magic, truncated, inconsistent, NaN...

    The message always names the file (when there is one) and what is wrong.
    """

    def __init__(self, message: str, path: str | os.PathLike | None = None):
        self.path = None if path is None else os.fspath(path)
        self.reason = message
        super().__init__(f"{self.path}: {message}" if self.path else message)


class UsageError(SplatError, ValueError):
    """A caller asked for something impossible (bad option combination, missing input)."""


@contextmanager
def naming(path: str | os.PathLike | None) -> Iterator[None]:
    """Re-raise a :class:`FormatError` that lacks a file name with ``path`` added."""
    try:
        yield
    except FormatError as e:
        if e.path is None and path is not None:
            raise FormatError(e.reason, path) from None
        raise
