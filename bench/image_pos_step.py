"""The position grid of ``.gsi`` files at equal size: fit with rate control to a target bpp with
each ``--steps`` value of ``BitDepths.pos_step`` (pixels), everything else default.

    python bench/image_pos_step.py --images kodim07 kodim12 --bpp 0.5 --steps 0.25 0.125
    python bench/image_pos_step.py ... --json bench/results/image_pos_step.json   # rows appended

One row per (image, bpp, step): real bpp, PSNR of the decoded file, Gaussians, bits per
Gaussian, CPU seconds and the 1-minute load average.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import splat  # noqa: E402,F401  (before torch)
import torch  # noqa: E402

from compress.image import BitDepths, FitConfig, compress_image, decode, render_gaussians  # noqa: E402
from compress.image.imageio import load_image  # noqa: E402
from render.metrics import psnr  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", "/work/shared/data")) / "images" / "kodak"


def run(name: str, bpp: float, step: float) -> dict:
    """Fit ``name`` to ``bpp`` on a ``step``-pixel position grid; the decoded file's numbers."""
    px = load_image(KODAK / f"{name}.png").pixels
    t0 = time.process_time()
    res = compress_image(px, bpp=bpp, config=FitConfig(bits=BitDepths(pos_step=step)))
    g = decode(res.data)
    return {"image": name, "target": bpp, "pos_step": step, "bpp": round(res.bpp(), 4),
            "psnr": round(float(psnr(render_gaussians(g), torch.from_numpy(px))), 3), "gaussians": len(g),
            "bits_per_gaussian": round(len(res.data) * 8 / len(g), 2), "cpu_s": round(time.process_time() - t0),
            "load": round(os.getloadavg()[0], 2)}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=["kodim07", "kodim12"])
    ap.add_argument("--bpp", nargs="+", type=float, default=[0.5])
    ap.add_argument("--steps", nargs="+", type=float, default=[0.25, 0.125])
    ap.add_argument("--json", type=Path, default=None, help="append the rows to this file's 'rows'")
    args = ap.parse_args(argv)
    for name in args.images:
        for bpp in args.bpp:
            for step in args.steps:
                row = run(name, bpp, step)
                print(json.dumps(row), flush=True)
                if args.json:
                    d = json.loads(args.json.read_text()) if args.json.exists() else {"rows": []}
                    d["rows"].append(row)
                    args.json.write_text(json.dumps(d, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
