"""Renderer benchmark: CPU backend speed and memory on real scenes, and ratios against
dense PyTorch renderers measured in the same run.

    .venv/bin/python bench/render.py [--runs 5] [--threads 2] [--width 1280 --height 720]

1. forward and forward+backward (projection, SH and their backward included) at
   1280x720 on biker (152k Gaussians) and plant (114k): median of --runs runs after a
   warm-up, and the peak resident-memory increase of one render
   (in a fresh process, after the scene is loaded);
2. the same small scene (a 2,000-Gaussian subset of plant at 160x90) rendered by the CPU
   backend, by the dense float64 reference and by the same dense code in float32
   ("naive dense PyTorch"): ratios of medians measured in this run.

Prints a table and writes bench/results/render.json and render.csv.
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

from render import rasterize  # noqa: E402
from render._torch_impl import composite_reference  # noqa: E402
from render.projection import project_gaussians  # noqa: E402
from render.sh import sh_colors  # noqa: E402
from render.views import scene_up_axis  # noqa: E402
from splat import orbit_cameras  # noqa: E402
from splat.threads import threads  # noqa: E402
from splat.camera import stack_cameras  # noqa: E402
from scenes import SHARED, load_scene  # noqa: E402

RESULTS = ROOT / "bench" / "results"


def _rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def measure_memory_child(name: str, mode: str, width: int, height: int) -> None:
    """Run in a fresh process: peak RSS increase (MB) of one render after the scene is loaded."""
    scene = load_scene(name)
    cam = orbit_cameras(scene, 1, width=width, height=height, up=scene_up_axis(SHARED / "scenes" / name))[0]
    tiny = orbit_cameras(scene[:100], 1, width=32, height=32)[0]
    cpu_forward_backward(scene[:100], tiny)()  # load the compiled kernels
    base = _rss()
    with open("/proc/self/clear_refs", "w") as f:  # reset the high-water mark (VmHWM) to the current RSS
        f.write("5")
    (cpu_forward if mode == "fwd" else cpu_forward_backward)(scene, cam)()
    with open("/proc/self/status") as f:
        hwm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmHWM:"))
    print(json.dumps({"peak_increase_mb": max(hwm - base, 0) / 2**20}))


def peak_memory_mb(name: str, mode: str, width: int, height: int) -> float:
    """Peak resident-memory increase of one render, measured in a fresh process."""
    import subprocess

    out = subprocess.run(
        [sys.executable, __file__, "--measure-memory", name, mode, "--width", str(width), "--height", str(height)],
        check=True, capture_output=True, text=True,
    ).stdout
    return json.loads(out.strip().splitlines()[-1])["peak_increase_mb"]


def single_thread_cpu(fn, runs: int) -> float:
    """Least CPU time of one thread over ``runs`` runs: robust on a shared, loaded machine."""
    with threads(1):  # restores the bench's --threads setting
        fn()
        best = float("inf")
        for _ in range(runs):
            t0 = time.process_time()
            fn()
            best = min(best, time.process_time() - t0)
    return best


def median_time(fn, runs: int) -> float:
    fn()  # warm-up (JIT cache load, allocator)
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def cpu_forward(scene, cam):
    def run():
        with torch.no_grad():
            return rasterize(scene, cam, backend="cpu")

    return run


def cpu_forward_backward(scene, cam):
    leaf = scene.requires_grad_()

    def run():
        out = rasterize(leaf, cam, backend="cpu")
        (out.colors.sum() + out.alphas.sum()).backward()

    return run


def dense(scene, cam, dtype, backward: bool):
    """Naive dense PyTorch renderer: torch projection + every Gaussian at every pixel."""
    sc = scene.to(dtype=dtype)
    if backward:
        sc = sc.requires_grad_()
    viewmats, Ks = stack_cameras([cam], dtype=dtype)

    def run():
        with torch.set_grad_enabled(backward):
            proj = project_gaussians(sc.means, sc.quats, sc.scales, sc.opacities, viewmats, Ks, cam.width, cam.height)
            campos = torch.linalg.inv(viewmats)[:, :3, 3]
            cols = sh_colors(sc.sh_degree, sc.sh_coeffs, sc.means, campos)
            img, alpha, _, _ = composite_reference(
                proj.means2d[0], proj.conics[0], cols[0], proj.opacities[0], proj.depths[0], proj.radii[0], cam.width, cam.height
            )
            if backward:
                (img.sum() + alpha.sum()).backward()

    return run


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--width", type=int, default=1280)
    ap.add_argument("--height", type=int, default=720)
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--measure-memory", nargs=2, metavar=("SCENE", "MODE"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.measure_memory:
        measure_memory_child(*args.measure_memory, args.width, args.height)
        return 0

    import numba

    torch.set_num_threads(args.threads)
    numba.set_num_threads(args.threads)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f} (numbers are noisy above ~1.5); {args.threads} threads, median of {args.runs} runs")
    rows = []

    plant = None
    for name in ("biker.spz", "plant.splat"):
        scene = load_scene(name)
        if scene is None:
            continue
        if name == "plant.splat":
            plant = scene
        up = scene_up_axis(SHARED / "scenes" / name)
        cam = orbit_cameras(scene, 1, width=args.width, height=args.height, up=up)[0]
        with torch.no_grad():
            probe = rasterize(scene, cam, backend="cpu")
        row = {"scene": name, "gaussians": len(scene), "size": f"{args.width}x{args.height}", "coverage": float(probe.alphas.mean())}
        row["forward_s"] = median_time(cpu_forward(scene, cam), args.runs)
        row["forward_backward_s"] = median_time(cpu_forward_backward(scene, cam), args.runs)
        row["forward_cpu1_s"] = single_thread_cpu(cpu_forward(scene, cam), args.runs)
        row["forward_backward_cpu1_s"] = single_thread_cpu(cpu_forward_backward(scene, cam), args.runs)
        row["forward_peak_mb"] = peak_memory_mb(name, "fwd", args.width, args.height)
        row["forward_backward_peak_mb"] = peak_memory_mb(name, "fwdbwd", args.width, args.height)
        rows.append(row)

    ratios = {}
    if plant is not None:
        small = plant[torch.randperm(len(plant), generator=torch.Generator().manual_seed(0))[:2000]]
        cam = orbit_cameras(plant, 1, width=160, height=90, up=scene_up_axis(SHARED / "scenes" / "plant.splat"))[0]
        runs = max(3, args.runs // 2)
        t = {
            "cpu_fwd": median_time(cpu_forward(small, cam), args.runs),
            "cpu_fwdbwd": median_time(cpu_forward_backward(small, cam), args.runs),
            "ref64_fwd": median_time(dense(small, cam, torch.float64, False), runs),
            "ref64_fwdbwd": median_time(dense(small, cam, torch.float64, True), runs),
            "dense32_fwd": median_time(dense(small, cam, torch.float32, False), runs),
            "dense32_fwdbwd": median_time(dense(small, cam, torch.float32, True), runs),
        }
        ratios = {
            "scene": "plant subset, 2000 Gaussians, 160x90",
            **{k + "_s": v for k, v in t.items()},
            "speedup_vs_float64_reference_fwd": t["ref64_fwd"] / t["cpu_fwd"],
            "speedup_vs_float64_reference_fwdbwd": t["ref64_fwdbwd"] / t["cpu_fwdbwd"],
            "speedup_vs_dense_float32_fwd": t["dense32_fwd"] / t["cpu_fwd"],
            "speedup_vs_dense_float32_fwdbwd": t["dense32_fwdbwd"] / t["cpu_fwdbwd"],
        }

    from rich.console import Console

    from splat.progress import summary_table

    con = Console()
    con.print(summary_table(
        f"CPU backend, {args.width}x{args.height}, {args.threads} threads: median wall time; 1-thread CPU time: min (load {load:.1f})",
        ["scene", "Gaussians", "coverage", "forward s", "fwd+bwd s", "fwd CPU-s 1 thr", "fwd+bwd CPU-s 1 thr",
         "fwd peak MB", "fwd+bwd peak MB"],
        [(r["scene"], r["gaussians"], r["coverage"], r["forward_s"], r["forward_backward_s"], r["forward_cpu1_s"],
          r["forward_backward_cpu1_s"], r["forward_peak_mb"], r["forward_backward_peak_mb"]) for r in rows],
    ))
    if ratios:
        con.print(summary_table(
            f"Same run, {ratios['scene']}",
            ["renderer", "forward s", "fwd+bwd s", "cpu speed-up fwd", "cpu speed-up fwd+bwd"],
            [
                ("cpu backend", ratios["cpu_fwd_s"], ratios["cpu_fwdbwd_s"], "1", "1"),
                ("dense float64 reference", ratios["ref64_fwd_s"], ratios["ref64_fwdbwd_s"],
                 f"{ratios['speedup_vs_float64_reference_fwd']:.0f}x", f"{ratios['speedup_vs_float64_reference_fwdbwd']:.0f}x"),
                ("naive dense float32 torch", ratios["dense32_fwd_s"], ratios["dense32_fwdbwd_s"],
                 f"{ratios['speedup_vs_dense_float32_fwd']:.0f}x", f"{ratios['speedup_vs_dense_float32_fwdbwd']:.0f}x"),
            ],
        ))
    args.out.mkdir(parents=True, exist_ok=True)
    meta = {"load_average": load, "threads": args.threads, "runs": args.runs, "cpu": platform.processor() or platform.machine(),
            "torch": torch.__version__, "numba": numba.__version__, "date": time.strftime("%Y-%m-%d %H:%M")}
    (args.out / "render.json").write_text(json.dumps({"meta": meta, "scenes": rows, "small_scene_ratios": ratios}, indent=1))
    with open(args.out / "render.csv", "w", newline="") as f:
        w = csv.writer(f)
        keys = ["scene", "gaussians", "size", "coverage", "forward_s", "forward_backward_s", "forward_cpu1_s",
                "forward_backward_cpu1_s", "forward_peak_mb", "forward_backward_peak_mb"]
        w.writerow(keys)
        for r in rows:
            w.writerow([f"{r[k]:.4f}" if isinstance(r[k], float) else r[k] for k in keys])
        for k, v in ratios.items():
            if k != "scene":
                w.writerow([f"small:{k}", "", "", "", f"{v:.4f}"])
    print(f"wrote {args.out / 'render.json'} and render.csv")
    return 0


if __name__ == "__main__":
    sys.exit(main())
