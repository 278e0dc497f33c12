"""The web player's pages and static sites: `splat publish ASSET... -o site/`.

The client (``viewer/client/``: ``splat-player.js`` and its worker ``splat-worker.js``) is
built from ``viewer/web/`` (``make client``) and shipped as package data, so this needs no Node. A published
folder holds::

    index.html          the player on the one asset, or a list of the assets
    NAME.html           one player page per asset (several assets only)
    splat-player.js     the web component <splat-player>
    splat-worker.js     its decoding worker
    assets/NAME         the assets, copied unchanged (a .gsv streams from it by Range requests,
                        or as one progressive download from a host without Range)
    assets/NAME.cameras.json   camera presets found beside an asset (or --cameras)
    assets/REF          the scene a .m3 asset references, at the same relative path
    embed.html          how to embed the player in another page (the snippet, and a demo)

Any static host serves it: ``python -m http.server``, nginx, object storage, GitHub Pages.
"""
from __future__ import annotations

import html
import os
import posixpath
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence
from urllib.parse import quote

from splat.errors import FormatError, UsageError

CLIENT_DIR = Path(__file__).parent / "client"
CLIENT_FILES = ("splat-player.js", "splat-worker.js")
"""Every file of the client, by name: nothing else in ``CLIENT_DIR`` is ever served."""
ASSET_PREFIX = "assets/"
MAX_CAMERA_FILE = 64 << 20


@dataclass(frozen=True)
class Asset:
    """One file the player may load: its URL name and where it lives."""

    name: str
    path: Path
    cameras_json: bytes | None = None  # INRIA cameras.json bytes for its presets

    @property
    def url(self) -> str:
        return ASSET_PREFIX + quote(self.name)

    @property
    def cameras_url(self) -> str | None:
        return ASSET_PREFIX + quote(self.name + ".cameras.json") if self.cameras_json is not None else None


HEADER_PREFIX = 4 << 20
"""Bytes of a ``.m3`` read to find its scene reference (the container header and chunk table)."""


def is_memory(path: Path) -> bool:
    """Whether ``path`` is a ``.m3`` file (by its magic bytes)."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"GSM3"
    except OSError:
        return False


def scene_file(m3_path: Path) -> tuple[str, Path] | None:
    """(URL path relative to the ``.m3``, file) of the scene a ``.m3`` references, or None when
    it embeds its scene. FormatError (naming the file) for a reference the readers refuse."""
    from compress.container import read_index
    from compress.memory.m3file import MAGIC, VERSION, scene_reference
    from splat.bounded import open_regular

    with open_regular(m3_path) as f:
        head = f.read(HEADER_PREFIX)
    index = read_index(head, magic=MAGIC, path=m3_path, max_version=VERSION, what=".m3 file", whole=False)
    found = scene_reference(index.header, m3_path)
    if found is None:
        return None
    ref = posixpath.normpath(str(index.header["scene"]["ref"]))
    if ref.startswith("../") or ref in (".", "..") or ref.startswith("/"):
        raise FormatError(f"scene reference {ref[:80]!r} leads outside the file's folder", m3_path)
    return ref, found[0]


def scene_files(assets: Sequence) -> dict[str, Path]:
    """``{assets/REF: scene file}`` for every ``.m3`` asset (``viewer.site.Asset``) that references
    its scene, the REF relative to the asset's own URL folder. UsageError when two assets would
    put different files at one name."""
    taken = {ASSET_PREFIX + a.name: a.path for a in assets}
    taken.update({ASSET_PREFIX + a.name + ".cameras.json": Path("/") for a in assets if a.cameras_json is not None})
    out: dict[str, Path] = {}
    for a in assets:
        if not is_memory(a.path):
            continue
        found = scene_file(a.path)
        if found is None:
            continue
        key, path = ASSET_PREFIX + found[0], found[1]
        prev = taken.get(key) or out.get(key)
        if prev is not None and prev != path:
            raise UsageError(f"{a.path}: its scene {found[0]} would take the name of another asset; publish them apart")
        if prev is None:
            out[key] = path
    return out


def client_file(name: str) -> Path:
    """Path of a shipped client file; a clear error when the package was built without it."""
    p = CLIENT_DIR / name
    if not p.is_file():
        raise UsageError(f"the web player is missing from this installation ({p}); "
                         "build it with `make client` from a source checkout")
    return p


def _asset_name(path: Path, taken: set[str]) -> str:
    """A URL-safe, unique file name for ``path`` (its own name where possible)."""
    keep = "".join(c if c.isalnum() or c in "._-" else "_" for c in path.name).lstrip(".") or "asset"
    name, i = keep, 1
    while name in taken or name.endswith(".cameras.json"):
        stem, dot, ext = keep.partition(".")
        name = f"{stem}-{i}{dot}{ext}"
        i += 1
    return name


def load_presets(asset: Path, cameras: Path | None) -> bytes | None:
    """Camera presets for ``asset`` as INRIA cameras.json bytes: from ``cameras`` when given
    (errors are the caller's), else from a cameras.json / transforms.json beside it (ignored
    when unreadable). Poses are converted by the toolkit's own loader, so transforms.json and
    ns-export files reach the browser in the scene's frame."""
    from splat.camera import inria_cameras_json, load_cameras

    if cameras is not None:
        return inria_cameras_json(load_cameras(cameras))
    for cand in (asset.parent / "cameras.json", asset.parent / "transforms.json"):
        if cand.is_file() and cand.stat().st_size <= MAX_CAMERA_FILE:
            try:
                return inria_cameras_json(load_cameras(cand))
            except (FormatError, ValueError, OSError):
                return None
    return None


def make_assets(paths: Sequence[str | os.PathLike], cameras: str | os.PathLike | None = None) -> list[Asset]:
    """Check ``paths`` (files that exist) and name them for URLs. Symlinks are resolved here,
    once: the server then opens exactly these files."""
    out: list[Asset] = []
    taken: set[str] = set()
    if not paths:
        raise UsageError("name at least one asset")
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise UsageError(f"{path}: no such file" if not path.exists() else f"{path}: not a file")
        real = path.resolve(strict=True)
        name = _asset_name(path, taken)
        taken.add(name)
        cams = load_presets(real, Path(cameras) if cameras is not None else None)
        out.append(Asset(name, real, cams))
    return out


HEAD = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{title}</title>
<link rel="icon" href="data:,">
<style>html,body{{margin:0;height:100%;background:#000;color:#eee;font:14px system-ui,sans-serif}}
splat-player{{width:100%;height:100vh}} a{{color:#9cf}} main{{max-width:720px;margin:2em auto;padding:0 1em}}
pre{{background:#222;padding:1em;overflow:auto}}</style>
"""


def player_page(asset: Asset, *, autoplay: bool = True, loop: bool = True, speed: float = 1.0, base: str = "",
                api: bool = False, settings: dict | None = None) -> str:
    """The page that opens ``asset`` in the player (``base``: prefix of the client files;
    ``autoplay``, ``loop``, ``speed``: a clip starts on load, again at its end, at this rate;
    ``api``: the page is served by ``splat view``, whose local JSON API is at ``api/``;
    ``settings``: initial display settings, ``budget`` (most significant N, 0 = all), ``sh``
    (False: view-dependent colour off), ``background`` (CSS colour))."""
    attrs = [f'src="{html.escape(asset.url)}"']
    s = settings or {}
    if int(s.get("budget") or 0) > 0:
        attrs.append(f'budget="{int(s["budget"])}"')
    if s.get("sh") is False:
        attrs.append('sh="off"')
    if s.get("background"):
        attrs.append(f'background="{html.escape(str(s["background"]))}"')
    if api:
        attrs.append('api="api/"')
    if asset.cameras_url:
        attrs.append(f'cameras="{html.escape(asset.cameras_url)}"')
    if autoplay:
        attrs.append("autoplay")
    clip = asset.name.lower().endswith(".gsv")
    if loop and clip:  # only a clip has an end to loop from
        attrs.append("loop")
    if clip and speed != 1.0:
        attrs.append(f'speed="{speed:g}"')
    return (HEAD.format(title=html.escape(f"{asset.name} - splatkit"))
            + f'<script type="module" src="{html.escape(base)}splat-player.js"></script>\n</head><body>\n'
            + f"<splat-player {' '.join(attrs)}></splat-player>\n</body></html>\n")


def list_page(assets: Sequence[Asset]) -> str:
    """index.html for several assets: a link to each one's player page."""
    items = "\n".join(f'<li><a href="{html.escape(quote(a.name))}.html">{html.escape(a.name)}</a> '
                      f"({a.path.stat().st_size:,} bytes)</li>" for a in assets)
    return (HEAD.format(title="splatkit assets") + "</head><body><main>\n<h1>Assets</h1>\n<ul>\n"
            + items + '\n</ul>\n<p><a href="embed.html">Embed the player in another page</a></p>\n</main></body></html>\n')


def embed_snippet(asset: Asset, site_url: str = "https://YOUR.HOST/site/") -> str:
    """HTML that embeds the player for ``asset`` in any page (the site folder at ``site_url``)."""
    return (f'<script type="module" src="{site_url}splat-player.js"></script>\n'
            f'<splat-player src="{site_url}{asset.url}" autoplay style="width:800px;height:500px"></splat-player>\n')


def embed_page(assets: Sequence[Asset]) -> str:
    """embed.html: the snippet to copy, the scripting API in brief, and the player in a box."""
    snippet = embed_snippet(assets[0])
    local = embed_snippet(assets[0], site_url="")
    return (HEAD.format(title="embed the splatkit player")
            + '<script type="module" src="splat-player.js"></script>\n</head><body><main>\n'
            + "<h1>Embed the player</h1>\n<p>Copy this folder to a web host and put these two lines in any page "
              "(the player and its worker must be served from the same origin as that page, or with CORS):</p>\n"
            + f"<pre>{html.escape(snippet)}</pre>\n"
            + "<p>Scripting: <code>p.play()</code>, <code>p.pause()</code>, <code>p.seek(t)</code>; properties and "
              "events <code>frame</code>, <code>currentTime</code>, <code>bytesFetched</code>, <code>decodeMs</code>, "
              "<code>error</code>; <code>load</code> fires with <code>p.info</code> once the asset is decoded.</p>\n"
            + local.replace(' style="width:800px;height:500px"', ' style="display:block;width:100%;height:400px"')
            + "</main></body></html>\n")


def publish(paths: Sequence[str | os.PathLike], out: str | os.PathLike, *, force: bool = False,
            cameras: str | os.PathLike | None = None, autoplay: bool = True, loop: bool = True) -> Path:
    """Write a self-contained static site for ``paths`` into the folder ``out``; returns it.

    Refuses an existing ``out`` unless ``force``; the folder appears whole or not at all
    (written beside it, then renamed into place)."""
    from splat.atomic import atomic_dir

    out = Path(out)
    if out.exists() and not force:
        raise UsageError(f"{out} exists; pass --force to replace it")
    if out.exists() and not out.is_dir():
        raise UsageError(f"{out} is a file, expected a folder")
    assets = make_assets(paths, cameras)
    referenced = scene_files(assets)  # the scene a .m3 references, at its path beside it
    sources = {name: client_file(name) for name in CLIENT_FILES}
    with atomic_dir(out) as tmp:
        for name, src in sources.items():
            shutil.copyfile(src, tmp / name)
        (tmp / "assets").mkdir()
        for a in assets:
            shutil.copyfile(a.path, tmp / "assets" / a.name)
            if a.cameras_json is not None:
                (tmp / "assets" / f"{a.name}.cameras.json").write_bytes(a.cameras_json)
        for key, src in referenced.items():
            (tmp / key).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, tmp / key)
        if len(assets) == 1:
            (tmp / "index.html").write_text(player_page(assets[0], autoplay=autoplay, loop=loop), encoding="utf-8")
        else:
            (tmp / "index.html").write_text(list_page(assets), encoding="utf-8")
            for a in assets:
                (tmp / f"{a.name}.html").write_text(player_page(a, autoplay=autoplay, loop=loop), encoding="utf-8")
        (tmp / "embed.html").write_text(embed_page(assets), encoding="utf-8")
        _honour_umask(tmp)
    return out


def _honour_umask(folder: Path) -> None:
    """Files written by copyfile/write_text already follow the umask; make the folder's
    subfolders do so too (mkdir does) and leave nothing more open than the umask allows."""
    mask = os.umask(0)
    os.umask(mask)
    for root, dirs, files in os.walk(folder):
        for d in dirs:
            os.chmod(os.path.join(root, d), 0o777 & ~mask)
        for f in files:
            os.chmod(os.path.join(root, f), 0o666 & ~mask)
