"""``splat compress`` over many scenes: a folder or a glob in, a folder of ``.lgs`` out,
one task per scene run serially or on Ray (:mod:`splat.workers`).

Each task reads its scene, finds its cameras as the single-file command does, compresses
and returns the ``.lgs`` bytes; the bytes are the same whichever process ran the task
(every task runs the same single-threaded code on the same inputs). The outputs are
written, each atomically, only after every task is in.
"""
from __future__ import annotations

import glob
from dataclasses import dataclass
from pathlib import Path

from splat.atomic import atomic_write_bytes
from splat.errors import UsageError
from splat.progress import Progress
from splat.workers import run_tasks

from .pipeline import CompressSettings

SCENE_SUFFIXES = (".ply", ".splat", ".spz", ".sog", "meta.json")


def is_batch(input: Path) -> bool:
    """True when ``input`` names several scenes: a folder or a glob pattern."""
    return input.is_dir() or any(ch in str(input) for ch in "*?[")


def batch_inputs(input: Path) -> list[Path]:
    """The scene files named by a folder (its scene files, not recursive) or a glob, sorted."""
    if input.is_dir():
        found = [p for p in input.iterdir() if p.is_file() and p.name.lower().endswith(SCENE_SUFFIXES)]
    else:
        found = [Path(p) for p in glob.glob(str(input)) if Path(p).is_file()]
    if not found:
        raise UsageError(f"no scene files match {input}")
    return sorted(found)


def output_names(inputs: list[Path], out_dir: Path) -> list[Path]:
    """``out_dir/<name>.lgs`` per input (``meta.json`` is named by its folder); UsageError on
    two inputs with the same name."""
    outs = []
    for p in inputs:
        stem = p.parent.name if p.name.lower() == "meta.json" else p.name.split(".")[0]
        outs.append(out_dir / f"{stem}.lgs")
    seen: dict[Path, Path] = {}
    for p, o in zip(inputs, outs):
        if o in seen:
            raise UsageError(f"{seen[o]} and {p} would both be written to {o}")
        seen[o] = p
    return outs


@dataclass(frozen=True)
class Job:
    """One scene to compress: its path, optional camera file, and the settings."""

    input: str
    cameras: str | None
    settings: CompressSettings
    threads: int = 1


def compress_job(job: Job) -> bytes:
    """Compress one scene file to ``.lgs`` bytes (runs in a worker; single-threaded by default)."""
    from splat.camera import load_cameras
    from splat.io import read_scene
    from splat.threads import threads

    from .cli import find_cameras
    from .pipeline import compress_scene

    with threads(job.threads):
        scene = read_scene(job.input)
        cam_path = Path(job.cameras) if job.cameras else find_cameras(Path(job.input))
        cams = load_cameras(cam_path) if cam_path is not None else None
        return compress_scene(scene, job.settings, cameras=cams).data


def compress_batch(input: Path, out_dir: Path, settings: CompressSettings, *, cameras: Path | None = None,
                   workers: int = 1, address: str | None = None, force: bool = False,
                   progress: Progress | None = None) -> list[tuple[Path, Path, int]]:
    """Compress every scene named by ``input`` into ``out_dir``: [(input, output, bytes)]."""
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o must be a folder when compressing several scenes, and {out_dir} is a file")
    inputs = batch_inputs(input)
    outs = output_names(inputs, out_dir)
    clash = [o for o in outs if o.exists()]
    if clash and not force:
        raise UsageError(f"{clash[0]} exists (pass --force to overwrite)")
    jobs = [Job(str(p), str(cameras) if cameras else None, settings) for p in inputs]
    data = run_tasks(compress_job, jobs, workers=workers, address=address, progress=progress, desc="compress scenes")
    out_dir.mkdir(parents=True, exist_ok=True)
    for o, d in zip(outs, data):
        atomic_write_bytes(o, d)
    return [(p, o, len(d)) for p, o, d in zip(inputs, outs, data)]
