"""Asset types the viewer can open: a small plug-in interface and its registry.

An asset type is two things:

* a **loader** (:class:`AssetType`): says whether it handles a file (extension and first
  bytes) and decodes it into a :class:`ViewerAsset` *before* any client connects;
* a **client view** (:class:`ClientView`), made by :meth:`ViewerAsset.attach` for every
  browser tab: it adds the tab's scene nodes and GUI panel and reacts to camera motion.

Built-in types: 3D scenes (every format ``splat.io`` reads, ``.lgs`` included once its
codec registers) and ``.gsi`` images. Other packages add types through the
``splat.viewer_assets`` entry-point group: each entry names an :class:`AssetType`
instance (or a zero-argument callable returning one). A type that streams content
(a video) pushes per-frame updates in place with :meth:`viewer.splat_layer.SplatLayer.set_splats`.
"""
from __future__ import annotations

import abc
import os
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from splat.bounded import open_regular
from splat.errors import FormatError
from splat.io.sizes import asset_size  # noqa: F401  (a SOG folder: meta.json plus the files it names)

if TYPE_CHECKING:  # pragma: no cover
    from .server import ClientContext


@dataclass
class AssetInfo:
    """What the GUI's info panel shows (sizes in bytes, times in seconds)."""

    path: Path | None
    format: str
    kind: str  # "scene", "image", "video", ...
    count: int  # Gaussians
    file_size: int | None
    decode_s: float
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def bytes_per_gaussian(self) -> float | None:
        """File bytes per Gaussian (None for a video, whose file holds every frame)."""
        if self.file_size is None or self.count <= 0 or self.kind == "video":
            return None
        return self.file_size / self.count

    def rows(self) -> list[tuple[str, str]]:
        """(label, value) pairs for display."""
        from splat.progress import human_bytes

        rows = [("file", self.path.name if self.path else "(in memory)"), ("format", self.format), ("Gaussians", f"{self.count:,}")]
        if self.file_size is not None:
            rows.append(("file size", human_bytes(self.file_size)))
        bpg = self.bytes_per_gaussian
        if bpg is not None:
            rows.append(("bytes / Gaussian", f"{bpg:.2f}"))
        rows.append(("decode time", f"{self.decode_s * 1000:.0f} ms"))
        rows += [(k, str(v)) for k, v in self.extra.items()]
        return rows

    def markdown(self) -> str:
        return "\n".join(f"- **{k}**: {v}" for k, v in self.rows())


@dataclass
class CameraPose:
    """A viewpoint in viser's terms: OpenCV camera frame, vertical field of view in radians."""

    position: tuple[float, float, float]
    look_at: tuple[float, float, float]
    up: tuple[float, float, float]
    fov: float
    name: str = ""


class ClientView(abc.ABC):
    """What one browser tab shows of an asset. Made by :meth:`ViewerAsset.attach`."""

    def on_camera(self, position, wxyz) -> None:
        """The tab's camera moved (position [3], orientation wxyz [4]); default: ignore."""

    def set_background(self, rgb: tuple[int, int, int]) -> None:
        """The background colour changed (0-255 per channel); default: ignore."""

    def render_view(self, ctx: "ClientContext") -> "Any | None":
        """An image [H,W,3] uint8 of what the tab sees, rendered by the toolkit, or None."""
        return None

    def first_frame_ready(self, timeout: float) -> bool:
        """Block until the initial content has been handed to the connection."""
        return True

    def bytes_sent(self) -> int:
        """Payload bytes pushed to this tab so far (buffers and images)."""
        return 0

    @abc.abstractmethod
    def detach(self) -> None:
        """Stop workers and remove nodes (the tab may already be gone: never raise)."""


class ViewerAsset(abc.ABC):
    """A decoded asset, shared read-only by every tab."""

    info: AssetInfo

    def up_direction(self) -> tuple[float, float, float]:
        """World up for the camera controls."""
        return (0.0, -1.0, 0.0)

    def initial_view(self) -> CameraPose | None:
        """Where a new tab's camera starts and where 'reset camera' returns."""
        return None

    def camera_presets(self) -> list[CameraPose]:
        return []

    @abc.abstractmethod
    def attach(self, ctx: "ClientContext") -> ClientView:
        """Build one tab's nodes and GUI (called when a tab connects)."""

    def close(self) -> None:
        """Release shared resources (background threads, decoders)."""


@dataclass
class AssetType:
    """A loader: ``matches(path, head)`` says whether it opens a file (head = first 64 bytes);
    ``load(path, **options)`` decodes it. Options the loader does not know are ignored."""

    name: str
    extensions: Sequence[str]
    load: Callable[..., ViewerAsset]
    matches: Callable[[Path, bytes], bool] | None = None
    description: str = ""

    def accepts(self, path: Path, head: bytes) -> bool:
        if self.matches is not None:
            return bool(self.matches(path, head))
        name = path.name.lower()
        return any(name.endswith(e) for e in self.extensions)


def builtin_asset_types() -> list[AssetType]:
    from .image_view import IMAGE_ASSET
    from .scene_view import SCENE_ASSET

    return [IMAGE_ASSET, SCENE_ASSET]


def asset_types() -> list[AssetType]:
    """Plug-ins first (so they can claim an extension), then the built-in types."""
    found: list[AssetType] = []
    for ep in sorted(entry_points(group="splat.viewer_assets"), key=lambda e: e.name):
        obj = ep.load()
        found.append(obj() if callable(obj) and not isinstance(obj, AssetType) else obj)
    return found + builtin_asset_types()


def read_head(path: Path, n: int = 64) -> bytes:
    """The first ``n`` bytes of a file (b"" for a folder, e.g. an unzipped SOG); a FIFO, device
    or socket is refused without blocking (:func:`splat.bounded.open_regular`)."""
    if path.is_dir():
        return b""
    if not os.path.lexists(path):
        raise FormatError("file not found", path)
    with open_regular(path) as f:
        try:
            return f.read(n)
        except OSError as e:
            raise FormatError(f"cannot read ({e.strerror})", path) from None


def open_asset(path: str | os.PathLike, **options) -> ViewerAsset:
    """Decode ``path`` with the first asset type that accepts it.

    Raises :class:`splat.FormatError` for a missing, unreadable or unsupported file.
    """
    p = Path(path)
    head = read_head(p)
    for t in asset_types():
        if t.accepts(p, head):
            return t.load(p, **options)
    exts = sorted({e for t in asset_types() for e in t.extensions})
    raise FormatError(f"no viewer for this file type (supported: {', '.join(exts)})", p)
