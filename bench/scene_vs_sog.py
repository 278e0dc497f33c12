""".lgs against SOG at SOG's own fidelity (no pruning), on the SH-0 shared scenes, in one run.

    .venv/bin/python bench/scene_vs_sog.py [--scenes donut_sh0.ply,...] [--levels] [--only-default]
        [--no-plan-prune] [--subsample N] [--out DIR]

Per scene: the raw INRIA PLY (our writer) goes through splat-transform (pinned in
bench/package.json, ``-g cpu``) to SOG; SOG's fidelity is the PSNR of its decoded scene's
renders against the original's renders on the held-out views (``compress.scene.views``,
``render.metrics`` via ``compress.scene.eval``). Then ``.lgs`` is compressed with
``--target-psnr <SOG's PSNR, rounded up to 0.01 dB>`` as a user runs it (the planned pruning of
``compress.scene.prune_plan``, then step sizes on the error model,
``compress.scene.rate_model.model_allocate``) and with ``--prune 0`` added (step sizes only;
``--only-default`` skips that row); with ``--no-plan-prune``, also the fine-tuned pruning rounds
for the target (slow); with ``--levels``, at the fixed levels 1 and 2 without pruning. ``--subsample N``: a seeded random N
Gaussians of each scene (SOG written from the same subsample), for quick looks. Reports bytes, the size ratio SOG/.lgs, the model's predicted PSNR (before
any encode) against the measured one, encode and decode time, the number of encodes, bytes
per stream and the chosen step sizes (bits = log2(steps + 1)). Writes
bench/results/scene_vs_sog.csv and .json.
"""
from __future__ import annotations

import argparse
import csv
import math
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


def run_scene(path: Path, tmp: Path, levels: bool = False, only_default: bool = False, finetuned: bool = False,
              subsample: int = 0) -> list[dict]:
    scene = read_scene(path)
    if subsample:
        from scene_target import subsample as keep_some

        scene = keep_some(scene, subsample)
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
    target = math.ceil(sog_psnr * 100.0) / 100.0  # never below SOG's own fidelity
    settings = [(f"--target-psnr {target:.2f}", CompressSettings(target_psnr=target))]
    if not only_default:
        settings.append((f"--target-psnr {target:.2f} --prune 0", CompressSettings(target_psnr=target, prune=0.0)))
    if finetuned:
        settings.append((f"--target-psnr {target:.2f} --no-plan-prune",
                         CompressSettings(target_psnr=target, plan_prune=False)))
    if levels:
        settings += [("level 1, no pruning", CompressSettings(prune=0.0, level=1, check_fidelity=False)),
                     ("level 2, no pruning", CompressSettings(prune=0.0, level=2, check_fidelity=False))]
    for setting, st in settings:
        load = os.getloadavg()
        t0, c0 = time.perf_counter(), time.process_time()
        res = compress_scene(scene, st)
        enc, enc_cpu = time.perf_counter() - t0, time.process_time() - c0
        dec = decode(res.data)
        psnr = fidelity(ref, dec, views.heldout, with_ssim=False).psnr
        box = unpack_container(res.data, magic=MAGIC)
        cfg = {k: round(float(box.header["settings"][k]), 3) for k in BITS}
        cfg["class_step"] = box.header["settings"].get("class_step", 1.0) if box.header["settings"]["max_drop"] else 0
        steps = res.model_steps
        row = {"scene": path.name, "gaussians": n, "format": "lgs", "setting": setting, "bytes": len(res.data),
               "psnr": psnr, "encode_s": enc, "encode_cpu_s": enc_cpu,
               "load_average": [load, os.getloadavg()], "stage_s": res.timings, "decode_s": median_time(lambda: decode(res.data)),
               "sog_over_lgs": rows[0]["bytes"] / len(res.data), "prune": res.prune,
               "notes": [x for x in res.notes if x.startswith("prune plan")], "meets_sog_psnr": psnr >= sog_psnr,
               "version": box.version, "streams": res.report.stream_bytes, "bits": cfg, "trials": len(res.trials),
               "predicted_psnr": steps[0].predicted if steps else None,
               "render_checks": sum(s.kind == "render" for s in steps),
               "model": [{"predicted": s.predicted, "measured": s.measured, "bytes": s.bytes, "kind": s.kind}
                         for s in steps]}
        rows.append(row)
        print(f"  lgs   {row['bytes']:>10,} B  {psnr:6.2f} dB  SOG/lgs {row['sog_over_lgs']:.3f}  enc {enc:6.1f} s ({enc_cpu:.1f} CPU s)  "
              f"dec {row['decode_s']:.3f} s  v{box.version}  {setting}  {cfg}  "
              + "  ".join(f"[pred {s.predicted:.2f} meas {s.measured:.2f}]" for s in steps), flush=True)
    return rows


def write(rows: list[dict], out: Path, load_start) -> None:
    cols = ["scene", "gaussians", "format", "setting", "bytes", "psnr", "predicted_psnr", "sog_over_lgs",
            "meets_sog_psnr", "encode_s", "trials", "decode_s", "version", "bits", "streams"]
    with open(out / "scene_vs_sog.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else json.dumps(v) if isinstance(v, dict) else v)
                        for k, v in r.items()})
    (out / "scene_vs_sog.json").write_text(json.dumps(
        {"load_average_start": load_start, "load_average_end": os.getloadavg(), "note": "shared 2-core machine",
         "torch_threads": torch.get_num_threads(), "rows": rows}, indent=1))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--levels", action="store_true", help="also the fixed levels 1 and 2 without pruning")
    ap.add_argument("--only-default", action="store_true", help="only the default targeted row, not --prune 0")
    ap.add_argument("--no-plan-prune", action="store_true", help="also the fine-tuned pruning rounds for the target (slow)")
    ap.add_argument("--subsample", type=int, default=0, help="keep this many Gaussians per scene (0: all)")
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
            rows += run_scene(p, Path(td), args.levels, args.only_default, args.no_plan_prune, args.subsample)
        write(rows, out, load)
    print(f"\n{'scene':24s} {'SOG B':>10s} {'SOG dB':>7s} {'SOG s':>6s} {'.lgs B':>10s} {'pred dB':>7s} {'.lgs dB':>7s} "
          f"{'+dB':>5s} {'SOG/.lgs':>8s} {'enc s':>6s} {'CPU s':>6s} {'encodes':>7s} {'prune':>6s}  setting")
    ratios: dict[str, list[float]] = {}
    for r in rows:
        if r["format"] == "lgs" and r["setting"].startswith("--target-psnr"):
            s = next(x for x in rows if x["scene"] == r["scene"] and x["format"] == "sog")
            kind = " ".join(r["setting"].split()[2:]) or "default"
            ratios.setdefault(kind, []).append(r["sog_over_lgs"])
            pred = r["predicted_psnr"] if r["predicted_psnr"] is not None else float("nan")
            print(f"{r['scene']:24s} {s['bytes']:>10,} {s['psnr']:7.2f} {s['encode_s']:6.1f} {r['bytes']:>10,} {pred:7.2f} "
                  f"{r['psnr']:7.2f} {r['psnr'] - s['psnr']:+5.2f} {r['sog_over_lgs']:8.3f} {r['encode_s']:6.1f} "
                  f"{r['encode_cpu_s']:6.1f} "
                  f"{r['trials']:7d} {r.get('prune', 0.0):6.3f}  {kind}")
    for kind, rs in ratios.items():
        print(f"{kind}: mean SOG/.lgs {sum(rs) / len(rs):.3f}, least {min(rs):.3f}")
    print(f"load average {load} at start, {os.getloadavg()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
