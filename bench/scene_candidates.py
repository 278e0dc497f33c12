"""Measured candidates for `.lgs` at high fidelity (issue 12): what each would save, per SH-0 scene.

    .venv/bin/python bench/scene_candidates.py [--scenes donut_sh0.ply,...] [--bits 15,16]

* Positions: today's Morton deltas (``compress.scene.positions.encode_positions``) against
  octree occupancy coding (G-PCC / Draco style): per level, every occupied node's 8-bit child
  occupancy in Morton order, coded with ``compress.context.encode_ctx`` (one stream per level,
  the model learns per level) with no caller context, with the count of occupied face
  neighbours (0..6) or their pattern (64) as context; plus the duplicate count per leaf.
* Rotations: how many Gaussians are near-isotropic (max - min log-scale < 0.1 or < 0.3, the
  two lowest anisotropy classes): the most a rotation coding that spends fewer bits on them
  could save.

Writes bench/results/scene_candidates.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.context import encode_ctx  # noqa: E402
from compress.scene.positions import PositionGrid, encode_positions, morton_order  # noqa: E402
from compress.scene.stream_contexts import anisotropy_class  # noqa: E402
from splat.io import read_scene  # noqa: E402
from splat.morton import morton_decode, morton_encode  # noqa: E402

SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
FACES = [(a, s) for a in range(3) for s in (-1, 1)]


def neighbours(nodes: np.ndarray, level_bits: int) -> tuple[np.ndarray, np.ndarray]:
    """(count 0..6, 6-bit pattern) of the occupied face neighbours of sorted Morton ``nodes``."""
    xyz = morton_decode(nodes, 3).astype(np.int64)
    lim = (1 << level_bits) - 1
    cnt = np.zeros(len(nodes), np.int64)
    pat = np.zeros(len(nodes), np.int64)
    for k, (a, s) in enumerate(FACES):
        q = xyz.copy()
        q[:, a] += s
        inside = (q[:, a] >= 0) & (q[:, a] <= lim)
        m = morton_encode(np.clip(q, 0, lim).astype(np.uint64))
        i = np.minimum(np.searchsorted(nodes, m), len(nodes) - 1)
        hit = inside & (nodes[i] == m)
        cnt += hit
        pat |= hit.astype(np.int64) << k
    return cnt, pat


def octree_bytes(codes: np.ndarray, bits: int) -> dict[str, int]:
    """Bytes of the occupancy streams (three context choices) plus the duplicate counts."""
    u, counts = np.unique(codes, return_counts=True)
    out = {"octree, no context": 0, "octree, neighbour count": 0, "octree, neighbour pattern": 0}
    for level in range(bits):
        parents = np.unique(u >> np.uint64(3 * (bits - level)))
        child = np.unique(u >> np.uint64(3 * (bits - level - 1)))
        occ = np.zeros(len(parents), np.int64)
        np.bitwise_or.at(occ, np.searchsorted(parents, child >> np.uint64(3)),
                         1 << (child & np.uint64(7)).astype(np.int64))
        cnt, pat = neighbours(parents, level) if level else (np.zeros(1, np.int64), np.zeros(1, np.int64))
        out["octree, no context"] += len(encode_ctx(occ, 8))
        out["octree, neighbour count"] += len(encode_ctx(occ, 8, cnt, 7))
        out["octree, neighbour pattern"] += len(encode_ctx(occ, 8, pat, 64))
    dup = len(encode_ctx(np.minimum(counts - 1, 255), 8))
    return {k: v + dup for k, v in out.items()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default="donut_sh0.ply,guitar.compressed.ply,plant.splat,biker.spz")
    ap.add_argument("--bits", default="15,16")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scene_candidates.json"))
    args = ap.parse_args(argv)
    rows, load = [], os.getloadavg()
    for name in args.scenes.split(","):
        s = read_scene(SHARED / "scenes" / name)
        x = s.means.double().numpy()
        aniso = np.bincount(anisotropy_class(s.log_scales.numpy()), minlength=6) / len(s)
        row = {"scene": name, "gaussians": len(s), "near_isotropic_fraction": {"<0.1": float(aniso[0]),
                                                                               "<0.3": float(aniso[:2].sum())},
               "positions": {}}
        for b in map(int, args.bits.split(",")):
            _, codes = morton_order(x, PositionGrid.fit(x, b))
            t0 = time.perf_counter()
            sizes = {"morton deltas": len(encode_positions(codes)), **octree_bytes(codes, b)}
            row["positions"][str(b)] = sizes
            best = min(sizes, key=sizes.get)
            print(f"{name:24s} {b} bits: " + ", ".join(f"{k} {v:,}" for k, v in sizes.items())
                  + f"  -> {best} ({time.perf_counter() - t0:.0f} s)", flush=True)
        print(f"{name:24s} near-isotropic: {aniso[0]:.4%} (<0.1), {aniso[:2].sum():.3%} (<0.3)", flush=True)
        rows.append(row)
    Path(args.out).write_text(json.dumps({"load_average_start": load, "load_average_end": os.getloadavg(),
                                          "note": "shared 2-core machine", "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
