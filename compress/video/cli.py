"""``splat video encode|decode|info|synth`` (registered through ``splat.commands``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

GROUP_HELP = """Volumetric video (.gsv): encode Gaussian sequences, decode, inspect.

Examples:

  splat video synth -o performer/ --gaussians 20000 --frames 60

  splat video encode performer/ -o clip.gsv

  splat video decode clip.gsv -o out_frames/ --format spz

  splat video info clip.gsv

  splat video eval performer/ clip.gsv
"""

ENCODE_HELP = """Encode a Gaussian sequence (folder, glob or files) into a .gsv clip.

Examples:

  splat video encode frames/ -o clip.gsv

  splat video encode "frames/*.ply" -o clip.gsv --fps 30 --gop 30 --quality high

  splat video encode shuffled/ -o clip.gsv --mode resorted --force

  splat video encode independent/ -o clip.gsv --mode independent --target-psnr 35
"""

DECODE_HELP = """Decode a .gsv clip into one file per frame.

Intact segments are decoded even when others are corrupt; the corrupt ones are listed
and the exit status is then non-zero.

Examples:

  splat video decode clip.gsv -o out_frames/

  splat video decode clip.gsv -o out_frames/ --format spz --force
"""

INFO_HELP = """Show a .gsv clip's header and segment sizes.

Examples:

  splat video info clip.gsv
"""

SYNTH_HELP = """Write frames of the synthetic mocap-driven performer (test content).

Examples:

  splat video synth -o performer/ --gaussians 20000 --frames 60

  splat video synth -o walk/ --bvh walk.bvh --format spz --shuffle --force
"""


def encode_cmd(
    input: str = typer.Argument(..., help="Folder of frame files, or a quoted glob (any format splat reads)."),
    output: Path = typer.Option(..., "--output", "-o", help="Output .gsv file."),
    fps: float = typer.Option(30.0, "--fps", min=0.001, max=1000.0, help="Frames per second stored in the clip."),
    gop: int = typer.Option(30, "--gop", min=1, max=100_000, help="Frames per segment (keyframe interval)."),
    quality: str = typer.Option("medium", "--quality", "-q", help="low, medium or high."),
    tracked: Optional[bool] = typer.Option(None, "--tracked/--untracked", help="Force motion coding, or per-frame intra coding without tracking (default: detect; see --mode)."),
    mode: Optional[str] = typer.Option(None, "--mode", help="tracked, resorted or independent (default: detect)."),
    target_psnr: Optional[float] = typer.Option(None, "--target-psnr", min=0.0, max=100.0,
                                                help="Render PSNR (dB) every frame must reach (default 35): independent frames tracked below it get their "
                                                     "colours refreshed; each decoded frame is checked on held-out views and one still below it "
                                                     "starts a new segment. 16 frames are checked again at the end and any below it are "
                                                     "listed with a warning (the clip is still written)."),
    force: bool = typer.Option(False, "--force", help="Overwrite the output if it exists."),
    workers: int = typer.Option(1, "--workers", min=1, max=4096, help="Segments encoded at once on Ray (needs the ray extra: pip install ray); >1 starts a local Ray. Same bytes as serial."),
    ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster instead of starting a local one."),
) -> None:
    from splat.atomic import atomic_write_bytes, check_output_path
    from splat.cli import console, err_console
    from splat.io import read_scene
    from splat.progress import RichProgress, make_progress
    from splat.workers import check_workers

    from .codec import MODES, QUALITY, VideoReader, VideoSettings, encode_video, read_frames
    from .fidelity import clip_fidelity, sample_frames

    if quality not in QUALITY:
        raise typer.BadParameter(f"unknown quality {quality!r} (choose {', '.join(QUALITY)})")
    if mode is not None and mode not in MODES:
        raise typer.BadParameter(f"unknown mode {mode!r} (choose {', '.join(MODES)})")
    check_workers(workers, ray_address)
    paths = read_frames(input)
    check_output_path(output, paths, force)
    in_bytes = sum(p.stat().st_size for p in paths)
    with make_progress() as prog:
        task = prog.add_task("reading", total=len(paths), info="")
        scenes = []
        for p in paths:
            scenes.append(read_scene(p))
            prog.advance(task)
        res = encode_video(scenes, VideoSettings(fps=fps, gop=gop, quality=quality, tracked=tracked, mode=mode,
                                                   target_psnr=VideoSettings.target_psnr if target_psnr is None
                                                   else target_psnr),
                           progress=RichProgress(prog), workers=workers, address=ray_address)
        idx = sample_frames(len(scenes), 4 if target_psnr is None else 16)
        task3 = prog.add_task("fidelity", total=len(idx), info="")
        with VideoReader(res.data) as r:
            fid = clip_fidelity(scenes, r.frame, idx, progress=lambda: prog.advance(task3))  # the encoder's check views
    worst = min(fid, key=lambda x: x.psnr)
    atomic_write_bytes(output, res.data)
    missed = [] if target_psnr is None else [x for x in fid if x.psnr < target_psnr]
    _print_encode_summary(console, output, res, scenes, fid, worst, mode, gop, in_bytes, target_psnr, len(missed))
    if missed:
        err_console.print(f"[yellow]warning:[/] {output}: {missing_line(missed, len(fid), target_psnr)}",
                          highlight=False, soft_wrap=True)


def missing_line(missed: list, checked: int, target: float) -> str:
    """One line naming the checked frames below ``target`` dB and what to try."""
    frames = ", ".join(f"frame {x.frame} {x.psnr:.2f} dB" for x in missed[:8]) + (" ..." if len(missed) > 8 else "")
    return (f"{len(missed)} of {checked} checked frames are below --target-psnr {target:g} ({frames}); "
            "the clip is written. Try --quality high or a shorter --gop; see every frame with `splat video eval`")


def _print_encode_summary(console, output: Path, res, scenes, fid, worst, mode: Optional[str], gop: int,
                          in_bytes: int, target: Optional[float] = None, missed: int = 0) -> None:
    from splat.progress import human_bytes, summary_table

    n = max(res.frame_counts)
    coding = {"tracked": "tracked (dual motion)", "resorted": "re-sorted (correspondence recovered, dual motion)",
              "independent": "independent (intra per frame)"}[res.mode]
    coding += "" if mode else ", detected"
    if res.mode == "independent" and "tracked" in res.segment_modes:
        coding = coding.replace("intra per frame", "carried forward: closest-point motion, colour re-fits")
        coding += (f"; {res.stream_bytes.get('tracked_by_rendering', 0)} frames carried in "
                   f"{res.segment_modes.count('tracked')} tracked segments, "
                   f"{res.stream_bytes.get('colour_refreshes', 0)} colour refreshes")
    if res.mode == "resorted":
        coding += f"; {res.stream_bytes.get('births', 0):,} births, {res.stream_bytes.get('deaths', 0):,} deaths"
    rows = [
        ("frames", f"{len(scenes)} ({res.info.n_segments} segments, gop {gop})"),
        ("Gaussians / frame", f"{n:,}"),
        ("coding", coding),
        ("fidelity", f"mean {sum(x.psnr for x in fid) / len(fid):.2f} dB, worst {worst.psnr:.2f} dB (frame {worst.frame}), "
                     f"SSIM {sum(x.ssim for x in fid) / len(fid):.4f} on {len(fid)} frames"),
        *([("target", f"{target:g} dB: {len(fid) - missed} of {len(fid)} checked frames reach it")] if target is not None else []),
        ("input", human_bytes(in_bytes)),
        ("output", f"{output} {human_bytes(len(res.data))} ({in_bytes / max(len(res.data), 1):.1f}x smaller)"),
        ("KB / frame", f"{len(res.data) / 1024 / len(scenes):.1f}"),
        ("bits / Gaussian / frame", f"{len(res.data) * 8 / max(sum(res.frame_counts), 1):.2f}"),
        ("encode", f"{res.encode_s:.1f} s ({res.encode_s / len(scenes):.2f} s/frame)"),
    ]
    console.print(summary_table("splat video encode", ["", "value"], rows))


def _frame_paths(folder: Path, n_frames: int, ext: str, width: int = 4) -> list[Path]:
    width = max(width, len(str(n_frames)))
    return [folder / f"frame_{i:0{width}d}{ext}" for i in range(n_frames)]


def _check_frames_free(folder: Path, paths: list[Path], force: bool) -> None:
    """Refuse (one line, before any work) when ``folder`` is a file or a frame file exists without ``force``."""
    from splat.atomic import check_output_path
    from splat.errors import UsageError

    check_output_path(folder, folder=True)
    if paths:
        check_output_path(paths[-1], force=True)  # name length, parents
    taken = [p for p in paths if p.exists()]
    if taken and not force:
        more = f" and {len(taken) - 1} more" if len(taken) > 1 else ""
        raise UsageError(f"{taken[0]}{more} exist (pass --force to overwrite them)")


def decode_cmd(
    input: Path = typer.Argument(..., help="A .gsv clip."),
    output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
    format: str = typer.Option("ply", "--format", "-f", help="Frame format: ply, spz, splat, sog, lgs, ..."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing frame files."),
) -> None:
    from splat.atomic import check_input_file
    from splat.cli import console, err_console
    from splat.errors import FormatError
    from splat.io import get_format, write_scene
    from splat.progress import make_progress, summary_table

    from .codec import VideoReader

    spec = get_format(format)
    if not spec.can_write:
        raise typer.BadParameter(f"format {spec.name!r} cannot be written")
    ext = spec.extensions[0] if spec.extensions else f".{format}"
    check_input_file(input)
    failed: list[tuple[str, str]] = []
    written = 0
    with VideoReader(input) as r:
        info = r.info
        paths = _frame_paths(output, info.n_frames, ext)
        _check_frames_free(output, paths, force)
        output.mkdir(parents=True, exist_ok=True)
        t_dec = 0.0
        with make_progress() as prog:
            task = prog.add_task("decoding", total=info.n_frames, info="")
            for s in range(info.n_segments):
                first, count = info.segment_first[s], info.segment_frames[s]
                try:
                    r.segment(s)
                except FormatError as e:
                    failed.append((f"segment {s} (frames {first}..{first + count - 1})", e.reason))
                    prog.advance(task, count)
                    continue
                for i in range(first, first + count):
                    try:
                        t0 = time.perf_counter()
                        scene = r.frame(i)
                        t_dec += time.perf_counter() - t0
                    except FormatError as e:
                        failed.append((f"frame {i}", e.reason))
                    else:
                        write_scene(scene, paths[i], format=spec.name)
                        written += 1
                    prog.advance(task)
    rows = [("frames", f"{written} of {info.n_frames} written"), ("folder", str(output)), ("format", spec.name),
            ("decode", f"{written / max(t_dec, 1e-9):.1f} fps")]
    rows += [(what, f"corrupt: {why}") for what, why in failed]
    console.print(summary_table("splat video decode", ["", "value"], rows))
    if failed:
        err_console.print(f"[bold red]error:[/] {input}: {len(failed)} corrupt part(s), "
                          f"{info.n_frames - written} frame(s) not written", highlight=False, soft_wrap=True)
        raise typer.Exit(2)


def info_cmd(input: Path = typer.Argument(..., help="A .gsv clip.")) -> None:
    from splat.atomic import check_input_file
    from splat.cli import console
    from splat.progress import human_bytes, summary_table

    from .codec import VideoReader

    with VideoReader(check_input_file(input)) as r:
        i = r.info
        rows = [
            ("frames", f"{i.n_frames} at {i.fps:g} fps ({i.n_frames / i.fps:.2f} s)"),
            ("Gaussians", f"{i.n_gaussians:,} (max per frame), SH degree {i.sh_degree}"),
            ("coding", {"tracked": "tracked (dual motion)", "resorted": "re-sorted (encoder order, births and deaths)",
                        "independent": "intra per frame"}[i.coding]),
            ("segments", f"{i.n_segments} (gop {i.gop})"),
            ("size", f"{human_bytes(i.total_bytes)}, {i.total_bytes / 1024 / i.n_frames:.1f} KB/frame, "
                     f"{i.total_bytes * 8 * i.fps / i.n_frames / 1e6:.2f} Mbit/s"),
            ("bounds", f"{[round(float(x), 3) for x in i.bounds_min]} .. {[round(float(x), 3) for x in i.bounds_max]}"),
        ]
        for s in range(i.n_segments):
            off, ln = r.segment_range(s)
            rows.append((f"segment {s}", f"frames {i.segment_first[s]}.., offset {off:,}, {human_bytes(ln)}"))
    console.print(summary_table(f"{input}", ["", "value"], rows))


def synth_cmd(
    output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
    gaussians: int = typer.Option(50000, "--gaussians", min=100, max=10_000_000, help="Gaussians per frame."),
    frames: int = typer.Option(90, "--frames", min=1, max=100_000, help="Frames to write (at most the motion's length)."),
    bvh: Optional[Path] = typer.Option(None, "--bvh", help="BVH motion (default: the repository's ../shared/data/motion/mocapbank_455f.bvh)."),
    format: str = typer.Option("ply", "--format", "-f", help="Frame format."),
    shuffle: bool = typer.Option(False, "--shuffle", help="Shuffle each frame's order (untracked content)."),
    force: bool = typer.Option(False, "--force", help="Overwrite existing frame files in the folder."),
) -> None:
    import torch

    from splat.atomic import check_input_file
    from splat.cli import console
    from splat.io import get_format, write_scene
    from splat.progress import make_progress, summary_table

    from .bvh import read_bvh
    from .synth import Performer, require_default_bvh

    spec = get_format(format)
    if not spec.can_write:
        raise typer.BadParameter(f"format {spec.name!r} cannot be written")
    ext = spec.extensions[0]
    motion = read_bvh(check_input_file(bvh) if bvh is not None else require_default_bvh())
    count = min(frames, motion.n_frames)
    paths = _frame_paths(output, count, ext)
    _check_frames_free(output, paths, force)
    performer = Performer(motion, gaussians)
    scenes = performer.frames(count)
    output.mkdir(parents=True, exist_ok=True)
    with make_progress() as prog:
        task = prog.add_task("writing", total=len(scenes), info="")
        for i, s in enumerate(scenes):
            if shuffle:
                s = s[torch.randperm(len(s), generator=torch.Generator().manual_seed(i))]
            write_scene(s, paths[i], format=spec.name)
            prog.advance(task)
    console.print(summary_table("splat video synth", ["", "value"],
                                [("frames", f"{len(scenes)} at {performer.fps:.1f} fps"),
                                 ("Gaussians", f"{len(scenes[0]):,}"), ("folder", str(output))]))


def register(app: typer.Typer) -> None:
    video = typer.Typer(help=GROUP_HELP, no_args_is_help=True)
    app.add_typer(video, name="video")
    video.command("encode", help=ENCODE_HELP)(encode_cmd)
    video.command("decode", help=DECODE_HELP)(decode_cmd)
    video.command("info", help=INFO_HELP)(info_cmd)
    video.command("synth", help=SYNTH_HELP)(synth_cmd)
    from .eval import register_eval

    register_eval(video)
