"""Cost of one image-fitting step, per component, for two checkouts in the same run.

Compares an old checkout (``--old``, e.g. the main branch) with this one (``--new``),
each in its own subprocess with its tree first on ``sys.path`` and runs interleaved, so
both see the same machine load:

1. **Per step** (``--repeats`` medians, wall and CPU ms): a worker decodes one fitted ``.gsi`` of the
   image (the first full fit's file, or ``--gsi``) and starts the fitter from it with its
   quantiser, then times the pieces of a full-resolution QAT step: the straight-through
   quantiser, the render forward and backward (``render/image2d``), the fused loss
   (value and gradient), the rate term (forward and backward) and whole steps
   (``_Fitter.step``, Adam included).
2. **Whole fits**: ``splat fit-image IMAGE --bpp B`` end to end (wall, CPU, peak RSS,
   real bpp and PSNR of the file), ``--fits`` times per checkout, interleaved.

Writes bench/results/image_step.json with the load average around every run. Near idle:

    .venv/bin/python bench/image_step.py --old ../main            # kodim07 at 0.5 bpp, ~3 min idle
    .venv/bin/python bench/image_step.py --old ../main --fits 0   # per-step only, ~1 min
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results" / "image_step.json"
COMPONENTS = ["quantise", "render_forward", "render_backward", "loss", "rate_term", "step"]


def _kodak() -> Path:
    return Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"


def _worker(tree: Path, image: Path, gsi: Path, repeats: int) -> dict:
    """Runs inside a subprocess whose ``sys.path`` starts with ``tree``: per-component ms."""
    sys.path.insert(0, str(tree))
    import torch

    from compress.image.fit import FitConfig, _Fitter
    from compress.image.gsi import decode, encode
    from compress.image.imageio import load_image
    from render.image2d import conics_from_scale_rotation, rasterize_conics

    target = torch.from_numpy(load_image(image).pixels).float().contiguous()
    g = decode(gsi.read_bytes())
    encode(g, g.spec)  # loads (or compiles) this tree's cached coder kernels outside the timing
    cfg = FitConfig()
    ft = _Fitter(target, len(g), cfg, g, g.spec)
    times: dict[str, list[float]] = {k: [] for k in COMPONENTS}
    cpu: dict[str, list[float]] = {k: [] for k in COMPONENTS}

    def timed(name, fn):
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        times[name].append(1e3 * (time.perf_counter() - t0))
        cpu[name].append(1e3 * (time.process_time() - c0))
        return out

    for it in range(repeats + 2):  # the first two rounds warm caches and are dropped
        with torch.no_grad():
            m, s, r, col = ft.current(True)
        m, s, r, col = (x.detach().clone().requires_grad_(True) for x in (m, s, r, col))
        timed("quantise", lambda: ft.current(True))
        q = conics_from_scale_rotation(s, r)
        img = timed("render_forward", lambda: rasterize_conics(m, q, col, ft.w, ft.h, mode=cfg.mode, k=cfg.k))
        fl = ft.loss(1.0)
        loss = timed("loss", lambda: fl.loss_tensor(img))
        gimg = torch.autograd.grad(loss, img, retain_graph=True)[0]
        timed("render_backward", lambda: torch.autograd.grad(img, [m, q, col], gimg))
        timed("rate_term", lambda: ft.rate_bpp().backward())
        timed("step", lambda: ft.step(True, 1.0))
        if it < 2:
            for v in list(times.values()) + list(cpu.values()):
                v.clear()
    return ({k: statistics.median(v) for k, v in times.items()}
            | {f"{k}_cpu": statistics.median(v) for k, v in cpu.items()} | {"repeats": repeats})


def _run_worker(tree: Path, image: Path, gsi: Path, repeats: int) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, str(Path(__file__).resolve()), "--worker", str(tree), "--image", str(image),
           "--gsi", str(gsi), "--repeats", str(repeats)]
    load = os.getloadavg()
    out = subprocess.run(cmd, check=True, cwd=tree, env=env, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1]) | {"load_before": load, "load_after": os.getloadavg()}


def _fit(tree: Path, image: Path, bpp: float, out: Path) -> dict:
    """One ``splat fit-image`` run of ``tree`` in a subprocess: wall, CPU, peak RSS, real bpp, PSNR."""
    sys.path.insert(0, str(ROOT))
    import torch

    from compress.image import decode
    from compress.image.imageio import load_image
    from render.metrics import psnr

    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, "-m", "splat.cli", "fit-image", str(image), "--bpp", str(bpp), "-o", str(out), "--force"]
    load = os.getloadavg()
    c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    data = out.read_bytes()
    g = decode(data)
    target = torch.from_numpy(load_image(image).pixels)
    return {"bpp": len(data) * 8 / (g.width * g.height), "psnr": float(psnr(g.render().clamp(0, 1), target)),
            "gaussians": len(g), "fit_wall_s": wall, "fit_cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
            "fit_peak_rss_mb": c1.ru_maxrss / 1024, "load_before": load, "load_after": os.getloadavg()}


def _warm(tree: Path, image: Path) -> None:
    """A tiny fit in ``tree`` so that numba's per-path caches are built before any timing."""
    code = ("import sys, torch; sys.path.insert(0, sys.argv[1]);"
            "from compress.image.imageio import load_image; from compress.image.rate import fit_rate;"
            "from compress.image.fit import FitConfig;"
            "px = torch.from_numpy(load_image(sys.argv[2]).pixels)[:256, :256].contiguous();"
            "fit_rate(px, bpp=0.5, cfg=FitConfig(steps=40))")
    subprocess.run([sys.executable, "-c", code, str(tree), str(image)], check=True, cwd=tree,
                   env=dict(os.environ, PYTHONPATH=str(tree)), stdout=subprocess.DEVNULL)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--old", type=Path, required=False, help="the checkout to compare against (e.g. ../main)")
    ap.add_argument("--new", type=Path, default=ROOT)
    ap.add_argument("--image", default="kodim07")
    ap.add_argument("--bpp", type=float, default=0.5)
    ap.add_argument("--repeats", type=int, default=15, help="timed rounds per component and worker")
    ap.add_argument("--fits", type=int, default=1, help="whole fits per checkout (0: per-step only)")
    ap.add_argument("--gsi", type=Path, help="fitted file for the per-step part (default: the first fit's)")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--worker", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    image = Path(args.image) if Path(args.image).suffix else _kodak() / f"{args.image}.png"
    if args.worker is not None:
        print(json.dumps(_worker(args.worker, image, args.gsi, args.repeats)))
        return
    if args.old is None:
        ap.error("--old is required")
    trees = {"old": args.old.resolve(), "new": args.new.resolve()}
    res: dict = {"image": image.stem, "bpp": args.bpp, "trees": {k: str(v) for k, v in trees.items()},
                 "cores": os.cpu_count(), "fits": [], "steps": [],
                 "command": f"python bench/image_step.py --old {args.old} --image {args.image} --bpp {args.bpp}"
                            f" --repeats {args.repeats} --fits {args.fits}"}
    with tempfile.TemporaryDirectory() as tmp:
        for tree in trees.values():
            _warm(tree, image)
        gsi = args.gsi
        for rep in range(args.fits):
            for name, tree in trees.items():
                out = Path(tmp) / f"{name}{rep}.gsi"
                row = {"tree": name, "rep": rep} | _fit(tree, image, args.bpp, out)
                print(json.dumps({k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
                res["fits"].append(row)
                if gsi is None:
                    gsi = out
        if gsi is None:
            ap.error("--fits 0 needs --gsi")
        for rep in range(2):  # old, new, new, old: a drifting load hits both alike
            for name in (["old", "new"] if rep == 0 else ["new", "old"]):
                row = {"tree": name, "rep": rep} | _run_worker(trees[name], image, gsi, args.repeats)
                print(json.dumps({k: (round(v, 2) if isinstance(v, float) else v) for k, v in row.items()}), flush=True)
                res["steps"].append(row)
    summary = {}
    for k in COMPONENTS + [f"{c}_cpu" for c in COMPONENTS]:
        old = statistics.mean(r[k] for r in res["steps"] if r["tree"] == "old")
        new = statistics.mean(r[k] for r in res["steps"] if r["tree"] == "new")
        summary[k] = {"old_ms": old, "new_ms": new, "speedup": old / new}
    if res["fits"]:
        for key in ("fit_wall_s", "fit_cpu_s", "psnr", "bpp"):
            old = statistics.mean(r[key] for r in res["fits"] if r["tree"] == "old")
            new = statistics.mean(r[key] for r in res["fits"] if r["tree"] == "new")
            summary[key] = {"old": old, "new": new, "ratio": old / new}
    res["summary"] = summary
    print(f"{'':18} {'old':>10} {'new':>10} {'old/new':>8}")
    for k, v in summary.items():
        a, b = (v["old_ms"], v["new_ms"]) if "old_ms" in v else (v["old"], v["new"])
        r = v.get("speedup", v.get("ratio"))
        print(f"{k:18} {a:10.3f} {b:10.3f} {r:8.3f}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))


if __name__ == "__main__":
    main()
