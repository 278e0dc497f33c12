"""``splat fit-image`` over many images: a folder or a glob in, a folder of ``.gsi`` out,
one task per image run serially or on Ray (:mod:`splat.workers`). Each task runs
single-threaded, so the bytes are the same whichever process ran it; the outputs are
written, each atomically, only after every task is in."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from splat.batch import batch_inputs, batch_outputs, write_batch
from splat.progress import Progress
from splat.workers import run_tasks

IMAGE_SUFFIXES = (".png", ".tif", ".tiff", ".jpg", ".jpeg", ".bmp", ".webp", ".npy")


@dataclass(frozen=True)
class FitJob:
    """One image to fit: its path and ``compress_image``'s keyword options (without ``config``)."""

    input: str
    options: dict = field(default_factory=dict)
    seed: int = 0
    threads: int = 1


def fit_job(job: FitJob) -> bytes:
    """Fit one image file to ``.gsi`` bytes (runs in a worker)."""
    from splat.threads import threads

    from .api import compress_image
    from .fit import FitConfig
    from .imageio import load_image

    with threads(job.threads):
        img = load_image(job.input)
        res = compress_image(img.pixels, config=FitConfig(seed=job.seed),
                             meta={"bit_depth": img.bit_depth, "source": Path(job.input).name}, **job.options)
        return res.data


def fit_batch(input: Path, out_dir: Path, options: dict, *, seed: int = 0, workers: int = 1,
              address: str | None = None, force: bool = False,
              progress: Progress | None = None) -> list[tuple[Path, Path, int]]:
    """Fit every image named by ``input`` into ``out_dir``: [(input, output, bytes)]."""
    inputs = batch_inputs(input, IMAGE_SUFFIXES)
    outs = batch_outputs(inputs, out_dir, ".gsi", force)
    jobs = [FitJob(str(p), dict(options), seed) for p in inputs]
    data = run_tasks(fit_job, jobs, workers=workers, address=address, progress=progress, desc="fit images")
    write_batch(outs, data)
    return [(p, o, len(d)) for p, o, d in zip(inputs, outs, data)]
