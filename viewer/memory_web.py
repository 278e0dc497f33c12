"""Feature memories (``.m3``) in the web player: text queries.

* A ``.m3`` that references its scene needs that file served or published beside it:
  :func:`viewer.site.scene_files` names it. The browser checks its SHA-256.
* ``splat view X.m3 --web --encoder module:function`` adds ``POST /api/query``
  (:class:`TextQueryApi`): JSON ``{"text": str, "model": str}`` in, the text's feature
  vector ``{"vector": [floats], "model": str}`` out; the page computes the similarities.
  The server's Host and Origin checks apply; the body is bounded and the JSON validated.
"""
from __future__ import annotations

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
        from .view_api import ApiError, parse_body

        try:
            req = parse_body(body)
        except ApiError as e:
            return e.status, {"error": str(e)}
        return self.reply(req)

    def reply(self, req: dict) -> tuple[int, dict]:
        """(HTTP status, JSON reply) for a parsed request ``{"text": str, "model": str}``."""
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
