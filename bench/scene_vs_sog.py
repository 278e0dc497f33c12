""".lgs against SOG at SOG's own fidelity (no pruning), on the SH-0 shared scenes, in one run.

    .venv/bin/python bench/scene_vs_sog.py [--scenes donut_sh0.ply,...]

Per scene: the raw INRIA PLY (our writer) goes through splat-transform (pinned in
bench/package.json, ``-g cpu``) to SOG; SOG's fidelity is the PSNR of its decoded scene's
renders against the original's renders on the held-out views (``compress.scene.views``,
``render.metrics`` via ``compress.scene.eval``). Then ``.lgs`` is compressed with
``--target-psnr <SOG's PSNR> --prune 0`` (per-attribute bit allocation,
``compress.scene.rate.allocate``) and, for reference, at the fixed levels 1 and 2 without
pruning. Reports bytes, the size ratio SOG/.lgs, PSNR, encode and decode time, bytes per
stream and the chosen bit depths. Writes bench/results/scene_vs_sog.csv and .json.
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

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from scene_rd import install_splat_transform, median_time, shared_scenes, splat_transform  # noqa: E402

from compress.container import unpack_container  # noqa: E402
from compress.scene.codec import MAGIC, decode  # noqa: E402
from compress.scene.eval import fidelity, render_views  # noqa: E402
from compress.scene.pipeline import CompressSettings, compress_scene  # noqa: E402
from compress.scene.views import split_views  # noqa: E402
from splat.io import read_scene, write_scene  # noqa: E402

SCENES = ["donut_sh0.ply", "guitar.compressed.ply", "plant.splat", "biker.spz"]  # the SH-0 shared scenes
RESULTS = ROOT / "bench" / "results"
BITS = ("position_bits", "scale_bits", "rotation_bits", "opacity_bits", "dc_bits")


def run_scene(path: Path, tmp: Path) -> list[dict]:
    scene = read_scene(path)
    n = len(scene)
    views = split_views(scene, None)
    ref = render_views(scene, views.heldout)
    raw, sog = tmp / "raw.ply", tmp / "x.sog"
    write_scene(scene, raw)
    enc = splat_transform("-g", "cpu", str(raw), str(sog))
    sog_psnr = fidelity(ref, read_scene(sog), views.heldout, with_ssim=False).psnr
    rows = [{"scene": path.name, "gaussians": n, "format": "sog", "setting": "splat-transform -g cpu",
             "bytes": sog.stat().st_size, "psnr": sog_psnr, "encode_s": enc,
             "decode_s": median_time(lambda: read_scene(sog))}]
    print(f"  sog   {rows[0]['bytes']:>10,} B  {sog_psnr:6.2f} dB", flush=True)
    for setting, st in ((f"--target-psnr {sog_psnr:.2f} --prune 0", CompressSettings(target_psnr=round(sog_psnr, 2), prune=0.0)),
                        ("level 1, no pruning", CompressSettings(prune=0.0, level=1, check_fidelity=False)),
                        ("level 2, no pruning", CompressSettings(prune=0.0, level=2, check_fidelity=False))):
        t0 = time.perf_counter()
        res = compress_scene(scene, st)
        enc = time.perf_counter() - t0
        dec = decode(res.data)
        psnr = fidelity(ref, dec, views.heldout, with_ssim=False).psnr
        settings = unpack_container(res.data, magic=MAGIC).header["settings"]
        cfg = {k: settings[k] for k in BITS}
        row = {"scene": path.name, "gaussians": n, "format": "lgs", "setting": setting, "bytes": len(res.data),
               "psnr": psnr, "encode_s": enc, "decode_s": median_time(lambda: decode(res.data)),
               "sog_over_lgs": rows[0]["bytes"] / len(res.data), "meets_sog_psnr": psnr >= round(sog_psnr, 2),
               "streams": res.report.stream_bytes, "bits": cfg, "trials": len(res.trials)}
        rows.append(row)
        print(f"  lgs   {row['bytes']:>10,} B  {psnr:6.2f} dB  SOG/lgs {row['sog_over_lgs']:.3f}  enc {enc:6.1f} s  "
              f"dec {row['decode_s']:.3f} s  {setting}  {cfg}", flush=True)
    return rows


def write(rows: list[dict], out: Path, load_start) -> None:
    cols = ["scene", "gaussians", "format", "setting", "bytes", "psnr", "sog_over_lgs", "meets_sog_psnr", "encode_s",
            "decode_s", "bits", "streams"]
    with open(out / "scene_vs_sog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, dict) else v)
                        for k, v in r.items()})
    (out / "scene_vs_sog.json").write_text(json.dumps(
        {"load_average_start": load_start, "load_average_end": os.getloadavg(), "note": "shared 2-core machine",
         "torch_threads": torch.get_num_threads(), "rows": rows}, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if not install_splat_transform():
        print("splat-transform is not available: no SOG to compare with")
        return 1
    load = os.getloadavg()
    print(f"load average at start: {load}")
    rows: list[dict] = []
    for _, p in shared_scenes(args.scenes.split(",")):
        with tempfile.TemporaryDirectory() as td:
            rows += run_scene(p, Path(td))
        write(rows, out, load)
    print(f"\n{'scene':24s} {'SOG B':>10s} {'SOG dB':>7s} {'.lgs B':>10s} {'.lgs dB':>7s} {'SOG/.lgs':>8s}")
    for r in rows:
        if r["format"] == "lgs" and r["setting"].startswith("--target-psnr"):
            s = next(x for x in rows if x["scene"] == r["scene"] and x["format"] == "sog")
            print(f"{r['scene']:24s} {s['bytes']:>10,} {s['psnr']:7.2f} {r['bytes']:>10,} {r['psnr']:7.2f} {r['sog_over_lgs']:8.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
