"""``splat video eval ORIGINAL_FRAMES clip.gsv``: per-frame fidelity of a clip, CSV and plot.

Registered by :func:`register_eval`; the fidelity itself is :mod:`compress.video.fidelity`
(shared with the fidelity line of ``splat video encode``).
"""
from __future__ import annotations

import csv
import io
import os
from pathlib import Path

import numpy as np

from .fidelity import EVAL_SIZE, EVAL_VIEWS, FrameFidelity, clip_fidelity, sample_frames

def write_csv(rows: list[FrameFidelity], bits: list[float], path: Path) -> None:
    """One line per frame: frame, psnr_db, ssim, gaussians_original, gaussians_decoded,
    bits_per_gaussian (the frame's segment bytes spread over its frames)."""
    from splat.atomic import atomic_write_bytes

    buf = io.StringIO()
    w = csv.writer(buf)
    w.writerow(["frame", "psnr_db", "ssim", "gaussians_original", "gaussians_decoded", "bits_per_gaussian"])
    for r, b in zip(rows, bits):
        w.writerow([r.frame, f"{r.psnr:.3f}", f"{r.ssim:.5f}", r.original, r.decoded, f"{b:.3f}"])
    atomic_write_bytes(path, buf.getvalue().encode())


def plot(rows: list[FrameFidelity], bits: list[float], path: Path, title: str) -> None:
    """Per-frame PSNR and bits/Gaussian (PNG)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 3.2))
    x = [r.frame for r in rows]
    ax.plot(x, [r.psnr for r in rows], "o-", color="tab:blue", ms=3)
    ax.set_xlabel("frame")
    ax.set_ylabel("PSNR (dB)", color="tab:blue")
    ax2 = ax.twinx()
    ax2.plot(x, bits, "s--", color="tab:orange", ms=3)
    ax2.set_ylabel("bits / Gaussian", color="tab:orange")
    ax.set_title(title)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def segment_bits(reader, counts: list[int]) -> list[float]:
    """Bits per Gaussian per frame: each segment's bytes spread over its frames' Gaussians."""
    i = reader.info
    out = []
    for s in range(i.n_segments):
        a, n = i.segment_first[s], i.segment_frames[s]
        g = max(sum(counts[a:a + n]), 1)
        out += [reader.segment_bytes(s) * 8 / g] * n
    return out


def register_eval(video) -> None:
    """Add ``eval`` to the ``splat video`` command group."""
    import typer

    @video.command("eval", help="""Per-frame fidelity of a .gsv clip against its original frames.

PSNR and SSIM of renders of the decoded frames against renders of the originals from
held-out orbit views, bits per Gaussian per frame, a summary table, a CSV and a plot.

Examples:

  splat video eval frames/ clip.gsv

  splat video eval "frames/*.sog" clip.gsv --frames 10 -o eval/ --force
""")
    def eval_cmd(
        original: str = typer.Argument(..., help="The original frames: folder or quoted glob."),
        clip: Path = typer.Argument(..., help="The .gsv clip."),
        output: Path = typer.Option(None, "--output", "-o", help="Folder for eval.csv and eval.png (default: next to the clip)."),
        frames: int = typer.Option(0, "--frames", min=0, max=1_000_000, help="Evaluate this many frames spread over the clip (0: all)."),
        views: int = typer.Option(EVAL_VIEWS, "--views", min=1, max=256, help="Held-out views per frame."),
        size: int = typer.Option(EVAL_SIZE, "--size", min=16, max=4096, help="Render width and height (pixels)."),
        force: bool = typer.Option(False, "--force", help="Overwrite eval.csv / eval.png."),
    ) -> None:
        from splat.cli import console
        from splat.errors import UsageError
        from splat.progress import make_progress, summary_table

        from .codec import VideoReader, read_frames

        paths = read_frames(original)
        out_dir = output or clip.parent
        csv_path, png_path = out_dir / f"{clip.stem}_eval.csv", out_dir / f"{clip.stem}_eval.png"
        for p in (csv_path, png_path):
            if p.exists() and not force:
                raise UsageError(f"{p} exists (use --force to overwrite)")
        with VideoReader(clip) as r:
            if r.info.n_frames != len(paths):
                raise UsageError(f"{clip} holds {r.info.n_frames} frames, {original} has {len(paths)}")
            idx = sample_frames(len(paths), frames or len(paths))
            with make_progress() as prog:
                task = prog.add_task("evaluating", total=len(idx), info="")
                rows = clip_fidelity(paths, r.frame, idx, views, size, progress=lambda: prog.advance(task))
            counts = [len(r.frame(i)) for i in range(r.info.n_frames)]
            bits_all = segment_bits(r, counts)
            info = r.info
        bits = [bits_all[x.frame] for x in rows]
        out_dir.mkdir(parents=True, exist_ok=True)
        write_csv(rows, bits, csv_path)
        plotted = True
        try:
            plot(rows, bits, png_path, f"{clip.name}: per-frame fidelity")
        except ImportError:
            plotted = False
        ps = [x.psnr for x in rows]
        table = [
            ("frames", f"{len(rows)} of {info.n_frames} evaluated, {views} views at {size}x{size}"),
            ("PSNR", f"mean {np.mean(ps):.2f} dB, min {min(ps):.2f} dB (frame {rows[int(np.argmin(ps))].frame})"),
            ("SSIM", f"mean {np.mean([x.ssim for x in rows]):.4f}"),
            ("bits / Gaussian / frame", f"{info.total_bytes * 8 / max(sum(counts), 1):.2f}"),
            ("csv", str(csv_path)),
            ("plot", str(png_path) if plotted else "skipped (matplotlib not installed)"),
        ]
        console.print(summary_table("splat video eval", ["", "value"], table))
