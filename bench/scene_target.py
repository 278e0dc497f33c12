"""Does ``--target-psnr P`` land in [P, P + 0.3] dB? Target against predicted against measured,
per scene and target.

    .venv/bin/python bench/scene_target.py [--scenes donut_sh0.ply,...] [--targets 30,35,40,45]
        [--sog] [--prune0] [--subsample N] [--max-side PX]

Per scene (the shared scenes, ``bench/scene_rd.py``'s list) and target P: ``compress_scene`` with
``target_psnr=P`` (the default command: pruning with fine-tuning, then step sizes on the error
model; with ``--prune0`` the ``--prune 0`` path, step sizes only). The measured fidelity is the
decoded file's PSNR against the original's renders on the held-out views, computed here again
from the bytes. ``--sog`` adds SOG's own fidelity as a target (splat-transform, pinned in
bench/package.json). The model's first prediction, the number of render checks and encodes,
bytes and time are reported. ``--subsample N`` keeps a seeded random N Gaussians of each scene
and ``--max-side`` lowers the render size, for a quick run (the rows say so). Writes
bench/results/scene_target.json.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scene_rd import install_splat_transform, shared_scenes, splat_transform  # noqa: E402

from compress.scene.codec import decode  # noqa: E402
from compress.scene.eval import fidelity, render_views  # noqa: E402
from compress.scene.pipeline import CompressSettings, compress_scene  # noqa: E402
from compress.scene.views import split_views  # noqa: E402
from splat.io import read_scene, write_scene  # noqa: E402

SCENES = ["donut_sh0.ply", "guitar.compressed.ply", "plant.splat", "biker.spz", "fruit_drops_sh3.ply"]
RESULTS = ROOT / "bench" / "results"
TOLERANCE = 0.3


def subsample(scene, n: int, seed: int = 0):
    """A seeded random ``n`` Gaussians of ``scene`` (all when it has fewer)."""
    if n <= 0 or len(scene) <= n:
        return scene
    idx = torch.randperm(len(scene), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return scene[idx]


def sog_psnr(scene, views, ref, tmp: Path) -> float:
    raw, sog = tmp / "raw.ply", tmp / "x.sog"
    write_scene(scene, raw)
    splat_transform("-g", "cpu", str(raw), str(sog))
    return fidelity(ref, read_scene(sog), views.heldout, with_ssim=False).psnr


def run_scene(path: Path, targets: list[float], args) -> list[dict]:
    scene = subsample(read_scene(path), args.subsample)
    views = split_views(scene, None, max_side=args.max_side)
    ref = render_views(scene, views.heldout)
    todo = [(t, f"{t:g}") for t in targets]
    if args.sog:
        with tempfile.TemporaryDirectory() as td:
            s = sog_psnr(scene, views, ref, Path(td))
        todo.append((math.ceil(s * 100.0) / 100.0, "SOG"))
    rows = []
    for target, label in todo:
        st = CompressSettings(target_psnr=target, max_side=args.max_side, **({"prune": 0.0} if args.prune0 else {}))
        t0 = time.perf_counter()
        res = compress_scene(scene, st)
        secs = time.perf_counter() - t0
        psnr = fidelity(ref, decode(res.data), views.heldout, with_ssim=False).psnr
        steps = res.model_steps
        row = {"scene": path.name, "gaussians": len(scene), "target": target, "label": label,
               "path": "--prune 0" if args.prune0 else "default", "max_side": args.max_side,
               "predicted": steps[0].predicted if steps else None, "measured": psnr,
               "landed": target <= psnr <= target + TOLERANCE, "bytes": len(res.data), "seconds": secs,
               "renders": sum(s.kind == "render" for s in steps), "encodes": sum(s.kind == "encode" for s in steps),
               "model": [{"kind": s.kind, "predicted": s.predicted, "measured": s.measured, "bytes": s.bytes,
                          "bits": {k: round(v, 3) for k, v in s.bits.items()}} for s in steps],
               "notes": res.notes}
        rows.append(row)
        pred = float("nan") if row["predicted"] is None else row["predicted"]
        print(f"  {label:>5s} {target:6.2f}  pred {pred:6.2f}  meas {psnr:6.2f}  {'ok' if row['landed'] else 'MISS'}  "
              f"{len(res.data):>9,} B  {secs:5.0f} s  renders {row['renders']} encodes {row['encodes']}", flush=True)
    return rows


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--targets", default="30,35,40,45")
    ap.add_argument("--sog", action="store_true", help="also SOG's own fidelity as a target")
    ap.add_argument("--prune0", action="store_true", help="the --prune 0 path (step sizes only)")
    ap.add_argument("--subsample", type=int, default=0, help="keep this many Gaussians per scene (0: all)")
    ap.add_argument("--max-side", type=int, default=480, help="render size (longest side, pixels)")
    ap.add_argument("--out", default=str(RESULTS / "scene_target.json"))
    args = ap.parse_args(argv)
    if args.sog and not install_splat_transform():
        print("splat-transform is not available: no SOG target")
        args.sog = False
    targets = [float(t) for t in args.targets.split(",") if t]
    load = os.getloadavg()
    rows: list[dict] = []
    for _, p in shared_scenes(args.scenes.split(",")):
        rows += run_scene(p, targets, args)
        Path(args.out).write_text(json.dumps(
            {"command": "python bench/scene_target.py " + " ".join(argv if argv is not None else sys.argv[1:]),
             "load_average_start": load, "load_average_end": os.getloadavg(), "tolerance_db": TOLERANCE,
             "note": "shared 2-core machine", "rows": rows}, indent=1))
    print(f"\n{'scene':24s} {'N':>7s} {'target':>6s} {'pred':>6s} {'meas':>6s} {'landed':>6s} {'bytes':>10s} {'s':>5s}")
    for r in rows:
        pred = float("nan") if r["predicted"] is None else r["predicted"]
        print(f"{r['scene']:24s} {r['gaussians']:>7d} {r['target']:6.2f} {pred:6.2f} {r['measured']:6.2f} "
              f"{str(r['landed']):>6s} {r['bytes']:>10,} {r['seconds']:5.0f}")
    print(f"landed {sum(r['landed'] for r in rows)}/{len(rows)}; load average {load} at start, {os.getloadavg()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
