"""The rate term's weight (lambda) against PSNR at a fixed rate, in one run.

For every image, target bpp and weight: ``compress_image(bpp=...)`` with
``FitConfig(rate_weight=w)``, the decoded file's PSNR, its real bpp, and the bits per Gaussian
of each stream (``gsi.stream_sizes``). Images are area-downscaled by ``--downscale`` (2 by
default: a quarter of the pixels, so a sweep stays short). Prints a table, and writes
``bench/results/image_rate_weight.json`` with the rows (load average per row) and, per image
and bpp, each weight's PSNR difference to the first weight of ``--weights``.

    python bench/image_rate_weight.py                                   # kodim03, kodim07; 0.5, 1.0 bpp; 0.08 0.16
    python bench/image_rate_weight.py --weights 0.08 0.02 0.04 0.16 0.32 --bpp 1.0
    python bench/image_rate_weight.py --weights 0.16 --pos-step 0.5    # a coarser position grid
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.image import BitDepths, FitConfig, compress_image  # noqa: E402
from compress.image.gsi import stream_sizes  # noqa: E402
from compress.image.imageio import load_image  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
RESULTS = ROOT / "bench" / "results" / "image_rate_weight.json"


def downscale(pixels, factor: int):
    """[H,W,C] float32 -> area average over factor x factor blocks."""
    if factor <= 1:
        return pixels
    t = torch.from_numpy(pixels).permute(2, 0, 1)[None]
    return F.avg_pool2d(t, factor)[0].permute(1, 2, 0).contiguous().numpy()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=["kodim03", "kodim07"])
    ap.add_argument("--bpp", nargs="+", type=float, default=[0.5, 1.0])
    ap.add_argument("--weights", nargs="+", type=float, default=[0.08, 0.16],
                    help="rate term weights; the first is the baseline of the differences")
    ap.add_argument("--downscale", type=int, default=2)
    ap.add_argument("--pos-step", type=float, default=None, help="position grid in pixels (default: rate control's choice)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args(argv)
    rows = []
    for name in args.images:
        pixels = downscale(load_image(KODAK / f"{name}.png").pixels, args.downscale)
        for b in args.bpp:
            for wgt in args.weights:
                cfg = FitConfig(rate_weight=wgt)
                if args.pos_step is not None:
                    cfg = replace(cfg, bits=replace(cfg.bits or BitDepths(), pos_step=args.pos_step))
                load = os.getloadavg()[0]
                w0, c0 = time.perf_counter(), time.process_time()
                res = compress_image(pixels, bpp=b, config=cfg)
                n = len(res.gaussians)
                row = {"image": name, "downscale": args.downscale, "target_bpp": b, "rate_weight": wgt,
                       "pos_step": res.spec.pos_step, "bpp": round(res.bpp(), 4), "psnr": round(res.psnr, 3),
                       "gaussians": n, "bits_per_gaussian": round(len(res.data) * 8 / n, 2),
                       "streams": {k: round(v * 8 / n, 2) for k, v in stream_sizes(res.data).items()},
                       "wall_s": round(time.perf_counter() - w0, 1), "cpu_s": round(time.process_time() - c0, 1),
                       "load": load}
                rows.append(row)
                print(f"{name:8s} {b:4.2f} bpp  lambda {wgt:5.3f}  {row['psnr']:6.2f} dB  {row['bpp']:.3f} bpp  "
                      f"{n:6d} G  {row['bits_per_gaussian']:5.1f} bits/G  load {load:.1f}", flush=True)
    diffs = []
    for name in args.images:
        for b in args.bpp:
            sel = [r for r in rows if r["image"] == name and r["target_bpp"] == b]
            base = next(r for r in sel if r["rate_weight"] == args.weights[0])
            diffs.append({"image": name, "target_bpp": b, "psnr_minus_first": {
                str(r["rate_weight"]): round(r["psnr"] - base["psnr"], 3) for r in sel}})
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows, "differences": diffs}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
