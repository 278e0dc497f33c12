"""Wall and CPU time per image-fitting step with 1 and 2 threads, per threading set-up (issue 13).

    python bench/threads.py                       # 256x256 crop of kodim03, 40 steps, as is + busy
    python bench/threads.py --crop 0 --steps 20   # the whole 768x512 image

Each set-up runs in its own process (the threading layer and OpenMP's wait policy are fixed
when a process starts), measuring 1 and 2 threads in that one process:

* ``package``: what ``import splat`` configures (``splat/threads.py``: numba ``omp`` layer,
  ``OMP_WAIT_POLICY=PASSIVE``);
* ``spin``: the set-up before the fix (torch imported first, so OpenMP keeps its default
  spin-then-sleep wait);
* ``workqueue``: numba's own pool (OpenMP still passive for torch's ops).

Each set-up runs once on the machine as it is (background "none"; on a shared machine that
is not idle: see the recorded load) and once beside one extra busy-looping process ("busy").
A step is one forward render, fused L1+SSIM loss, backward and Adam update
at full resolution (``compress.image.fit._Fitter.step``). Results (with the load average)
go to ``bench/results/threads.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results"
KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
SETUPS = {
    "package": {},
    "spin": {"SPLAT_BENCH_TORCH_FIRST": "1"},
    "workqueue": {"NUMBA_THREADING_LAYER": "workqueue"},
}


def child(image: str, crop: int, gaussians: int, steps: int, warmup: int) -> dict:
    """Run in a fresh process: time ``steps`` fitting steps with 1 and 2 threads."""
    if os.environ.get("SPLAT_BENCH_TORCH_FIRST"):
        import torch  # noqa: F401  (loads OpenMP before splat can choose its wait policy)
    sys.path.insert(0, str(ROOT))
    import splat  # noqa: F401  (configures threading)
    import torch
    from compress.image.fit import FitConfig, _Fitter
    from compress.image.imageio import load_image
    from splat.threads import threading_info, threads

    target = torch.from_numpy(load_image(KODAK / f"{image}.png").pixels)
    if crop:
        h, w = target.shape[:2]
        y, x = (h - crop) // 2, (w - crop) // 2
        target = target[y:y + crop, x:x + crop].contiguous()
    rows = []
    for n in (1, 2):
        with threads(n):
            ft = _Fitter(target, gaussians, FitConfig(), None, None)
            for _ in range(warmup):
                ft.step(False, False)
            w0, c0 = time.perf_counter(), time.process_time()
            for _ in range(steps):
                ft.step(False, False)
            wall, cpu = time.perf_counter() - w0, time.process_time() - c0
        rows.append({"threads": n, "wall_ms_per_step": 1000 * wall / steps, "cpu_ms_per_step": 1000 * cpu / steps})
    return {"rows": rows, "threading": threading_info(), "pixels": int(target.shape[0] * target.shape[1]),
            "gaussians": int(ft.n())}


def run_setup(name: str, args: argparse.Namespace) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "NUMBA_THREADING_LAYER")}
    env.update(SETUPS[name])
    cmd = [sys.executable, __file__, "--child", "--image", args.image, "--crop", str(args.crop),
           "--gaussians", str(args.gaussians), "--steps", str(args.steps), "--warmup", str(args.warmup)]
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="kodim03")
    ap.add_argument("--crop", type=int, default=256, help="centre crop size in pixels (0: whole image)")
    ap.add_argument("--gaussians", type=int, default=1500)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--setups", default=",".join(SETUPS))
    ap.add_argument("--no-busy", action="store_true", help="skip the runs beside a busy process")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, default=RESULTS / "threads.json")
    args = ap.parse_args()
    if args.child:
        print(json.dumps(child(args.image, args.crop, args.gaussians, args.steps, args.warmup)))
        return
    results = []
    for load in ("none",) if args.no_busy else ("none", "busy"):
        hog = None
        if load == "busy":
            hog = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            for name in args.setups.split(","):
                load0 = os.getloadavg()[0]
                r = run_setup(name, args)
                for row in r["rows"]:
                    results.append({"setup": name, "background": load, **row, "load_avg_1min": load0,
                                    "numba_layer": r["threading"]["numba_layer_active"],
                                    "omp_wait_policy": r["threading"]["omp_wait_policy"],
                                    "wait_policy_effective": r["threading"]["wait_policy_effective"]})
                    print(f"{load:5s} {name:10s} threads={row['threads']}  wall {row['wall_ms_per_step']:7.1f} ms"
                          f"  cpu {row['cpu_ms_per_step']:7.1f} ms  (load {load0:.2f})", flush=True)
        finally:
            if hog is not None:
                hog.kill()
                hog.wait()
    meta = {"image": args.image, "crop": args.crop, "gaussians": args.gaussians, "steps": args.steps,
            "cpus": os.cpu_count(), "note": "shared machine: other jobs ran alongside; see load_avg_1min",
            "command": "python " + " ".join([Path(__file__).relative_to(ROOT).as_posix()] + sys.argv[1:])}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({**meta, "rows": results}, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
