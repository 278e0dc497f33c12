"""Peak memory and step time of fitting a large image (a Kodak image upscaled, never downloaded).

Upscales one Kodak image (bicubic) to SIDE x SIDE pixels, fits the Gaussian count of
``--bpp`` (at about 50 bits per Gaussian) for ``--steps`` steps with ``fit_gaussians``
(initialisation, growth, QAT and the rate term all run, so the memory peak is reached), and
reports wall and CPU seconds and the process's peak resident memory. Writes
``bench/results/image_large.json`` (one row per side, rerun sides replace theirs).

    python bench/image_large.py --side 2048 --steps 4
    python bench/image_large.py --side 4096 --steps 6 --bpp 0.25

``--tiled`` instead runs the whole fit as a user gets it (``compress_image`` at ``--bpp``
with ``--schedule``, in tiles of ``--tile`` px: ``compress/image/tiles.py``) and reports the
file's real bpp and PSNR too, under "tiled" (one row per side; run each side in its own
process, since the peak is the process's):

    nice python bench/image_large.py --tiled --side 4096 --bpp 0.25 --schedule fast

``--render SIDE`` instead times ``splat render-image X.gsi --width SIDE`` in a subprocess
(wall and peak RSS of the child) for a ``.gsi`` of the Kodak image's size holding
``--gaussians`` Gaussians (colours and shapes drawn from the image; no fit), at each SIDE:

    python bench/image_large.py --render 1024 4096 8192
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.image.fit import FitConfig, fit_gaussians  # noqa: E402
from compress.image.imageio import load_image  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
RESULTS = ROOT / "bench" / "results" / "image_large.json"


def _peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _render_rows(args: argparse.Namespace) -> None:
    """Peak memory of render-image at each output width (band-by-band rendering)."""
    import subprocess
    import tempfile

    from compress.image import encode
    from compress.image.fit import FitConfig, initial_gaussians
    from compress.image.model import ImageGaussians

    src = torch.from_numpy(load_image(KODAK / f"{args.image}.png").pixels)
    h, w, _ = src.shape
    p = initial_gaussians(src, args.gaussians, FitConfig(), torch.Generator().manual_seed(0))
    g = ImageGaussians(p["means"], torch.exp(p["log_scales"]) * 2, p["rotations"], p["colors"] * 0.3, w, h)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        gsi = Path(tmp) / "x.gsi"
        gsi.write_bytes(encode(g))
        for side in args.render:
            out = Path(tmp) / f"r{side}.png"
            load = os.getloadavg()[0]
            c0 = resource.getrusage(resource.RUSAGE_CHILDREN)
            t0 = time.perf_counter()
            subprocess.run([sys.executable, "-m", "splat.cli", "render-image", str(gsi), "-o", str(out), "--width",
                            str(side), "--force"], check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
            c1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            rows.append({"image": args.image, "gaussians": args.gaussians, "source": f"{w}x{h}",
                         "output": f"{side}x{round(h * side / w)}", "wall_s": time.perf_counter() - t0,
                         "cpu_s": (c1.ru_utime + c1.ru_stime) - (c0.ru_utime + c0.ru_stime),
                         "peak_rss_mb": c1.ru_maxrss / 1024, "load_before": load, "load_after": os.getloadavg()[0]})
            print(json.dumps(rows[-1]), flush=True)
            out.unlink()
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
    data["render"] = {"rows": rows, "command": "python bench/image_large.py --render " + " ".join(map(str, args.render)),
                      "note": "peak RSS of the child process (the largest so far: the sides run in increasing order)"}
    RESULTS.write_text(json.dumps(data, indent=1))


class _PrintProgress:
    """One line per finished stage (tile), with its time: the bench runs in the background."""

    def __init__(self) -> None:
        self.desc, self.t0, self.info = "", 0.0, ""

    def start(self, desc: str, total: int | None) -> None:
        self.desc, self.t0, self.info = desc, time.perf_counter(), ""

    def advance(self, n: int = 1, info: str = "") -> None:
        self.info = info

    def end(self) -> None:
        print(f"{self.desc}: {time.perf_counter() - self.t0:.1f} s  {self.info}  load {os.getloadavg()[0]:.1f}",
              flush=True)


def _tiled_row(args: argparse.Namespace, big: torch.Tensor) -> None:
    from compress.image import compress_image

    # compile the kernels first (numba's cache is per source path): neither time nor peak counts it
    compress_image(big[:64, :64].contiguous(), gaussians=20, steps=2, tile=32)
    before = _peak_mb()
    load = os.getloadavg()[0]
    w0, c0 = time.perf_counter(), time.process_time()
    res = compress_image(big, bpp=args.bpp, schedule=args.schedule, steps=args.steps, tile=args.tile,
                         progress=_PrintProgress())
    side = args.side
    row = {"image": args.image, "side": side, "pixels": side * side, "tile": args.tile, "schedule": args.schedule,
           "steps_per_tile": args.steps,
           "target_bpp": args.bpp, "bpp": res.bpp(), "gaussians": len(res.gaussians), "psnr": res.psnr,
           "steps": res.fit_steps, "wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
           "peak_rss_mb": _peak_mb(), "rss_before_fit_mb": before, "load_before": load,
           "load_after": os.getloadavg()[0],
           "command": f"nice python bench/image_large.py --tiled --side {side} --bpp {args.bpp} --schedule "
                      f"{args.schedule} --tile {args.tile}" + (f" --steps {args.steps}" if args.steps else "")}
    print(json.dumps(row, indent=1))
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
    rows = [r for r in data.get("tiled", []) if (r["side"], r["tile"], r["schedule"], r.get("steps_per_tile")) != (side, args.tile, args.schedule, args.steps)]
    data["tiled"] = sorted(rows + [row], key=lambda r: (r["side"], r["tile"], r["schedule"]))
    RESULTS.write_text(json.dumps(data, indent=1))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--image", default="kodim05")
    ap.add_argument("--side", type=int, default=2048)
    ap.add_argument("--steps", type=int, default=None,
                    help="fit steps (default 4; with --tiled: per tile, default the schedule's)")
    ap.add_argument("--bpp", type=float, default=0.25)
    ap.add_argument("--init", default="gradient", choices=["gradient", "structure"])
    ap.add_argument("--render", type=int, nargs="+", help="time render-image to these output widths instead")
    ap.add_argument("--gaussians", type=int, default=6000)
    ap.add_argument("--tiled", action="store_true", help="the whole tiled fit (compress_image) instead")
    ap.add_argument("--tile", type=int, default=1024, help="core side of the tiles (--tiled)")
    ap.add_argument("--schedule", default="fast", choices=["fast", "thorough"], help="step schedule (--tiled)")
    args = ap.parse_args()
    if args.render:
        _render_rows(args)
        return
    src = torch.from_numpy(load_image(KODAK / f"{args.image}.png").pixels)
    big = F.interpolate(src.permute(2, 0, 1)[None], size=(args.side, args.side), mode="bicubic",
                        align_corners=False)[0].permute(1, 2, 0).clamp(0, 1).contiguous()
    del src
    if args.tiled:
        _tiled_row(args, big)
        return
    args.steps = args.steps or 4
    n = max(1, int(args.bpp * args.side * args.side / 50))
    before = _peak_mb()
    load = os.getloadavg()[0]
    w0, c0 = time.perf_counter(), time.process_time()
    _g, _spec, rep = fit_gaussians(big, n, FitConfig(steps=args.steps, refill_every=0, init=args.init))
    row = {"image": args.image, "side": args.side, "pixels": args.side * args.side, "gaussians": n,
           "steps": rep.steps, "init": args.init, "wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0,
           "peak_rss_mb": _peak_mb(), "rss_before_fit_mb": before, "psnr": rep.psnr, "load_before": load,
           "load_after": os.getloadavg()[0],
           "command": f"python bench/image_large.py --side {args.side} --steps {args.steps} --bpp {args.bpp}"
                      f" --init {args.init}"}
    print(json.dumps(row, indent=1))
    data = json.loads(RESULTS.read_text()) if RESULTS.exists() else {"rows": []}
    rows = [r for r in data["rows"] if (r["side"], r["init"]) != (args.side, args.init)] + [row]
    data["rows"] = sorted(rows, key=lambda r: (r["side"], r["init"]))
    RESULTS.write_text(json.dumps(data, indent=1))


if __name__ == "__main__":
    main()
