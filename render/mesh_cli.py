"""``splat mesh``: a triangle mesh from a splat scene by TSDF fusion of RGB-D renders (needs ``[open3d]``)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console

from splat.progress import make_progress, summary_table

_HELP = """Extract a coloured triangle mesh from a scene (TSDF fusion of RGB-D renders, open3d).

Views come from --cameras: 'hemisphere' (default: views over the upper hemisphere and a
band below the horizon), 'orbit', or a camera file (cameras.json, transforms.json, ns-export
cameras; nerfstudio frames as in 'splat render'). Depth is kept where a view is at least
--min-alpha opaque. Sizes are world units: --voxel-size (default 1/256 of the scene's
robust diagonal), --sdf-trunc (default 4 voxels), --depth-trunc (default: the far side of
the scene). Needs the optional extra: pip install 'splatkit\\[open3d]'.

Examples:

  splat mesh scene.ply -o mesh.ply

  splat mesh scene.spz -o mesh.ply --cameras hemisphere -n 48 --width 512 --height 512

  splat mesh outputs/lego/splatfacto/2024-01-01_000000 -o lego.ply --voxel-size 0.004
"""


def register(app: typer.Typer) -> None:
    app.command("mesh", help=_HELP, no_args_is_help=True)(mesh_command)


def mesh_command(
    file: Path = typer.Argument(..., help="scene file (any format splat reads)", show_default=False),
    out: Path = typer.Option(..., "--output", "-o", help="mesh file (.ply, .obj, .glb...)", show_default=False),
    cameras: str = typer.Option("hemisphere", "--cameras", "-c", help="'hemisphere', 'orbit' or a camera file"),
    n: int = typer.Option(32, "--num-views", "-n", help="number of generated views (files: evenly spaced subset)"),
    width: int = typer.Option(320, "--width", help="render width"),
    height: int = typer.Option(320, "--height", help="render height"),
    voxel_size: Optional[float] = typer.Option(None, "--voxel-size", help="TSDF voxel edge (world units)"),
    sdf_trunc: Optional[float] = typer.Option(None, "--sdf-trunc", help="TSDF truncation distance (world units)"),
    depth_trunc: Optional[float] = typer.Option(None, "--depth-trunc", help="ignore depth beyond this (world units)"),
    min_alpha: float = typer.Option(0.5, "--min-alpha", help="keep depth where the render is at least this opaque"),
    up: Optional[str] = typer.Option(None, "--up", help="world up axis for generated views, e.g. -y, +z"),
    backend: str = typer.Option("auto", "--backend", help="auto, cpu or gsplat"),
    force: bool = typer.Option(False, "--force", help="overwrite an existing output"),
    dataparser: Optional[Path] = typer.Option(None, "--dataparser", help="nerfstudio dataparser_transforms.json for camera files (default: the run folder's, for a splatfacto scene)"),
    intrinsics: Optional[Path] = typer.Option(None, "--intrinsics", help="camera file giving the intrinsics of ns-export cameras (the dataset's transforms.json)"),
) -> None:
    from splat.atomic import check_output_path
    from splat.camera import hemisphere_cameras
    from splat.errors import UsageError
    from splat.io import read_scene

    from .mesh import mesh_stats, require_open3d, tsdf_mesh, write_mesh
    from .views import make_cameras, scene_up_axis

    require_open3d()
    check_output_path(out, [file], force=force)
    for name, v in (("--num-views", n), ("--width", width), ("--height", height)):
        if v < 1:
            raise UsageError(f"{name} must be at least 1")
    if not 0.0 < min_alpha <= 1.0:
        raise UsageError("--min-alpha must be in (0, 1]")
    t0 = time.perf_counter()
    scene = read_scene(file)
    if len(scene) == 0:
        raise UsageError(f"{file} holds no Gaussians")
    up_axis = up or scene_up_axis(file)
    if cameras == "hemisphere":  # all round: the upper band plus a band below the horizon
        cams = (hemisphere_cameras(scene, n - n // 4, width=width, height=height, up=up_axis,
                                   min_elevation_deg=0.0, max_elevation_deg=80.0)
                + (hemisphere_cameras(scene, n // 4, width=width, height=height, up=up_axis,
                                      min_elevation_deg=-80.0, max_elevation_deg=-10.0, seed=1) if n >= 4 else []))
    else:
        if dataparser is None and cameras != "orbit":
            from splat.io.nerfstudio import find_dataparser_transforms

            dataparser = find_dataparser_transforms(file)
        cams = make_cameras(scene, cameras, n=n, width=width, height=height, up=up_axis, dataparser=dataparser,
                            intrinsics=intrinsics)
    console = Console(stderr=True)
    with make_progress(console) as progress:
        task = progress.add_task("fusing views", total=len(cams), info="")
        res = tsdf_mesh(scene, cams, voxel_size=voxel_size, sdf_trunc=sdf_trunc, depth_trunc=depth_trunc,
                        min_alpha=min_alpha, backend=backend, on_view=lambda i: progress.update(task, advance=1))
    st = mesh_stats(res.mesh)
    if st["triangles"] == 0:
        raise UsageError("the fused volume holds no surface (try a larger --voxel-size or --depth-trunc, "
                         "or a lower --min-alpha)")
    write_mesh(res.mesh, out)
    rows = [
        ("scene", f"{file} ({len(scene):,} Gaussians)"),
        ("views", f"{res.views} x {cams[0].width}x{cams[0].height} ({cameras})"),
        ("voxel / SDF trunc / depth trunc", f"{res.voxel_size:.4g} / {res.sdf_trunc:.4g} / {res.depth_trunc:.4g}"),
        ("vertices", f"{st['vertices']:,}"),
        ("triangles", f"{st['triangles']:,}"),
        ("boundary edges", f"{100 * st['boundary_edges']:.2f} %"),
        ("output", str(out)),
        ("total time", f"{time.perf_counter() - t0:.2f} s"),
    ]
    Console().print(summary_table("splat mesh", ["", "value"], rows))
