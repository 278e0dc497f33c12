"""Fit speed and quality of two fitter settings on the same images in one run.

Compares the default fitter (gradient-sampled initialisation, default steps) with the
structure-guided initialisation at each of ``--steps``, image by image and interleaved (so
all see the same machine load), through ``compress_image(bpp=...)`` in this process after
a small warm-up fit (numba kernels loaded). Prints a table and writes
``bench/results/image_fit_compare.json`` with wall and CPU seconds (process CPU time,
all threads), PSNR of the decoded file, real bpp, and the load average per row.

    python bench/image_fit_compare.py                          # kodim07, kodim03 at 0.5 bpp; default and 160 steps
    python bench/image_fit_compare.py --images kodim05 --bpp 0.25 --steps 180
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

from compress.image import FitConfig, compress_image  # noqa: E402
from compress.image.imageio import load_image  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
RESULTS = ROOT / "bench" / "results" / "image_fit_compare.json"
BASELINE = f"default (gradient init, {FitConfig().steps} steps)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=["kodim07", "kodim03"])
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--steps", type=int, nargs="+", default=[FitConfig().steps, 160], help="main-fit steps of the structure init")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    fitters = {BASELINE: FitConfig()}
    fitters.update({f"structure init, {s} steps": FitConfig(init="structure", steps=s) for s in args.steps})
    rng = np.random.default_rng(0)
    compress_image(rng.random((32, 48, 3)).astype(np.float32), gaussians=20, steps=5)  # warm-up
    rows = []
    for name in args.images:
        pixels = load_image(KODAK / f"{name}.png").pixels
        for fitter, cfg in fitters.items():
            load = os.getloadavg()[0]
            w0, c0 = time.perf_counter(), time.process_time()
            res = compress_image(pixels, bpp=args.bpp, config=cfg)
            row = {"image": name, "fitter": fitter, "target_bpp": args.bpp, "bpp": res.bpp(), "psnr": res.psnr,
                   "gaussians": len(res.gaussians), "steps": res.fit_steps, "wall_s": time.perf_counter() - w0,
                   "cpu_s": time.process_time() - c0, "load_before": load, "load_after": os.getloadavg()[0]}
            rows.append(row)
            print(f"{name:8s} {fitter:28s} PSNR {row['psnr']:6.2f} dB  {row['bpp']:.3f} bpp  wall {row['wall_s']:6.1f} s"
                  f"  CPU {row['cpu_s']:6.1f} s  steps {row['steps']:4d}  load {load:.1f}", flush=True)
    summary = []
    for name in args.images:
        b = next(r for r in rows if r["image"] == name and r["fitter"] == BASELINE)
        for n in (r for r in rows if r["image"] == name and r["fitter"] != BASELINE):
            summary.append({"image": name, "fitter": n["fitter"], "psnr_gain_db": n["psnr"] - b["psnr"],
                            "wall_ratio": b["wall_s"] / n["wall_s"], "cpu_ratio": b["cpu_s"] / n["cpu_s"]})
            print(f"{name:8s} {n['fitter']} vs default: {summary[-1]['psnr_gain_db']:+.2f} dB, "
                  f"{summary[-1]['wall_ratio']:.2f}x less wall, {summary[-1]['cpu_ratio']:.2f}x less CPU")
    out = {"rows": rows, "summary": summary, "cores": os.cpu_count(),
           "command": "python bench/image_fit_compare.py --images " + " ".join(args.images) + f" --bpp {args.bpp} --steps "
               + " ".join(map(str, args.steps))}
    args.out.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
