"""Read/write speed, size and round-trip error of every splat format.

    .venv/bin/python bench/formats.py            # full run (150k-Gaussian scenes)
    .venv/bin/python bench/formats.py --quick    # 20k Gaussians, fewer repeats

Prints a table and writes bench/results/formats.json. Scenes: the real biker.spz
(152,746 Gaussians, SH 0) from ../shared/data, and a random 150k-Gaussian SH-3 scene.
Times are medians; the machine is shared, so the load average is recorded too.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import splat.io as sio  # noqa: E402
from splat import GaussianScene  # noqa: E402

SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
FORMATS = ["ply", "splat", "spz", "sog"]


def _median_time(fn, repeats: int) -> tuple[float, float]:
    """(median wall seconds, median CPU seconds of this process): CPU time is steadier on a loaded machine."""
    wall, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        wall.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(wall), statistics.median(cpu)


def _errors(ref: GaussianScene, got: GaussianScene) -> dict[str, float]:
    r, g = ref.to(dtype=torch.float64), got.to(dtype=torch.float64)
    q1, q2 = r.unit_quats, g.unit_quats
    out = {
        "means_max": float((r.means - g.means).abs().max()),
        "log_scales_mean": float((r.log_scales - g.log_scales).abs().mean()),
        "opacity_max": float((r.opacities - g.opacities).abs().max()),
        "rgb_mean": float((r.colors - g.colors).abs().mean()),
        "quat_max": float(torch.minimum((q1 - q2).abs().amax(1), (q1 + q2).abs().amax(1)).max()),
    }
    if ref.sh_degree and got.sh_degree:
        d = r.sh_rest - g.sh_rest
        out["sh_rel_rmse"] = float(d.pow(2).mean().sqrt() / r.sh_rest.pow(2).mean().sqrt())
    return out


def bench_scene(name: str, scene: GaussianScene, tmp: Path, repeats: int) -> list[dict]:
    rows = []
    for fmt in FORMATS:
        path = tmp / f"{name}.{fmt}"
        opts = {"sort": False} if fmt == "sog" else ({"version": 4} if fmt == "spz" else {})  # the published table is v4
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", sio.FormatWarning)
            t_write, c_write = _median_time(lambda p=path, o=opts: sio.write_scene(scene, p, **o),
                                            1 if fmt == "sog" else repeats)
        t_read, c_read = _median_time(lambda p=path: sio.read_scene(p), repeats)
        got = sio.read_scene(path)
        ref = scene if fmt != "splat" else scene.with_sh_degree(0)
        if fmt == "splat":
            got = got.with_sh_degree(0)
        size = path.stat().st_size
        rows.append({"scene": name, "gaussians": len(scene), "sh_degree": scene.sh_degree, "format": fmt,
                     "write_s": t_write, "read_s": t_read, "write_cpu_s": c_write, "read_cpu_s": c_read, "bytes": size, "bytes_per_gaussian": size / len(scene),
                     **_errors(ref, got)})
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "formats.json")
    args = ap.parse_args()
    torch.set_num_threads(2)
    n = 20_000 if args.quick else 150_000
    repeats = 3 if args.quick else 5
    scenes = {f"random_sh3_{n // 1000}k": GaussianScene.random(n, sh_degree=3, seed=0)}
    biker = SHARED / "scenes" / "biker.spz"
    if biker.exists():
        b = sio.read_scene(biker)
        scenes["biker"] = b[:n] if args.quick else b
    else:
        print(f"note: {biker} not found; benchmarking the random scene only")
    load = os.getloadavg()[0]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for name, s in scenes.items():
            rows += bench_scene(name, s, Path(d), repeats)
    real = []
    for rel in ["scenes/biker.spz", "scenes/fruit_drops_sh3.ply", "scenes/donut_sh0.ply", "scenes/guitar.compressed.ply",
                "scenes/plant.splat", "video/wave/wave_0001.sog"]:
        p = SHARED / rel
        if p.exists():
            fmt = sio.detect_format(p)
            t, c = _median_time(lambda p=p: sio.read_scene(p), repeats)
            real.append({"file": rel, "format": fmt, "gaussians": len(sio.read_scene(p)), "read_s": t, "read_cpu_s": c})

    print(f"load average at start: {load:.2f} (2 cores; quote ratios, rerun when below ~1.5)")
    print("times: wall seconds (CPU seconds of this process), medians")
    print(f"{'scene':<16}{'fmt':<6}{'write s':>15}{'read s':>15}{'B/Gauss':>9}{'pos max':>10}{'opac max':>10}"
          f"{'quat max':>10}{'rgb mean':>10}{'sh rel':>8}")
    for r in rows:
        w = f"{r['write_s']:.3f} ({r['write_cpu_s']:.3f})"
        rd = f"{r['read_s']:.3f} ({r['read_cpu_s']:.3f})"
        print(f"{r['scene']:<16}{r['format']:<6}{w:>15}{rd:>15}{r['bytes_per_gaussian']:>9.2f}"
              f"{r['means_max']:>10.2e}{r['opacity_max']:>10.2e}{r['quat_max']:>10.2e}{r['rgb_mean']:>10.2e}"
              f"{r.get('sh_rel_rmse', float('nan')):>8.3f}")
    print(f"\n{'real file':<34}{'format':<16}{'Gaussians':>10}{'read s':>15}")
    for r in real:
        rd = f"{r['read_s']:.3f} ({r['read_cpu_s']:.3f})"
        print(f"{r['file']:<34}{r['format']:<16}{r['gaussians']:>10,}{rd:>15}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"load_average": load, "torch_threads": torch.get_num_threads(),
                                    "round_trips": rows, "real_files": real}, indent=2))
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
