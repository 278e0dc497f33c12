"""Rate control of image fitting: a reference revision's ``rate.py`` against this tree's, in one run.

    python bench/image_budget.py                                   # kodim01/03/07 at 0.5 and 1.0 bpp vs main
    python bench/image_budget.py --images kodim03 --bpp 0.5 --ref main --out /tmp/budget

Both solvers run on the same fitter (this tree's ``fit.py``) with the default settings,
interleaved per image and target so that they see the same machine load. Per row: real
bpp, PSNR of the decoded file, fit seconds (wall and CPU), Gaussian count, JPEG's PSNR at the
largest quality whose bpp is not above ours and ours minus it, the load average, and what
rate control noted. Rows go
to ``<out>.csv``, the per-method means to ``<out>_summary.json``.
"""
from __future__ import annotations

import argparse
import csv
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.image import rate as rate_new  # noqa: E402
from compress.image.imageio import check_pixels, load_image  # noqa: E402

sys.path.insert(0, str(ROOT / "bench"))
from image_rd import pil_at_bpp  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
FIELDS = ["image", "method", "target_bpp", "bpp", "psnr", "fit_s", "cpu_s", "gaussians", "jpeg_psnr", "minus_jpeg",
          "load", "notes"]


def load_reference(ref: str):
    """``compress/image/rate.py`` as of git revision ``ref``, imported inside the package."""
    src = subprocess.run(["git", "-C", str(ROOT), "show", f"{ref}:compress/image/rate.py"], check=True,
                         capture_output=True, text=True).stdout
    name = "compress.image._rate_ref"
    spec = importlib.util.spec_from_loader(name, loader=None)
    mod = importlib.util.module_from_spec(spec)
    mod.__package__ = "compress.image"
    sys.modules[name] = mod
    exec(compile(src, f"{ref}:compress/image/rate.py", "exec"), mod.__dict__)
    return mod


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=["kodim01", "kodim03", "kodim07"])
    ap.add_argument("--bpp", nargs="+", type=float, default=[0.5, 1.0])
    ap.add_argument("--ref", default="main", help="git revision whose rate.py is the baseline")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "image_budget"))
    a = ap.parse_args()
    methods = {a.ref: load_reference(a.ref), "this": rate_new}
    rows = []
    with open(a.out + ".csv", "w", newline="") as f:
        w = csv.DictWriter(f, FIELDS)
        w.writeheader()
        for name in a.images:
            target = torch.from_numpy(check_pixels(load_image(KODAK / f"{name}.png").pixels))
            for bpp in a.bpp:
                for label, mod in methods.items():
                    t0, c0 = time.perf_counter(), time.process_time()
                    res = mod.fit_rate(target, bpp=bpp)
                    # JPEG at the largest quality whose real bpp is not above ours (bench/image_rd.py's rule)
                    jpeg = pil_at_bpp("jpeg", target.numpy(), min(bpp, res.bpp()))["psnr"]
                    row = {"image": name, "method": label, "target_bpp": bpp, "bpp": round(res.bpp(), 4),
                           "psnr": round(res.psnr, 3), "fit_s": round(time.perf_counter() - t0, 1),
                           "cpu_s": round(time.process_time() - c0, 1), "gaussians": len(res.gaussians),
                           "jpeg_psnr": round(jpeg, 3), "minus_jpeg": round(res.psnr - jpeg, 3),
                           "load": round(os.getloadavg()[0], 2),
                           "notes": json.dumps(getattr(res, "notes", {}), default=float)}
                    w.writerow(row)
                    f.flush()
                    rows.append(row)
                    print(row, flush=True)
    summary = {}
    for label in methods:
        for bpp in a.bpp:
            sel = [r for r in rows if r["method"] == label and r["target_bpp"] == bpp]
            summary[f"{label}@{bpp}"] = {k: round(statistics.mean(r[k] for r in sel), 3)
                                         for k in ("bpp", "psnr", "fit_s", "cpu_s", "gaussians", "minus_jpeg")}
    summary["load_range"] = [min(r["load"] for r in rows), max(r["load"] for r in rows)]
    Path(a.out + "_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
