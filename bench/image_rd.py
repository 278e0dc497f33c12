"""Rate-distortion benchmark of image fitting (.gsi) against JPEG, WebP and AVIF (Pillow).

    python bench/image_rd.py                        # all Kodak images, 0.25 / 0.5 / 1.0 bpp
    python bench/image_rd.py --images kodim03 --bpp 0.5 --steps 600
    python bench/image_rd.py --images kodim03 --bpp 0.5 1.0 --schedule best --codecs gsi jpeg --out /tmp/best.csv
    python bench/image_rd.py --images kodim03 --rate-weight 0 --keep /tmp/gsi   # no rate term; keep the files
    python bench/image_rd.py --images kodim03 --loss 0 1 0.1 --codecs gsi jpeg  # RMSE instead of L1 in the loss

For every image and target bpp: our codec through ``compress_image(bpp=...)`` (fit time,
decode and render time, PSNR, SSIM, real bpp), and each Pillow codec at the largest real
bpp at or below ours (the target where ours has no row yet), found by bisection on its quality setting (Pillow defaults
otherwise: JPEG 4:2:0, WebP lossy method 4, AVIF speed 6). Rows are appended to
``bench/results/image_rd.csv`` as they finish (a rerun skips rows already there, so the
script can be stopped and resumed); the summary goes to ``image_rd_summary.json`` and the
rate-distortion plot to ``image_rd.png`` (needs matplotlib: ``pip install -e '.[bench]'``).
The machine's load average is recorded per row.
"""
from __future__ import annotations

import argparse
import csv
import io
import json
import os
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from compress.image import BitDepths, FitConfig, compress_image, decode, render_gaussians  # noqa: E402
from compress.image.fit import schedule  # noqa: E402
from compress.image.schedules import SCHEDULES  # noqa: E402
from compress.image.imageio import load_image  # noqa: E402
from render.metrics import psnr, ssim  # noqa: E402

KODAK = Path(os.environ.get("SPLAT_SHARED_DATA", ROOT.parent / "shared" / "data")) / "images" / "kodak"
RESULTS = ROOT / "bench" / "results"
BIT_OPTIONS = {"--pos-step": "pos_step", "--size-bits": "size_bits", "--aniso-bits": "aniso_bits",
               "--color-bits": "color_bits", "--chroma-bits": "chroma_bits"}
FIELDS = ["image", "codec", "target_bpp", "bpp", "psnr", "ssim", "fit_s", "decode_ms", "render_ms", "gaussians",
          "quality", "steps", "load", "rate_weight", "bits"]


def _pil_encode(codec: str, im, q: int) -> bytes:
    buf = io.BytesIO()
    if codec == "jpeg":
        im.save(buf, format="JPEG", quality=q)
    elif codec == "webp":
        im.save(buf, format="WEBP", quality=q)
    elif codec == "avif":
        im.save(buf, format="AVIF", quality=q)
    else:
        raise ValueError(codec)
    return buf.getvalue()


def pil_at_bpp(codec: str, pixels: np.ndarray, target_bpp: float) -> dict:
    """Largest-bpp encoding at or below the target (bisection on quality 0..100)."""
    from PIL import Image

    im = Image.fromarray(np.round(pixels * 255).astype(np.uint8))
    npx = pixels.shape[0] * pixels.shape[1]
    lo, hi, best = 0, 100, None
    while lo <= hi:
        q = (lo + hi) // 2
        data = _pil_encode(codec, im, q)
        bpp = len(data) * 8 / npx
        if bpp <= target_bpp:
            best = (q, data, bpp)
            lo = q + 1
        else:
            hi = q - 1
    if best is None:
        q = 0
        data = _pil_encode(codec, im, q)
        best = (q, data, len(data) * 8 / npx)
    q, data, bpp = best
    t0 = time.perf_counter()
    dec = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float32) / 255.0
    dt = time.perf_counter() - t0
    t, d = torch.from_numpy(pixels), torch.from_numpy(dec)
    return {"codec": codec, "bpp": bpp, "psnr": float(psnr(d, t)), "ssim": float(ssim(d, t)), "fit_s": "", "decode_ms": dt * 1e3,
            "render_ms": "", "gaussians": "", "quality": q, "steps": ""}


def ours(pixels: np.ndarray, target_bpp: float, cfg: FitConfig, keep: Path | None = None) -> dict:
    """Our codec at ``target_bpp``; with ``keep``, the .gsi file is written there too."""
    t0 = time.perf_counter()
    res = compress_image(pixels, bpp=target_bpp, config=cfg)
    fit_s = time.perf_counter() - t0
    if keep is not None:
        keep.write_bytes(res.data)
    dts, rts = [], []
    for _ in range(5):
        t1 = time.perf_counter()
        g = decode(res.data)
        t2 = time.perf_counter()
        img = render_gaussians(g)
        t3 = time.perf_counter()
        dts.append(t2 - t1)
        rts.append(t3 - t2)
    t = torch.from_numpy(pixels)
    return {"codec": "gsi", "bpp": res.bpp(), "psnr": float(psnr(img, t)), "ssim": float(ssim(img, t)), "fit_s": fit_s,
            "decode_ms": statistics.median(dts) * 1e3, "render_ms": statistics.median(rts) * 1e3,
            "gaussians": len(g), "quality": "", "steps": res.fit_steps, "rate_weight": res.notes.get("rate_weight", ""),
            "bits": json.dumps(res.notes["bits"]) if "bits" in res.notes else ""}


def _read_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def summarise(rows: list[dict], bpps: list[float]) -> dict:
    out: dict = {}
    codecs = sorted({r["codec"] for r in rows})
    for b in bpps:
        sel = [r for r in rows if float(r["target_bpp"]) == b]
        images = sorted({r["image"] for r in sel if r["codec"] == "gsi"})
        per = {}
        for c in codecs:
            rr = {r["image"]: r for r in sel if r["codec"] == c and r["image"] in images}
            if len(rr) != len(images) or not images:
                continue
            per[c] = {
                "images": len(images),
                "bpp": statistics.mean(float(r["bpp"]) for r in rr.values()),
                "psnr": statistics.mean(float(r["psnr"]) for r in rr.values()),
                "ssim": statistics.mean(float(r["ssim"]) for r in rr.values()),
            }
            if c == "gsi":
                per[c]["fit_s_median"] = statistics.median(float(r["fit_s"]) for r in rr.values())
                per[c]["decode_plus_render_ms_median"] = statistics.median(
                    float(r["decode_ms"]) + float(r["render_ms"]) for r in rr.values())
        if "gsi" in per and "jpeg" in per:
            g = {r["image"]: float(r["psnr"]) for r in sel if r["codec"] == "gsi"}
            j = {r["image"]: float(r["psnr"]) for r in sel if r["codec"] == "jpeg"}
            d = [g[i] - j[i] for i in images if i in j]
            per["gsi_minus_jpeg"] = {"mean_db": statistics.mean(d), "min_db": min(d),
                                     "worst_image": images[int(np.argmin(d))]}
        out[str(b)] = per
    return out


def plot(rows: list[dict], path: Path) -> None:
    try:
        import matplotlib
    except ImportError:
        print("matplotlib is not installed (pip install -e '.[bench]'): no plot written", file=sys.stderr)
        return

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    # average every codec over the same images: those our codec has a row for at that bpp
    ours_at = {(r["image"], float(r["target_bpp"])) for r in rows if r["codec"] == "gsi"}
    if ours_at:
        rows = [r for r in rows if (r["image"], float(r["target_bpp"])) in ours_at]
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    for c, style in (("gsi", "o-"), ("jpeg", "s--"), ("webp", "^--"), ("avif", "d--")):
        pts = {}
        for r in rows:
            if r["codec"] == c:
                pts.setdefault(float(r["target_bpp"]), []).append((float(r["bpp"]), float(r["psnr"])))
        if not pts:
            continue
        xs = sorted(pts)
        ax.plot([statistics.mean(p[0] for p in pts[x]) for x in xs], [statistics.mean(p[1] for p in pts[x]) for x in xs],
                style, label={"gsi": "ours (.gsi, 2D Gaussians)"}.get(c, c.upper()))
    ax.set_xlabel("bits per pixel (mean over images)")
    ax.set_ylabel("PSNR dB (mean over images)")
    ax.set_title("Kodak rate-distortion (Pillow codecs at the largest bpp <= target)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--images", nargs="*", default=None, help="Kodak names (default: all in the shared folder)")
    ap.add_argument("--bpp", nargs="*", type=float, default=[0.25, 0.5, 1.0])
    ap.add_argument("--schedule", default=None, choices=sorted(SCHEDULES),
                    help="the fitter's step schedule (default: FitConfig's); --steps overrides its step count")
    ap.add_argument("--steps", type=int, default=None, help="steps of the main fit (default: the schedule's)")
    ap.add_argument("--rate-weight", type=float, default=None,
                    help="lambda of the rate term (FitConfig.rate_weight; default: rate control's choice)")
    ap.add_argument("--loss", type=float, nargs=3, metavar=("L1", "L2", "SSIM"), default=None,
                    help="loss weights (FitConfig.l1_weight, l2_weight (RMSE), ssim_weight; default: FitConfig's)")
    ap.add_argument("--qat-loss", type=float, nargs=3, metavar=("L1", "L2", "SSIM"), default=None,
                    help="loss weights once QAT is on (FitConfig.qat_weights; default: those of --loss)")
    for opt, field_name in BIT_OPTIONS.items():
        ap.add_argument(opt, type=float if field_name == "pos_step" else int, default=None,
                        help=f"BitDepths.{field_name} (default: rate control's choice; any of these fixes all bit "
                        "depths, the others at BitDepths' defaults)")
    ap.add_argument("--keep", type=Path, default=None,
                    help="also write our files here as IMAGE_BPP.gsi (for bench/image_bits.py)")
    ap.add_argument("--codecs", nargs="*", default=["gsi", "jpeg", "webp", "avif"])
    ap.add_argument("--out", default=str(RESULTS / "image_rd.csv"))
    ap.add_argument("--merge", nargs="*", default=None,
                    help="only merge these CSVs (e.g. from parallel runs) into --out, then summarise and plot")
    args = ap.parse_args(argv)
    if args.merge:
        merged = {}
        for m in args.merge:
            for r in _read_rows(Path(m)):
                merged[(r["image"], r["codec"], r["target_bpp"])] = r
        with open(args.out, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=FIELDS)
            w.writeheader()
            for key in sorted(merged):
                w.writerow({k: merged[key].get(k, "") for k in FIELDS})
        return report(Path(args.out), args.bpp)
    if not KODAK.exists():
        print(f"Kodak images not found in {KODAK}", file=sys.stderr)
        return 1
    names = args.images or sorted(p.stem for p in KODAK.glob("*.png"))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = _read_rows(out)
    done = {(r["image"], r["codec"], float(r["target_bpp"])) for r in rows}
    cfg = FitConfig(rate_weight=args.rate_weight)
    if args.schedule is not None:
        cfg = schedule(cfg, args.schedule)
    if args.steps is not None:
        cfg = replace(cfg, steps=args.steps)
    if args.loss is not None:
        cfg = replace(cfg, l1_weight=args.loss[0], l2_weight=args.loss[1], ssim_weight=args.loss[2])
    if args.qat_loss is not None:
        cfg = replace(cfg, qat_weights=tuple(args.qat_loss))
    given = {f: getattr(args, f) for f in BIT_OPTIONS.values() if getattr(args, f) is not None}
    if given:
        cfg = replace(cfg, bits=replace(BitDepths(), **given))
    if args.keep is not None:
        args.keep.mkdir(parents=True, exist_ok=True)
    new_file = not out.exists()
    with open(out, "a", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS)
        if new_file:
            w.writeheader()
        for name in names:
            pixels = load_image(KODAK / f"{name}.png").pixels
            for b in args.bpp:
                for c in args.codecs:
                    if (name, c, b) in done:
                        continue
                    # the other codecs at the largest quality whose real bpp is not above ours
                    mine = [float(r["bpp"]) for r in rows if r["image"] == name and r["codec"] == "gsi"
                            and float(r["target_bpp"]) == b]
                    keep = None if args.keep is None else args.keep / f"{name}_{b:g}.gsi"
                    r = ours(pixels, b, cfg, keep) if c == "gsi" else pil_at_bpp(c, pixels, min([b] + mine))
                    r.update(image=name, target_bpp=b, load=os.getloadavg()[0])
                    w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
                    f.flush()
                    rows.append({k: str(v) for k, v in r.items()})
                    extra = f"  fit {r['fit_s']:.0f} s, {r['gaussians']} Gaussians" if c == "gsi" else f"  q={r['quality']}"
                    print(f"{name} {c:5s} target {b:.2f}: {r['bpp']:.3f} bpp  {r['psnr']:.2f} dB{extra}", flush=True)
    return report(out, args.bpp)


def report(out: Path, bpps: list[float]) -> int:
    """Summary JSON, RD plot and a printed table from the CSV."""
    rows = _read_rows(out)
    summary = summarise(rows, bpps)
    # named after the CSV: image_rd.csv -> image_rd_summary.json + image_rd.png
    (out.parent / f"{out.stem}_summary.json").write_text(json.dumps(summary, indent=1))
    plot(rows, out.parent / f"{out.stem}.png")
    print(f"\n{'bpp':>5} {'codec':>6} {'images':>6} {'real bpp':>9} {'PSNR':>7} {'SSIM':>7}")
    for b, per in summary.items():
        for c, v in per.items():
            if c == "gsi_minus_jpeg":
                print(f"{b:>5} ours - JPEG: mean {v['mean_db']:+.2f} dB, worst {v['min_db']:+.2f} dB ({v['worst_image']})")
            else:
                print(f"{b:>5} {c:>6} {v['images']:>6} {v['bpp']:>9.3f} {v['psnr']:>7.2f} {v['ssim']:>7.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
