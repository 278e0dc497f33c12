"""Feature-memory benchmark: held-out feature quality vs storage and build time.

Renders views of a real scene, extracts real CNN features (EfficientNet-Lite0, offline),
holds some views out, and compares on the held-out views (mean cosine similarity and
mean L2 distance to the true features, over valid feature cells):

* ours (M3-style): per-Gaussian queries of several dims, several bank caps, learnable
  and fixed random projection; storage = the .m3 payload without geometry
  (quantised entropy-coded queries + float16 banks + projections + header);
* Feature-3DGS-style: full D-dim float32 feature per Gaussian, rendered directly;
* LangSplat-style: an autoencoder D -> d -> D trained on the training features, a d-dim
  float32 latent per Gaussian, decoded per pixel by the frozen decoder.

Every method uses the same renderer, pixels, loss ((1 - cos) + relative MSE) and stopping
rule. Writes bench/results/memory.{json,csv,png}.

    python bench/memory.py                       # plant.splat, 30 views (4 held out), 640x480
    python bench/memory.py --quick               # a smaller grid
"""
from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.memory import DistillConfig, distill, load_features  # noqa: E402
from compress.memory.cli import holdout_indices  # noqa: E402
from compress.memory.extract import MISSING, available, extract_scene_features  # noqa: E402
from compress.memory.fit import (  # noqa: E402
    FieldTarget, FitConfig, ProjectionCache, _ViewSampler, evaluate_field, feature_camera, fit_field, target_scale,
)
from compress.memory.m3file import encode_m3  # noqa: E402
from splat.camera import orbit_cameras  # noqa: E402
from splat.threads import threads  # noqa: E402
from splat.progress import summary_table  # noqa: E402


def shared(*parts: str) -> Path:
    base = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data"))
    return base.joinpath(*parts)


def mean_feature(model, views) -> torch.Tensor:
    s, rng, acc, n = _ViewSampler(model), np.random.default_rng(0), None, 0
    for vi in views:
        _, t = s.sample(vi, 4096, rng)
        acc = t.double().sum(0) if acc is None else acc + t.double().sum(0)
        n += t.shape[0]
    return (acc / n).float()


def run_full(scene, cams, train, hold, model, per, fit: FitConfig, cache=None):
    """Feature-3DGS-style: a D-dim feature per Gaussian (trained in units of the feature RMS)."""
    views = [per[c] for c in train]
    sc = target_scale(model, views[:8])
    rms = sc ** -0.5
    vals = (mean_feature(model, views) / rms).expand(len(scene), -1).clone().requires_grad_(True)
    t = FieldTarget(model, per, slice(0, model.dim), lambda x: x * rms, sc)
    cfg = FitConfig(**{**vars(fit), "lr": 0.02})
    rep = fit_field(scene, cams, train, vals, [t], cfg, description="Feature-3DGS baseline", cache=cache)
    ev = evaluate_field(scene, cams, hold, vals.detach(), [t], cache=cache, render_scale=fit.render_scale)[model.name]
    return ev, rep, len(scene) * model.dim * 4


def train_autoencoder(model, views, d: int, hidden: int = 128, steps: int = 1500, seed: int = 0):
    """LangSplat-style autoencoder D -> d -> D on the training views' features (cos + relative MSE)."""
    torch.manual_seed(seed)
    s, rng = _ViewSampler(model), np.random.default_rng(seed)
    data = torch.cat([s.sample(vi, 4096, rng)[1] for vi in views])
    sc = float(data.shape[0] / (data.double() ** 2).sum())
    rms = sc ** -0.5
    D = model.dim
    enc = torch.nn.Sequential(torch.nn.Linear(D, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, d))
    dec = torch.nn.Sequential(torch.nn.Linear(d, hidden), torch.nn.ReLU(), torch.nn.Linear(hidden, D))
    opt = torch.optim.Adam(list(enc.parameters()) + list(dec.parameters()), lr=3e-3)
    for _ in range(steps):
        b = data[torch.randint(0, data.shape[0], (2048,))] / rms
        r = dec(enc(b))
        loss = (1 - torch.nn.functional.cosine_similarity(r, b, dim=-1)).mean() + ((r - b) ** 2).sum(-1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        z0 = enc(data.mean(0, keepdim=True) / rms)[0]
    for p in dec.parameters():
        p.requires_grad_(False)
    nparams = sum(p.numel() for p in dec.parameters())
    return dec, rms, sc, z0, nparams


def run_langsplat(scene, cams, train, hold, model, per, fit: FitConfig, d: int = 3, cache=None):
    t0 = time.perf_counter()
    views = [per[c] for c in train]
    dec, rms, sc, z0, nparams = train_autoencoder(model, views, d)
    ae_s = time.perf_counter() - t0
    vals = z0.expand(len(scene), -1).clone().requires_grad_(True)
    t = FieldTarget(model, per, slice(0, d), lambda x: dec(x) * rms, sc)
    cfg = FitConfig(**{**vars(fit), "lr": 0.05})
    rep = fit_field(scene, cams, train, vals, [t], cfg, description=f"LangSplat-style d={d}", cache=cache)
    rep.seconds += ae_s
    ev = evaluate_field(scene, cams, hold, vals.detach(), [t], cache=cache, render_scale=fit.render_scale)[model.name]
    return ev, rep, len(scene) * d * 4 + nparams * 4


def run_ours(scene, cams, fs, hold, q: int, k: int, learnable: bool, fit: FitConfig, cache=None):
    cfg = DistillConfig(query_dim=q, bank_max=k, learnable_projection=learnable, fit=fit)
    mem, rep = distill(scene, cams, fs, cfg, holdout=hold, cache=cache)
    name = fs.models[0].name
    nbytes = len(encode_m3(mem, embed_scene=False, scene_ref="scene", scene_sha256="0" * 64))
    fit = rep.fit
    total = SimpleNamespace(seconds=rep.seconds, steps=fit.steps, epochs=fit.epochs,
                            stop_reason=f"{fit.stop_reason}; bank {rep.bank_seconds:.0f} s")
    return rep.heldout[name], total, nbytes, rep.banks[name].size


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--scene", default=str(shared("scenes", "plant.splat")))
    ap.add_argument("--views", type=int, default=30)
    ap.add_argument("--holdout", type=int, default=4)
    ap.add_argument("--width", type=int, default=640)
    ap.add_argument("--height", type=int, default=480)
    ap.add_argument("--layer", default="b10")
    ap.add_argument("--work", default="/tmp/splat_bench_memory", help="where rendered features are cached")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--max-seconds", type=float, default=480.0, help="optimisation budget of our runs")
    ap.add_argument("--baseline-seconds", type=float, default=900.0, help="optimisation budget of the baselines")
    ap.add_argument("--render-scale", type=int, default=2, help="supervision grid, times the feature map's")
    ap.add_argument("--quick", action="store_true", help="fewer configurations")
    ap.add_argument("--reuse", action="store_true", help="reuse rows already measured in --work (same settings)")
    args = ap.parse_args(argv)
    if not available():
        print(MISSING)
        return 1
    from splat.io import read_scene

    torch.set_num_threads(2)
    scene = read_scene(args.scene)
    cams = orbit_cameras(scene, args.views, width=args.width, height=args.height)
    hold = holdout_indices(len(cams), args.holdout)
    train = [c for c in range(len(cams)) if c not in hold]
    work = Path(args.work) / f"{Path(args.scene).stem}_{args.views}_{args.width}x{args.height}_{args.layer}"
    t0 = time.perf_counter()
    if not (work / "features.json").exists():
        extract_scene_features(scene, cams, work, layers=[args.layer], holdout=hold)
    extract_s = time.perf_counter() - t0
    fs = load_features(work)
    model = fs.models[0]
    per = fs.match(cams)[0]
    fit = FitConfig(max_seconds=args.max_seconds, render_scale=args.render_scale)
    fit_base = FitConfig(max_seconds=args.baseline_seconds, max_epochs=200, render_scale=args.render_scale)
    # the per-view blend operators are shared by every method (built once, timed once)
    cache = ProjectionCache(scene)
    t0 = time.perf_counter()
    with threads(1):
        for c in range(len(cams)):
            cache.operator(feature_camera(cams[c], model, fit.render_scale))  # training and evaluation grid
    operator_s = time.perf_counter() - t0
    print(f"{Path(args.scene).name}: {len(scene):,} Gaussians, {len(cams)} views ({len(hold)} held out) at "
          f"{args.width}x{args.height}; {model.name} D={model.dim} maps {model.feature_size}; "
          f"features ready in {extract_s:.1f} s; blend operators {operator_s:.1f} s; load {os.getloadavg()[0]:.2f}",
          flush=True)

    rows = []
    cache_file = work / f"rows_{args.max_seconds:g}_{args.baseline_seconds:g}_x{fit.render_scale}e.jsonl"
    done = {}
    if args.reuse and cache_file.exists():
        for line in cache_file.read_text().splitlines():
            r = json.loads(line)
            done[(r["method"], r["query_dim"], r["bank_max"], r["projection"])] = r

    def cached(method, q, k, learn) -> bool:
        r = done.get((method, q, k, learn))
        if r is not None:
            rows.append(r)
            print(f"  {method:24s} q={q!s:>4} K={k!s:>5} cos={r['heldout_cos']:.4f} (reused)", flush=True)
        return r is not None

    def add(method, q, k, learn, ev, rep, nbytes, bank=None):
        rows.append({
            "method": method, "query_dim": q, "bank_max": k, "bank_size": bank, "projection": learn,
            "heldout_cos": ev["cos"], "heldout_l2": ev["l2"], "pixels": ev["pixels"], "bytes": nbytes,
            "train_seconds": rep.seconds, "steps": rep.steps, "epochs": rep.epochs, "stop": rep.stop_reason,
        })
        r = rows[-1]
        with open(cache_file, "a") as f:
            f.write(json.dumps(r) + "\n")
        print(f"  {method:24s} q={q!s:>4} K={k!s:>5} cos={r['heldout_cos']:.4f} L2={r['heldout_l2']:.2f} "
              f"bytes={nbytes:,} time={rep.seconds:.1f}s ({rep.stop_reason})", flush=True)

    with threads(1):
        if not cached("feature3dgs-full", model.dim, None, None):
            ev, rep, nb = run_full(scene, cams, train, hold, model, per, fit_base, cache)
            add("feature3dgs-full", model.dim, None, None, ev, rep, nb)
        if not cached("langsplat-ae-d3", 3, None, None):
            ev, rep, nb = run_langsplat(scene, cams, train, hold, model, per, fit_base, d=3, cache=cache)
            add("langsplat-ae-d3", 3, None, None, ev, rep, nb)
        grid = [(16, 4096, True), (16, 4096, False), (8, 1024, True)]
        if not args.quick:
            grid += [(8, 1024, False), (4, 1024, True), (8, 4096, True), (16, 1024, True), (32, 4096, True),
                     (16, 256, True)]
        for q, k, learn in grid:
            proj = "learnable" if learn else "fixed"
            if cached("ours", q, k, proj):
                continue
            ev, rep, nb, bank = run_ours(scene, cams, fs, hold, q, k, learn, fit, cache)
            add("ours", q, k, proj, ev, rep, nb, bank)

    full = rows[0]
    for r in rows:
        r["cos_gap_vs_full"] = full["heldout_cos"] - r["heldout_cos"]
        r["storage_ratio_vs_full"] = full["bytes"] / r["bytes"]
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    meta = {"scene": Path(args.scene).name, "gaussians": len(scene), "views": len(cams), "holdout": hold,
            "size": [args.width, args.height], "model": model.name, "dim": model.dim,
            "feature_size": list(model.feature_size), "load_avg": os.getloadavg()[0],
            "operator_seconds": operator_s, "extract_seconds": extract_s,
            "note": "train_seconds exclude building the shared per-view blend operators (operator_seconds, once)",
            "command": "python bench/memory.py " + " ".join(argv if argv is not None else sys.argv[1:])}
    meta["render_scale"] = args.render_scale
    stem = "memory" if args.render_scale == 2 else f"memory_x{args.render_scale}"
    (out / f"{stem}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    with open(out / f"{stem}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    from rich.console import Console

    Console().print(summary_table(
        f"Feature memory on {meta['scene']} ({len(scene):,} Gaussians, {model.name} D={model.dim}, {len(hold)} held-out views)",
        ["method", "q", "K (bank)", "proj", "held-out cos", "gap", "L2", "bytes", "ratio", "time s"],
        [(r["method"], str(r["query_dim"]), f"{r['bank_max']} ({r['bank_size']})" if r["bank_max"] else "-",
          r["projection"] or "-", f"{r['heldout_cos']:.4f}", f"{r['cos_gap_vs_full']:+.4f}", f"{r['heldout_l2']:.2f}",
          f"{r['bytes']:,}", f"{r['storage_ratio_vs_full']:.1f}x", f"{r['train_seconds']:.0f}") for r in rows]))
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(7, 4.5))
        for r in rows:
            mk = {"feature3dgs-full": "s", "langsplat-ae-d3": "^"}.get(r["method"], "o")
            ax.scatter(r["bytes"] / 1e6, r["heldout_cos"], marker=mk, s=50)
            lab = r["method"] if r["method"] != "ours" else f"ours q={r['query_dim']} K={r['bank_max']} {r['projection']}"
            ax.annotate(lab, (r["bytes"] / 1e6, r["heldout_cos"]), fontsize=7, xytext=(4, 2), textcoords="offset points")
        ax.set_xscale("log")
        ax.set_xlabel("feature storage (MB, log)")
        ax.set_ylabel("held-out mean cosine similarity")
        ax.set_title(f"{meta['scene']}: {model.name}, D={model.dim}")
        ax.grid(alpha=0.3)
        fig.tight_layout()
        fig.savefig(out / f"{stem}.png", dpi=120)
    except ImportError:
        print("matplotlib not installed: no plot")
    return 0


if __name__ == "__main__":
    sys.exit(main())
