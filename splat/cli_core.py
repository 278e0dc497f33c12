"""Core ``splat`` commands that need nothing beyond splat/: ``info``, ``convert``, ``formats``."""
from __future__ import annotations

import json
import time
import warnings
from pathlib import Path
from typing import Any, List, Optional

import typer

from .atomic import check_output_path
from .cli_options import allow_outside_ref_option
from .cli import app, console, err_console
from .describe import Describer, find_describer
from .errors import UsageError
from .io import FormatWarning, default_registry, detect_format, read_scene, write_scene
from .io.sizes import asset_size
from .progress import human_bytes, summary_table


def _parse_value(text: str) -> Any:
    low = text.lower()
    if low in ("true", "yes", "on"):
        return True
    if low in ("false", "no", "off"):
        return False
    if low in ("none", "null"):
        return None
    for conv in (int, float):
        try:
            return conv(text)
        except ValueError:
            pass
    return text


def parse_options(items: list[str] | None) -> dict[str, Any]:
    """``["version=3", "sort=false"]`` -> ``{"version": 3, "sort": False}`` (--set / --read-option)."""
    out: dict[str, Any] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"options take the form KEY=VALUE, got {item!r}")
        out[key.strip().replace("-", "_")] = _parse_value(value.strip())
    return out


def _print_warnings(caught: list[warnings.WarningMessage]) -> None:
    for w in caught:
        if issubclass(w.category, FormatWarning):
            err_console.print(f"[yellow]warning:[/] {w.message}", highlight=False, soft_wrap=True)


def _fmt_vec(v) -> str:
    return "(" + ", ".join(f"{float(x) + 0.0:.4g}" for x in v) + ")"  # + 0.0 turns -0 into 0


@app.command("info")
def info(
    file: Path = typer.Argument(..., help="A splat file (.ply, .compressed.ply, .splat, .spz, .sog, a SOG meta.json, .lgs) "
                                          "or another file we write (.gsi, .gsv, .m3)."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="Read as this format instead of detecting it."),
    as_json: bool = typer.Option(False, "--json", help="Print a JSON object instead of a table."),
    read_opts: Optional[List[str]] = typer.Option(None, "--read-option", "-r", metavar="KEY=VALUE",
                                                  help="Reader option, repeatable (e.g. coordinate_system=rdf for SPZ)."),
    allow_outside_ref: bool = allow_outside_ref_option(),
) -> None:
    """Show a file's format, size and contents: for scenes the Gaussian count, SH degree and bounds;
    for .gsi images, .gsv videos and .m3 memories what their headers hold.

    Examples:

      splat info scene.ply

      splat info biker.spz --json

      splat info clip.gsv
    """
    describer = None if format else find_describer(file)
    if describer is not None:
        _print_description(file, describer, as_json, allow_outside_ref)
        return
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fmt = format or detect_format(file)
        t0 = time.perf_counter()
        scene = read_scene(file, fmt, **parse_options(read_opts))
        dt = time.perf_counter() - t0
    _print_warnings(caught)
    size = asset_size(file)
    n = len(scene)
    lo, hi = scene.bounds()
    rlo, rhi = scene.bounds(quantile=0.01)
    data = {
        "file": str(file),
        "format": fmt,
        "file_size": size,
        "gaussians": n,
        "sh_degree": scene.sh_degree,
        "bytes_per_gaussian": (size / n) if n else None,
        "bounds_min": [float(x) for x in lo],
        "bounds_max": [float(x) for x in hi],
        "bounds_1_99_min": [float(x) for x in rlo],
        "bounds_1_99_max": [float(x) for x in rhi],
        "extras": {k: list(v.shape[1:]) for k, v in scene.extras.items()},
        "read_seconds": dt,
    }
    if as_json:
        console.print_json(json.dumps(data))
        return
    rows = [
        ("format", fmt),
        ("file size", f"{human_bytes(size)} ({size:,} B)"),
        ("Gaussians", f"{n:,}"),
        ("SH degree", str(scene.sh_degree)),
        ("bytes per Gaussian", f"{size / n:.2f}" if n else "-"),
        ("bounds min", _fmt_vec(lo)),
        ("bounds max", _fmt_vec(hi)),
        ("bounds 1%..99%", f"{_fmt_vec(rlo)} .. {_fmt_vec(rhi)}"),
        ("extra channels", ", ".join(f"{k} {list(v.shape[1:]) or ''}".strip() for k, v in scene.extras.items()) or "none"),
        ("read time", f"{dt * 1000:.0f} ms"),
    ]
    console.print(summary_table(str(file), ["property", "value"], rows))


def _print_description(file: Path, describer: Describer, as_json: bool, allow_outside_ref: bool = False) -> None:
    t0 = time.perf_counter()
    fields = describer.describe(file, allow_outside_ref=True) if allow_outside_ref else describer.describe(file)
    dt = time.perf_counter() - t0
    size = asset_size(file)
    data = {"file": str(file), "format": describer.name, "file_size": size, **fields, "read_seconds": dt}
    if as_json:
        console.print_json(json.dumps(data))
        return
    rows = [("format", f"{describer.name} ({describer.description})" if describer.description else describer.name),
            ("file size", f"{human_bytes(size)} ({size:,} B)")]
    rows += [(k, _fmt_field(v)) for k, v in fields.items() if v is not None]
    rows.append(("read time", f"{dt * 1000:.0f} ms"))
    console.print(summary_table(str(file), ["property", "value"], rows))


def _fmt_field(v: Any) -> str:
    if isinstance(v, bool) or isinstance(v, str):
        return str(v)
    if isinstance(v, int):
        return f"{v:,}"
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, (list, tuple)):
        if v and all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in v):
            return _fmt_vec(v) if any(isinstance(x, float) for x in v) else ", ".join(f"{x:,}" for x in v)
        return "; ".join(str(x) for x in v)
    return str(v)


@app.command("convert")
def convert(
    input: Path = typer.Argument(..., help="Input splat file (format detected from magic bytes, then extension)."),
    output_arg: Optional[Path] = typer.Argument(None, metavar="OUTPUT", show_default=False,
                                                help="Output file (or give -o); its extension picks the format unless --format is given."),
    output_opt: Optional[Path] = typer.Option(None, "--output", "-o", show_default=False,
                                              help="Output file, the same as the OUTPUT argument."),
    format: Optional[str] = typer.Option(None, "--format", "-f", help="Output format: ply, splat, spz, sog, or a plug-in format."),
    input_format: Optional[str] = typer.Option(None, "--input-format", help="Read the input as this format."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output, even the input itself."),
    set_: Optional[List[str]] = typer.Option(None, "--set", "-s", metavar="KEY=VALUE",
                                             help="Writer option, repeatable (e.g. version=3 for SPZ, sort=false for SOG)."),
    read_opts: Optional[List[str]] = typer.Option(None, "--read-option", "-r", metavar="KEY=VALUE",
                                                  help="Reader option, repeatable (e.g. coordinate_system=rdf for SPZ)."),
) -> None:
    """Convert a splat file from any readable format to any writable one (atomic write).

    Examples:

      splat convert point_cloud.ply scene.spz

      splat convert point_cloud.ply -o scene.spz

      splat convert scene.spz scene.sog

      splat convert scene.ply legacy.spz --set version=3

      splat convert scene.sog out/meta.json        (SOG as loose files)

      splat convert in.ply out.bin --format splat --force

      splat convert from_supersplat.spz out.ply -r coordinate_system=rdf   (SPZ in PLY axes)
    """
    if (output_arg is None) == (output_opt is None):
        raise UsageError("give the output once: as OUTPUT or as -o/--output")
    output: Path = output_arg if output_arg is not None else output_opt
    options = parse_options(set_)
    registry = default_registry()
    spec = registry.output_format(output, format)
    if not spec.can_write:
        writable = ", ".join(s.name for s in registry.formats() if s.can_write)
        raise UsageError(f"format {spec.name!r} is read-only here; writable formats: {writable}")
    check_output_path(output, [input], force=force)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        t0 = time.perf_counter()
        in_fmt = input_format or detect_format(input)
        scene = read_scene(input, in_fmt, **parse_options(read_opts))
        t_read = time.perf_counter() - t0
        with err_console.status(f"writing {len(scene):,} Gaussians as {spec.name}..."):
            t1 = time.perf_counter()
            write_scene(scene, output, spec.name, **options)
            t_write = time.perf_counter() - t1
    _print_warnings(caught)
    in_size, out_size = asset_size(input), asset_size(output)
    rows = [
        ("input", in_fmt, str(input), human_bytes(in_size), "1.00", f"{t_read:.2f}"),
        ("output", spec.name, str(output), human_bytes(out_size),
         f"{in_size / out_size:.2f}" if out_size else "-", f"{t_write:.2f}"),
    ]
    title = f"converted {len(scene):,} Gaussians (SH degree {scene.sh_degree})"
    console.print(summary_table(title, ["", "format", "path", "size", "ratio", "time (s)"], rows))


@app.command("formats")
def formats() -> None:
    """List the file formats this installation reads and writes (plug-ins included).

    Example:

      splat formats
    """
    rows = [
        (s.name, " ".join(s.extensions), "yes" if s.can_read else "-", "yes" if s.can_write else "-",
         s.description + ("" if s.origin == "builtin" else f" [{s.origin}]"))
        for s in default_registry().formats()
    ]
    console.print(summary_table("splat file formats", ["name", "extensions", "read", "write", "description"], rows))
