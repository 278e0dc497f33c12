"""Decode time of ``.lgs`` files: the minimum over repeated ``read_lgs`` calls in one warm process.

For every file: Gaussians, bytes, the first (cold) decode, which includes loading numba's
cached kernels, then the minimum wall time of ``--repeat`` warm decodes with the default
threads (two: positions, colour and SH rest decode beside scales and rotations) and with one
thread (``splat.threads.threads(1)``). ``--baseline DIR`` times the same files with another
checkout's decoder (e.g. the one before the fast path) in a subprocess, at the same load.
The load average is recorded: on a shared machine wall times are upper bounds.

    .venv/bin/python bench/scene_decode.py --make-full /tmp/playbot_all.lgs   # all 500k Gaussians, no pruning
    .venv/bin/splat compress ../shared/data/scenes/playbot/0_0/meta.json -o /tmp/playbot.lgs   # the default path
    git archive 0bff952 | tar -x -C /tmp/lgs_old   # before the fast path (14227bd: after the first round)
    .venv/bin/python bench/scene_decode.py /tmp/playbot_all.lgs /tmp/playbot.lgs --baseline /tmp/lgs_old
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
RESULTS = ROOT / "bench" / "results" / "scene_decode.json"
PLAYBOT = ROOT.parent / "shared" / "data" / "scenes" / "playbot" / "0_0" / "meta.json"

_TIMER = r"""
import json, sys, time
sys.path.insert(0, sys.argv[1])
from compress.scene.codec import read_lgs
out = {}
for f in sys.argv[3:]:
    t0 = time.perf_counter(); read_lgs(f); cold = time.perf_counter() - t0
    ts, cpu = [], []
    for _ in range(int(sys.argv[2])):
        t0, c0 = time.perf_counter(), time.process_time(); read_lgs(f)
        ts.append(time.perf_counter() - t0); cpu.append(time.process_time() - c0)
    out[f] = {"cold_s": cold, "min_s": min(ts), "times_s": ts, "min_cpu_s": min(cpu)}
print(json.dumps(out))
"""


def time_decodes(paths: list[str], repeat: int, n_threads: int | None) -> dict:
    """{path: {gaussians, bytes, cold_s, min_s, times_s}} with ``n_threads`` (None: the default)."""
    from compress.scene.codec import read_lgs
    from splat.threads import threads

    out = {}
    with threads(n_threads):
        for f in paths:
            t0 = time.perf_counter()
            scene = read_lgs(f)
            cold = time.perf_counter() - t0
            ts, cpu = [], []
            for _ in range(repeat):
                t0, c0 = time.perf_counter(), time.process_time()
                read_lgs(f)
                ts.append(time.perf_counter() - t0)
                cpu.append(time.process_time() - c0)
            out[f] = {"gaussians": len(scene), "bytes": os.path.getsize(f), "cold_s": cold, "min_s": min(ts), "times_s": ts,
                      "min_cpu_s": min(cpu)}
    return out


def make_full(out: Path) -> None:
    """Encode every playbot Gaussian (no pruning, no fine-tuning) with the default quantisation
    and precision classes (75% of the Gaussians 3 bits coarser, ranked by opacity x area)."""
    import torch

    from compress.scene.codec import QuantConfig, write_lgs
    from splat.io import read_scene

    scene = read_scene(PLAYBOT)
    weights = scene.opacities.reshape(-1).double() * torch.exp(scene.log_scales.double()).prod(-1) ** (2 / 3)
    write_lgs(scene, out, weights, QuantConfig(low_fraction=0.75, low_drop=3))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("files", nargs="*", help=".lgs files to decode")
    ap.add_argument("--repeat", type=int, default=5, help="warm decodes per file (the minimum is reported)")
    ap.add_argument("--baseline", help="another checkout whose decoder is timed too (subprocess)")
    ap.add_argument("--make-full", metavar="OUT", help="first write all of playbot (500k Gaussians) to OUT")
    ap.add_argument("-o", "--output", default=str(RESULTS), help="results JSON")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(ROOT))
    files = list(args.files)
    if args.make_full:
        make_full(Path(args.make_full))
        files.append(args.make_full)
    if not files:
        ap.error("no .lgs files given")
    load = os.getloadavg()
    rows = {f: {"default_threads": r} for f, r in time_decodes(files, args.repeat, None).items()}
    for f, r in time_decodes(files, args.repeat, 1).items():
        rows[f]["one_thread"] = r
    if args.baseline:
        res = subprocess.run([sys.executable, "-c", _TIMER, args.baseline, str(args.repeat), *files], check=True,
                             capture_output=True, text=True, env={**os.environ, "NUMBA_NUM_THREADS": "1"})
        for f, r in json.loads(res.stdout.strip().splitlines()[-1]).items():
            rows[f]["baseline"] = {**r, "checkout": args.baseline}
    result = {"load_before": load, "load_after": os.getloadavg(), "cpu_count": os.cpu_count(), "repeat": args.repeat,
              "files": [{"file": Path(f).name, **r} for f, r in rows.items()]}
    Path(args.output).write_text(json.dumps(result, indent=1))
    from rich.console import Console

    from splat.progress import summary_table

    Console().print(summary_table(
        f".lgs decode (min of {args.repeat}; load {load[0]:.1f})",
        ["file", "Gaussians", "bytes", "decode s", "1 thread s", "1 thread CPU s", "baseline s", "cold s"],
        [(r["file"], r["default_threads"]["gaussians"], r["default_threads"]["bytes"], r["default_threads"]["min_s"],
          r["one_thread"]["min_s"], r["one_thread"]["min_cpu_s"], r.get("baseline", {}).get("min_s", "-"), r["default_threads"]["cold_s"])
         for r in result["files"]]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
