"""``splat video encode|decode|info|synth`` (registered through ``splat.commands``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

EXAMPLES = """
Examples:

  splat video encode frames/ -o clip.gsv

  splat video encode "frames/*.ply" -o clip.gsv --fps 30 --gop 30 --quality high

  splat video decode clip.gsv -o out_frames/ --format spz

  splat video info clip.gsv

  splat video synth -o performer/ --gaussians 20000 --frames 60
"""


def register(app: typer.Typer) -> None:
    video = typer.Typer(help="Volumetric video (.gsv): encode Gaussian sequences, decode, inspect.\n" + EXAMPLES,
                        no_args_is_help=True)
    app.add_typer(video, name="video")

    @video.command("encode", help="Encode a Gaussian sequence (folder, glob or files) into a .gsv clip.\n" + EXAMPLES)
    def encode_cmd(
        input: str = typer.Argument(..., help="Folder of frame files, or a quoted glob (any format splat reads)."),
        output: Path = typer.Option(..., "--output", "-o", help="Output .gsv file."),
        fps: float = typer.Option(30.0, "--fps", help="Frames per second stored in the clip."),
        gop: int = typer.Option(30, "--gop", help="Frames per segment (keyframe interval)."),
        quality: str = typer.Option("medium", "--quality", "-q", help="low, medium or high."),
        tracked: Optional[bool] = typer.Option(None, "--tracked/--untracked", help="Force motion coding or per-frame intra coding (default: detect)."),
        force: bool = typer.Option(False, "--force", help="Overwrite the output if it exists."),
        workers: int = typer.Option(1, "--workers", help="Segments encoded at once on Ray (needs the ray extra: pip install ray); >1 starts a local Ray. Same bytes as serial."),
        ray_address: Optional[str] = typer.Option(None, "--ray-address", help="Join this Ray cluster instead of starting a local one."),
    ) -> None:
        from splat.atomic import atomic_write_bytes, check_output_path
        from splat.cli import console
        from splat.io import read_scene
        from splat.workers import check_workers
        from splat.progress import RichProgress, human_bytes, make_progress, summary_table

        from .codec import QUALITY, VideoSettings, encode_video, read_frames

        if quality not in QUALITY:
            raise typer.BadParameter(f"unknown quality {quality!r} (choose {', '.join(QUALITY)})")
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
            res = encode_video(scenes, VideoSettings(fps=fps, gop=gop, quality=quality, tracked=tracked),
                               progress=RichProgress(prog), workers=workers, address=ray_address)
        atomic_write_bytes(output, res.data)
        n = max(res.frame_counts)
        rows = [
            ("frames", f"{len(scenes)} ({res.info.n_segments} segments, gop {gop})"),
            ("Gaussians / frame", f"{n:,}"),
            ("coding", "tracked (dual motion)" if res.info.tracked else "intra per frame (untracked)"),
            ("input", human_bytes(in_bytes)),
            ("output", f"{output} {human_bytes(len(res.data))} ({in_bytes / max(len(res.data), 1):.1f}x smaller)"),
            ("KB / frame", f"{len(res.data) / 1024 / len(scenes):.1f}"),
            ("bits / Gaussian / frame", f"{len(res.data) * 8 / max(sum(res.frame_counts), 1):.2f}"),
            ("encode", f"{res.encode_s:.1f} s ({res.encode_s / len(scenes):.2f} s/frame)"),
        ]
        console.print(summary_table("splat video encode", ["", "value"], rows))

    @video.command("decode", help="Decode a .gsv clip into one file per frame.\n" + EXAMPLES)
    def decode_cmd(
        input: Path = typer.Argument(..., help="A .gsv clip."),
        output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
        format: str = typer.Option("ply", "--format", "-f", help="Frame format: ply, spz, splat, sog, lgs, ..."),
        force: bool = typer.Option(False, "--force", help="Overwrite existing frame files."),
    ) -> None:
        from splat.cli import console
        from splat.errors import UsageError
        from splat.io import get_format, write_scene
        from splat.progress import make_progress, summary_table

        from .codec import VideoReader

        spec = get_format(format)
        ext = spec.extensions[0] if spec.extensions else f".{format}"
        with VideoReader(input) as r:
            output.mkdir(parents=True, exist_ok=True)
            width = max(4, len(str(r.info.n_frames)))
            t_dec = 0.0
            with make_progress() as prog:
                task = prog.add_task("decoding", total=r.info.n_frames, info="")
                for i in range(r.info.n_frames):
                    path = output / f"frame_{i:0{width}d}{ext}"
                    if path.exists() and not force:
                        raise UsageError(f"{path} exists (use --force to overwrite)")
                    t0 = time.perf_counter()
                    scene = r.frame(i)
                    t_dec += time.perf_counter() - t0
                    write_scene(scene, path, format=spec.name)
                    prog.advance(task)
            rows = [("frames", str(r.info.n_frames)), ("folder", str(output)), ("format", spec.name),
                    ("decode", f"{r.info.n_frames / max(t_dec, 1e-9):.1f} fps")]
        console.print(summary_table("splat video decode", ["", "value"], rows))

    @video.command("info", help="Show a .gsv clip's header and segment sizes.\n" + EXAMPLES)
    def info_cmd(input: Path = typer.Argument(..., help="A .gsv clip.")) -> None:
        from splat.cli import console
        from splat.progress import human_bytes, summary_table

        from .codec import VideoReader

        with VideoReader(input) as r:
            i = r.info
            rows = [
                ("frames", f"{i.n_frames} at {i.fps:g} fps ({i.n_frames / i.fps:.2f} s)"),
                ("Gaussians", f"{i.n_gaussians:,} (max per frame), SH degree {i.sh_degree}"),
                ("coding", "tracked (dual motion)" if i.tracked else "intra per frame"),
                ("segments", f"{i.n_segments} (gop {i.gop})"),
                ("size", f"{human_bytes(i.total_bytes)}, {i.total_bytes / 1024 / i.n_frames:.1f} KB/frame, "
                         f"{i.total_bytes * 8 * i.fps / i.n_frames / 1e6:.2f} Mbit/s"),
                ("bounds", f"{[round(float(x), 3) for x in i.bounds_min]} .. {[round(float(x), 3) for x in i.bounds_max]}"),
            ]
            for s in range(i.n_segments):
                off, ln = r.segment_range(s)
                rows.append((f"segment {s}", f"frames {i.segment_first[s]}.., offset {off:,}, {human_bytes(ln)}"))
        console.print(summary_table(f"{input}", ["", "value"], rows))

    @video.command("synth", help="Write frames of the synthetic mocap-driven performer (test content).\n" + EXAMPLES)
    def synth_cmd(
        output: Path = typer.Option(..., "--output", "-o", help="Output folder."),
        gaussians: int = typer.Option(50000, "--gaussians", help="Gaussians per frame."),
        frames: int = typer.Option(90, "--frames", help="Frames to write."),
        bvh: Optional[Path] = typer.Option(None, "--bvh", help="BVH motion (default: ../shared/data/motion/mocapbank_455f.bvh)."),
        format: str = typer.Option("ply", "--format", "-f", help="Frame format."),
        shuffle: bool = typer.Option(False, "--shuffle", help="Shuffle each frame's order (untracked content)."),
    ) -> None:
        import torch

        from splat.cli import console
        from splat.io import get_format, write_scene
        from splat.progress import make_progress, summary_table

        from .synth import performer_frames

        spec = get_format(format)
        ext = spec.extensions[0]
        scenes, fps = performer_frames(gaussians, frames, bvh=bvh)
        output.mkdir(parents=True, exist_ok=True)
        with make_progress() as prog:
            task = prog.add_task("writing", total=len(scenes), info="")
            for i, s in enumerate(scenes):
                if shuffle:
                    s = s[torch.randperm(len(s), generator=torch.Generator().manual_seed(i))]
                write_scene(s, output / f"frame_{i:04d}{ext}", format=spec.name)
                prog.advance(task)
        console.print(summary_table("splat video synth", ["", "value"],
                                    [("frames", f"{len(scenes)} at {fps:.1f} fps"), ("Gaussians", f"{len(scenes[0]):,}"),
                                     ("folder", str(output))]))
