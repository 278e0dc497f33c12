"""Feature memories (``.m3``) in the web player: the referenced scene beside it, and text queries.

* A ``.m3`` that references its scene (docs/formats/m3.md, "Scene references") needs that file
  served (``splat view X.m3 --web``) or copied (``splat publish``) at the same relative path
  beside it: :func:`scene_files` names it, by the rules the readers follow (a relative path
  inside the ``.m3``'s folder, symlinks resolved). The browser checks its SHA-256.
* ``splat view X.m3 --web --encoder module:function`` adds ``POST /api/query``
  (:class:`TextQueryApi`): JSON ``{"text": str, "model": str}`` in, the text's feature
  vector ``{"vector": [floats], "model": str}`` out; the page computes the similarities.
  The server's Host and Origin checks apply; the body is bounded and the JSON validated.
"""
from __future__ import annotations

import json
import math
import posixpath
import threading
from pathlib import Path
from typing import Sequence

from splat.errors import FormatError, UsageError

QUERY_PATH = "/api/query"
MAX_QUERY_BODY = 16 << 10
"""Largest request body /api/query reads, bytes."""
MAX_TEXT = 2000
"""Longest text query, characters."""
MAX_VECTOR = 1 << 16
"""Largest feature vector an encoder may return (dims)."""
HEADER_PREFIX = 4 << 20
"""Bytes of a ``.m3`` read to find its scene reference (the container header and chunk table)."""


def is_memory(path: Path) -> bool:
    """Whether ``path`` is a ``.m3`` file (by its magic bytes)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GSM3"
    except OSError:
        return False


def scene_file(m3_path: Path) -> tuple[str, Path] | None:
    """(URL path relative to the ``.m3``, file) of the scene a ``.m3`` references, or None when
    it embeds its scene. FormatError (naming the file) for a reference the readers refuse."""
    from compress.container import read_index
    from compress.memory.m3file import MAGIC, VERSION, scene_reference
    from splat.bounded import open_regular

    with open_regular(m3_path) as f:
        head = f.read(HEADER_PREFIX)
    index = read_index(head, magic=MAGIC, path=m3_path, max_version=VERSION, what=".m3 file", whole=False)
    found = scene_reference(index.header, m3_path)
    if found is None:
        return None
    ref = posixpath.normpath(str(index.header["scene"]["ref"]))
    if ref.startswith("../") or ref in (".", "..") or ref.startswith("/"):
        raise FormatError(f"scene reference {ref[:80]!r} leads outside the file's folder", m3_path)
    return ref, found[0]


def scene_files(assets: Sequence) -> dict[str, Path]:
    """``{assets/REF: scene file}`` for every ``.m3`` asset (``viewer.site.Asset``) that references
    its scene, the REF relative to the asset's own URL folder. UsageError when two assets would
    put different files at one name."""
    from .site import ASSET_PREFIX

    taken = {ASSET_PREFIX + a.name: a.path for a in assets}
    taken.update({ASSET_PREFIX + a.name + ".cameras.json": Path("/") for a in assets if a.cameras_json is not None})
    out: dict[str, Path] = {}
    for a in assets:
        if not is_memory(a.path):
            continue
        found = scene_file(a.path)
        if found is None:
            continue
        key, path = ASSET_PREFIX + found[0], found[1]
        prev = taken.get(key) or out.get(key)
        if prev is not None and prev != path:
            raise UsageError(f"{a.path}: its scene {found[0]} would take the name of another asset; publish them apart")
        if prev is None:
            out[key] = path
    return out


class TextQueryApi:
    """``POST /api/query`` for ``splat view --web --encoder module:function``: the text's feature
    vector from the user's encoder (a callable str -> vector [D]), one query at a time."""

    def __init__(self, spec: str) -> None:
        from compress.memory import load_text_encoder

        self.spec = spec
        self.encoder = load_text_encoder(spec)
        self._lock = threading.Lock()

    def advertise(self) -> dict:
        """What /api/assets says about it (the page shows a text box only when this is present)."""
        return {"url": "query", "encoder": self.spec}  # relative to /api/assets

    def answer(self, body: bytes) -> tuple[int, dict]:
        """(HTTP status, JSON reply) for a request body."""
        try:
            req = json.loads(body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError):
            return 400, {"error": "the body is not JSON"}
        if not isinstance(req, dict):
            return 400, {"error": "the body must be a JSON object {\"text\": str, \"model\": str}"}
        text, model = req.get("text"), req.get("model", "")
        if not isinstance(text, str) or not text.strip():
            return 400, {"error": "'text' must be a non-empty string"}
        if len(text) > MAX_TEXT:
            return 400, {"error": f"'text' is longer than {MAX_TEXT} characters"}
        if not isinstance(model, str) or len(model) > 200:
            return 400, {"error": "'model' must be a string (the model's name)"}
        try:
            with self._lock:
                vec = self.encoder(text.strip())
            values = [float(x) for x in _flat(vec)]
        except Exception as e:  # noqa: BLE001 - the user's encoder: report, do not crash the server
            return 500, {"error": f"the text encoder {self.spec} failed: {type(e).__name__}: {str(e)[:200]}"}
        if not values or len(values) > MAX_VECTOR or not all(math.isfinite(x) for x in values):
            return 500, {"error": f"the text encoder {self.spec} returned no finite vector of 1..{MAX_VECTOR} values"}
        return 200, {"vector": values, "model": model, "dim": len(values)}


def _flat(vec) -> list:
    """A vector [D] (torch tensor, numpy array or sequence) as a flat list."""
    if hasattr(vec, "detach"):
        vec = vec.detach().cpu()
    if hasattr(vec, "reshape") and hasattr(vec, "tolist"):
        return vec.reshape(-1).tolist()
    return list(vec)


def respond(handler, server) -> None:
    """Answer a POST to /api/query on ``handler`` (the server's request handler, after its Host
    check): foreign Origin 403, no JSON content type 415, a body without length 411, too long 413."""
    from http import HTTPStatus

    if not handler._origin_ok():
        server.note_refusal("origin", f"Origin {handler.headers.get('Origin')!r} on {QUERY_PATH}")
        handler._plain(HTTPStatus.FORBIDDEN, "origin not allowed")
        return
    ctype = (handler.headers.get("Content-Type") or "").split(";", 1)[0].strip().lower()
    if ctype != "application/json":
        handler._plain(HTTPStatus.UNSUPPORTED_MEDIA_TYPE, "send application/json")
        return
    length = handler.headers.get("Content-Length")
    if length is None or not length.isdigit():
        handler._plain(HTTPStatus.LENGTH_REQUIRED, "Content-Length required")
        return
    if int(length) > MAX_QUERY_BODY:
        handler.close_connection = True
        handler._plain(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, f"the body is over {MAX_QUERY_BODY} bytes")
        return
    body = handler.rfile.read(int(length))
    status, reply = server.text_query.answer(body)
    data = json.dumps(reply).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    handler.send_header("Cache-Control", "no-store")
    handler.send_header("X-Content-Type-Options", "nosniff")
    handler.end_headers()
    handler.wfile.write(data)
