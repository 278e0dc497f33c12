"""``splat compress``, ``splat decompress`` and ``splat eval`` (registered through ``splat.commands``)."""
from __future__ import annotations

import json
import time
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Optional

import typer

from splat.cli_options import backend_option, force_option, output_option
from splat.errors import FormatError, UsageError

from .views import find_cameras

EXAMPLES_COMPRESS = """
Examples:

  splat compress point_cloud.ply -o scene.lgs

  splat compress scene.ply -o scene.lgs --cameras cameras.json --target-psnr 38.5

  splat compress scene.ply -o small.lgs --prune 0.8 --sh-degree 1 --codebook 4096

  splat compress 'scenes/*.ply' -o out/ --workers 2

  splat compress scenes/ -o out/ --workers 8 --ray-address 10.0.0.1:6379

The defaults are visually lossless: fidelity (PSNR of the compressed scene's renders
against the original's, on held-out views) of at least 35 dB. A cameras.json beside the
input (or up to three folders above it) is used when --cameras is not given.
"""


def _load_cameras(cameras: Optional[Path], scene_path: Path, auto: bool = True):
    from splat.camera import load_cameras

    path = cameras if cameras is not None else (find_cameras(scene_path) if auto else None)
    if path is None:
        return None, None
    if not path.exists():
        raise UsageError(f"camera file {path} not found")
    return load_cameras(path), path


COMPRESS_HELP = "Compress a 3DGS scene to .lgs (prune, distil, quantize, entropy-code).\n" + EXAMPLES_COMPRESS
DECOMPRESS_HELP = ("Decode a .lgs file to a standard splat file.\n\nExamples:\n\n  splat decompress scene.lgs -o scene.ply\n\n"
                   "  splat decompress scene.lgs -o scene.spz")
EVAL_HELP = ("Render an original and a compressed scene from the same held-out views and compare them.\n\n"
             "Reports PSNR, SSIM, LPIPS (when installed), sizes, ratio and bytes per Gaussian.\n\n"
             "Examples:\n\n  splat eval scene.ply scene.lgs\n\n  splat eval scene.ply scene.sog --cameras cameras.json --json")


def _backend_device(backend: str, device: Optional[str]) -> tuple[str, str]:
    """(renderer backend, torch device) from --backend (and the deprecated --device)."""
    from render.cli import backend_device

    if device is not None:
        if device not in ("cpu", "cuda"):
            raise UsageError(f"--device must be cpu or cuda, got {device!r} (prefer --backend)")
        backend = "gsplat" if device == "cuda" else "cpu"
    return backend_device(backend)


def _check_compress_options(quality: str, prune: Optional[float], sh_degree: Optional[int], codebook: int,
                            level: Optional[int], position_bits: Optional[int], target_psnr: Optional[float]) -> None:
    from splat.cli_options import check_range

    from .rate import PRESETS

    if quality not in PRESETS:
        raise UsageError(f"--quality must be one of {', '.join(PRESETS)}, got {quality!r}")
    check_range("--prune", prune, 0.0, 1.0, hi_open=True)
    check_range("--sh-degree", sh_degree, 0, 3)
    check_range("--codebook", codebook, 1, 65536)
    check_range("--level", level, 0, 3)
    check_range("--position-bits", position_bits, 16, 21)
    check_range("--target-psnr", target_psnr, 0.0, 100.0, lo_open=True)


def compress_cmd(
    input: Path = typer.Argument(..., help="Scene to compress (.ply, .splat, .spz, .sog, .compressed.ply), or a folder or quoted glob of scenes."),
    output: Path = output_option("Output .lgs file (a folder when the input is a folder or glob)."),
    cameras: Optional[Path] = typer.Option(None, "--cameras", help="INRIA cameras.json or transforms.json (default: found beside the input, else generated views)."),
    quality: str = typer.Option("default", "--quality", "-q", help="Preset: small, default, high, max."),
    prune: Optional[float] = typer.Option(None, "--prune", help="Fraction of the least significant Gaussians to remove, in [0, 1) (preset: 0.66)."),
    sh_degree: Optional[int] = typer.Option(None, "--sh-degree", help="Distil SH to this degree, 0..3 (e.g. 3 -> 2)."),
    codebook: int = typer.Option(8192, "--codebook", help="SH codebook entries, 1..65536 (capped at 1/8 of the coded Gaussians)."),
    level: Optional[int] = typer.Option(None, "--level", help="Quantization level 0 (5-bit), 1 (8-bit), 2 (10-bit) or 3 (12-bit)."),
    position_bits: Optional[int] = typer.Option(None, "--position-bits", help="Position grid bits per axis (16..21)."),
    target_psnr: Optional[float] = typer.Option(None, "--target-psnr", help="Search for the smallest file with at least this fidelity (dB)."),
    plan_prune: Optional[bool] = typer.Option(None, "--plan-prune/--no-plan-prune", help="With --target-psnr (the default there, unless --prune, --level or --images is given): remove the fraction of least significant Gaussians that leaves the smallest file at the target, then choose the step sizes on the error model. --no-plan-prune fine-tunes prune rounds instead (slower; smaller files at low targets)."),
    steps: int = typer.Option(60, "--steps", min=0, max=1_000_000, help="Fine-tuning steps per prune round (0: no fine-tuning); targets are the original's renders, or photos with --images."),
    max_seconds: float = typer.Option(60.0, "--max-seconds", min=0.0, max=1e7, help="Time budget (s) of the compression: no prune/fine-tune round starts that would overrun it (0: no limit)."),
    images: Optional[Path] = typer.Option(None, "--images", help="Training photos folder (named as in the cameras file): fine-tune against them, report PSNR on the held-out photos."),
    distill_steps: int = typer.Option(300, "--distill-steps", min=0, max=1_000_000, help="SH distillation steps (with --sh-degree)."),
    up: str = typer.Option("-y", "--up", help="World up axis for generated views (-y for COLMAP scenes, +z for z-up)."),
    max_side: int = typer.Option(480, "--max-side", min=16, max=8192, help="Longest side (pixels) of the views used for significance and fidelity."),
    backend: str = backend_option(),
    device: Optional[str] = typer.Option(None, "--device", hidden=True, help="Deprecated: cpu or cuda (use --backend)."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed for k-means and view sampling."),
    no_check: bool = typer.Option(False, "--no-check", help="Skip the fidelity measurement (and the preset's fallback search)."),
    force: bool = force_option(),
    workers: int = typer.Option(1, "--workers", min=1, max=4096, help="Scenes compressed at once on Ray (folder/glob input; needs the ray extra: pip install ray). >1 starts a local Ray."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster (paths must be readable on every node)."),
) -> None:
    from splat.atomic import atomic_write_bytes, check_output_path
    from splat.batch import is_batch
    from splat.cli import console
    from splat.io import read_scene
    from splat.progress import RichProgress, human_bytes, make_progress, summary_table
    from splat.workers import check_workers

    from .batch import compress_batch
    from .codec import QuantConfig
    from .pipeline import CompressSettings, compress_scene, handoff

    _check_compress_options(quality, prune, sh_degree, codebook, level, position_bits, target_psnr)
    if plan_prune is not None and (target_psnr is None or prune is not None or level is not None):
        raise UsageError("--plan-prune/--no-plan-prune need --target-psnr and neither --prune nor --level")
    backend, dev = _backend_device(backend, device)
    settings = CompressSettings(
        max_seconds=max_seconds or None,
        quality=quality, prune=prune, level=level, position_bits=position_bits, target_psnr=target_psnr,
        sh_degree=sh_degree, steps=steps, distill_steps=distill_steps, quant=QuantConfig(sh_codebook=codebook, seed=seed),
        up=up, max_side=max_side, device=dev, seed=seed, check_fidelity=not no_check, backend=backend,
        plan_prune=plan_prune,
    )
    check_workers(workers, ray_address)
    if is_batch(input):
        with make_progress() as prog:
            done = compress_batch(input, output, settings, cameras=cameras, workers=workers, address=ray_address,
                                  force=force, progress=RichProgress(prog))
        rows = [(str(i), str(o), human_bytes(b)) for i, o, b in done]
        console.print(summary_table(f"splat compress ({len(done)} scenes, {workers} workers)", ["input", "output", "size"], rows))
        return
    if workers > 1 or ray_address:
        raise UsageError("--workers/--ray-address spread a batch of scenes: give a folder or a quoted glob as input and a folder as -o")
    check_output_path(output, [input], force)
    t_all = time.perf_counter()
    t0 = time.perf_counter()
    scene = read_scene(input)
    t_read = time.perf_counter() - t0
    cams, cam_path = _load_cameras(cameras, input)
    if images is not None:
        from .photos import load_photos

        if not cams:
            raise UsageError("--images needs the cameras file the photos belong to (--cameras)")
        settings = replace(settings, photos=load_photos(cams, images))
    load = handoff(scene, partial(read_scene, input))  # the compressor's reference is the only one:
    del scene  # it lets go of the input while it fine-tunes
    with make_progress() as prog:
        result = compress_scene(load, settings, cameras=cams, progress=RichProgress(prog))
    t0 = time.perf_counter()
    atomic_write_bytes(output, result.data)
    t_write = time.perf_counter() - t0
    _print_compress_summary(console, input, output, result, cam_path,
                            [("read", t_read), *result.timings.items(), ("write", t_write),
                             ("total", time.perf_counter() - t_all)])


def _print_compress_summary(console, input: Path, output: Path, result, cam_path, stages) -> None:
    from splat.io.sizes import asset_size
    from splat.progress import human_bytes, summary_table

    from .codec import STREAM_NAMES

    in_size = asset_size(input)
    n = result.input_count
    rows = [(STREAM_NAMES.get(tag, tag), human_bytes(b), f"{b / max(n, 1):.2f}") for tag, b in result.report.stream_bytes.items()]
    rows.append(("total (.lgs)", human_bytes(len(result.data)), f"{len(result.data) / max(n, 1):.2f}"))
    console.print(summary_table("Streams (bytes per input Gaussian)", ["stream", "size", "B/Gaussian"], rows))
    if "PCLS" in result.report.stream_bytes:
        from .bit_split import class_split

        cols, split_rows = class_split(result.data).table(STREAM_NAMES)
        console.print(summary_table("Bytes per precision class (0: full precision; higher classes store fewer bits)", cols, split_rows))
    console.print(summary_table("Time per stage", ["stage", "time"], [(k, f"{v:.2f} s") for k, v in stages]))
    fid = result.fidelity
    summary = [
        ("input", f"{input} ({human_bytes(in_size)}, {n:,} Gaussians, SH {result.input_sh_degree})"),
        ("output", f"{output} ({human_bytes(len(result.data))}, {len(result.decoded):,} Gaussians, SH {result.decoded.sh_degree})"),
        ("ratio vs input", f"{in_size / len(result.data):.1f}x"),
        ("prune ratio / level", f"{result.prune:.3f} / {result.level}"),
        ("fidelity PSNR", "not measured" if fid is None else f"{fid.psnr:.2f} dB (SSIM {fid.ssim:.4f})"),
    ]
    if result.photo_psnr is not None:
        summary.append(("PSNR vs held-out photos", f"{result.photo_psnr:.2f} dB"))
    summary.append(("cameras", str(cam_path) if cam_path else "generated views"))
    summary += [("note", s) for s in result.notes]
    console.print(summary_table("splat compress", ["", ""], summary))


def decompress_cmd(
    input: Path = typer.Argument(..., help="A .lgs file."),
    output: Path = output_option("Output file: .ply, .splat, .spz or .sog (by extension)."),
    force: bool = force_option(),
) -> None:
    from splat.atomic import check_input_file, check_output_path
    from splat.cli import console
    from splat.io import default_registry, write_scene
    from splat.io.sizes import asset_size
    from splat.progress import human_bytes, summary_table

    from .codec import read_lgs

    check_input_file(input)
    default_registry().output_format(output)  # a name that picks no format fails before decoding
    check_output_path(output, [input], force)
    t0 = time.perf_counter()
    scene = read_lgs(input)
    t_dec = time.perf_counter() - t0
    t0 = time.perf_counter()
    write_scene(scene, output)
    t_w = time.perf_counter() - t0
    console.print(summary_table("splat decompress", ["", ""], [
        ("input", f"{input} ({human_bytes(asset_size(input))})"),
        ("output", f"{output} ({human_bytes(asset_size(output))}, {len(scene):,} Gaussians, SH {scene.sh_degree})"),
        ("decode time", f"{t_dec:.3f} s"),
        ("write time", f"{t_w:.3f} s"),
    ]))


def eval_cmd(
    original: Path = typer.Argument(..., help="The original scene."),
    compressed: Path = typer.Argument(..., help="The compressed scene (any readable format)."),
    cameras: Optional[Path] = typer.Option(None, "--cameras", help="Camera file; every 8th camera is used (default: beside the original, else generated held-out views)."),
    up: str = typer.Option("-y", "--up", help="World up axis for generated views."),
    max_side: int = typer.Option(480, "--max-side", min=16, max=8192, help="Render size: longest image side in pixels."),
    backend: str = backend_option(),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
) -> None:
    from splat.cli import console
    from splat.io import read_scene
    from splat.io.sizes import asset_size
    from splat.progress import human_bytes, summary_table

    from .eval import fidelity
    from .views import split_views

    backend, dev = _backend_device(backend, None)
    a = read_scene(original)
    b = read_scene(compressed)
    cams, _ = _load_cameras(cameras, original)
    views = split_views(a, cams, max_side=max_side, up=up).heldout
    fid = fidelity(a.to(dev), b.to(dev), views, with_lpips=True, backend=backend)
    sa, sb = asset_size(original), asset_size(compressed)
    res = {
        "original": str(original), "compressed": str(compressed), "views": len(views),
        "psnr": fid.psnr, "ssim": fid.ssim, "lpips": fid.lpips,
        "original_bytes": sa, "compressed_bytes": sb, "ratio": sa / max(sb, 1),
        "original_gaussians": len(a), "compressed_gaussians": len(b),
        "bytes_per_gaussian": sb / max(len(a), 1),
    }
    if as_json:
        print(json.dumps(res, indent=1))
        return
    console.print(summary_table("splat eval", ["", ""], [
        ("views", f"{len(views)} held-out ({'from cameras' if cams else 'generated'})"),
        ("PSNR", f"{fid.psnr:.2f} dB"), ("SSIM", f"{fid.ssim:.4f}"),
        ("LPIPS", "unavailable" if fid.lpips is None else f"{fid.lpips:.4f}"),
        ("sizes", f"{human_bytes(sa)} -> {human_bytes(sb)}"), ("ratio", f"{res['ratio']:.1f}x"),
        ("bytes per Gaussian", f"{res['bytes_per_gaussian']:.2f} (of the original's {len(a):,})"),
    ]))


def register(app: typer.Typer) -> None:
    app.command("compress", help=COMPRESS_HELP)(compress_cmd)
    app.command("decompress", help=DECOMPRESS_HELP)(decompress_cmd)
    app.command("eval", help=EVAL_HELP)(eval_cmd)


__all__ = ["register", "find_cameras", "FormatError"]
