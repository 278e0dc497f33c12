"""Fit time and decode + render time of one image at one rate, as a user runs them.

Times ``splat fit-image IMAGE --bpp B`` end to end in a subprocess (wall, CPU, peak RSS),
then decodes and renders the file in one warm process (the first call, which loads the
cached numba kernels, apart; then the min and median of 6 repeats) with the default
threads and with one. Writes bench/results/image_speed.json. Run it on an idle machine:

    .venv/bin/python bench/image_speed.py                       # kodim07 at 0.5 bpp
    .venv/bin/python bench/image_speed.py --image kodim03 --bpp 0.25
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.image import decode, render_gaussians  # noqa: E402
from splat.threads import threads  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
RESULTS = ROOT / "bench" / "results" / "image_speed.json"


def _decode_render_ms(data: bytes, repeats: int = 6) -> dict:
    t0 = time.perf_counter()
    render_gaussians(decode(data))
    first = time.perf_counter() - t0
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        render_gaussians(decode(data))
        ts.append(time.perf_counter() - t0)
    return {"first_ms": 1e3 * first, "min_ms": 1e3 * min(ts), "median_ms": 1e3 * statistics.median(ts)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="kodim07")
    ap.add_argument("--bpp", type=float, default=0.5)
    args = ap.parse_args()
    src = KODAK / f"{args.image}.png"
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "x.gsi"
        cmd = [sys.executable, "-m", "splat.cli", "fit-image", str(src), "--bpp", str(args.bpp), "-o", str(out)]
        c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        data = out.read_bytes()
    g = decode(data)
    res = {
        "image": args.image, "target_bpp": args.bpp, "bpp": len(data) * 8 / (g.width * g.height),
        "gaussians": len(g), "fit_wall_s": wall, "fit_cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
        "fit_peak_rss_mb": c1.ru_maxrss / 1024, "decode_render_default_threads": _decode_render_ms(data),
        "load_before": load_before,
        "command": f"python bench/image_speed.py --image {args.image} --bpp {args.bpp}",
    }
    with threads(1):
        res["decode_render_one_thread"] = _decode_render_ms(data)
    res["load_after"] = os.getloadavg()
    print(json.dumps(res, indent=1))
    RESULTS.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
