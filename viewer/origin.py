"""The websocket Origin check: only the viewer's own page (and origins the user allows) may connect.

A browser sends an ``Origin`` header with every websocket handshake; without a check, any
web page open in the user's browser could connect to the viewer on 127.0.0.1 and drive
it. The check runs in the HTTP handshake (websockets' ``process_request`` hook) and answers
403 to a websocket upgrade from any other origin, ``Origin: null`` included. A handshake
without an Origin header (not a browser, e.g. a local script) is let through: what this
guards against is a web page, and browsers always send the header.

viser 1.1.1 has no option for this. Its server calls ``websockets.asyncio.server.serve``
from its background thread (again for each busy port) while ``viser.ViserServer()`` is being constructed;
:func:`origin_checked_serve` wraps those calls (and restores the module attribute when
construction is over), adding the check in front of viser's own ``process_request``.

:class:`DroppedHandshakeFilter` turns websockets' multi-page traceback for a connection
that closes before its handshake (a port probe, a tab closed while loading) into one line.
"""
from __future__ import annotations

import contextlib
import http
import logging
import socket
import threading
from typing import Callable, Iterable, Iterator
from urllib.parse import urlsplit

from splat.errors import UsageError

LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")
_WILDCARDS = ("0.0.0.0", "::", "")
_construct_lock = threading.Lock()  # one wrapped serve() call at a time


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


class OriginPolicy:
    """Which websocket origins may connect: the viewer's own plus ``extra`` (normalised)."""

    def __init__(self, extra: Iterable[str] = (), log: Callable[[str], None] | None = None) -> None:
        self.extra = frozenset(normalise_origin(o) for o in extra)
        self.own: frozenset[str] = frozenset()
        self.refused = 0
        self._log = log
        self._logged: set[str] = set()

    def bind(self, host: str, port: int) -> None:
        """Set the viewer's own origins once the port is known."""
        self.own = own_origins(host, port)

    def allows(self, origin: str | None) -> bool:
        if origin is None:
            return True  # not a browser
        try:
            o = normalise_origin(origin)
        except UsageError:
            return False  # "null", garbage
        return o in self.own or o in self.extra

    def check(self, connection, request):
        """websockets ``process_request`` hook: 403 for a websocket upgrade from a foreign origin."""
        if request.headers.get("Upgrade", "").lower() != "websocket":
            return None
        origin = request.headers.get("Origin")
        if self.allows(origin):
            return None
        self.refused += 1
        if self._log is not None and origin not in self._logged and len(self._logged) < 100:
            self._logged.add(origin)
            self._log(f"[yellow]refused a websocket connection from origin {origin!r} "
                      "(allow it with --allow-origin)[/]")
        return connection.respond(http.HTTPStatus.FORBIDDEN, "origin not allowed\n")


@contextlib.contextmanager
def origin_checked_serve(policy: OriginPolicy) -> Iterator[None]:
    """While active, the next ``websockets.asyncio.server.serve`` call (viser's) gets ``policy``'s
    check in front of its own ``process_request``. Construct one ``viser.ViserServer`` inside."""
    import websockets.asyncio.server as ws_server

    with _construct_lock:
        original = ws_server.serve

        def serve(handler, *args, process_request=None, **kwargs):  # viser retries busy ports: every call
            def checked(connection, request):
                refusal = policy.check(connection, request)
                if refusal is not None:
                    return refusal
                return None if process_request is None else process_request(connection, request)

            return original(handler, *args, process_request=checked, **kwargs)

        ws_server.serve = serve
        try:
            yield
        finally:
            ws_server.serve = original


class DroppedHandshakeFilter(logging.Filter):
    """On the ``websockets.server`` logger: "opening handshake failed" becomes one line through
    ``log`` (the exception's message, no traceback). Install with :meth:`install`, remove with
    :meth:`remove` (the logger is process-wide)."""

    LOGGER = "websockets.server"

    def __init__(self, log: Callable[[str], None] | None) -> None:
        super().__init__()
        self._log = log
        self.dropped = 0

    def filter(self, record: logging.LogRecord) -> bool:
        if record.getMessage() != "opening handshake failed":
            return True
        self.dropped += 1
        if self._log is not None:
            exc = record.exc_info[1] if record.exc_info else None
            why = f" ({exc})" if exc is not None else ""
            self._log(f"[dim]a connection closed before its handshake{why}[/]")
        return False

    def install(self) -> "DroppedHandshakeFilter":
        logger = logging.getLogger(self.LOGGER)
        if self not in logger.filters:  # first, ahead of viser's filter that drops the record silently
            logger.filters.insert(0, self)
        return self

    def remove(self) -> None:
        logging.getLogger(self.LOGGER).removeFilter(self)
