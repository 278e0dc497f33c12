"""Fit time of each step schedule, and decode + render time, as a user runs them.

For each image, times ``splat fit-image IMAGE --bpp B --schedule S`` end to end in a
subprocess (wall, CPU, peak RSS) for every schedule in ``--schedules`` (interleaved, so all
see the same machine load), and reads back the file's real bpp and PSNR against the image.
Then decodes and renders the first image's default-schedule file in one warm process (the
first call, which loads the cached numba kernels, apart; then the min and median of 6
repeats) with the default threads and with one. ``--baseline DIR`` adds, interleaved, the
default fit of another checkout (an earlier commit), so a new default is compared with the
old one under the same load. Writes bench/results/image_speed.json with the load average
before and after every fit. Run it on an idle machine:

    .venv/bin/python bench/image_speed.py                       # kodim07 at 0.5 bpp, fast vs thorough
    .venv/bin/python bench/image_speed.py --images kodim03 kodim05 kodim07 --bpp 0.25
    git worktree add /tmp/base 2de8a53 && .venv/bin/python bench/image_speed.py --baseline /tmp/base
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

import torch  # noqa: E402

from compress.image import decode, render_gaussians  # noqa: E402
from compress.image.schedules import DEFAULT_SCHEDULE, SCHEDULES  # noqa: E402
from compress.image.imageio import load_image  # noqa: E402
from render.metrics import psnr  # noqa: E402
from splat.threads import threads  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
RESULTS = ROOT / "bench" / "results" / "image_speed.json"
BASELINE = "baseline"  # the row name of ``--baseline``'s fits


def _warm_up(checkout: Path, tmp: Path) -> None:
    """One small fit in ``checkout``: numba caches its kernels per source path, so the first
    fit of a fresh checkout would include their compilation (above the renderer's parallel
    threshold, so the threaded kernels compile too)."""
    import numpy as np

    from compress.image.imageio import save_image

    src = tmp / "warm.png"
    save_image(src, np.random.default_rng(0).random((256, 320, 3)).astype(np.float32))
    subprocess.run([sys.executable, "-m", "splat.cli", "fit-image", str(src), "--gaussians", "200", "--steps", "20",
                    "-o", str(tmp / "warm.gsi"), "--force"], check=True, cwd=checkout, stdout=subprocess.DEVNULL,
                   env={**os.environ, "PYTHONPATH": str(checkout)})


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


def _fit(src: Path, bpp: float, schedule: str, out: Path, checkout: Path | None = None) -> dict:
    """One ``splat fit-image`` run in a subprocess: wall, CPU and peak RSS of the child,
    real bpp and PSNR of the file it wrote. ``schedule`` BASELINE runs the default schedule of
    the code in ``checkout`` instead of this one's."""
    cmd = [sys.executable, "-m", "splat.cli", "fit-image", str(src), "--bpp", str(bpp), "-o", str(out), "--force"]
    if schedule != BASELINE:
        cmd += ["--schedule", schedule]
    cwd = checkout if schedule == BASELINE else ROOT
    load = os.getloadavg()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=cwd, stdout=subprocess.DEVNULL, env={**os.environ, "PYTHONPATH": str(cwd)})
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = out.read_bytes()
    g = decode(data)
    target = torch.from_numpy(load_image(src).pixels)
    return {"image": src.stem, "schedule": schedule, "target_bpp": bpp, "bpp": len(data) * 8 / (g.width * g.height),
            "psnr": float(psnr(g.render().clamp(0, 1), target)), "gaussians": len(g), "fit_wall_s": wall,
            "fit_cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
            "fit_peak_rss_mb": c1.ru_maxrss / 1024, "load_before": load, "load_after": os.getloadavg()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="+", default=["kodim07"])
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--schedules", nargs="+", default=[DEFAULT_SCHEDULE] + [s for s in SCHEDULES if s != DEFAULT_SCHEDULE],
                    choices=list(SCHEDULES))
    ap.add_argument("--baseline", type=Path, default=None, metavar="DIR",
                    help="also fit with the default schedule of the code in DIR (a checkout, e.g. "
                         "`git worktree add /tmp/base <commit>`), interleaved, as rows named 'baseline'")
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if args.baseline is not None:
        args.schedules = args.schedules + [BASELINE]
    rows = []
    kept = None
    with tempfile.TemporaryDirectory() as tmp:
        for checkout in {ROOT} | ({args.baseline.resolve()} if args.baseline else set()):
            _warm_up(checkout, Path(tmp))
        for name in args.images:
            for sched in args.schedules:
                out = Path(tmp) / f"{name}_{sched}.gsi"
                row = _fit(KODAK / f"{name}.png", args.bpp, sched, out, args.baseline)
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
                rows.append(row)
                if kept is None and sched == args.schedules[0]:
                    kept = out.read_bytes()
    first = args.schedules[0]
    summary = []
    for name in args.images:
        base = {r["schedule"]: r for r in rows if r["image"] == name}
        for sched in args.schedules[1:]:
            summary.append({"image": name, "schedule": first, "versus": sched,
                            "psnr_gain_db": base[first]["psnr"] - base[sched]["psnr"],
                            "bpp_ratio": base[first]["bpp"] / base[sched]["bpp"],
                            "wall_speedup": base[sched]["fit_wall_s"] / base[first]["fit_wall_s"],
                            "cpu_speedup": base[sched]["fit_cpu_s"] / base[first]["fit_cpu_s"]})
    res = {"rows": rows, "summary": summary, "cores": os.cpu_count(), "default_schedule": DEFAULT_SCHEDULE,
           "command": f"python bench/image_speed.py --images {' '.join(args.images)} --bpp {args.bpp}"
                      f" --schedules {' '.join(s for s in args.schedules if s != BASELINE)}"
                      + (f" --baseline {args.baseline}" if args.baseline else "")}
    res["decode_render_default_threads"] = _decode_render_ms(kept)
    with threads(1):
        res["decode_render_one_thread"] = _decode_render_ms(kept)
    print(json.dumps(summary, indent=1))
    args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
