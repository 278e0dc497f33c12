"""Peak memory and step time of fitting a large image (a Kodak image upscaled, never downloaded).

Upscales one Kodak image (bicubic) to SIDE x SIDE pixels, fits the Gaussian count of
``--bpp`` (at about 50 bits per Gaussian) for ``--steps`` steps with ``fit_gaussians``
(initialisation, growth, QAT and the rate term all run, so the memory peak is reached), and
reports wall and CPU seconds and the process's peak resident memory. Writes
``bench/results/image_large.json`` (one row per side, rerun sides replace theirs).

    python bench/image_large.py --side 2048 --steps 4
    python bench/image_large.py --side 4096 --steps 6 --bpp 0.25
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.image.fit import FitConfig, fit_gaussians  # noqa: E402
from compress.image.imageio import load_image  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
RESULTS = ROOT / "bench" / "results" / "image_large.json"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="kodim05")
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--bpp", type=float, default=0.25)
    ap.add_argument("--init", default="gradient", choices=["gradient", "structure"])
    args = ap.parse_args()
    src = torch.from_numpy(load_image(KODAK / f"{args.image}.png").pixels)
    big = F.interpolate(src.permute(2, 0, 1)[None], size=(args.side, args.side), mode="bicubic",
                        align_corners=False)[0].permute(1, 2, 0).clamp(0, 1).contiguous()
    del src
    n = max(1, int(args.bpp * args.side * args.side / 50))
    before = _peak_mb()
    load = os.getloadavg()[0]
    w0, c0 = time.perf_counter(), time.process_time()
    _g, _spec, rep = fit_gaussians(big, n, FitConfig(steps=args.steps, refill_every=0, init=args.init))
    row = {"image": args.image, "side": args.side, "pixels": args.side * args.side, "gaussians": n,
           "steps": rep.steps, "init": args.init, "wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
           "peak_rss_mb": _peak_mb(), "rss_before_fit_mb": before, "psnr": rep.psnr, "load_before": load,
           "load_after": os.getloadavg()[0],
           "command": f"python bench/image_large.py --side {args.side} --steps {args.steps} --bpp {args.bpp}"
                      f" --init {args.init}"}
    print(json.dumps(row, indent=1))
    rows = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    rows = [r for r in rows if (r["side"], r["init"]) != (args.side, args.init)] + [row]
    RESULTS.write_text(json.dumps({"rows": sorted(rows, key=lambda r: (r["side"], r["init"]))}, indent=1))


if __name__ == "__main__":
    main()
