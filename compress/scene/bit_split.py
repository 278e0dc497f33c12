"""How the bytes of an ``.lgs`` file split between precision classes.

Every attribute channel is decoded again with a hook (``decode(..., on_channel=...)``) that
prices each value under the model its record was coded with: for a context-modelled record
the sum over its binary decisions of -log2 p (the adaptive probabilities the coder used, see
:mod:`compress.context`), for a static record -log2 of the value's frequency in the channel.
The record's real bytes are then shared out in proportion to those prices, so the split adds
up to the file (framing: the header, chunk table and record lengths). Streams that belong to no single Gaussian (the SH codebook) are "shared";
positions are split by count (their gaps are coded as one static stream).

    split = class_split(open("scene.lgs", "rb").read())
    split.bytes_per_gaussian(1)   # mean bytes of a class-1 (coarser) Gaussian
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from compress.container import unpack_container
from compress.context import PROB_BITS, _model_bins, _n_models, _recip, read_ctx_header
from compress.entropy import read_varint

from .codec import MAGIC, VERSION, decode
from .streams import CONTEXT, DELTA, _unzz

SHARED = "shared"


def value_bits(record: bytes, values: np.ndarray, contexts: np.ndarray | None) -> np.ndarray:
    """Bits each value of one decoded channel record costs under its model, float64 [N]."""
    v = np.asarray(values, dtype=np.int64)
    if v.size == 0:
        return np.zeros(0)
    if record[0] == CONTEXT:
        z, pos = read_varint(record, 1)
        h = read_ctx_header(record[pos:])
        bits = h["bits"]
        ext = contexts if h["n_contexts"] > 1 else np.zeros(v.size, dtype=np.int64)
        n_bins = v.size * bits
        bin_bits = np.empty(n_bins, dtype=np.int64)
        bin_probs = np.empty(n_bins, dtype=np.int64)
        _model_bins(v - _unzz(z), np.ascontiguousarray(ext, dtype=np.int64), bits,
                    h["prev_bits"], h["mode"], _n_models(bits, h["n_contexts"], h["prev_bits"]), _recip(h["rate"]),
                    bin_bits, bin_probs)
        p1 = bin_probs / float(1 << PROB_BITS)
        return -np.log2(np.where(bin_bits == 1, p1, 1.0 - p1)).reshape(v.size, bits).sum(1)
    s = np.diff(v, prepend=np.int64(0)) if record[0] == DELTA else v
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    return -np.log2(counts / v.size)[inverse.reshape(-1)]


@dataclass
class ClassSplit:
    """Bytes per stream tag and class (0: full precision, k > 0: coarser, by the bits the
    header drops for class k; ``SHARED``: no class),
    and the number of Gaussians per class."""

    bytes: dict[str, dict[str, float]] = field(default_factory=dict)
    counts: dict[str, int] = field(default_factory=dict)

    def total(self, cls: str) -> float:
        return sum(per.get(cls, 0.0) for per in self.bytes.values())

    def bytes_per_gaussian(self, cls: int | str) -> float:
        return self.total(str(cls)) / max(self.counts.get(str(cls), 0), 1)

    def table(self, names: dict[str, str] | None = None) -> tuple[list[str], list[tuple]]:
        """(columns, rows) for a summary table: bytes per stream and class, then totals and
        bytes per Gaussian. ``names``: display names of the stream tags."""
        classes = list(self.counts)
        cols = ["stream", *[f"class {c} ({self.counts[c]:,})" for c in classes], "shared"]
        rows = [((names or {}).get(t, t), *[f"{per.get(c, 0.0):,.0f}" for c in [*classes, SHARED]])
                for t, per in self.bytes.items()]
        rows.append(("total bytes", *[f"{self.total(c):,.0f}" for c in [*classes, SHARED]]))
        rows.append(("bytes per Gaussian", *[f"{self.bytes_per_gaussian(c):.2f}" for c in classes], ""))
        return cols, rows

    def to_json(self) -> dict:
        return {"counts": self.counts, "bytes": {t: {c: round(b, 1) for c, b in per.items()} for t, per in self.bytes.items()},
                "totals": {c: round(self.total(c), 1) for c in [*self.counts, SHARED]}}


def class_split(data: bytes) -> ClassSplit:
    """Share out the bytes of ``.lgs`` ``data`` between its precision classes (all class 0
    when the file has none)."""
    records: list[tuple[str, int, bytes, np.ndarray, np.ndarray | None]] = []
    scene = decode(data, on_channel=lambda tag, c, rec, v, ctx, n_ctx: records.append((tag, c, rec, v.copy(), ctx)))
    n = len(scene)
    box = unpack_container(data, magic=MAGIC, max_version=VERSION, what=".lgs file")
    by_tag = {(t, c): (rec, v, ctx) for t, c, rec, v, ctx in records}
    cls = by_tag[("PCLS", 0)][1] if ("PCLS", 0) in by_tag else np.zeros(n, dtype=np.int64)
    # every class the header declares (version 2: two; version 3: one per entry of precision.drops)
    p = box.header.get("precision", {})
    n_cls = len(p.get("drops", p.get("factors", [0, 0]))) if ("PCLS", 0) in by_tag else 1
    names = [str(c) for c in range(max(n_cls, int(cls.max()) + 1 if len(cls) else 1))]
    out = ClassSplit(counts={c: int((cls == int(c)).sum()) for c in names})
    labels = by_tag.get(("SHIX", 0), (None, None, None))[1]
    direct_cls = cls[labels == labels.max()] if labels is not None and len(labels) else None

    def add(tag: str, owner: np.ndarray | None, share: np.ndarray) -> None:
        per = out.bytes.setdefault(tag, {})
        if owner is None:
            per[SHARED] = per.get(SHARED, 0.0) + float(share.sum())
            return
        for c in names:
            per[c] = per.get(c, 0.0) + float(share[owner == int(c)].sum())

    for tag, c, rec, v, ctx in records:
        cost = value_bits(rec, v, ctx)
        total_bits = cost.sum()
        share = cost / total_bits * len(rec) if total_bits > 0 else np.full(len(v), len(rec) / max(len(v), 1))
        owner = cls if len(v) == n and tag != "SHCB" else (direct_cls if tag == "SHDR" else None)
        add(tag, owner, share)
    for tag in ("POSN",):
        if box.has(tag):
            add(tag, cls, np.full(n, len(box.get(tag)) / max(n, 1)))
    order = [c.tag for c in box.chunks]
    out.bytes = {t: out.bytes[t] for t in sorted(out.bytes, key=order.index)}
    # framing (header JSON, chunk table, record length prefixes) belongs to no class
    out.bytes["framing"] = {SHARED: float(len(data)) - sum(out.total(c) for c in [*names, SHARED])}
    return out
