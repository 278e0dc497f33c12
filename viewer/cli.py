"""``splat view``: open any splat asset in the browser."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional, Sequence

import typer

from splat.cli_options import allow_outside_ref_option, output_option
from splat.errors import UsageError

from .server import DEFAULT_HOST, DEFAULT_PORT

VIEW_HELP = """Open a splat asset in the browser (WebGL through viser; no GPU needed on the server).

Reads every scene format of the toolkit (.ply, .splat, .spz, .sog, compressed .ply, .lgs), .gsi images, .gsv volumetric video (played as it streams: play/pause, seek, speed, loop) and .m3 feature memories (click the scene to colour it by feature similarity; text queries with --encoder). The file is decoded before the server starts; the time to first frame is printed when the first browser tab has drawn it. Serves on 127.0.0.1 unless --host says otherwise, serves nothing but the viewer page and this one asset, and accepts websocket connections only from its own page (and --allow-origin).

Examples:

  splat view ../shared/data/scenes/biker.spz

  splat view scene.lgs --cameras cameras.json --port 8081

  splat view point_cloud.ply --budget 200000 --no-sh

  splat view photo.gsi

  splat view clip.gsv --speed 0.5 --no-loop

  splat view demo_out/memory/blobs.m3 --encoder my_clip:encode_text

  splat view scene.ply --allow-origin https://proxy.example:8443

  splat view scene.ply --host 0.0.0.0   (reachable from other machines)

  splat view biker.spz --web            (the web player: decoding in the browser)

  splat view photo.gsi --web            (an image, drawn by a fragment shader at any zoom)
  splat view scene.m3 --web --encoder my_clip:encode_text   (click or text queries in the browser)
"""

PUBLISH_HELP = """Write a self-contained static web site that plays the assets in any browser.

The folder holds index.html (the player on the one asset, or a list of several), the web player (splat-player.js and its worker), the assets (and the scene a .m3 references, at its path beside it), and embed.html with the two lines that embed the player in another page. Any static host serves it, Range requests or not: python -m http.server, nginx, object storage, GitHub Pages.

Examples:

  splat publish ../shared/data/scenes/biker.spz -o site/

  splat publish a.spz b.sog -o site/ --force

  splat publish photo.gsi -o site/
  splat publish memory.m3 -o site/      (click the scene to query it by feature similarity)

  python -m http.server -d site 8000   (then open http://127.0.0.1:8000/)
"""


def _parse_rgb(text: str) -> tuple[int, int, int]:
    try:
        vals = tuple(int(v) for v in text.replace(" ", "").split(","))
    except ValueError:
        vals = ()
    if len(vals) != 3 or not all(0 <= v <= 255 for v in vals):
        raise UsageError(f"--background must be three integers 0-255 like '0,0,0', got {text!r}")
    return vals  # type: ignore[return-value]


def serve(
    path: str | Path,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    cameras: str | Path | None = None,
    up: str = "-y",
    budget: int | None = None,
    sh: bool = True,
    render_dir: str | Path = "splat_view_renders",
    background: tuple[int, int, int] = (0, 0, 0),
    log=True,
    t_start: float | None = None,
    paused: bool = False,
    speed: float = 1.0,
    loop: bool = True,
    allow_origins: Sequence[str] = (),
    encoder: str | None = None,
    allow_outside_ref: bool = False,
):
    """Decode ``path`` and start serving it; returns the running :class:`ViewerServer`.

    ``allow_origins``: web origins (``http://host:port``) allowed to connect besides the
    viewer's own page. ``encoder``: a text encoder ``package.module:function`` for feature
    memory (``.m3``) text queries. ``allow_outside_ref``: follow a ``.m3``'s scene reference
    that leads outside its folder."""
    from .assets import open_asset
    from .server import ViewerServer

    t_start = time.perf_counter() if t_start is None else t_start
    if budget is not None and budget < 1:
        raise UsageError(f"--budget must be at least 1, got {budget}")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {port}")
    if not 0.25 <= speed <= 4.0:
        raise UsageError(f"--speed must be 0.25..4, got {speed}")
    from .origin import normalise_origin

    allow_origins = [normalise_origin(o) for o in allow_origins]  # a bad one is a UsageError before decoding
    asset = open_asset(path, cameras=cameras, up=up, budget=budget, sh=sh, paused=paused, speed=speed, loop=loop,
                       encoder=encoder, allow_outside_ref=allow_outside_ref)
    try:
        return ViewerServer(asset, host=host, port=port, render_dir=render_dir, background=background,
                            t_start=t_start, log=log, allow_origins=allow_origins)
    except BaseException:
        asset.close()
        raise


def _terminate(_signum, _frame):  # stop cleanly under a service manager too
    raise KeyboardInterrupt


def _wait_for_interrupt(console, stop) -> None:
    """Sleep until Ctrl-C or SIGTERM, then call ``stop``."""
    import signal

    previous = signal.signal(signal.SIGTERM, _terminate)
    try:
        while True:
            time.sleep(0.5)
    except KeyboardInterrupt:
        console.print("stopping")
    finally:
        stop()
        signal.signal(signal.SIGTERM, previous)


def _view_web(console, file: Path, *, host: str, port: int, cameras: Path | None, open_browser: bool,
              autoplay: bool, loop: bool, speed: float, allow_origins: Sequence[str], encoder: str | None = None) -> None:
    """``splat view FILE --web``: serve the web player on FILE until interrupted (``encoder``: a
    ``.m3``'s text queries through ``POST /api/query``)."""
    import signal

    from .origin import normalise_origin
    from .web_server import serve_web

    signal.signal(signal.SIGTERM, _terminate)  # before the URL is printed: a caller may stop us right after
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {port}")
    if not 0.25 <= speed <= 4.0:
        raise UsageError(f"--speed must be 0.25..4, got {speed}")
    allow_origins = [normalise_origin(o) for o in allow_origins]
    srv = serve_web([file], host=host, port=port, cameras=cameras, autoplay=autoplay, loop=loop, speed=speed, allow_origins=allow_origins,
                    log=lambda m: console.print(m, highlight=False, markup=False), encoder=encoder)
    try:
        size = srv.assets[0].path.stat().st_size
        console.print(f"[bold]{file.name}[/]: {size:,} bytes, decoded in the browser", highlight=False)
        if host not in ("127.0.0.1", "localhost", "::1"):
            console.print(f"[yellow]listening on {host}: anyone who can reach this machine can view the asset[/]")
        console.print(f"open [bold cyan]{srv.url}[/] in a browser (Ctrl-C to stop)", highlight=False)
        if open_browser:
            import webbrowser

            try:
                webbrowser.open(srv.url)
            except Exception:  # noqa: BLE001 - no browser is not an error: the URL is printed
                pass
    except KeyboardInterrupt:  # SIGTERM right after the URL was printed, before the wait began
        console.print("stopping")
        srv.stop()
        return
    _wait_for_interrupt(console, srv.stop)


def register(app: typer.Typer) -> None:
    @app.command("publish", help=PUBLISH_HELP)
    def publish_cmd(
        files: List[Path] = typer.Argument(..., help="assets to publish (.ply .spz .sog .splat .ksplat .lgs .gsi .gsv .m3)"),
        out: Path = output_option("folder to write (refused if it exists, unless --force)"),
        force: bool = typer.Option(False, "--force", help="replace an existing folder"),
        cameras: Optional[Path] = typer.Option(None, help="cameras.json / transforms.json for camera presets "
                                                           "(default: one beside each file, if any)"),
        no_autoplay: bool = typer.Option(False, "--no-autoplay", help="video: do not start playing on load"),
        loop: bool = typer.Option(True, "--loop/--no-loop", help="video: start again after the last frame"),
    ) -> None:
        from rich.console import Console

        from .site import embed_snippet, make_assets, publish

        console = Console()
        site = publish(files, out, force=force, cameras=cameras, autoplay=not no_autoplay, loop=loop)
        total = sum(p.stat().st_size for p in site.rglob("*") if p.is_file())
        console.print(f"wrote [bold]{site}[/]: {len(files)} asset(s), {total:,} bytes; serve it with "
                      f"`python -m http.server -d {site}` or any static host", highlight=False)
        console.print("embed it in another page with:", highlight=False)
        console.print(embed_snippet(make_assets(files[:1])[0]), highlight=False, markup=False, soft_wrap=True)

    @app.command("view", help=VIEW_HELP)
    def view(
        file: Path = typer.Argument(..., help="asset to open (.ply .splat .spz .sog .lgs .gsi .gsv ...)"),
        host: str = typer.Option(DEFAULT_HOST, help="address to listen on; 0.0.0.0 exposes it to the network"),
        port: int = typer.Option(DEFAULT_PORT, help="port (the next free one is taken if it is busy; 0 = any)"),
        cameras: Optional[Path] = typer.Option(None, help="cameras.json / transforms.json for camera presets "
                                                           "(default: one beside FILE, if any)"),
        up: str = typer.Option("-y", help="world up axis for the camera controls: +x -x +y -y +z -z"),
        budget: Optional[int] = typer.Option(None, help="initial Gaussian budget (most significant N)"),
        no_sh: bool = typer.Option(False, "--no-sh", help="start with view-dependent colour off"),
        render_dir: Path = typer.Option(Path("splat_view_renders"), help="folder for 'render this view' PNGs"),
        background: str = typer.Option("0,0,0", help="background colour R,G,B (0-255)"),
        paused: bool = typer.Option(False, "--paused", help="video: start paused on the first frame"),
        speed: float = typer.Option(1.0, help="video: initial playback speed, 0.25..4"),
        loop: bool = typer.Option(True, "--loop/--no-loop", help="video: start again after the last frame"),
        allow_origin: Optional[List[str]] = typer.Option(
            None, "--allow-origin", metavar="ORIGIN",
            help="also accept browser connections from this web origin, e.g. https://proxy.example:8443 "
                 "(repeatable; the viewer's own page is always accepted, other pages never)"),
        encoder: Optional[str] = typer.Option(
            None, metavar="MODULE:FUNCTION",
            help=".m3: text encoder for text queries, a callable str -> vector [D] (as `splat memory query --text`)"),
        allow_outside_ref: bool = allow_outside_ref_option(),
        web: bool = typer.Option(False, "--web", help="the web player instead: the browser fetches the file and "
                                                     "decodes it itself (.ply .spz .sog .splat .ksplat .lgs .m3; .gsv streams)"),
        no_open: bool = typer.Option(False, "--no-open", help="--web: do not open a browser"),
        no_autoplay: bool = typer.Option(False, "--no-autoplay", help="--web: do not start playing on load"),
    ) -> None:
        from rich.console import Console

        t_start = time.perf_counter()
        console = Console()
        if web:
            _view_web(console, file, host=host, port=port, cameras=cameras, open_browser=not no_open,
                      autoplay=not (no_autoplay or paused), loop=loop, speed=speed,
                      allow_origins=allow_origin or (), encoder=encoder)
            return
        try:
            from splat.camera import parse_up

            parse_up(up)
        except ValueError as e:
            raise UsageError(f"--up: {e}") from None
        srv = serve(file, host=host, port=port, cameras=cameras, up=up, budget=budget, sh=not no_sh,
                    render_dir=render_dir, background=_parse_rgb(background), t_start=t_start,
                    paused=paused, speed=speed, loop=loop, allow_origins=allow_origin or (), encoder=encoder,
                    allow_outside_ref=allow_outside_ref)
        info = srv.asset.info
        ready = time.perf_counter() - t_start
        console.print(
            f"[bold]{file.name}[/]: {info.format}, {info.count:,} Gaussians"
            + (f", {info.bytes_per_gaussian:.2f} bytes/Gaussian" if info.bytes_per_gaussian else "")
            + (f", {info.extra['frames']} frames at {info.extra['fps']} fps" if info.kind == "video" else "")
            + f"; decoded in {info.decode_s:.2f} s, ready in {ready:.2f} s",
            highlight=False,
        )
        if host not in ("127.0.0.1", "localhost", "::1"):
            console.print(f"[yellow]listening on {host}: anyone who can reach this machine can view the asset[/]")
        console.print(f"open [bold cyan]{srv.url}[/] in a browser (Ctrl-C to stop)", highlight=False)
        _wait_for_interrupt(console, srv.stop)
