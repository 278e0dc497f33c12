"""The GPU check's driver: stages with their own timeouts, results written after every stage.

    python bench/gpu_check.py                      # on a machine with an NVIDIA GPU (see gpu_check.sh)
    python bench/gpu_check.py --dry-run            # print the plan, write it as the results, run nothing
    python bench/gpu_check.py --device cpu --quick --scenes fruit --stages env,render
                                                   # the same stages on the CPU backend, tiny sizes

Stages (in this order; each runs in a child process, killed at its timeout; the budget
caps the total, later stages are marked "skipped" when it is spent):

* env: torch, CUDA, GPU, gsplat version and its alpha clamp, nvcc;
* image_fit: 2D Gaussian image fitting ("sum" rule, the torch path) on a Kodak image;
* compile: gsplat's JIT compilation (first use of its kernels);
* tests: the ``cuda``-marked tests (they write bench/results/gsplat_vs_cpu.json);
* render: forward and forward+backward per scene (biker, playbot);
* significance: blend weights over 24 views per scene;
* finetune: fine-tune steps per scene (compress.scene.distill.finetune).

Writes bench/results/gpu_check.json (``--out``): one record per stage with its status
("ok", "error", "timeout", "skipped", "planned"), seconds, and measurements.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

STAGES: dict[str, int] = {  # name -> default timeout (s)
    "env": 60,
    "image_fit": 60,
    "compile": 330,
    "tests": 120,
    "render": 60,
    "significance": 60,
    "finetune": 60,
}
SCENES = {  # name -> path under the data folder
    "biker": "scenes/biker.spz",
    "playbot": "scenes/playbot/0_0/meta.json",
    "fruit": "scenes/fruit_drops_sh3.ply",
}
DEFAULT_SCENES = ("biker", "playbot")
NEEDS_GSPLAT = ("tests", "render", "significance", "finetune")  # on cuda: skipped when compile failed
IMAGE = "images/kodak/kodim01.png"


def default_data() -> Path:
    """The shared data folder: ``shared/data`` inside the checkout when carried there, else ``../shared/data``."""
    inside = ROOT / "shared" / "data"
    return inside if inside.exists() else ROOT.parent / "shared" / "data"


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter,
                                epilog=__doc__.split("\n\n", 1)[1])
    p.add_argument("--data", type=Path, default=None, help="shared data folder (default: shared/data or ../shared/data)")
    p.add_argument("-o", "--output", type=Path, default=ROOT / "bench" / "results" / "gpu_check.json")
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: the same stages on the cpu backend")
    p.add_argument("--stages", default=",".join(STAGES), help=f"comma-separated subset of {','.join(STAGES)}")
    p.add_argument("--scenes", default=",".join(DEFAULT_SCENES), help=f"comma-separated subset of {','.join(SCENES)}")
    p.add_argument("--budget", type=float, default=480.0, help="seconds for all stages together (default 480)")
    p.add_argument("--timeout", action="append", default=[], metavar="STAGE=S", help="override one stage's timeout")
    p.add_argument("--quick", action="store_true", help="tiny sizes (tests of this script, CPU runs)")
    p.add_argument("--dry-run", action="store_true", help="write the plan as the results and run nothing")
    p.add_argument("--run-stage", default=None, help=argparse.SUPPRESS)  # internal: the child process
    p.add_argument("--stage-out", type=Path, default=None, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    a.stages = [s for s in a.stages.split(",") if s]
    a.scenes = [s for s in a.scenes.split(",") if s]
    bad = [s for s in a.stages if s not in STAGES] + [s for s in a.scenes if s not in SCENES]
    if bad:
        p.error(f"unknown stage or scene: {', '.join(bad)}")
    a.timeouts = dict(STAGES)
    for item in a.timeout:
        name, _, sec = item.partition("=")
        if name not in STAGES or not sec.replace(".", "", 1).isdigit():
            p.error(f"--timeout wants STAGE=SECONDS with a known stage, got {item!r}")
        a.timeouts[name] = float(sec)
    if a.budget <= 0:
        p.error("--budget must be positive")
    a.data = a.data or default_data()
    return a


def write_results(path: Path, results: dict) -> None:
    """Write the results JSON atomically (a temp file renamed onto ``path``)."""
    from splat.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(results, indent=1, default=str) + "\n")


def plan(args: argparse.Namespace) -> dict:
    """The results skeleton: what will run, with which limits."""
    return {
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "device": args.device,
        "budget_s": args.budget,
        "quick": args.quick,
        "data": str(args.data),
        "scenes": args.scenes,
        "machine": {"host": platform.node(), "cpus": os.cpu_count(), "python": platform.python_version()},
        "stages": {s: {"status": "planned", "timeout_s": args.timeouts[s]} for s in args.stages},
    }


def _child_argv(args: argparse.Namespace, stage: str, out: Path) -> list[str]:
    argv = [sys.executable, str(Path(__file__).resolve()), "--run-stage", stage, "--stage-out", str(out),
            "--device", args.device, "--scenes", ",".join(args.scenes), "--data", str(args.data)]
    return argv + (["--quick"] if args.quick else [])


def run_all(args: argparse.Namespace) -> dict:
    """Run every stage in a child process with its timeout; write the results after each."""
    results = plan(args)
    write_results(args.output, results)
    if args.dry_run:
        for s, rec in results["stages"].items():
            print(f"{s:13s} timeout {rec['timeout_s']:.0f} s: {' '.join(_child_argv(args, s, Path('STAGE.json'))[1:])}")
        return results
    t_start = time.monotonic()
    for stage in args.stages:
        left = args.budget - (time.monotonic() - t_start)
        rec = results["stages"][stage]
        compiled = results["stages"].get("compile", {}).get("status", "ok") == "ok"
        if left < 5 or (args.device == "cuda" and stage in NEEDS_GSPLAT and not compiled):
            # after a failed or killed build, each later stage would only start the build again
            rec.update(status="skipped", reason="budget spent" if left < 5 else "gsplat did not compile")
            write_results(args.output, results)
            continue
        limit = min(args.timeouts[stage], left)
        rec["timeout_s"] = round(limit, 1)
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp) / "stage.json"
            t0 = time.monotonic()
            status, tail = run_with_timeout(_child_argv(args, stage, out), limit)
            rec.update(status=status, seconds=round(time.monotonic() - t0, 2))
            if out.exists():
                rec.update(json.loads(out.read_text()))
            if status != "ok":
                rec["log_tail"] = tail
        print(f"{stage:13s} {status:8s} {rec['seconds']:7.1f} s", flush=True)
        write_results(args.output, results)
    results["total_s"] = round(time.monotonic() - t_start, 1)
    write_results(args.output, results)
    return results


def run_with_timeout(argv: list[str], limit: float) -> tuple[str, str]:
    """Run ``argv`` in its own process group; kill the whole group at ``limit`` seconds.

    Returns (status "ok" / "error" / "timeout", the last 3000 characters of its output)."""
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT,
                            start_new_session=True)
    try:
        log, _ = proc.communicate(timeout=limit)
        return ("ok" if proc.returncode == 0 else "error"), log[-3000:]
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, 9)  # the child and anything it started (pytest, the compiler)
        log, _ = proc.communicate()
        return "timeout", (log or "")[-3000:]


# ---------------------------------------------------------------------------- stages (child side)

def _sync(device: str) -> None:
    import torch

    if device == "cuda":
        torch.cuda.synchronize()


def _timed(fn: Callable[[], object], device: str, reps: int) -> float:
    """Median seconds of ``reps`` calls after one warm-up."""
    fn()
    _sync(device)
    ts = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        _sync(device)
        ts.append(time.perf_counter() - t0)
    return sorted(ts)[len(ts) // 2]


def _backend(args) -> str:
    return "gsplat" if args.device == "cuda" else "cpu"


def _views(scene, args, n: int):
    from compress.scene.views import split_views

    return split_views(scene, n_train=n, n_heldout=1, max_side=96 if args.quick else 960).train[:n]


def _load(name: str, args):
    import torch

    from splat.io import read_scene

    path = args.data / SCENES[name]
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (pass --data DIR)")
    scene = read_scene(path).to(dtype=torch.float32)
    if args.quick:
        scene = scene[: min(len(scene), 3000)]
    return scene.to(args.device)


def stage_env(args) -> dict:
    import torch

    rec = {"torch": torch.__version__, "cuda_available": torch.cuda.is_available(), "nvcc": shutil.which("nvcc"),
           "torch_cuda": torch.version.cuda, "arch_list": os.environ.get("TORCH_CUDA_ARCH_LIST")}
    if torch.cuda.is_available():
        rec["gpu"] = torch.cuda.get_device_name()
        rec["gpu_memory_gib"] = round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
    from render.gsplat_compat import gsplat_max_alpha, installed_gsplat_version

    v = installed_gsplat_version()
    rec["gsplat"] = v
    rec["gsplat_max_alpha"] = gsplat_max_alpha(v) if v else None
    if args.device == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda but torch sees no CUDA GPU")
    return rec


def stage_compile(args) -> dict:
    """Trigger gsplat's JIT build with one tiny render (a no-op on the cpu device)."""
    import torch

    from render import rasterize
    from splat import Camera, GaussianScene

    if args.device != "cuda":
        return {"compiled": False, "reason": "cpu device"}
    t0 = time.perf_counter()
    scene = GaussianScene.random(100, seed=0).to("cuda")
    out = rasterize(scene, Camera.look_at([0, 0, -3], [0, 0, 0], width=32, height=32), backend="gsplat")
    torch.cuda.synchronize()
    return {"compiled": True, "first_render_s": round(time.perf_counter() - t0, 2), "mean": float(out.colors.mean())}


def stage_tests(args) -> dict:
    if args.device != "cuda":
        return {"ran": False, "reason": "cpu device"}
    cmd = [sys.executable, "-m", "pytest", "-q", "-m", "cuda", "-p", "no:cacheprovider", "tests/test_gsplat_backend.py"]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
    summary = (proc.stdout.strip().splitlines() or [""])[-1]
    if proc.returncode != 0:
        raise RuntimeError(f"cuda tests failed: {summary}\n{proc.stdout[-4000:]}")
    vs = ROOT / "bench" / "results" / "gsplat_vs_cpu.json"
    return {"summary": summary, "gsplat_vs_cpu": json.loads(vs.read_text()) if vs.exists() else None}


def _per_scene(args, n_views: int, measure: Callable) -> dict:
    """{scene: size, views, backend and ``measure(scene, views, backend)``} for every scene asked for."""
    out = {}
    for name in args.scenes:
        scene = _load(name, args)
        views = _views(scene, args, n_views)
        be = _backend(args)
        out[name] = {"gaussians": len(scene), "views": len(views), "width": views[0].width,
                     "height": views[0].height, "backend": be, **measure(scene, views, be)}
    return out


def stage_render(args) -> dict:
    import torch

    from render import rasterize

    def measure(scene, views, be):
        def fwd():
            with torch.no_grad():
                return rasterize(scene, views[0], backend=be)

        s = scene.requires_grad_()

        def fwd_bwd():
            r = rasterize(s, views[0], backend=be)
            (r.colors.sum() + r.alphas.sum()).backward()

        reps = 2 if args.quick else 10
        return {"forward_ms": round(1e3 * _timed(fwd, args.device, reps), 2),
                "forward_backward_ms": round(1e3 * _timed(fwd_bwd, args.device, reps), 2)}

    return _per_scene(args, 1, measure)


def stage_significance(args) -> dict:
    from compress.scene.significance import significance

    def measure(scene, views, be):
        return {"seconds": round(_timed(lambda: significance(scene, views, backend=be), args.device, 1), 3)}

    return _per_scene(args, 4 if args.quick else 24, measure)


def stage_finetune(args) -> dict:
    from compress.scene.distill import FinetuneConfig, finetune, render_targets

    steps = 3 if args.quick else 6

    def measure(scene, views, be):
        targets = render_targets(scene, views, backend=be)
        stamps: list[float] = []

        def tick(_loss: float) -> None:
            _sync(args.device)
            stamps.append(time.perf_counter())

        t0 = time.perf_counter()
        finetune(scene.detach(), None, views, targets=targets, config=FinetuneConfig(steps=steps), backend=be,
                 progress=tick)
        gaps = [b - a for a, b in zip([t0] + stamps[:-1], stamps)][1:]  # the first step pays for set-up
        return {"steps": steps, "step_ms": round(1e3 * sorted(gaps)[len(gaps) // 2], 2)}

    return _per_scene(args, 2 if args.quick else 8, measure)


def stage_image_fit(args) -> dict:
    """Fit 2D Gaussians to a Kodak image with the "sum" rule through the torch path (the GPU
    path of render/image2d; it runs on the CPU device too)."""
    import numpy as np
    import torch
    from PIL import Image

    from render.image2d import render_image
    from render.metrics import psnr

    path = args.data / IMAGE
    if not path.exists():
        raise FileNotFoundError(f"{path} not found (pass --data DIR)")
    img = Image.open(path).convert("RGB")
    if args.quick:
        img = img.resize((96, 64))
    dev = args.device
    target = torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).to(dev)
    h, w, _ = target.shape
    n, steps = (300, 5) if args.quick else (20000, 100)
    g = torch.Generator().manual_seed(0)
    means = (torch.rand(n, 2, generator=g) * torch.tensor([w, h], dtype=torch.float32)).to(dev)
    ij = means.long()
    colors = (target[ij[:, 1].clamp_max(h - 1), ij[:, 0].clamp_max(w - 1)] * 0.3).clone()
    log_s = torch.full((n, 2), float(np.log(0.6 * np.sqrt(w * h / n))), device=dev)
    rot = (torch.rand(n, generator=g) * 3.14159).to(dev)
    params = [t.requires_grad_() for t in (means, log_s, rot, colors)]
    opt = torch.optim.Adam([{"params": [params[0]], "lr": 0.2}, {"params": params[1:3], "lr": 0.02},
                            {"params": [params[3]], "lr": 0.01}])
    backend = "torch"
    times = []
    for _ in range(steps):
        t0 = time.perf_counter()
        out = render_image(params[0], params[1].exp(), params[2], params[3], w, h, mode="sum", backend=backend)
        loss = (out - target).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        _sync(dev)
        times.append(time.perf_counter() - t0)
    with torch.no_grad():
        final = render_image(params[0], params[1].exp(), params[2], params[3], w, h, mode="sum", backend=backend)
    return {"image": IMAGE, "width": w, "height": h, "gaussians": n, "steps": steps,
            "device": dev, "step_ms": round(1e3 * sorted(times)[len(times) // 2], 2),
            "psnr_db": round(float(psnr(final.clamp(0, 1).cpu(), target.cpu())), 2)}


STAGE_FNS: dict[str, Callable] = {
    "env": stage_env, "image_fit": stage_image_fit, "compile": stage_compile, "tests": stage_tests,
    "render": stage_render, "significance": stage_significance, "finetune": stage_finetune,
}


def run_stage(args) -> None:
    rec = STAGE_FNS[args.run_stage](args)
    Path(args.stage_out).write_text(json.dumps({"result": rec}, default=str))


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.run_stage:
        run_stage(args)
        return 0
    results = run_all(args)
    bad = [s for s, r in results["stages"].items() if r["status"] not in ("ok", "planned")]
    print(f"wrote {args.output}" + (f"; not ok: {', '.join(bad)}" if bad else ""))
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
