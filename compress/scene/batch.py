"""``splat compress`` over many scenes: a folder or a glob in, a folder of ``.lgs`` out,
one task per scene run serially or on Ray (:mod:`splat.workers`).

Each task reads its scene, finds its cameras as the single-file command does, compresses
and returns the ``.lgs`` bytes; the bytes are the same whichever process ran the task
(every task runs the same single-threaded code on the same inputs). The outputs are
written, each atomically, only after every task is in.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from pathlib import Path

from splat.batch import batch_inputs, batch_outputs, write_batch
from splat.progress import Progress
from splat.workers import run_tasks

from .pipeline import CompressSettings

SCENE_SUFFIXES = (".ply", ".splat", ".spz", ".sog", "meta.json")


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

    from .views import find_cameras
    from .pipeline import compress_scene, handoff

    with threads(job.threads):
        load = handoff(read_scene(job.input), partial(read_scene, job.input))
        cam_path = Path(job.cameras) if job.cameras else find_cameras(Path(job.input))
        cams = load_cameras(cam_path) if cam_path is not None else None
        return compress_scene(load, job.settings, cameras=cams).data


def compress_batch(input: Path, out_dir: Path, settings: CompressSettings, *, cameras: Path | None = None,
                   workers: int = 1, address: str | None = None, force: bool = False,
                   progress: Progress | None = None) -> list[tuple[Path, Path, int]]:
    """Compress every scene named by ``input`` into ``out_dir``: [(input, output, bytes)]."""
    inputs = batch_inputs(input, SCENE_SUFFIXES)
    outs = batch_outputs(inputs, out_dir, ".lgs", force)
    jobs = [Job(str(p), str(cameras) if cameras else None, settings) for p in inputs]
    data = run_tasks(compress_job, jobs, workers=workers, address=address, progress=progress, desc="compress scenes")
    write_batch(outs, data)
    return [(p, o, len(d)) for p, o, d in zip(inputs, outs, data)]
