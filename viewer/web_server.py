"""A small HTTP server for the web player: the client plus the named assets, nothing else.

``splat view ASSET --web`` runs it. Everything it may send is fixed when it starts, by
name, in an allow-list: ``/`` (the player page), the client files (``viewer/client/``), each
asset at ``/assets/NAME`` with its camera presets (and the scene a ``.m3`` references, at its
relative path), and one JSON endpoint ``/api/assets`` (plus ``POST /api/query`` with an
``--encoder``: viewer/memory_web.py).
A request path is compared with these names after one percent-decoding; anything else is
404, and a path with encoded separators, dot segments, backslashes, doubled slashes or NUL is
400 before any lookup. Files are opened by the path resolved at start (``O_NOFOLLOW``: a
file swapped for a symlink later is refused).

* **Range** requests get 206 with ``Content-Range`` (one range; several, or a unit other than
  bytes, get the whole file with 200, as RFC 9110 allows), an unsatisfiable or malformed
  byte range 416 with ``Content-Range: bytes */SIZE``.
* **Host** must name this server (loopback names, or the bound address; with a wildcard
  host also this machine's name, plus any ``allow_origins`` host): a DNS-rebinding page,
  whose requests carry its own host name, gets 403.
* **Origin**: the API refuses a foreign ``Origin`` (403); the page, the client and the
  assets need none (they are what the server shows anyone who can reach it).
* Binds 127.0.0.1 by default. ``bytes_sent`` counts body bytes per served file (wire tests; API replies are not counted).
* **POST** goes to the local JSON API only (:mod:`viewer.view_api`: ``/api/render``,
  ``/api/contribution``; :mod:`viewer.memory_web`: ``/api/query`` with ``encoder``), one path
  for all: the Host and Origin checks above, ``application/json`` (415), a length (411) within
  the endpoint's limit (413), a JSON object parsed by the readers' bounded parser (400), and
  one-line errors. ``api=False`` leaves render and contribution out (405).
"""
from __future__ import annotations

import errno
import json
import os
import re
import socket
import stat
import threading
from collections import Counter
from dataclasses import dataclass
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import unquote, urlsplit

from splat.errors import UsageError

from .memory_web import MAX_QUERY_BODY, QUERY_PATH, TextQueryApi
from .origin import normalise_origin, own_origins
from .site import CLIENT_FILES, Asset, client_file, player_page, scene_files
from .view_api import MAX_BODY, ApiError, ViewApi

CHUNK = 1 << 16
CONTENT_TYPES = {".js": "text/javascript; charset=utf-8", ".html": "text/html; charset=utf-8",
                 ".json": "application/json"}
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


@dataclass
class Route:
    """One thing the server may send: a file (opened per request) or bytes held in memory."""

    content_type: str
    path: Path | None = None
    data: bytes | None = None


@dataclass
class ApiReply:
    """What an API endpoint answers: a body, its type and extra headers."""

    body: bytes
    content_type: str = "application/json"
    headers: dict[str, str] | None = None


def parse_range(header: str, size: int) -> tuple[int, int] | None | str:
    """``Range`` header -> (start, end inclusive); None to send everything; "bad" for 416."""
    h = header.strip()
    if not h.lower().startswith("bytes="):
        return None  # another unit: ignore the header
    spec = "bytes=" + h[6:].strip()
    if "," in spec:
        return None  # several ranges: the whole file (allowed by RFC 9110)
    m = _RANGE.match(spec)
    if not m or (m.group(1) == "" and m.group(2) == ""):
        return "bad"
    a, b = m.group(1), m.group(2)
    if len(a) > 19 or len(b) > 19:
        return "bad"
    if a == "":  # suffix: the last n bytes
        n = int(b)
        if n == 0 or size == 0:
            return "bad"
        return max(0, size - n), size - 1
    start = int(a)
    end = size - 1 if b == "" else min(int(b), size - 1)
    if start >= size or (b != "" and int(b) < start):
        return "bad"
    return start, end


def _host_forms(origins) -> frozenset[str]:
    """Every ``Host`` header value that names one of ``origins``: ``host:port``, and the bare
    host where the port is the scheme's default (browsers leave it out)."""
    out = set()
    for o in origins:
        p = urlsplit(o)
        out.add(p.netloc)
        if p.port is None:
            out.add(f"{p.netloc}:{443 if p.scheme == 'https' else 80}")
    return frozenset(out)


def clean_path(raw: str) -> str | None:
    """The request target's path, percent-decoded once, or None if it tries anything odd:
    encoded slashes or backslashes, dot segments, doubled slashes, NUL or control bytes."""
    if not raw.startswith("/"):
        return None  # absolute-form and asterisk targets are not for this server
    path = raw.split("?", 1)[0].split("#", 1)[0]
    if re.search(r"%(2f|5c|00|25)", path, re.IGNORECASE):  # encoded /, \, NUL, or double encoding
        return None
    try:
        path = unquote(path, errors="strict")
    except UnicodeDecodeError:
        return None
    if "\\" in path or "//" in path or any(ord(c) < 32 or ord(c) == 127 for c in path):
        return None
    if any(seg in (".", "..") for seg in path.split("/")):
        return None
    return path


class WebPlayerServer:
    """Serve the web player on ``assets`` at ``http://host:port/`` (background threads).

    ``port`` 0 takes any free port; another busy port tries the next 20. ``allow_origins``:
    extra origins (``https://proxy.example``) whose pages may call the API and whose host
    names the Host check accepts."""

    def __init__(self, assets: Sequence[Asset], *, host: str = "127.0.0.1", port: int = 8080,
                 autoplay: bool = True, loop: bool = True, speed: float = 1.0, allow_origins: Sequence[str] = (),
                 log: Callable[[str], None] | None = None, encoder: str | None = None, api: bool = True,
                 render_dir: str | os.PathLike = "splat_view_renders", up: str = "-y",
                 settings: dict | None = None) -> None:
        if not assets:
            raise UsageError("the web player needs at least one asset")
        self.assets = list(assets)
        self.autoplay = autoplay
        self.loop = loop
        self.speed = speed
        self.settings = dict(settings or {})
        self.extra_origins = frozenset(normalise_origin(o) for o in allow_origins)
        self.bytes_sent: Counter[str] = Counter()
        self.refused: Counter[str] = Counter()
        self._log = log
        self._lock = threading.Lock()
        self.text_query = _text_query(encoder)
        self.view_api = ViewApi(self.assets, render_dir, up=up) if api else None
        self.post_routes = self._post_routes()
        self.routes = self._routes()
        self.httpd = self._bind(host, port)
        self.host = host
        self.port = self.httpd.server_address[1]
        self.own_origins = own_origins(host, self.port)
        self.allowed_hosts = _host_forms(self.own_origins | self.extra_origins)
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="splat-web", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ set-up
    def _routes(self) -> dict[str, Route]:
        routes: dict[str, Route] = {}
        for name in CLIENT_FILES:
            routes["/" + name] = Route(CONTENT_TYPES[".js"], path=client_file(name).resolve())
        for a in self.assets:
            routes["/assets/" + a.name] = Route("application/octet-stream", path=a.path)
            if a.cameras_json is not None:
                routes["/assets/" + a.name + ".cameras.json"] = Route(CONTENT_TYPES[".json"], data=a.cameras_json)
        for key, path in scene_files(self.assets).items():  # scenes that .m3 assets reference
            routes["/" + key] = Route("application/octet-stream", path=path)
        index = player_page(self.assets[0], autoplay=self.autoplay, loop=self.loop, speed=self.speed,
                            api=self.view_api is not None, settings=self.settings).encode()
        routes["/"] = routes["/index.html"] = Route(CONTENT_TYPES[".html"], data=index)
        return routes

    def _post_routes(self) -> dict[str, tuple[Callable[[dict], ApiReply], int]]:
        """The API's POST endpoints, each with the largest body it reads (bytes): render and
        contribution with ``api``, text queries with ``encoder``."""
        routes: dict[str, tuple[Callable[[dict], ApiReply], int]] = {}
        if self.view_api is not None:
            routes.update({"/api/render": (self.api_render, MAX_BODY), "/api/contribution": (self.api_contribution, MAX_BODY)})
        if self.text_query is not None:
            routes[QUERY_PATH] = (self.api_query, MAX_QUERY_BODY)
        return routes

    def _bind(self, host: str, port: int) -> ThreadingHTTPServer:
        handler = _handler_for(self)
        family = socket.AF_INET6 if ":" in host.strip("[]") else socket.AF_INET

        class Server(ThreadingHTTPServer):
            address_family = family
            daemon_threads = True
            allow_reuse_address = True

        last: OSError | None = None
        for p in [port] if port == 0 else range(port, min(port + 21, 65536)):
            try:
                return Server((host.strip("[]"), p), handler)
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    raise UsageError(f"cannot listen on {host}:{p} ({e.strerror})") from None
                last = e
        raise UsageError(f"ports {port}-{port + 20} on {host} are all busy ({getattr(last, 'strerror', last)})")

    # ------------------------------------------------------------------ API
    @property
    def url(self) -> str:
        h = self.host.strip("[]")
        shown = "127.0.0.1" if h in ("0.0.0.0", "") else ("[::1]" if h == "::" else (f"[{h}]" if ":" in h else h))
        return f"http://{shown}:{self.port}/"

    def api_assets(self) -> bytes:
        out: dict = {"assets": [{"name": a.name, "url": a.url, "bytes": a.path.stat().st_size,
                                 "cameras": a.cameras_url} for a in self.assets]}
        if self.text_query is not None:
            out["query"] = self.text_query.advertise()
        return json.dumps(out).encode()

    def api_render(self, obj: dict) -> ApiReply:
        """``POST /api/render``: the PNG, saved in the render folder, sent as a download."""
        assert self.view_api is not None
        png, name = self.view_api.render(obj)
        if self._log is not None:
            self._log(f"rendered this view: {self.view_api.render_dir / name}")
        return ApiReply(png, "image/png", {"Content-Disposition": f'attachment; filename="{name}"', "X-Saved-As": name})

    def api_query(self, obj: dict) -> ApiReply:
        """``POST /api/query``: a text's feature vector from the ``--encoder``."""
        assert self.text_query is not None
        status, reply = self.text_query.reply(obj)
        if status != 200:
            raise ApiError(reply["error"], status)
        return ApiReply(json.dumps(reply).encode())

    def api_contribution(self, obj: dict) -> ApiReply:
        """``POST /api/contribution``: one float32 (little-endian) weight per Gaussian."""
        assert self.view_api is not None
        data = self.view_api.contribution(obj)
        return ApiReply(data, "application/octet-stream", {"X-Gaussians": str(len(data) // 4)})

    def count(self, key: str, n: int) -> None:
        with self._lock:
            self.bytes_sent[key] += n

    def note_refusal(self, why: str, detail: str) -> None:
        with self._lock:
            self.refused[why] += 1
            first = self.refused[why] <= 5
        if self._log is not None and first:
            self._log(f"refused ({why}): {detail[:200]}")

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> "WebPlayerServer":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def _handler_for(server: WebPlayerServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        server_version = "splatkit"
        sys_version = ""

        def log_message(self, format: str, *args) -> None:  # noqa: A002 - the base class's name
            pass  # quiet: refusals are logged through the server

        def _plain(self, status: HTTPStatus, text: str, headers: dict[str, str] | None = None) -> None:
            body = (text + "\n").encode()
            self.send_response(status)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Content-Type-Options", "nosniff")
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)

        def _host_ok(self) -> bool:
            return (self.headers.get("Host") or "").strip().lower() in server.allowed_hosts

        def _origin_ok(self) -> bool:
            origin = self.headers.get("Origin")
            if origin is None:
                return True  # not a cross-site browser request (a same-origin GET or a script)
            try:
                o = normalise_origin(origin)
            except UsageError:
                return False
            return o in server.own_origins or o in server.extra_origins

        def do_HEAD(self) -> None:
            self.do_GET()

        def do_GET(self) -> None:
            try:
                self._get()
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _other(self) -> None:
            allow = "GET, HEAD, POST" if server.post_routes else "GET, HEAD"
            self._plain(HTTPStatus.METHOD_NOT_ALLOWED, f"only {allow}", {"Allow": allow})

        do_PUT = do_DELETE = do_PATCH = do_OPTIONS = _other

        def do_POST(self) -> None:
            try:
                _post(self, server)
            except (BrokenPipeError, ConnectionResetError):
                self.close_connection = True

        def _get(self) -> None:
            if not self._host_ok():
                server.note_refusal("host", f"Host {self.headers.get('Host')!r} for {self.path!r}")
                self._plain(HTTPStatus.FORBIDDEN, "unknown Host (this server answers only to its own address)")
                return
            path = clean_path(self.path)
            if path is None:
                server.note_refusal("path", self.path)
                self._plain(HTTPStatus.BAD_REQUEST, "bad path")
                return
            if path == "/api/assets":
                if not self._origin_ok():
                    server.note_refusal("origin", f"Origin {self.headers.get('Origin')!r}")
                    self._plain(HTTPStatus.FORBIDDEN, "origin not allowed")
                    return
                self._send_bytes(path, server.api_assets(), CONTENT_TYPES[".json"])
                return
            route = server.routes.get(path)
            if route is None:
                self._plain(HTTPStatus.NOT_FOUND, "not found")
                return
            if route.data is not None:
                self._send_bytes(path, route.data, route.content_type)
            else:
                assert route.path is not None
                self._send_file(path, route.path, route.content_type)

        def _common_headers(self, content_type: str) -> None:
            self.send_header("Content-Type", content_type)
            self.send_header("Accept-Ranges", "bytes")
            self.send_header("Cache-Control", "no-cache")
            self.send_header("X-Content-Type-Options", "nosniff")
            self.send_header("Cross-Origin-Resource-Policy", "same-origin")

        def _range(self, size: int) -> tuple[int, int, bool] | None:
            """(start, end, partial), or None after answering 416."""
            header = self.headers.get("Range")
            r = parse_range(header, size) if header is not None else None
            if r == "bad":
                self._plain(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE, "range not satisfiable",
                            {"Content-Range": f"bytes */{size}"})
                return None
            if r is None:
                return 0, size - 1, False
            assert isinstance(r, tuple)
            return r[0], r[1], True

        def _send_bytes(self, key: str, data: bytes, content_type: str) -> None:
            r = self._range(len(data))
            if r is None:
                return
            start, end, partial = r
            body = data[start:end + 1]
            self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
            self._common_headers(content_type)
            if partial:
                self.send_header("Content-Range", f"bytes {start}-{end}/{len(data)}")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(body)
                server.count(key, len(body))

        def _send_file(self, key: str, path: Path, content_type: str) -> None:
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0))
            except OSError:
                self._plain(HTTPStatus.NOT_FOUND, "not found")
                return
            with os.fdopen(fd, "rb") as f:
                st = os.fstat(f.fileno())
                if not stat.S_ISREG(st.st_mode):
                    self._plain(HTTPStatus.NOT_FOUND, "not found")
                    return
                size = st.st_size
                r = self._range(size)
                if r is None:
                    return
                start, end, partial = r
                length = max(0, end - start + 1)
                self.send_response(HTTPStatus.PARTIAL_CONTENT if partial else HTTPStatus.OK)
                self._common_headers(content_type)
                if partial:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(length))
                self.end_headers()
                if self.command == "HEAD":
                    return
                f.seek(start)
                left = length
                while left > 0:
                    chunk = f.read(min(CHUNK, left))
                    if not chunk:
                        break  # the file shrank: the client sees a short body
                    self.wfile.write(chunk)
                    server.count(key, len(chunk))
                    left -= len(chunk)

    return Handler


def _text_query(encoder: str | None) -> TextQueryApi | None:
    """The /api/query endpoint for ``--encoder module:function``, or None."""
    return TextQueryApi(encoder) if encoder else None


def _post(h, server: WebPlayerServer) -> None:
    """One POST to the API: Host, path, Origin, a bounded JSON body, then the endpoint."""
    h.close_connection = True  # an unread or refused body must not be taken for the next request
    if not h._host_ok():
        server.note_refusal("host", f"Host {h.headers.get('Host')!r} for POST {h.path!r}")
        h._plain(HTTPStatus.FORBIDDEN, "unknown Host (this server answers only to its own address)")
        return
    path = clean_path(h.path)
    route = server.post_routes.get(path) if path is not None else None
    if route is None:
        h._other()
        return
    if not h._origin_ok():
        server.note_refusal("origin", f"Origin {h.headers.get('Origin')!r} for POST {path}")
        h._plain(HTTPStatus.FORBIDDEN, "origin not allowed")
        return
    endpoint, limit = route
    ctype = (h.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        h._plain(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        return
    length = h.headers.get("Content-Length")
    if length is None or not length.strip().isdigit():
        h._plain(HTTPStatus.LENGTH_REQUIRED, "a JSON body with Content-Length is required")
        return
    n = int(length)
    if n > limit:
        h._plain(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"body too large ({n:,} bytes; at most {limit:,})")
        return
    body = h.rfile.read(n)
    try:
        from .view_api import parse_body

        reply = endpoint(parse_body(body))
    except ApiError as e:
        h._plain(HTTPStatus(e.status), str(e).splitlines()[0][:300])
        return
    except Exception as e:  # noqa: BLE001 - one line to the page and the console, never a traceback
        msg = f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}"[:300]
        server.note_refusal("api", f"{path}: {msg}")
        h._plain(HTTPStatus.INTERNAL_SERVER_ERROR, f"{path} failed ({msg})")
        return
    h.send_response(HTTPStatus.OK)
    h.send_header("Content-Type", reply.content_type)
    h.send_header("Content-Length", str(len(reply.body)))
    h.send_header("Cache-Control", "no-store")
    h.send_header("X-Content-Type-Options", "nosniff")
    for k, v in (reply.headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(reply.body)


def serve_web(paths: Sequence[str | os.PathLike], *, host: str = "127.0.0.1", port: int = 8080,
              cameras: str | os.PathLike | None = None, autoplay: bool = True, loop: bool = True,
              speed: float = 1.0, allow_origins: Sequence[str] = (), log: Callable[[str], None] | None = None,
              encoder: str | None = None, api: bool = True, render_dir: str | os.PathLike = "splat_view_renders",
              up: str = "-y", settings: dict | None = None) -> WebPlayerServer:
    """Start the web player on ``paths`` (files); returns the running server (``.url``, ``.stop()``).
    ``autoplay``: a clip starts playing on load (muted-video style); ``loop``: it starts again at its
    end; ``speed``: its initial playback rate. ``encoder``: a text encoder ``module:function`` for a
    ``.m3``'s text queries (``POST /api/query``). ``api``: the local JSON API (render this view, the
    contribution order; PNGs go to ``render_dir``). ``settings``: the page's initial display
    settings (``budget``, ``sh``, ``background``; see :func:`viewer.site.player_page`)."""
    from .site import make_assets

    return WebPlayerServer(make_assets(paths, cameras), host=host, port=port, autoplay=autoplay, loop=loop, speed=speed,
                           allow_origins=allow_origins, log=log, encoder=encoder, api=api, render_dir=render_dir, up=up,
                           settings=settings)
