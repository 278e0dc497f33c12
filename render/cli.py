"""``splat render``: PNG views of a scene (registered through the ``splat.commands`` entry point)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from splat.cli_options import backend_option, force_option, output_option
from splat.progress import make_progress, summary_table

_HELP = """Render a scene to PNG views.

[bold]--cameras[/] is 'orbit' (a ring of views around the scene), 'hemisphere', or a camera
file: an INRIA cameras.json, a nerfstudio/instant-ngp transforms.json, or the JSON of
`ns-export cameras` (give the dataset's transforms.json with --intrinsics). A
splatfacto checkpoint lives in nerfstudio's dataparser frame: camera files are moved
into it with the run folder's dataparser_transforms.json (found automatically when
FILE is a run folder or a checkpoint in one; or name it with --dataparser). The world up
axis for generated views comes from --up, else from geometry.up_axis in a
'<name>.meta.json' beside the scene, else -y (COLMAP-style scenes).

Examples:

  splat render scene.splat --cameras orbit -o views/

  splat render point_cloud.ply --cameras cameras.json --width 800 -o views/

  splat render outputs/lego/splatfacto/2024-01-01_000000 --cameras data/lego/transforms.json -o views/

  splat render scene.spz --cameras orbit -n 24 --width 1280 --height 720 --background white -o turntable/
"""


def backend_device(backend: str) -> tuple[str, str]:
    """(backend, torch device) for a ``--backend`` value: gsplat renders CUDA tensors, cpu CPU ones;
    auto takes gsplat when a CUDA GPU and the gsplat package are there. One-line UsageError otherwise."""
    import torch

    from splat.cli_options import check_backend
    from splat.errors import UsageError

    from .rasterize import _gsplat_available

    check_backend(backend)
    cuda_ok = torch.cuda.is_available() and _gsplat_available(torch.device("cuda"))
    if backend == "auto":
        backend = "gsplat" if cuda_ok else "cpu"
    if backend == "gsplat" and not cuda_ok:
        raise UsageError("--backend gsplat needs a CUDA GPU and the gsplat package (pip install 'splatkit[cuda]')")
    return backend, ("cuda" if backend == "gsplat" else "cpu")


def register(app: typer.Typer) -> None:
    app.command("render", help=_HELP, no_args_is_help=True)(render_command)


def render_command(
    file: Path = typer.Argument(..., help="scene file (any format splat reads)", show_default=False),
    out: Path = output_option("output folder for the PNG files"),
    cameras: str = typer.Option("orbit", "--cameras", "-c", help="'orbit', 'hemisphere', cameras.json or transforms.json"),
    n: Optional[int] = typer.Option(None, "--num-views", "-n", help="number of views (generated: default 8; files: evenly spaced subset)"),
    width: Optional[int] = typer.Option(None, "--width", help="image width (generated default 640)"),
    height: Optional[int] = typer.Option(None, "--height", help="image height (generated default 480)"),
    sh_degree: Optional[int] = typer.Option(None, "--sh-degree", help="use at most this SH degree (0-3)"),
    background: str = typer.Option("black", "--background", "-b", help="black, white, gray, #rrggbb or r,g,b"),
    up: Optional[str] = typer.Option(None, "--up", help="world up axis for generated views, e.g. -y, +z"),
    backend: str = backend_option(),
    force: bool = force_option("overwrite existing PNG files"),
    dataparser: Optional[Path] = typer.Option(None, "--dataparser", help="nerfstudio dataparser_transforms.json for camera files (default: the run folder's, for a splatfacto scene)"),
    intrinsics: Optional[Path] = typer.Option(None, "--intrinsics", help="camera file giving the intrinsics of ns-export cameras (the dataset's transforms.json)"),
) -> None:
    from splat.atomic import check_output_path
    from splat.errors import UsageError
    from splat.io import read_scene

    from .views import make_cameras, parse_background, render_to_pngs, scene_up_axis

    for name, v in (("--num-views", n), ("--width", width), ("--height", height)):
        if v is not None and v < 1:
            raise UsageError(f"{name} must be at least 1")
    if sh_degree is not None and not 0 <= sh_degree <= 3:
        raise UsageError("--sh-degree must be 0..3")
    backend, device = backend_device(backend)
    check_output_path(out, folder=True)
    bg = parse_background(background)
    t0 = time.perf_counter()
    scene = read_scene(file)
    up_axis = up or scene_up_axis(file)
    if dataparser is None and cameras not in ("orbit", "hemisphere"):
        from splat.io.nerfstudio import find_dataparser_transforms

        dataparser = find_dataparser_transforms(file)
    try:
        cams = make_cameras(scene, cameras, n=n, width=width, height=height, up=up_axis,
                            dataparser=dataparser, intrinsics=intrinsics)
    except ValueError as e:
        raise UsageError(str(e)) from None
    console = Console(stderr=True)
    with make_progress(console) as progress:
        task = progress.add_task("rendering", total=len(cams), info="")

        def step(view):
            progress.update(task, advance=1, info=f"{view.path.name} ({view.seconds:.2f} s)")

        views = render_to_pngs(scene.to(device), cams, out, sh_degree=sh_degree, background=bg, backend=backend, force=force, on_view=step)
    total = time.perf_counter() - t0
    w, h = cams[0].width, cams[0].height
    rows = [
        ("scene", f"{file} ({len(scene):,} Gaussians, SH {scene.sh_degree})"),
        ("views", f"{len(views)} x {w}x{h} PNG in {out}/"),
        ("cameras", cameras + (f" (moved by {dataparser})" if dataparser else "")),
        ("up axis", up_axis),
        ("mean coverage (alpha)", f"{sum(v.coverage for v in views) / len(views):.3f}"),
        ("render time per view", f"{sum(v.seconds for v in views) / len(views):.3f} s"),
        ("total time", f"{total:.2f} s"),
    ]
    Console().print(summary_table("splat render", ["", "value"], rows))
