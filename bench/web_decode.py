"""TypeScript (Node, one thread) against Python (numba, one thread) decode time of the same files.

For every file: the Python reader under ``splat.threads.threads(1)`` (numba on one thread, the
minimum of ``--repeat`` warm decodes after one cold one) and the TypeScript decoder in Node
(``viewer/web/cli/bench.mjs``: read + decode, minimum of ``--repeat`` warm runs after one cold
run, which includes V8's warm-up). Python and Node run one after the other, never side by side;
the load average is recorded before and after. Both wall time and CPU time (the process's user
+ system time during the decode: numba's one thread; Node's main thread plus V8's background
compiler and GC threads) are reported: on a shared, overloaded machine the wall times are upper
bounds that swing with the other jobs, and the CPU-time ratio is the steadier comparison.

Default files (written to ``--work`` once, then reused):
  playbot_all.lgs   every playbot Gaussian (500k, SH 2), ``bench/scene_decode.py --make-full``
  playbot_170k.lgs  the 170k most significant (opacity x area) of them, same settings: the
                    size of the default ``splat compress`` output
Goal (issue): TS <= 2x numba's one-thread time on both.

    make web && .venv/bin/python bench/web_decode.py                  # the default files
    .venv/bin/python bench/web_decode.py /tmp/my.lgs --repeat 9       # any .lgs files
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RESULTS = ROOT / "bench" / "results" / "web_decode.json"
WEB = ROOT / "viewer" / "web"
GOAL_RATIO = 2.0
DEFAULT_COUNT = 170_000
SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
PLAYBOT = SHARED / "scenes" / "playbot" / "0_0" / "meta.json"


def _scene_decode_module():
    spec = importlib.util.spec_from_file_location("scene_decode", ROOT / "bench" / "scene_decode.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def make_files(work: Path) -> list[Path]:
    """The default files in ``work`` (written once; about a minute each on 2 cores)."""
    import torch

    from compress.scene.codec import QuantConfig, write_lgs
    from splat.io import read_scene

    work.mkdir(parents=True, exist_ok=True)
    full, part = work / "playbot_all.lgs", work / "playbot_170k.lgs"
    if not PLAYBOT.exists():
        raise SystemExit(f"{PLAYBOT} not found (set SPLAT_SHARED_DATA to the shared data folder)")
    sd = _scene_decode_module()
    sd.PLAYBOT = PLAYBOT
    if not full.exists():
        print(f"writing {full} ...", flush=True)
        sd.make_full(full)
    if not part.exists():
        print(f"writing {part} ...", flush=True)
        scene = read_scene(PLAYBOT)
        weights = scene.opacities.reshape(-1).double() * torch.exp(scene.log_scales.double()).prod(-1) ** (2 / 3)
        keep = torch.argsort(weights, descending=True, stable=True)[:DEFAULT_COUNT]
        write_lgs(scene[keep], part, weights[keep],
                  QuantConfig(low_fraction=0.75, low_drop=3))
    return [full, part]


def time_python(path: Path, repeat: int) -> dict:
    """numba on one thread: cold decode, then the minimum of ``repeat`` warm ones (wall and CPU)."""
    from compress.scene.codec import read_lgs
    from splat.threads import threads

    with threads(1):
        t0 = time.perf_counter()
        scene = read_lgs(path)
        cold = time.perf_counter() - t0
        ts, cpu = [], []
        for _ in range(repeat):
            t0, c0 = time.perf_counter(), time.process_time()
            read_lgs(path)
            ts.append(time.perf_counter() - t0)
            cpu.append(time.process_time() - c0)
    return {"gaussians": len(scene), "cold_s": cold, "times_s": ts, "min_s": min(ts), "min_cpu_s": min(cpu)}


def time_node(path: Path, repeat: int, kind: str = "lgs") -> dict:
    node = shutil.which("node")
    if node is None:
        raise SystemExit("node not found: run `make web` first")
    subprocess.run([node, "build.mjs"], cwd=WEB, check=True)
    res = subprocess.run([node, str(WEB / "cli" / "bench.mjs"), kind, str(path), "--repeat", str(repeat)],
                         check=True, capture_output=True, text=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def _best(runs: list[dict]) -> dict:
    """The first run's record with the minimum wall and CPU times over all runs."""
    best = dict(runs[0])
    best["min_s"] = min(r["min_s"] for r in runs)
    best["min_cpu_s"] = min(r["min_cpu_s"] for r in runs)
    best["cold_s"] = runs[0]["cold_s"]
    best["rounds"] = [{"times_s": r["times_s"]} for r in runs]
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", type=Path, help=".lgs files (default: the two playbot files, made in --work)")
    ap.add_argument("--work", type=Path, default=Path("/tmp/splatkit_web_decode"), help="where the default files are kept")
    ap.add_argument("--repeat", type=int, default=5, help="warm decodes per file and decoder (the minimum is reported)")
    ap.add_argument("--rounds", type=int, default=2, help="alternating Python / Node rounds per file")
    ap.add_argument("-o", "--output", type=Path, default=RESULTS, help="results JSON")
    args = ap.parse_args(argv)
    files = args.files or make_files(args.work)
    load_before = os.getloadavg()
    rows = []
    for f in files:
        py_runs, ts_runs = [], []
        for _ in range(args.rounds):  # alternate, so a burst of load from other jobs hits both
            py_runs.append(time_python(f, args.repeat))
            ts_runs.append(time_node(f, args.repeat))
        py, ts = _best(py_runs), _best(ts_runs)
        rows.append({"file": f.name, "bytes": f.stat().st_size, "gaussians": py["gaussians"], "python_numba_1thread": py,
                     "node": ts, "ratio_ts_over_numba": ts["min_s"] / py["min_s"],
                     "cpu_ratio_ts_over_numba": ts["min_cpu_s"] / py["min_cpu_s"]})
    load_after = os.getloadavg()
    result = {"load_before": load_before, "load_after": load_after, "cpu_count": os.cpu_count(), "repeat": args.repeat,
              "rounds": args.rounds,
              "goal_ratio": GOAL_RATIO, "node_version": subprocess.run(["node", "--version"], capture_output=True,
                                                                       text=True).stdout.strip(), "files": rows}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=1))
    from rich.console import Console

    from splat.progress import summary_table

    Console().print(summary_table(
        f"decode time, min of {args.rounds} x {args.repeat} warm runs (load {load_before[0]:.1f} -> {load_after[0]:.1f}, "
        f"{os.cpu_count()} cores)",
        ["file", "Gaussians", "bytes", "numba 1 thread s (CPU s)", "Node s (CPU s)", "Node cold s",
         "TS / numba wall", "TS / numba CPU", f"goal <= {GOAL_RATIO:g}x"],
        [(r["file"], f"{r['gaussians']:,}", f"{r['bytes']:,}",
          f"{r['python_numba_1thread']['min_s']:.3f} ({r['python_numba_1thread']['min_cpu_s']:.3f})",
          f"{r['node']['min_s']:.3f} ({r['node']['min_cpu_s']:.3f})", f"{r['node']['cold_s']:.3f}",
          f"{r['ratio_ts_over_numba']:.2f}", f"{r['cpu_ratio_ts_over_numba']:.2f}",
          "met" if max(r["ratio_ts_over_numba"], r["cpu_ratio_ts_over_numba"]) <= GOAL_RATIO
          else ("met in CPU time" if r["cpu_ratio_ts_over_numba"] <= GOAL_RATIO else "missed")) for r in rows]))
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
