"""Web origins: which pages may call the viewer's API (its own, and those the user allows).

A browser sends an ``Origin`` header with every cross-site request; without a check, any web
page open in the user's browser could call the server on 127.0.0.1. The server
(:mod:`viewer.web_server`) compares that header with :func:`own_origins` and the
``--allow-origin`` list, normalised by :func:`normalise_origin`.
"""
from __future__ import annotations

import contextlib
import socket
from urllib.parse import urlsplit

from splat.errors import UsageError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARDS = ("0.0.0.0", "::", "")


def normalise_origin(text: str) -> str:
    """``scheme://host[:port]`` in lower case, as browsers send it (no path, no default port).

    Raises UsageError for anything that is not an http(s) origin.
    """
    raw = text.strip()
    try:
        p = urlsplit(raw)
        port = p.port
    except ValueError:
        raise UsageError(f"--allow-origin {text!r} is not an origin like http://host:port") from None
    if p.scheme not in ("http", "https") or not p.hostname or p.path not in ("", "/") or p.query or p.fragment \
            or p.username or p.password:
        raise UsageError(f"--allow-origin {text!r} is not an origin like http://host:port")
    host = p.hostname.lower()
    if ":" in host:
        host = f"[{host}]"
    default = 80 if p.scheme == "http" else 443
    return f"{p.scheme}://{host}" + ("" if port in (None, default) else f":{port}")


def own_origins(host: str, port: int) -> frozenset[str]:
    """The origins of the viewer's own page when served on ``host:port``.

    Loopback names are equivalent (a page on http://localhost:8080 may talk to a server bound
    to 127.0.0.1). A server bound to every interface also answers to this machine's name.
    """
    names = set(LOOPBACK_NAMES)
    h = host.strip("[]").lower()
    if h in _WILDCARDS:
        with contextlib.suppress(OSError):
            names.update({socket.gethostname().lower(), socket.getfqdn().lower()})
    elif h not in ("127.0.0.1", "localhost", "::1"):
        names.add(f"[{h}]" if ":" in h else h)
    return frozenset(normalise_origin(f"http://{n}:{port}") for n in names)
