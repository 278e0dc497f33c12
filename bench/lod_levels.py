"""Streamed-SOG level-of-detail quality: merged levels against subsets of the same size.

    .venv/bin/python bench/lod_levels.py                 # donut_sh0.ply, 4 levels
    .venv/bin/python bench/lod_levels.py --scene scenes/fruit_drops_sh3.ply

Renders the full scene and each coarser level (before SOG quantisation) from 4 orbit views
(160x120, CPU backend) and prints the mean PSNR against the full scene, beside a random
subset and the most significant subset (opacity x cross-section) of the same size. Writes
bench/results/lod_levels.json with the load average (the machine is shared).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import splat.io as sio  # noqa: E402
from render import rasterize  # noqa: E402
from render.metrics import psnr  # noqa: E402
from splat import orbit_cameras  # noqa: E402
from splat.io import streamed_sog  # noqa: E402

SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default="scenes/donut_sh0.ply", help="path under ../shared/data")
    ap.add_argument("--levels", type=int, default=4)
    args = ap.parse_args()
    scene = sio.read_scene(SHARED / args.scene).replace(extras={})
    cams = orbit_cameras(scene, 4, width=160, height=120)
    ref = rasterize(scene, cams, backend="cpu").colors

    def score(s) -> float:
        return float(psnr(rasterize(s, cams, backend="cpu").colors, ref).mean())

    _, _, levels = streamed_sog.plan(scene, levels=args.levels)
    sig = streamed_sog.significance(scene)
    g = torch.Generator().manual_seed(0)
    rows = []
    for lv in range(1, args.levels):
        k = len(levels[lv])
        top = scene[torch.from_numpy(np.sort(np.argsort(-sig, kind="stable")[:k]))]
        rnd = scene[torch.randperm(len(scene), generator=g)[:k]]
        rows.append({"level": lv, "gaussians": k, "merged_db": score(levels[lv]), "random_db": score(rnd),
                     "most_significant_db": score(top)})
        r = rows[-1]
        print(f"level {lv}: {k:>7,} Gaussians  merged {r['merged_db']:.2f} dB  random {r['random_db']:.2f} dB  "
              f"most significant {r['most_significant_db']:.2f} dB")
    out = {"scene": args.scene, "views": "4 orbit, 160x120", "load_average": os.getloadavg(), "rows": rows}
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "lod_levels.json").write_text(json.dumps(out, indent=1))
    print(f"load average {os.getloadavg()[0]:.1f} (shared machine)")


if __name__ == "__main__":
    main()
