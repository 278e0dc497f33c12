"""A Range-capable static file server for tests: serves one folder (like nginx or object
storage would) and counts the body bytes it sends per path. Loopback only; test use only."""
from __future__ import annotations

import threading
from collections import Counter
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from viewer.web_server import parse_range


class RangeFolderServer:
    """``with RangeFolderServer(folder) as srv: srv.url, srv.bytes_sent[path]``."""

    def __init__(self, folder: Path) -> None:
        self.bytes_sent: Counter[str] = Counter()
        self.ranges: list[str] = []
        owner = self

        class Handler(SimpleHTTPRequestHandler):
            def __init__(self, *a, **kw):
                super().__init__(*a, directory=str(folder), **kw)

            def log_message(self, *args) -> None:
                pass

            def copyfile(self, source, outputfile) -> None:
                start, length = self._slice
                source.seek(start)
                left = length
                while left > 0:
                    chunk = source.read(min(1 << 16, left))
                    if not chunk:
                        break
                    outputfile.write(chunk)
                    owner.bytes_sent[self.path.split("?")[0]] += len(chunk)
                    left -= len(chunk)

            def send_head(self):
                path = Path(self.translate_path(self.path))
                if not path.is_file():
                    return super().send_head()
                size = path.stat().st_size
                header = self.headers.get("Range")
                r = parse_range(header, size) if header else None
                if r == "bad":
                    self.send_response(HTTPStatus.REQUESTED_RANGE_NOT_SATISFIABLE)
                    self.send_header("Content-Range", f"bytes */{size}")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return None
                f = open(path, "rb")
                if r is None:
                    start, end, status = 0, size - 1, HTTPStatus.OK
                else:
                    owner.ranges.append(header)
                    start, end = r
                    status = HTTPStatus.PARTIAL_CONTENT
                self._slice = (start, end - start + 1)
                self.send_response(status)
                self.send_header("Content-Type", self.guess_type(str(path)))
                self.send_header("Accept-Ranges", "bytes")
                if status == HTTPStatus.PARTIAL_CONTENT:
                    self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
                self.send_header("Content-Length", str(end - start + 1))
                self.end_headers()
                return f

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()

    def __enter__(self) -> "RangeFolderServer":
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
