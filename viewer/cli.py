"""``splat view``: open any splat asset in the browser."""
from __future__ import annotations

import time
from pathlib import Path
from typing import List, Optional, Sequence

import typer

from splat.cli_options import allow_outside_ref_option, output_option
from splat.errors import UsageError

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080

VIEW_HELP = """Open a splat asset in the browser: the web player, which fetches the file and decodes it itself.

Plays every format of the toolkit: scenes (.ply, .splat, .spz v1-4, .sog, .ksplat, .lgs), and .gsv volumetric video, streamed by Range requests as it plays (play/pause, seek, speed, loop). The page shows the file's format, size and decode time, splat scale, opacity threshold, budget, view-dependent colour and background controls, and camera presets from a cameras.json / transforms.json beside the file (or --cameras). "render this view" renders the browser's camera with splatkit's own renderer into --render-dir (never overwriting) and downloads the PNG; the budget can keep the Gaussians with the largest contribution to rendered views. Serves on 127.0.0.1 unless --host says otherwise, serves nothing but the player and this one asset, answers only to its own host name, and takes API calls only from its own page (and --allow-origin). To put the player on any static host instead, see `splat publish`.

Examples:

  splat view ../shared/data/scenes/biker.spz

  splat view scene.lgs --cameras cameras.json --port 8081

  splat view point_cloud.ply --budget 200000 --no-sh --background 255,255,255

  splat view clip.gsv --speed 0.5 --no-loop

  splat view clip.gsv --paused --no-open

  splat view scene.ply --allow-origin https://proxy.example:8443

  splat view scene.ply --host 0.0.0.0   (reachable from other machines)

  splat view photo.gsi                  (an image, drawn by a fragment shader at any zoom)

  splat view scene.m3 --encoder my_clip:encode_text   (click or text queries in the browser)
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
    paused: bool = False,
    speed: float = 1.0,
    loop: bool = True,
    allow_origins: Sequence[str] = (),
    encoder: str | None = None,
    allow_outside_ref: bool = False,
):
    """Serve the web player on ``path``; returns the running :class:`~viewer.web_server.WebPlayerServer`
    (``.url``, ``.stop()``, a context manager).

    The file's header (and a ``.m3``'s scene reference) is checked here; the browser decodes
    the rest. ``budget`` (most significant N), ``sh``, ``background`` (RGB 0-255): the page's
    initial settings. ``paused``, ``speed``, ``loop``: a clip's playback. ``render_dir``: where
    "render this view" saves PNGs. ``up``: world up of the views the contribution order is
    computed from. ``allow_origins``: web origins (``http://host:port``) whose pages may call
    the API besides the player's own. ``encoder``: ``module:function`` mapping text to a feature
    vector, for a ``.m3``'s text queries (``POST /api/query``). ``allow_outside_ref``: accept a ``.m3`` whose scene
    reference leads outside its folder. ``log``: True prints refusals to stderr, a callable
    gets them, False drops them."""
    from splat.camera import parse_up

    from .origin import normalise_origin
    from .web_server import serve_web

    if budget is not None and budget < 1:
        raise UsageError(f"--budget must be at least 1, got {budget}")
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be 0..65535, got {port}")
    if not 0.25 <= speed <= 4.0:
        raise UsageError(f"--speed must be 0.25..4, got {speed}")
    if len(background) != 3 or not all(0 <= int(c) <= 255 for c in background):
        raise UsageError(f"--background must be three integers 0-255, got {background!r}")
    try:
        parse_up(up)
    except ValueError as e:
        raise UsageError(f"--up: {e}") from None
    allow_origins = [normalise_origin(o) for o in allow_origins]  # a bad one is a UsageError before serving
    path = Path(path)
    if path.is_dir():
        path = folder_as_spz(path)
    check_asset(path, allow_outside_ref=allow_outside_ref)
    if log is True:
        from rich.console import Console

        console = Console(stderr=True)
        log = lambda m: console.print(m, highlight=False, markup=False)  # noqa: E731
    settings = {"budget": budget or 0, "sh": sh, "background": "#%02x%02x%02x" % tuple(int(c) for c in background)}
    return serve_web([path], host=host, port=port, cameras=cameras, autoplay=not paused, loop=loop, speed=speed,
                     allow_origins=allow_origins, log=log or None, encoder=encoder, render_dir=render_dir, up=up,
                     settings=settings)


def folder_as_spz(folder: Path) -> Path:
    """A scene folder the browser cannot fetch as one file (a loose SOG folder, a nerfstudio
    splatfacto run) read by the toolkit and written as SPZ into a temporary folder, removed
    when the process exits; the player opens that file."""
    import atexit
    import shutil
    import tempfile

    from splat.io import read_scene, write_scene

    scene = read_scene(folder)  # FormatError naming the folder if it holds no scene
    tmp = Path(tempfile.mkdtemp(prefix="splat-view-"))
    atexit.register(shutil.rmtree, tmp, ignore_errors=True)
    name = "".join(c if c.isalnum() or c in "._-" else "_" for c in folder.resolve().name).lstrip(".") or "scene"
    out = tmp / f"{name}.spz"
    write_scene(scene, out)
    return out


def check_asset(path: Path, *, allow_outside_ref: bool = False) -> None:
    """Refuse a file the player could never open, before serving it, with one line: not a
    regular file, or (images, videos, memories) a header that does not parse, or a ``.m3``
    whose scene reference is unsafe. A scene's body is left to the browser's decoder."""
    from splat.bounded import open_regular
    from splat.describe import find_describer

    if not path.exists():
        raise UsageError(f"{path}: no such file")
    with open_regular(path):  # a folder, FIFO or device is refused here, never read
        pass
    d = find_describer(path)
    if d is not None:
        d.describe(path, allow_outside_ref=True) if allow_outside_ref else d.describe(path)


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


def _announce(console, srv, host: str, open_browser: bool) -> None:
    """Print what is served and where, then open the browser unless told not to."""
    a = srv.assets[0]
    size = a.path.stat().st_size
    console.print(f"[bold]{a.path.name}[/]: {size:,} bytes, decoded in the browser"
                  + (f"; 'render this view' saves to {srv.view_api.render_dir}" if srv.view_api else ""), highlight=False)
    if host not in ("127.0.0.1", "localhost", "::1"):
        console.print(f"[yellow]listening on {host}: anyone who can reach this machine can view the asset[/]")
    console.print(f"open [bold cyan]{srv.url}[/] in a browser (Ctrl-C to stop)", highlight=False)
    if open_browser:
        import webbrowser

        try:
            webbrowser.open(srv.url)
        except Exception:  # noqa: BLE001 - no browser is not an error: the URL is printed
            pass


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
        file: Path = typer.Argument(..., help="asset to open (.ply .splat .spz .sog .ksplat .lgs .gsv ...)"),
        host: str = typer.Option(DEFAULT_HOST, help="address to listen on; 0.0.0.0 exposes it to the network"),
        port: int = typer.Option(DEFAULT_PORT, help="port (the next free one is taken if it is busy; 0 = any)"),
        cameras: Optional[Path] = typer.Option(None, help="cameras.json / transforms.json for camera presets "
                                                           "(default: one beside FILE, if any)"),
        up: str = typer.Option("-y", help="world up axis (+x -x +y -y +z -z) of the views the contribution order uses"),
        budget: Optional[int] = typer.Option(None, help="initial Gaussian budget (most significant N)"),
        no_sh: bool = typer.Option(False, "--no-sh", help="start with view-dependent colour off"),
        render_dir: Path = typer.Option(Path("splat_view_renders"), help="folder for 'render this view' PNGs"),
        background: str = typer.Option("0,0,0", help="background colour R,G,B (0-255)"),
        paused: bool = typer.Option(False, "--paused", "--no-autoplay", help="video: do not start playing on load"),
        speed: float = typer.Option(1.0, help="video: initial playback speed, 0.25..4"),
        loop: bool = typer.Option(True, "--loop/--no-loop", help="video: start again after the last frame"),
        allow_origin: Optional[List[str]] = typer.Option(
            None, "--allow-origin", metavar="ORIGIN",
            help="also accept API calls from pages of this web origin, and its host name, e.g. "
                 "https://proxy.example:8443 (repeatable; the player's own page is always accepted, other pages never)"),
        encoder: Optional[str] = typer.Option(
            None, metavar="MODULE:FUNCTION",
            help=".m3: text encoder for text queries, a callable str -> vector [D] (as `splat memory query --text`)"),
        allow_outside_ref: bool = allow_outside_ref_option(),
        no_open: bool = typer.Option(False, "--no-open", help="do not open a browser (the URL is printed)"),
        web: bool = typer.Option(False, "--web", hidden=True, help="accepted for compatibility: the web player is the default"),
    ) -> None:
        import signal

        from rich.console import Console

        console = Console()
        signal.signal(signal.SIGTERM, _terminate)  # before the URL is printed: a caller may stop us right after
        srv = serve(file, host=host, port=port, cameras=cameras, up=up, budget=budget, sh=not no_sh,
                    render_dir=render_dir, background=_parse_rgb(background), paused=paused, speed=speed, loop=loop,
                    allow_origins=allow_origin or (), encoder=encoder, allow_outside_ref=allow_outside_ref,
                    log=lambda m: console.print(m, highlight=False, markup=False))
        try:
            _announce(console, srv, host, open_browser=not no_open)
        except KeyboardInterrupt:  # SIGTERM right after the URL was printed, before the wait began
            console.print("stopping")
            srv.stop()
            return
        _wait_for_interrupt(console, srv.stop)
