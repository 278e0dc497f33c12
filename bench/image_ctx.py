"""What better context modelling could save on ``.gsi`` files: bits per Gaussian of each stream
as written, and as the same coder would code it with candidate contexts.

    python bench/image_ctx.py a.gsi b.gsi                    # table on stdout
    python bench/image_ctx.py *.gsi --json bench/results/image_ctx.json

Every candidate is priced by running the context coder's own adaptive model
(``compress.context``: same binarisation, integer probability updates and configuration
search as ``encode_ctx``) over the real decoded streams, with one generalisation: the value
the coder conditions on and predicts from (``DELTA`` mode) may be any *earlier* Gaussian
(``ref[i] < i``) instead of the previous one in file order. Stream bytes are the model's
code length plus the stream header; the ``check`` column compares this model with the real
``encode_ctx`` on the streams as written (it should be ~0).

Candidates (all computable by a decoder from what it has decoded before):

* positions: the quadtree masks with context = level (levels above the leaves, 8), level and
  the number of occupied 8-neighbours of the node in the same layer (5), level and the
  occupied cells of the earlier layers around the node (5); ``bound``: log2 C(cells, n) per
  layer, the cost of a uniformly random (Poisson) layout;
* attributes: context = layer only; the coder's reference = the nearest earlier Gaussian
  (Euclidean, on the quantised grid) with its value's bucket as a further context;
  ``sa`` given the layer and the local density (distance to the nearest other Gaussian).
"""
from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
from pathlib import Path

import numba
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from scipy.spatial import cKDTree  # noqa: E402
from scipy.special import gammaln  # noqa: E402

from compress.context import (MAX_MODELS, PMIN, PROB_BITS, PROB_ONE, RATES, TREE_BITS, _n_models,  # noqa: E402
                              _recip, bucket, encode_ctx)
from compress.entropy import encode_ints, unpack_arrays, write_varint  # noqa: E402
from compress.image.gsi import read_header  # noqa: E402
from compress.image.streams import (_layer_firsts, attribute_bits, attribute_context,  # noqa: E402
                                    decode_attributes, decode_positions, position_streams, tree_depth,
                                    tree_encode)
from splat.io._common import read_bytes  # noqa: E402
from splat.morton import morton_decode  # noqa: E402

ATTRS = ("sa", "su", "sv", "c0", "c1", "c2")


# ---------------------------------------------------------------------- the coder's cost
@numba.njit(cache=True)
def _code_length(values, ext, ref, bits, prev_bits, mode, n_models, recip):
    """Bits the adaptive model of ``compress.context._model_bins`` spends on ``values`` when the
    'previous value' of Gaussian i is ``values[ref[i]]`` (0 when ref[i] < 0)."""
    tb = min(bits, TREE_BITS)
    low = bits - tb
    per_ctx = (1 << tb) + low
    p = np.full(n_models, PROB_ONE // 2, np.int64)
    cnt = np.zeros(n_models, np.int64)
    mask = (1 << bits) - 1
    total = 0.0
    for i in range(values.size):
        v = values[i]
        prev = values[ref[i]] if ref[i] >= 0 else 0
        ctx = ext[i]
        if prev_bits > 0:
            ctx = (ctx << prev_bits) | (prev >> (bits - prev_bits))
        base = ctx * per_ctx
        s = v if mode == 0 else (v - prev) & mask
        node = 1
        for b in range(bits - 1, -1, -1):
            bit = (s >> b) & 1
            m = base + node if b >= low else base + (1 << tb) + b
            total -= math.log2((p[m] if bit else PROB_ONE - p[m]) / PROB_ONE)
            k = cnt[m]
            p[m] += (((bit << PROB_BITS) - p[m]) * recip[k]) >> 16
            p[m] = min(max(p[m], PMIN), PROB_ONE - PMIN)
            cnt[m] = min(k + 1, 255)
            if b >= low:
                node = 2 * node + bit
    return total


def coded_bytes(values: np.ndarray, bits: int, ctx: np.ndarray | None = None, n_ctx: int = 1,
                ref: np.ndarray | None = None) -> float:
    """Bytes of the smallest configuration ``encode_ctx`` would pick (modes x previous-value bits x
    caller contexts on/off x rates), for values [N] < 2^bits, contexts [N] < n_ctx, references [N] < i."""
    v = np.ascontiguousarray(values, np.int64)
    n = v.size
    ref = np.arange(n, dtype=np.int64) - 1 if ref is None else np.ascontiguousarray(ref, np.int64)
    zeros = np.zeros(n, np.int64)
    ctx = zeros if ctx is None else np.ascontiguousarray(ctx, np.int64)
    best = math.inf
    for use, pb, mode, rate in itertools.product((True, False) if n_ctx > 1 else (False,), (0, 2), (0, 1), RATES):
        k, pb = (n_ctx if use else 1), min(pb, bits)
        if _n_models(bits, k, pb) > MAX_MODELS:
            continue
        length = _code_length(v, ctx if use else zeros, ref, bits, pb, mode, _n_models(bits, k, pb), _recip(rate))
        head = 5 + len(write_varint(k)) + len(write_varint(n)) + 4  # header, final rANS state
        best = min(best, length / 8 + head)
    return best


# ---------------------------------------------------------------------- neighbours
@numba.njit(cache=True)
def nearest_earlier(x, y):
    """ref[i]: the nearest Gaussian j < i (squared distance on the grid; ties: smallest j), -1 for i = 0."""
    n = x.size
    ref = np.full(n, -1, np.int64)
    for i in range(1, n):
        best = np.int64(1) << 62
        for j in range(i):
            d2 = (x[i] - x[j]) ** 2 + (y[i] - y[j]) ** 2
            if d2 < best:
                best = d2
                ref[i] = j
    return ref


def _occupied_around(cells: np.ndarray, query: np.ndarray, self_too: bool) -> np.ndarray:
    """Per query cell (x, y) [Q,2]: how many of its 8 neighbours (and itself) are in ``cells`` [M,2]."""
    occ = set(map(tuple, cells.tolist()))
    offs = [(dx, dy) for dx in (-1, 0, 1) for dy in (-1, 0, 1) if self_too or (dx, dy) != (0, 0)]
    return np.array([sum((x + dx, y + dy) in occ for dx, dy in offs) for x, y in query.tolist()], np.int64)


def _levels(leaves: np.ndarray, depth: int) -> list[tuple[np.ndarray, np.ndarray]]:
    """The quadtree of sorted leaf codes, breadth-first: per level (parent codes, child masks)."""
    leaves = np.unique(leaves)
    out = []
    for d in range(1, depth + 1):
        nodes = np.unique(leaves >> np.uint64(2 * (depth - d)))
        parent = nodes >> np.uint64(2)
        first = np.concatenate([[0], np.flatnonzero(parent[1:] != parent[:-1]) + 1])
        bit = np.left_shift(1, (nodes & np.uint64(3)).astype(np.int64))
        out.append((parent[first], np.bitwise_or.reduceat(bit, first)))
    return out


# ---------------------------------------------------------------------- measurement
def load(path: Path) -> dict:
    """The decoded integer streams of a version-2 file, in file order, and the stored stream lengths."""
    data = read_bytes(path)
    h, spec, payload = read_header(data, path)
    sizes, ch = h["layers"], h["channels"]
    n_pos = position_streams(h["positions"])
    streams = unpack_arrays(payload, n_pos + 3 + ch)
    depth = tree_depth(spec)
    code = decode_positions(h["positions"], streams[:n_pos], sizes, depth, h["tree_nodes"], path)
    q = decode_attributes(streams[n_pos:], spec, ch, code, sizes)
    xy = morton_decode(code, 2).astype(np.int64)
    lens = dict(zip(["sa", "su", "sv"] + [f"c{i}" for i in range(ch)], map(len, streams[n_pos:])))
    lens["positions"] = sum(map(len, streams[:n_pos]))
    return dict(h=h, spec=spec, q=q, x=xy[:, 0], y=xy[:, 1], code=code, sizes=sizes, depth=depth, lens=lens,
                size=len(data), n=sum(sizes), kind=h["positions"])


def positions(f: dict) -> dict[str, float]:
    """Bytes of the position streams: as written, quadtree candidates, and the uniform bound."""
    code, sizes, depth, spec = f["code"], f["sizes"], f["depth"], f["spec"]
    masks, extra = tree_encode(code, sizes, depth)
    cells = len(encode_ints(extra))
    lev, nb, prev = [], [], []
    start, union = 0, np.zeros(0, np.uint64)
    for s in sizes:
        c = code[start:start + s]
        start += s
        for d, (nodes, _m) in enumerate(_levels(c, depth)):
            xy = morton_decode(nodes, 2).astype(np.int64)
            lev.append(np.full(nodes.size, min(depth - 1 - d, 7)))
            nb.append(np.minimum(_occupied_around(xy, xy, False), 4))
            if union.size:
                up = morton_decode(np.unique(union >> np.uint64(2 * (depth - d))), 2).astype(np.int64)
                prev.append(np.minimum(_occupied_around(up, xy, True), 4))
            else:
                prev.append(np.zeros(nodes.size, np.int64))
        union = np.union1d(union, c)
    lev, nb, prev = np.concatenate(lev), np.concatenate(nb), np.concatenate(prev)
    area = (round(spec.width / spec.pos_step) + 1) * (round(spec.height / spec.pos_step) + 1)
    log2_choose = sum(gammaln(area + 1) - gammaln(s + 1) - gammaln(area - s + 1) for s in sizes) / math.log(2)
    return {
        "written": f["lens"]["positions"],
        "delta": len(encode_ints(np.where(_layer_firsts(f["n"], sizes), code,
                                          code - np.concatenate([[np.uint64(0)], code[:-1]])).astype(np.int64))),
        "tree": len(encode_ctx(masks, 4)) + cells,
        "tree|level": coded_bytes(masks, 4, lev, 8) + cells,
        "tree|level,neighbours": coded_bytes(masks, 4, lev * 5 + nb, 40) + cells,
        "tree|level,earlier layers": coded_bytes(masks, 4, lev * 5 + prev, 40) + cells,
        "bound": log2_choose / 8,
    }


def attributes(f: dict) -> dict[str, dict[str, float]]:
    """Bytes of each attribute stream: as written, the model's price of the same, and candidates."""
    q, spec, code, sizes, n = f["q"], f["spec"], f["code"], f["sizes"], f["n"]
    layer = np.repeat(np.arange(len(sizes)), sizes)
    ref = nearest_earlier(f["x"], f["y"])
    nn = cKDTree(np.stack([f["x"], f["y"]], 1).astype(float)).query(np.stack([f["x"], f["y"]], 1), k=2)[0][:, 1]
    density = np.clip(np.floor(2 * np.log2(np.maximum(nn, 0.5))).astype(np.int64) - 2, 0, 15)  # half-octaves
    out: dict[str, dict[str, float]] = {}
    for name in ATTRS:
        bits = attribute_bits(spec, name)
        ctx, k = attribute_context(name, q, spec, code, sizes)
        near = bucket(np.where(ref >= 0, q[name][np.maximum(ref, 0)], 0), bits, 8)
        row = {"written": f["lens"][name], "model": coded_bytes(q[name], bits, ctx, k),
               "layer": coded_bytes(q[name], bits, layer, len(sizes)),
               "nearest earlier": coded_bytes(q[name], bits, ctx * 8 + near, k * 8, ref)}
        if name == "sa":
            row["layer,density"] = coded_bytes(q[name], bits, layer * 16 + density, 16 * len(sizes))
        out[name] = row
    return out


def measure(path: Path) -> dict:
    f = load(path)
    n = f["n"]
    pos = positions(f)
    att = attributes(f)
    per = lambda b: round(b * 8 / n, 3)  # noqa: E731
    best_att = sum(min(v for k, v in r.items() if k != "written") for r in att.values())
    best_pos = min(v for k, v in pos.items() if k not in ("written", "bound"))
    written = pos["written"] + sum(r["written"] for r in att.values())
    return {"file": path.name, "gaussians": n, "bits_per_gaussian": per(f["size"]), "positions_written": f["kind"],
            "positions": {k: per(v) for k, v in pos.items()},
            "attributes": {name: {k: per(v) for k, v in r.items()} for name, r in att.items()},
            "check": per(sum(r["model"] - r["written"] for r in att.values())),
            "best_saving_percent_of_file": round(100 * (written - best_pos - best_att) / f["size"], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--json", type=Path, default=None, help="also write the rows here")
    args = ap.parse_args(argv)
    rows = []
    for p in args.files:
        r = measure(p)
        rows.append(r)
        print(f"{r['file']}: {r['gaussians']} Gaussians, {r['bits_per_gaussian']} bits/G, "
              f"model check {r['check']:+.3f}, best candidates save {r['best_saving_percent_of_file']:.2f}% of the file")
        print("  positions (" + r["positions_written"] + "): "
              + ", ".join(f"{k} {v:.2f}" for k, v in r["positions"].items()))
        for name, a in r["attributes"].items():
            print(f"  {name}: " + ", ".join(f"{k} {v:.3f}" for k, v in a.items()))
        sys.stdout.flush()
    if args.json:
        meta = {"command": "python bench/image_ctx.py " + " ".join(p.name for p in args.files),
                "load_average": [round(x, 2) for x in os.getloadavg()]}
        args.json.write_text(json.dumps({"meta": meta, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
