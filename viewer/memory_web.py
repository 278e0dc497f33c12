"""Feature memories (``.m3``) in the web player: text queries.

* A ``.m3`` that references its scene needs that file served or published beside it:
  :func:`viewer.site.scene_files` names it. The browser checks its SHA-256.
* ``splat view X.m3 --web --encoder module:function`` adds ``POST /api/query``
  (:class:`TextQueryApi`): JSON ``{"text": str, "model": str}`` in, the text's feature
  vector ``{"vector": [floats], "model": str}`` out; the page computes the similarities.
  The server's Host and Origin checks apply; the body is bounded and the JSON validated.
"""
from __future__ import annotations

import json
import math
import threading

QUERY_PATH = "/api/query"
MAX_QUERY_BODY = 16 << 10
"""Largest request body /api/query reads, bytes."""
MAX_TEXT = 2000
"""Longest text query, characters."""
MAX_VECTOR = 1 << 16
"""Largest feature vector an encoder may return (dims)."""
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
