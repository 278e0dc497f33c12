"""Fine-tuning in chunks of Gaussians: peak memory above the scene, time and fidelity against
the chunk size, on playbot (500k Gaussians, SH 2) or a seeded subsample of it.

    .venv/bin/python bench/finetune_chunks.py [--n 250000] [--chunks 0,125000,62500] [--steps 24]

Each setting runs in its own subprocess: read playbot level 0, keep a seeded random ``--n``,
prune the least significant 66% (the default preset's ratio; significance from 4 views), then
``finetune`` (colour and opacity, the default) for ``--steps`` steps at 240 px against the
original's renders, with ``FinetuneConfig.chunk`` = the chunk size (0: the whole scene at
once). Reported: the peak RSS during the fine-tune above the RSS just before it (what
gradients, optimiser state and autograd hold), wall time, and the held-out PSNR of the tuned
scene against the original. Writes bench/results/finetune_chunks.json.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PLAYBOT = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scenes" / "playbot" / "0_0" / "meta.json"
RESULTS = ROOT / "bench" / "results"


def rss() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def child(n: int, chunk: int, steps: int) -> dict:
    import torch

    from compress.scene.distill import FinetuneConfig, finetune, render_targets
    from compress.scene.eval import fidelity
    from compress.scene.prune import prune
    from compress.scene.significance import significance
    from compress.scene.views import pseudo_views, split_views
    from splat.io import read_scene

    scene = read_scene(PLAYBOT)
    if n < len(scene):
        scene = scene[torch.randperm(len(scene), generator=torch.Generator().manual_seed(0))[:n].sort().values]
    views = split_views(scene, None, max_side=240, n_train=8, n_heldout=4)
    scores = significance(scene, views.train[:4])
    pruned, _ = prune(scene, scores, 0.66)
    pv = pseudo_views(scene, views.train, seed=0)
    targets = render_targets(scene, pv)
    ref = render_targets(scene, views.heldout)
    before = fidelity(ref, pruned, views.heldout, with_ssim=False).psnr
    base = rss()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], rss())

    th = threading.Thread(target=sample, daemon=True)
    th.start()
    t0 = time.perf_counter()
    tuned, _ = finetune(pruned, scene, pv, targets=targets,
                        config=FinetuneConfig(steps=steps, seed=0, train_geometry=False, chunk=chunk or None))
    secs = time.perf_counter() - t0
    stop.set()
    th.join()
    after = fidelity(ref, tuned, views.heldout, with_ssim=False).psnr
    return {"n": len(scene), "kept": len(pruned), "chunk": chunk, "steps": steps, "seconds": secs,
            "rss_before": base, "peak_above_before": peak[0] - base,
            "psnr_pruned": before, "psnr_tuned": after}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=250_000)
    ap.add_argument("--chunks", default="0,42500,21250", help="chunk sizes (0: the whole scene at once)")
    ap.add_argument("--steps", type=int, default=24)
    ap.add_argument("--out", default=str(RESULTS / "finetune_chunks.json"))
    ap.add_argument("--child", nargs=3, type=int, help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        print(json.dumps(child(*a.child)))
        return 0
    load = os.getloadavg()
    rows = []
    for c in [int(x) for x in a.chunks.split(",")]:
        r = subprocess.run([sys.executable, __file__, "--child", str(a.n), str(c), str(a.steps)],
                           capture_output=True, text=True, cwd=ROOT)
        if r.returncode:
            print(r.stderr[-3000:])
            return 1
        row = json.loads(r.stdout.strip().splitlines()[-1])
        rows.append(row)
        print(f"chunk {c or 'all':>7}  kept {row['kept']:>7,}  peak above {row['peak_above_before'] / 2**20:7.1f} MiB  "
              f"{row['seconds']:6.1f} s  PSNR pruned {row['psnr_pruned']:.2f} -> tuned {row['psnr_tuned']:.2f} dB",
              flush=True)
    Path(a.out).write_text(json.dumps({"command": "python bench/finetune_chunks.py " + " ".join(
        argv if argv is not None else sys.argv[1:]), "load_average_start": load, "load_average_end": os.getloadavg(),
        "note": "shared 2-core machine", "rows": rows}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
