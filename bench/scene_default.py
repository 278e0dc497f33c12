"""The scene codec's default path (`splat compress in -o out.lgs`, nothing else set) on each scene.

For every scene: raw INRIA PLY size (our float32 writer), `.lgs` size, ratio, fidelity (PSNR and
SSIM of the decoded scene's renders against the original's on the held-out views), encode and
decode time, the prune ratio the default chose, and how the file's bytes split between the
precision classes (``class_split``: bytes per class-0 / class-1 Gaussian, per stream in the JSON). Prints a table and writes
bench/results/scene_default.{json,csv}. The default is time-budgeted (`--max-seconds`, 60 s),
so a loaded machine gets fewer prune rounds: check the load first (it is recorded).

    .venv/bin/python bench/scene_default.py                       # the shared scenes
    .venv/bin/python bench/scene_default.py --scenes plant.splat biker.spz
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the repository's packages, not bench/render.py

from compress.scene import CompressSettings, compress_scene  # noqa: E402
from compress.scene.bit_split import class_split  # noqa: E402
from compress.scene.codec import decode  # noqa: E402
from splat.io import read_scene, write_scene  # noqa: E402
from splat.progress import summary_table  # noqa: E402

DATA = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "scenes"
SCENES = ["fruit_drops_sh3.ply", "donut_sh0.ply", "guitar.compressed.ply", "plant.splat", "biker.spz"]
RESULTS = ROOT / "bench" / "results" / "scene_default"


def run(path: Path) -> dict:
    scene = read_scene(path)
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw.ply"
        write_scene(scene, raw)
        raw_bytes = raw.stat().st_size
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    res = compress_scene(scene, CompressSettings())
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    decode(res.data)
    dec = time.perf_counter() - t0
    fid = res.fidelity
    split = class_split(res.data) if "PCLS" in res.report.stream_bytes else None
    return {
        "scene": path.name, "gaussians": len(scene), "sh_degree": scene.sh_degree, "raw_ply_bytes": raw_bytes,
        "lgs_bytes": len(res.data), "ratio": raw_bytes / len(res.data), "psnr": None if fid is None else fid.psnr,
        "ssim": None if fid is None else fid.ssim, "prune": res.prune, "level": res.level, "encode_s": enc,
        "decode_s": dec, "load_before": load, "notes": res.notes,
        "class0_bytes_per_gaussian": None if split is None else split.bytes_per_gaussian(0),
        "class1_bytes_per_gaussian": None if split is None else split.bytes_per_gaussian(1),
        "class_split": None if split is None else split.to_json(),
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scenes", nargs="+", default=SCENES, help="names under ../shared/data/scenes/")
    ap.add_argument("--out", default=str(RESULTS), help="results path without extension")
    args = ap.parse_args(argv)
    rows = []
    for name in args.scenes:
        path = DATA / name
        if not path.exists():
            print(f"skipped {name}: {path} not found", file=sys.stderr)
            continue
        rows.append(run(path))
        print(f"{name}: {rows[-1]['ratio']:.1f}x at {rows[-1]['psnr']:.2f} dB in {rows[-1]['encode_s']:.0f} s", flush=True)
    out = Path(args.out)
    out.with_suffix(".json").write_text(json.dumps(rows, indent=1))
    keys = [k for k in rows[0] if k not in ("notes", "class_split")] if rows else []
    with open(out.with_suffix(".csv"), "w", newline="") as f:
        w = csv.DictWriter(f, keys, extrasaction="ignore")
        w.writeheader()
        w.writerows(rows)
    from rich.console import Console

    Console().print(summary_table("default path (.lgs v2)", ["scene", "Gaussians", "raw PLY", ".lgs", "ratio", "PSNR", "prune",
                                                            "encode s", "decode s", "load"],
                                  [(r["scene"], r["gaussians"], r["raw_ply_bytes"], r["lgs_bytes"], f"{r['ratio']:.1f}x",
                                    f"{r['psnr']:.2f}", f"{r['prune']:.2f}", r["encode_s"], r["decode_s"],
                                    r["load_before"]) for r in rows]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
