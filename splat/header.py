"""Safe JSON headers: parsing with bounded numbers and depth, and typed field getters.

Every file format of ours (and SOG's ``meta.json``) keeps its header as JSON. Parsing
hostile JSON can raise OverflowError, RecursionError or ValueError and yield ``Infinity``,
huge integers or NUL characters; :func:`parse_json` turns all of that into
:class:`FormatError`, and the getters check a field's type, range and finiteness.
"""
from __future__ import annotations

import json
import math
import os
from typing import Any

from .errors import FormatError

MAX_DEPTH = 32
"""Deepest nesting of arrays/objects a header may use."""
MAX_INT_DIGITS = 20
"""Longest integer literal accepted (covers every u64)."""

_PathLike = str | os.PathLike | None


class _Reject(ValueError):
    pass


def _int(s: str) -> int:
    if len(s.lstrip("-")) > MAX_INT_DIGITS:
        raise _Reject(f"an integer of {len(s)} digits")
    return int(s)


def _float(s: str) -> float:
    if len(s) > 64:
        raise _Reject(f"a number literal of {len(s)} characters")
    v = float(s)
    if not math.isfinite(v):
        raise _Reject(f"a non-finite number ({s[:20]} overflows)")
    return v


def _const(s: str) -> Any:
    raise _Reject(f"a non-finite number ({s})")


def _check_tree(obj: Any, max_depth: int = MAX_DEPTH) -> None:
    """Iterative walk: nesting depth and NUL characters in strings and keys."""
    stack = [(obj, 1)]
    while stack:
        o, d = stack.pop()
        if isinstance(o, (dict, list)):
            if d > max_depth:
                raise _Reject(f"nesting deeper than {max_depth} levels")
            items = list(o.items()) if isinstance(o, dict) else [(None, v) for v in o]
            for k, v in items:
                if isinstance(k, str) and "\x00" in k:
                    raise _Reject("a NUL character in a key")
                stack.append((v, d + 1))
        elif isinstance(o, str) and "\x00" in o:
            raise _Reject("a NUL character in a string")


def parse_json(raw: bytes, path: _PathLike = None, what: str = "header", *, max_depth: int = MAX_DEPTH,
               top: type | tuple[type, ...] = dict) -> Any:
    """A JSON object (of type ``top``: a dict unless told) from ``raw`` (UTF-8), or FormatError
    naming the file and the problem: integers over 20 digits, non-finite numbers, NUL
    characters and nesting deeper than ``max_depth`` are refused."""
    try:
        obj = json.loads(raw.decode("utf-8"), parse_int=_int, parse_float=_float, parse_constant=_const)
    except _Reject as e:
        raise FormatError(f"{what} holds {e}", path) from None
    except RecursionError:
        raise FormatError(f"{what} is nested too deeply", path) from None
    except (UnicodeDecodeError, ValueError, OverflowError):
        raise FormatError(f"{what} is not valid JSON", path) from None
    if not isinstance(obj, top):
        raise FormatError(f"{what} must hold a JSON {'object' if top is dict else 'object or list'}", path)
    try:
        _check_tree(obj, max_depth)
    except _Reject as e:
        raise FormatError(f"{what} holds {e}", path) from None
    return obj


def get_int(h: dict, key: str, lo: int, hi: int, path: _PathLike = None, what: str = "header",
            default: int | None = None) -> int:
    """``h[key]`` as an integer in [lo, hi] (``default`` when absent and given)."""
    v = h.get(key, default) if isinstance(h, dict) else None
    if not isinstance(v, int) or isinstance(v, bool) or not lo <= v <= hi:
        raise FormatError(f"{what} field {key!r} = {_short(v)} is not an integer in [{lo}, {hi}]", path)
    return v


def get_float(h: dict, key: str, lo: float, hi: float, path: _PathLike = None, what: str = "header",
              default: float | None = None) -> float:
    """``h[key]`` as a finite number in [lo, hi] (``default`` when absent and given)."""
    v = h.get(key, default) if isinstance(h, dict) else None
    if not isinstance(v, (int, float)) or isinstance(v, bool) or not math.isfinite(v) or not lo <= v <= hi:
        raise FormatError(f"{what} field {key!r} = {_short(v)} is not a number in [{lo:g}, {hi:g}]", path)
    return float(v)


def get_typed(h: dict, key: str, typ: type | tuple[type, ...], path: _PathLike = None, what: str = "header") -> Any:
    """``h[key]`` when it has type ``typ`` (bool is not an int here)."""
    v = h.get(key) if isinstance(h, dict) else None
    if not isinstance(v, typ) or (isinstance(v, bool) and typ is not bool):
        raise FormatError(f"{what} field {key!r} is missing or has the wrong type ({type(v).__name__})", path)
    return v


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."
