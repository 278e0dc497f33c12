"""`splat fit-image` and `splat render-image`."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from splat.cli_options import backend_option, force_option, output_option
from splat.errors import UsageError

from .schedules import DEFAULT_SCHEDULE, SCHEDULES

FIT_HELP = """Fit an image with 2D Gaussians and write a compact .gsi file.

Give one target: --bpp (bits per pixel, measured on the real file), --gaussians or --psnr.

Examples:

  splat fit-image photo.png -o photo.gsi --bpp 0.5

  splat fit-image scan16.png -o scan.gsi --psnr 32 --steps 800

  splat fit-image photo.png -o photo.gsi --gaussians 4000 --mode topk

  splat fit-image texture4k.png -o texture.gsi --bpp 0.25 --schedule fast --tile 1024

  splat fit-image 'photos/*.png' -o gsi/ --workers 2
"""

RENDER_HELP = """Render a .gsi file to an image, at any resolution, detail level or crop.

Examples:

  splat render-image photo.gsi -o photo.png

  splat render-image photo.gsi -o big.png --scale 2

  splat render-image photo.gsi -o thumb.png --width 256 --lod 0.25

  splat render-image photo.gsi -o tile.png --crop 128,64,256,256
"""


def _parse_crop(crop: str | None) -> tuple[int, int, int, int] | None:
    if crop is None:
        return None
    try:
        x, y, w, h = (int(v) for v in crop.split(","))
    except ValueError:
        raise UsageError(f"--crop must be x,y,w,h (four integers), got {crop!r}") from None
    return x, y, w, h


def fit_image_cmd(
    image: Path = typer.Argument(..., help="input image (PNG/TIFF/JPEG..., 8 or 16 bit, gray/RGB/RGBA) or .npy [H,W,C]"),
    out: Path = output_option("output .gsi file"),
    bpp: Optional[float] = typer.Option(None, "--bpp", help="target bits per pixel of the file"),
    gaussians: Optional[int] = typer.Option(None, "--gaussians", help="number of Gaussians"),
    psnr: Optional[float] = typer.Option(None, "--psnr", help="target PSNR in dB (smallest file that reaches it)"),
    steps: Optional[int] = typer.Option(None, "--steps", min=1, max=1_000_000, show_default=False,
                                        help="maximum optimisation steps of the main fit (default: the schedule's, "
                                        + ", ".join(f"{v['steps']} ({k})" for k, v in SCHEDULES.items()) + ")"),
    schedule: str = typer.Option(DEFAULT_SCHEDULE, "--schedule", help="step schedule: thorough (180 steps), fast (120 steps, about 0.3-0.9 dB lower) or best (360 steps, slower, higher); all start at half resolution (bench/image_speed.py compares them)"),
    init: str = typer.Option("gradient", "--init", help="initialisation: gradient (positions sampled by gradient energy) or structure (structure-tensor shapes, least-squares colours)"),
    mode: str = typer.Option("sum", "--mode", help="render rule: sum (accumulated, best fits) or topk (Image-GS normalised)"),
    k: int = typer.Option(10, "--k", min=1, max=64, help="Gaussians kept per pixel in topk mode"),
    backend: str = backend_option("auto or cpu: fitting runs on the CPU (its 2D kernels have no GPU version)"),
    device: Optional[str] = typer.Option(None, "--device", hidden=True, help="Deprecated: cpu (use --backend)."),
    tile: Optional[int] = typer.Option(None, "--tile", min=0, max=1 << 16, show_default=False,
                                       help="fit in tiles of about this many px square, in bounded memory (0: never; "
                                       "default: 1024 above 2048x2048 pixels with --bpp or --gaussians)"),
    seed: int = typer.Option(0, "--seed", min=0, help="random seed"),
    force: bool = force_option(),
    workers: int = typer.Option(1, "--workers", min=1, max=4096, help="images fitted at once on Ray (folder/glob input, -o a folder; needs the ray extra: pip install ray)"),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="join this Ray cluster instead of starting a local one"),
) -> None:
    from render.metrics import ssim
    from splat.atomic import atomic_write_bytes, check_input_file, check_output_path
    from splat.cli_options import check_backend, check_range
    from splat.progress import RichProgress, human_bytes, make_progress, summary_table

    from .api import compress_image
    from .fit import FitConfig
    from .imageio import load_image

    n_targets = sum(x is not None for x in (bpp, gaussians, psnr))
    if n_targets > 1:
        raise UsageError("give only one of --bpp, --gaussians, --psnr")
    if mode not in ("topk", "sum"):
        raise UsageError(f"--mode must be topk or sum, got {mode!r}")
    if init not in ("structure", "gradient"):
        raise UsageError(f"--init must be structure or gradient, got {init!r}")
    if schedule not in SCHEDULES:
        raise UsageError(f"--schedule must be {' or '.join(SCHEDULES)}, got {schedule!r}")
    if tile and (psnr is not None or mode != "sum"):
        raise UsageError("--tile needs --bpp or --gaussians and --mode sum")
    if tile is not None and 0 < tile < 16:
        raise UsageError(f"--tile must be 0 (never) or at least 16 px, got {tile}")
    check_range("--bpp", bpp, 0.0, 64.0, lo_open=True)
    check_range("--gaussians", gaussians, 1, 10_000_000)
    check_range("--psnr", psnr, 0.0, 100.0, lo_open=True)
    if device is not None:
        backend = {"cpu": "cpu", "cuda": "gsplat"}.get(device, device)
    check_backend(backend, ("auto", "cpu"), why="fit-image runs on the CPU: its 2D kernels have no GPU version")
    if n_targets == 0:
        bpp = 0.5
    from splat.batch import is_batch
    from splat.workers import check_workers

    check_workers(workers, ray_address)
    if is_batch(image):
        from .batch import fit_batch

        opts = {"bpp": bpp, "gaussians": gaussians, "psnr": psnr, "steps": steps, "mode": mode, "k": k, "init": init,
                "schedule": schedule, "device": "cpu"}
        with make_progress(Console(stderr=True)) as bar:
            done = fit_batch(image, out, opts, seed=seed, workers=workers, address=ray_address, force=force,
                             progress=RichProgress(bar))
        Console().print(summary_table(f"fit-image ({len(done)} images, {workers} workers)", ["input", "output", "size"],
                                      [(str(i), str(o), human_bytes(b)) for i, o, b in done]))
        return
    if workers > 1 or ray_address:
        raise UsageError("--workers/--ray-address spread a batch: give a folder or a quoted glob of images and a folder as -o")
    check_input_file(image)
    check_output_path(out, [image], force)
    img = load_image(image)
    console = Console(stderr=True)
    t0 = time.perf_counter()
    with make_progress(console) as bar:
        res = compress_image(img.pixels, bpp=bpp, gaussians=gaussians, psnr=psnr, steps=steps, mode=mode, k=k,
                             device="cpu", init=init, schedule=schedule, config=FitConfig(seed=seed), tile=tile,
                             meta={"bit_depth": img.bit_depth, "source": image.name}, progress=RichProgress(bar))
    atomic_write_bytes(out, res.data)
    import torch

    target = torch.from_numpy(img.pixels)
    # in float32 (the render's): within 1e-6 of the float64 default, in a tenth of its time
    s = float(ssim(res.gaussians.render().clamp(0, 1), target, dtype=None))
    rows = [
        ("file", str(out)),
        ("size", human_bytes(len(res.data))),
        ("bits per pixel", f"{res.bpp():.4f}"),
        ("Gaussians", f"{len(res.gaussians):,}"),
        ("PSNR", f"{res.psnr:.2f} dB"),
        ("SSIM", f"{s:.4f}"),
        ("ratio vs raw 8-bit", f"{img.width * img.height * img.channels / len(res.data):.1f}x"),
        ("steps", f"{res.fit_steps:,}"),
        ("time", f"{time.perf_counter() - t0:.1f} s"),
    ]
    if not res.reached:
        rows.append(("note", f"PSNR target {psnr} dB not reached within the Gaussian cap"))
    Console().print(summary_table(f"fit-image {image.name} ({img.width}x{img.height}x{img.channels})",
                                  ["", "value"], rows))


def render_image_cmd(
    gsi: Path = typer.Argument(..., help="input .gsi file"),
    out: Path = output_option("output image (.png; .npy for more than 4 channels; .jpg for gray or RGB)"),
    scale: Optional[float] = typer.Option(None, "--scale", help="resolution factor (2 = twice as wide)"),
    width: Optional[int] = typer.Option(None, "--width", help="output width in pixels (keeps the aspect ratio)"),
    lod: float = typer.Option(1.0, "--lod", help="fraction of the Gaussians to use (level of detail), (0, 1]"),
    crop: Optional[str] = typer.Option(None, "--crop", help="x,y,w,h window of the output to render"),
    force: bool = force_option(),
    max_pixels: Optional[int] = typer.Option(None, "--max-pixels", help="largest output (and stored) image in pixels "
                                             "(default 67,108,864)"),
) -> None:
    import numpy as np

    from splat.atomic import check_input_file, check_output_path
    from splat.cli_options import check_range
    from splat.progress import summary_table

    from .gsi import decode, read_header
    from .imageio import check_image_output, save_image
    from .model import render_to_array

    if scale is not None and width is not None:
        raise UsageError("give only one of --scale and --width")
    check_range("--scale", scale, 0.0, None, lo_open=True)
    check_range("--width", width, 1, None)
    if not 0.0 < lod <= 1.0:
        raise UsageError(f"--lod must be in (0, 1], got {lod}")
    check_input_file(gsi)
    check_output_path(out, [gsi], force)
    t0 = time.perf_counter()
    data = gsi.read_bytes()
    check_image_output(out, int(read_header(data, gsi, max_pixels=max_pixels)[0]["channels"]))  # e.g. RGBA as JPEG: before rendering
    g = decode(data, gsi, max_pixels=max_pixels)
    t1 = time.perf_counter()
    bit_depth = int(g.meta.get("bit_depth", 8))
    # rendered band by band into integer pixels: memory stays near the output's own size
    as_png = out.suffix.lower() != ".npy" and g.channels <= 4
    wide = bit_depth == 16 and (out.suffix.lower() in (".png", "") or g.channels == 1)  # what save_image writes
    dtype = (np.uint16 if wide else np.uint8) if as_png else np.float32
    try:
        img = render_to_array(g, scale=scale or 1.0, width=width, lod=lod, crop=_parse_crop(crop), dtype=dtype,
                              max_pixels=max_pixels)
    except ValueError as e:
        raise UsageError(str(e)) from None
    t2 = time.perf_counter()
    save_image(out, img, bit_depth)
    n = max(1, int(round(lod * len(g)))) if lod < 1 else len(g)
    Console().print(summary_table(f"render-image {gsi.name}", ["", "value"], [
        ("output", f"{out} ({img.shape[1]}x{img.shape[0]}x{img.shape[2]})"),
        ("Gaussians used", f"{n:,} of {len(g):,}"),
        ("decode", f"{(t1 - t0) * 1e3:.1f} ms"),
        ("render", f"{(t2 - t1) * 1e3:.1f} ms"),
    ]))


def register(app: typer.Typer) -> None:
    app.command("fit-image", help=FIT_HELP)(fit_image_cmd)
    app.command("render-image", help=RENDER_HELP)(render_image_cmd)
