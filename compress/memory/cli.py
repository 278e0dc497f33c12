"""``splat memory``: extract, build, render and query feature memories (.m3)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer

from splat.cli_options import (
    allow_outside_ref_option,
    backend_option,
    check_backend,
    check_range,
    force_option,
    output_option,
)
from splat.errors import UsageError

memory_app = typer.Typer(
    name="memory",
    help=(
        "Feature memory (M3): distil per-view foundation-model features into a splat scene.\n\n"
        "Examples:\n\n"
        "  splat memory extract plant.splat --views 30 --holdout 4 -o feats/\n\n"
        "  splat memory build plant.splat --cameras feats/cameras.json --features feats/ -o plant.m3\n\n"
        "  splat memory render plant.m3 --camera 3 -o feat.npy\n\n"
        "  splat memory query plant.m3 --camera 3 --pixel 320,240 -o heat.png"
    ),
    no_args_is_help=True,
    rich_markup_mode="rich",
)


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _read_scene(path: Path):
    from splat.atomic import check_input_file

    check_input_file(path, folder_ok=True)  # a SOG folder is a scene
    try:
        from splat.io import read_scene
    except ImportError:
        raise UsageError("reading scene files needs splat.io.read_scene, which this installation lacks") from None
    return read_scene(path)


def _cameras(spec: str, scene, views: int, width: int, height: int):
    from splat.camera import load_cameras, orbit_cameras

    if spec.startswith("orbit"):
        return orbit_cameras(scene, views, width=width, height=height)
    return load_cameras(spec)


def _memory_cameras(mem, cameras: Optional[str]):
    from splat.camera import load_cameras

    if cameras:
        return load_cameras(cameras)
    from .m3file import cameras_from_meta

    cams = cameras_from_meta(mem.meta)
    if not cams:
        raise UsageError("this .m3 file stores no cameras; pass --cameras FILE")
    return cams


def _pick(cams, i: int):
    if not 0 <= i < len(cams):
        raise UsageError(f"camera {i} does not exist (there are {len(cams)})")
    return cams[i]


# options shared by several commands
_CAMERA = typer.Option(0, min=0, help="camera index (cameras stored in the .m3, or --cameras)")
_CAMERAS = typer.Option(None, help="camera file to use instead of the stored cameras")
_MODEL = typer.Option(None, help="feature model name (default: the first)")
_SCALE = typer.Option(1.0, help="render at this fraction of the camera resolution")
_BACKEND = backend_option("renderer: auto, cpu, or reference (the float64 torch renderer); "
                          "feature memories render on the CPU")
MEMORY_BACKENDS = ("auto", "cpu", "reference")
_MEMORY_WHY = "feature memories keep their tensors on the CPU, so the CUDA gsplat backend cannot render them"
_FORCE = force_option()
ALLOW_OUTSIDE_REF = allow_outside_ref_option()


@memory_app.command("extract")
def extract_cmd(
    scene_path: Path = typer.Argument(..., metavar="SCENE", help="scene file (.ply, .splat, .spz, .sog...)"),
    out: Path = output_option("output folder for features.json, the maps and cameras.json"),
    cameras: str = typer.Option("orbit", help="camera file (cameras.json / transforms.json) or 'orbit'"),
    views: int = typer.Option(30, min=1, max=10_000, help="number of orbit views (with --cameras orbit)"),
    width: int = typer.Option(640, min=1, max=16384, help="orbit view width in pixels"),
    height: int = typer.Option(480, min=1, max=16384, help="orbit view height in pixels"),
    layers: str = typer.Option("b10", help="EfficientNet-Lite0 layers, comma-separated (b4, b7, b10, b14, head)"),
    holdout: int = typer.Option(4, min=0, help="hold out every view whose index is 1 mod (views // holdout); 0 = none"),
    fmt: str = typer.Option("npy", "--format", help="npy, pt or safetensors"),
    backend: str = _BACKEND,
) -> None:
    """Render views of SCENE and extract real CNN features (EfficientNet-Lite0, offline) into
    the bring-your-own feature format. Needs the \\[features] extra.

    Example: splat memory extract plant.splat --views 30 --holdout 4 -o feats/
    """
    from splat.atomic import check_output_path
    from splat.camera import save_inria_cameras

    from .extract import MISSING, available, extract_scene_features

    check_backend(backend, MEMORY_BACKENDS, why=_MEMORY_WHY)
    check_output_path(out, folder=True)
    if not available():
        raise UsageError(MISSING)
    if fmt not in ("npy", "pt", "safetensors"):
        raise UsageError("--format must be npy, pt or safetensors")
    scene = _read_scene(scene_path)
    cams = _cameras(cameras, scene, views, width, height)
    hold = holdout_indices(len(cams), holdout)
    t0 = time.perf_counter()
    idx = extract_scene_features(scene, cams, out, layers=[s.strip() for s in layers.split(",") if s.strip()],
                                 holdout=hold, suffix="." + fmt, backend=backend)
    save_inria_cameras(cams, out / "cameras.json")
    _console().print(f"wrote {idx} ({len(cams)} views, {len(hold)} held out) in {time.perf_counter() - t0:.1f} s")


def holdout_indices(n: int, count: int) -> list[int]:
    """``count`` evenly spread held-out view indices among ``n`` (never all of them)."""
    if count <= 0 or n < 2:
        return []
    count = min(count, n - 1)
    step = n / count
    return sorted({int(i * step + step / 2) % n for i in range(count)})


@memory_app.command("build")
def build_cmd(
    scene_path: Path = typer.Argument(..., metavar="SCENE", help="the trained scene file"),
    cameras: Path = typer.Option(..., help="cameras.json (INRIA) or transforms.json matching the features"),
    features: Path = typer.Option(..., help="feature folder or its features.json index"),
    out: Path = output_option("output .m3 file"),
    query_dim: int = typer.Option(16, min=1, max=1024, help="query channels per Gaussian and model"),
    bank_threshold: float = typer.Option(0.9, help="cosine above which a feature vector counts as a duplicate"),
    bank_max: int = typer.Option(4096, min=1, max=1_000_000, help="hard cap on the bank size (k-means refinement past it)"),
    steps: Optional[int] = typer.Option(None, min=1, help="maximum optimisation steps (default: until the loss plateaus)"),
    max_seconds: float = typer.Option(480.0, help="time budget for the optimisation, seconds"),
    pixels_per_view: int = typer.Option(2000, min=1, help="pixels sampled per view and step"),
    fixed_projection: bool = typer.Option(False, help="keep M3's fixed random projection instead of learning it"),
    temperature: float = typer.Option(0.05, help="softmax temperature of the memory attention"),
    query_bits: int = typer.Option(8, min=1, max=16, help="bits per quantised query channel in the .m3 file"),
    scene_ref: bool = typer.Option(False, "--scene-ref", help="store a reference to SCENE instead of embedding it "
                                   "(SCENE must be in the output's folder or below)"),
    allow_outside_ref: bool = ALLOW_OUTSIDE_REF,
    ply: Optional[Path] = typer.Option(None, help="also write an INRIA PLY with M3-compatible f_emb_* properties"),
    backend: str = _BACKEND,
    force: bool = force_option("overwrite existing outputs"),
) -> None:
    """Distil per-view features into SCENE and write a compact .m3 feature memory.

    Example: splat memory build scene.ply --cameras cameras.json --features feats/ -o scene.m3
    """
    from splat.atomic import check_output_path
    from splat.camera import load_cameras
    from splat.progress import RichProgress, human_bytes, make_progress, summary_table

    from .distill import DistillConfig, distill
    from .features import load_features
    from .fit import FitConfig
    from .m3file import cameras_to_meta, check_scene_ref, encode_m3, export_ply, write_m3

    if scene_ref:
        check_scene_ref(out, scene_path, allow_outside_ref)
    check_backend(backend, MEMORY_BACKENDS, why=_MEMORY_WHY)
    check_range("--bank-threshold", bank_threshold, -1.0, 1.0, lo_open=True)
    check_range("--max-seconds", max_seconds, 0.0, None, lo_open=True)
    check_range("--temperature", temperature, 0.0, None, lo_open=True)
    check_output_path(out, [scene_path, cameras], force)
    if ply is not None:
        check_output_path(ply, [scene_path], force)
    fs = load_features(features)
    cams = load_cameras(cameras)
    scene = _read_scene(scene_path)
    cfg = DistillConfig(
        query_dim=query_dim, bank_threshold=bank_threshold, bank_max=bank_max,
        learnable_projection=not fixed_projection, temperature=temperature,
        fit=FitConfig(pixels_per_view=pixels_per_view, max_steps=steps, max_seconds=max_seconds, backend=backend),
    )
    with make_progress(transient=True) as bar:
        mem, rep = distill(scene, cams, fs, cfg, progress=RichProgress(bar))
    mem.meta["cameras"] = cameras_to_meta(cams)
    nbytes = write_m3(mem, out, query_bits=query_bits, scene_path=scene_path, embed_scene=not scene_ref,
                      allow_outside_ref=allow_outside_ref)
    if ply is not None:
        export_ply(mem, ply)
    rows = []
    qbytes = len(scene) * mem.queries.shape[1] * query_bits / 8
    for m in mem.models:
        st = rep.banks[m.name]
        full = len(scene) * m.dim * 4
        ho = rep.heldout.get(m.name, {})
        rows.append((m.name, f"{m.dim}", f"{st.size} ({st.deduplicated} before cap)" if st.capped else f"{st.size}",
                     f"{ho['cos']:.4f}" if ho else "-", f"{ho['l2']:.3f}" if ho else "-",
                     f"{human_bytes(full)}"))
    c = _console()
    c.print(summary_table(f"Feature memory {out}", ["model", "D", "bank", "held-out cos", "held-out L2",
                                                     "full per-Gaussian f32"], rows))
    full_all = sum(len(scene) * m.dim * 4 for m in mem.models)
    feat_bytes = len(encode_m3(mem, query_bits=query_bits, embed_scene=False, scene_ref="scene", scene_sha256=""))
    c.print(summary_table("Storage and time", ["what", "value"], [
        ("Gaussians", f"{len(scene):,}"),
        (".m3 file", human_bytes(nbytes) + (" (scene by reference)" if scene_ref else " (scene embedded)")),
        ("queries (before entropy coding)", human_bytes(int(qbytes))),
        ("feature memory alone (no geometry)", human_bytes(feat_bytes)),
        ("ratio vs full per-Gaussian float32 features", f"{full_all / feat_bytes:.1f}x"),
        ("views train / held out", f"{len(rep.train_views)} / {len(rep.holdout_views)}"),
        ("bank time", f"{rep.bank_seconds:.1f} s"),
        ("optimisation", f"{rep.fit.steps} steps, {rep.fit.epochs} epochs, {rep.fit.seconds:.1f} s ({rep.fit.stop_reason})"),
    ]))


def _load_memory(path: Path, allow_outside_ref: bool = False):
    from splat.atomic import check_input_file

    from .m3file import read_m3

    return read_m3(check_input_file(path), allow_outside_ref=allow_outside_ref)


def _scaled(cam, scale: float):
    if scale <= 0:
        raise UsageError("--scale must be positive")
    return cam if scale == 1.0 else cam.scaled(scale)


@memory_app.command("render")
def render_cmd(
    m3: Path = typer.Argument(..., metavar="MEMORY.m3"),
    camera: int = _CAMERA,
    out: Path = output_option("output .npy (float16 [H,W,D]) or .pt"),
    cameras: Optional[str] = _CAMERAS,
    model: Optional[str] = _MODEL,
    scale: float = _SCALE,
    backend: str = _BACKEND,
    force: bool = _FORCE,
    allow_outside_ref: bool = ALLOW_OUTSIDE_REF,
) -> None:
    """Render one view's features [H,W,D] in the foundation model's space.

    Example: splat memory render scene.m3 --camera 3 -o feat.npy
    """
    from splat.atomic import check_output_path

    from .features import write_array
    from .query import render_features

    check_backend(backend, MEMORY_BACKENDS, why=_MEMORY_WHY)
    check_range("--scale", scale, 0.0, None, lo_open=True)
    check_output_path(out, [m3], force)
    if out.suffix.lower() not in (".npy", ".pt", ".safetensors"):
        raise UsageError("output must end in .npy, .pt or .safetensors")
    mem = _load_memory(m3, allow_outside_ref)
    cam = _scaled(_pick(_memory_cameras(mem, cameras), camera), scale)
    f = render_features(mem, cam, model, backend=backend)
    write_array(out, f.numpy().astype("float16"))
    _console().print(f"wrote {out}: features [{f.shape[0]}, {f.shape[1]}, {f.shape[2]}]")


@memory_app.command("query")
def query_cmd(
    m3: Path = typer.Argument(..., metavar="MEMORY.m3"),
    out: Path = output_option("output heatmap PNG"),
    camera: int = _CAMERA,
    pixel: Optional[str] = typer.Option(None, help="'x,y' pixel (in the rendered image) whose feature is the query"),
    text: Optional[str] = typer.Option(None, help="text prompt (needs --encoder)"),
    encoder: Optional[str] = typer.Option(None, help="text encoder 'package.module:function', str -> vector [D]"),
    threshold: Optional[float] = typer.Option(None, help="grey out pixels whose cosine similarity is below this"),
    cameras: Optional[str] = _CAMERAS,
    model: Optional[str] = _MODEL,
    scale: float = _SCALE,
    backend: str = _BACKEND,
    force: bool = _FORCE,
    allow_outside_ref: bool = ALLOW_OUTSIDE_REF,
) -> None:
    """Similarity heatmap for a clicked pixel's feature (or a text prompt) in one view.

    Example: splat memory query scene.m3 --camera 3 --pixel 320,240 --threshold 0.8 -o heat.png
    """
    import imageio.v3 as iio

    from splat.atomic import atomic_path, check_output_path

    from .query import load_text_encoder, pick_feature, render_features, similarity, similarity_colors

    check_backend(backend, MEMORY_BACKENDS, why=_MEMORY_WHY)
    check_range("--scale", scale, 0.0, None, lo_open=True)
    check_output_path(out, [m3], force)
    if (pixel is None) == (text is None):
        raise UsageError("give exactly one of --pixel x,y or --text TEXT")
    mem = _load_memory(m3, allow_outside_ref)
    cam = _scaled(_pick(_memory_cameras(mem, cameras), camera), scale)
    feats = render_features(mem, cam, model, backend=backend)
    if pixel is not None:
        try:
            x, y = (int(v) for v in pixel.split(","))
        except ValueError:
            raise UsageError("--pixel must be 'x,y' with integers") from None
        vec = pick_feature(feats, x, y)
    else:
        if encoder is None:
            raise UsageError("--text needs --encoder package.module:function")
        vec = load_text_encoder(encoder)(text)
    sim = similarity(mem, cam, vec, model, features=feats)
    rgb = similarity_colors(sim, threshold)
    with atomic_path(out) as tmp:
        iio.imwrite(tmp, (rgb.numpy() * 255 + 0.5).astype("uint8"), extension=".png")
    _console().print(f"wrote {out}: similarity range [{float(sim.min()):.3f}, {float(sim.max()):.3f}]"
                     + (f", {float((sim >= threshold).float().mean()) * 100:.1f}% above {threshold}" if threshold is not None else ""))


def register(app: typer.Typer) -> None:
    """Entry point for the ``splat.commands`` group."""
    app.add_typer(memory_app, name="memory")
