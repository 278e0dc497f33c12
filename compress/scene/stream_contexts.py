"""Which already-decoded data conditions each ``.lgs`` attribute stream (contexts for
:mod:`compress.context`). Encoder and decoder call the same functions on the same decoded
values, so the contexts match exactly. Specified in ``docs/formats/lgs.md`` (section 5.3).

* scales: the opacity bucket (4); channel y/z also the bucket of the previous scale channel (8);
* rotation index: the anisotropy class (6) of the decoded log-scales (max - min, natural log);
* rotation values: anisotropy class x dropped-component index (4); channels 2 and 3 also the
  bucket of the previous rotation value (4);
* colour: channel 0 the opacity bucket (4); channel 1 the bucket of channel 0 (8); channel 2
  the buckets of channels 0 (8) and 1 (4);
* SH rest rows: value 3j + c (c > 0) the bucket (8) of value 3j (same coefficient, red).

With K precision classes (:mod:`compress.scene.precision`), the scale, rotation and colour
contexts become ``K * context + class``.
"""
from __future__ import annotations

import numba
import numpy as np

from compress.context import bucket

from .streams import ContextFn

ANISO_EDGES = np.array([0.1, 0.3, 0.7, 1.5, 3.0], dtype=np.float32)  # natural-log units


def anisotropy_class(log_scales: np.ndarray) -> np.ndarray:
    """Class 0..5 of max - min of the decoded float32 log-scales [N,3] (thresholds ANISO_EDGES)."""
    ls = np.ascontiguousarray(log_scales, dtype=np.float32)
    out = np.zeros(len(ls), dtype=np.int64)
    if len(ls) and ls.shape[1]:
        _anisotropy(ls.reshape(len(ls), -1), ANISO_EDGES, out)
    return out


@numba.njit(cache=True, nogil=True)
def _anisotropy(ls, edges, out):
    """One pass of :func:`anisotropy_class`: float32 max - min per row, then the count of edges <= it."""
    for i in range(ls.shape[0]):
        hi = ls[i, 0]
        lo = ls[i, 0]
        for j in range(1, ls.shape[1]):
            hi = max(hi, ls[i, j])
            lo = min(lo, ls[i, j])
        a = np.float32(hi - lo)
        k = 0
        while k < edges.size and edges[k] <= a:
            k += 1
        out[i] = k


def span_bucket(q: np.ndarray, span: int, k: int) -> np.ndarray:
    """Context bucket of values q of a quantizer with ``span`` values (levels + 1): clamp(floor(q k / span),
    0, k - 1), int64 [N] (for span = 2^b the same as ``compress.context.bucket(q, b, k)``)."""
    span = int(span)
    if span & (span - 1) == 0:
        return bucket(q, span.bit_length() - 1, k)
    q = np.asarray(q, dtype=np.int64)
    return np.clip((q * k) // span, 0, k - 1)


def scale_context(opacity_q: np.ndarray, opacity_levels: int, scale_levels: int) -> ContextFn:
    ob = span_bucket(opacity_q, opacity_levels + 1, 4)

    def f(c: int, earlier: np.ndarray):
        if c == 0:
            return ob, 4
        return ob * 8 + span_bucket(earlier[:, c - 1], scale_levels + 1, 8), 32
    return f


def rotation_contexts(log_scales: np.ndarray, rot_idx: np.ndarray | None,
                      rot_levels: int) -> tuple[ContextFn, ContextFn | None]:
    """(context for the rotation index, context for the three values; None until ``rot_idx`` is known)."""
    ac = anisotropy_class(log_scales)

    def f_idx(c: int, earlier: np.ndarray):
        return ac, 6

    if rot_idx is None:
        return f_idx, None
    base = ac * 4 + np.asarray(rot_idx, dtype=np.int64).reshape(-1)

    def f_val(c: int, earlier: np.ndarray):
        if c == 0:
            return base, 24
        return base * 4 + span_bucket(earlier[:, c - 1], rot_levels + 1, 4), 96
    return f_idx, f_val


def colour_context(opacity_q: np.ndarray, opacity_levels: int, dc_levels: int) -> ContextFn:
    """For (g, r-g, b-g) or (r, g, b): luma-like channel 0 first, chroma given it."""
    ob = span_bucket(opacity_q, opacity_levels + 1, 4)
    span = dc_levels + 1

    def f(c: int, earlier: np.ndarray):
        if c == 0:
            return ob, 4
        c0 = span_bucket(earlier[:, 0], span, 8)
        if c == 1:
            return c0, 8
        return c0 * 4 + span_bucket(earlier[:, 1] + span, 2 * span, 4), 32
    return f


def sh_context(levels: int) -> ContextFn:
    span = levels + 1

    def f(c: int, earlier: np.ndarray):
        if c % 3 == 0:
            return np.zeros(len(earlier), dtype=np.int64), 1
        return span_bucket(earlier[:, c - c % 3], span, 8), 8
    return f


def with_class(fn: ContextFn | None, cls: np.ndarray | None, n_classes: int = 2) -> ContextFn | None:
    """``fn``'s contexts x ``n_classes`` + the Gaussian's precision class (``fn`` itself when no classes)."""
    if cls is None:
        return fn

    def f(c: int, earlier: np.ndarray):
        ctx, k = (np.zeros(len(cls), dtype=np.int64), 1) if fn is None else fn(c, earlier)
        return ctx * n_classes + cls, n_classes * k
    return f
