"""Kernel technology: the numba blend kernel against a C++/OpenMP twin on the same data.

    .venv/bin/python bench/kernel_tech.py [--threads 2] [--runs 7]

Bins plant (1280x720, one orbit view) once, then times render/cpu/kernels.py:forward_tiles
and bench/kernel_tech/blend.cpp (same algorithm, g++ -O3 -march=native -fopenmp, with
and without -ffast-math, which lets gcc call glibc's vector expf, and with numba's
polynomial exp). Reports CPU time of
one thread (min of --runs, robust on a shared machine) and wall time with --threads,
the compile time of each, and the largest image difference. Writes
bench/results/kernel_tech.json. Needs g++ (skips the C++ rows without it).
"""
from __future__ import annotations

import argparse
import ctypes
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(1, str(ROOT / "bench"))

from render.cpu import binning  # noqa: E402
from render.cpu.autograd import _gather, _np32  # noqa: E402
from render.cpu.projection import project_gaussians_fused  # noqa: E402
from render.rasterize import CPU_TILE_SIZE  # noqa: E402
from splat import orbit_cameras  # noqa: E402
from splat.camera import stack_cameras  # noqa: E402


def _timeit(fn, runs, clock):
    best = float("inf")
    for _ in range(runs):
        t0 = clock()
        fn()
        best = min(best, clock() - t0)
    return best


def main(argv=None) -> int:
    import numba

    from render.cpu import kernels
    from scenes import load_plant

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--runs", type=int, default=7)
    ap.add_argument("--tile-size", type=int, default=CPU_TILE_SIZE)
    args = ap.parse_args(argv)
    scene = load_plant()
    if scene is None:
        return 0
    W, H, ts, D = 1280, 720, args.tile_size, 3
    cam = orbit_cameras(scene, 1, width=W, height=H, up="-y")[0]
    viewmats, Ks = stack_cameras([cam])
    proj = project_gaussians_fused(scene.means, scene.quats, scene.scales, scene.opacities, viewmats, Ks, W, H)
    order, cams = binning.depth_order(proj.depths.numpy(), proj.radii.numpy())
    xy, con = _gather(_np32(proj.means2d), order, 2), _gather(_np32(proj.conics), order, 3)
    op = _gather(_np32(proj.opacities), order, 1)[:, 0].copy()
    col = np.ascontiguousarray(np.random.default_rng(0).random((len(order), D), dtype=np.float32))
    bins = binning.bin_gaussians(xy, con, op, order, cams, 1, W, H, ts)
    M, ntot = bins.num_pairs, len(bins.tile_offsets) - 1
    bg = np.zeros((1, D), np.float32)

    def buffers():
        return (np.empty((1, H, W, D), np.float32), np.empty((1, H, W), np.float32), np.empty((1, H, W), np.int32),
                np.zeros(M, np.float32), np.zeros(M, np.int32))

    results = {"pairs": M, "tile_size": ts, "gaussians_visible": len(order)}
    rows = []
    nb = buffers()
    t0 = time.perf_counter()
    run_nb = lambda: kernels.forward_tiles(bins.tile_offsets, bins.tile_entries, xy, con, op, col, bins.tiles_x,  # noqa: E731
                                           bins.tiles_y, ts, W, H, bg, *nb, np.float32(0.99))
    run_nb()
    load_s = time.perf_counter() - t0
    numba.set_num_threads(1)
    cpu1 = _timeit(run_nb, args.runs, time.process_time)
    numba.set_num_threads(args.threads)
    wall = _timeit(run_nb, args.runs, time.perf_counter)
    rows.append(("numba (cache=True)", cpu1, wall, load_s, 0.0))

    gxx = shutil.which("g++")
    if gxx:
        src = ROOT / "bench" / "kernel_tech" / "blend.cpp"
        variants = (("C++ -O3, libm expf", []), ("C++ -O3 -ffast-math", ["-ffast-math", "-fno-finite-math-only"]),
                    ("C++ -O3, polynomial exp", ["-DPOLY_EXP"]))
        for label, flags in variants:
            with tempfile.TemporaryDirectory() as tmp:
                lib = Path(tmp) / "blend.so"
                t0 = time.perf_counter()
                subprocess.run([gxx, "-O3", "-march=native", "-fopenmp", "-shared", "-fPIC", *flags, str(src), "-o", str(lib)], check=True)
                build_s = time.perf_counter() - t0
                so = ctypes.CDLL(str(lib))
                fn = so.forward_tiles_cpp
                cb = buffers()
                p = lambda a: a.ctypes.data_as(ctypes.c_void_p)  # noqa: E731
                argsv = [p(bins.tile_offsets), p(bins.tile_entries), p(xy), p(con), p(op), p(col), ctypes.c_int(D),
                         ctypes.c_int(bins.tiles_x), ctypes.c_int(bins.tiles_y), ctypes.c_int(ts), ctypes.c_int(W), ctypes.c_int(H),
                         ctypes.c_int(ntot), p(bg), *[p(b) for b in cb]]
                omp = ctypes.CDLL(None)
                run = lambda: fn(*argsv)  # noqa: E731
                run()
                so_threads = getattr(omp, "omp_set_num_threads", None)
                if so_threads:
                    so_threads(1)
                cpu1c = _timeit(run, args.runs, time.process_time)
                if so_threads:
                    so_threads(args.threads)
                wallc = _timeit(run, args.runs, time.perf_counter)
                diff = float(np.abs(cb[0] - nb[0]).max())
                rows.append((label, cpu1c, wallc, 0.0, build_s))
                results[f"max_abs_diff_{label}"] = diff
    results["rows"] = [dict(zip(["kernel", "cpu_1thread_s", f"wall_{args.threads}threads_s", "load_s", "build_s"], r)) for r in rows]
    print(f"blend kernel only, plant 1280x720, {M:,} pairs ({ts}x{ts} tiles), min of {args.runs}")
    print(f"{'kernel':24s} {'1-thread CPU s':>15s} {f'{args.threads}-thread wall s':>16s} {'build s':>8s}")
    for r in rows:
        print(f"{r[0]:24s} {r[1]:15.3f} {r[2]:16.3f} {r[4]:8.1f}")
    for k, v in results.items():
        if k.startswith("max_abs_diff"):
            print(f"{k}: {v:.2e}")
    out = ROOT / "bench" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "kernel_tech.json").write_text(json.dumps(results, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
