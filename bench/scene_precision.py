"""Precision classes: bytes and fidelity of one pruned scene at several class settings.

    .venv/bin/python bench/scene_precision.py [--scene donut_sh0.ply] [--prune 0.66]

Prunes the scene by significance, encodes it at 8 bits with the least significant fraction
of the Gaussians stored d bits coarser (scales, rotations, colour), and measures fidelity on
8 held-out 240x180 views. Prints one line per setting with the bytes per stream and writes
bench/results/scene_precision.json.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.scene.codec import decode, encode  # noqa: E402
from compress.scene.eval import fidelity, render_views  # noqa: E402
from compress.scene.prune import prune  # noqa: E402
from compress.scene.rate import level_config  # noqa: E402
from compress.scene.significance import significance  # noqa: E402
from compress.scene.views import split_views  # noqa: E402
from splat.io import read_scene  # noqa: E402

SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
SETTINGS = [(0.0, 0), (0.5, 1), (0.5, 2), (0.5, 3), (0.75, 2), (0.75, 3), (0.9, 2), (0.9, 3), (0.9, 4)]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scene", default="donut_sh0.ply")
    ap.add_argument("--prune", type=float, default=0.66)
    args = ap.parse_args(argv)
    scene = read_scene(SHARED / "scenes" / args.scene)
    views = split_views(scene, None, max_side=240)
    ref = render_views(scene, views.heldout)
    scores = significance(scene, views.train)
    pruned, keep = prune(scene, scores, args.prune)
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}; {args.scene} pruned {args.prune:.2f}: {len(pruned):,} Gaussians")
    rows = []
    for frac, drop in SETTINGS:
        cfg = replace(level_config(1), low_fraction=frac, low_drop=max(drop, 1))
        data, rep = encode(pruned, scores[keep], cfg)
        fid = fidelity(ref, decode(data), views.heldout, with_ssim=False)
        print(f"low {frac:4.2f} drop {drop}: {len(data):>9,} B  {fid.psnr:6.2f} dB  {rep.stream_bytes}", flush=True)
        rows.append({"low_fraction": frac, "low_drop": drop, "bytes": len(data), "psnr": fid.psnr,
                     "stream_bytes": rep.stream_bytes})
    out = {"scene": args.scene, "prune": args.prune, "gaussians": len(pruned), "load_average": load, "rows": rows}
    (ROOT / "bench" / "results" / "scene_precision.json").write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
