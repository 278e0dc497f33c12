"""Errors raised for bad user input (files, arguments)."""
from __future__ import annotations

import os


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
