"""2D Gaussian images (``.gsi``) in the viewer: the rendered image, with LOD, resolution and
an ellipse overlay.

The image is rendered on the server by the image codec's own renderer and shown on a
plane in the 3D view (so it can be zoomed and panned); every change re-renders in a
background thread per tab, keeping only the newest request. Any object with the
:class:`ImageModel` shape can be shown; :func:`load_gsi_asset` builds one from a ``.gsi``
file through ``compress.image``.
"""
from __future__ import annotations

import math
import threading
import time
from pathlib import Path
from typing import Callable, Protocol, Sequence

import numpy as np

from splat.errors import FormatError

from .assets import AssetInfo, AssetType, CameraPose, ClientView, ViewerAsset

IMAGE_NODE = "/image"
GSI_MAGIC_PREFIXES = (b"GSI1",)
SCALES = (0.25, 0.5, 1.0, 2.0, 4.0)
MAX_SIDE = 4096  # longest rendered side the resolution selector offers
PLANE_HEIGHT = 2.0  # world units the image spans vertically


class ImageModel(Protocol):
    """A resolution-free image made of 2D Gaussians, in importance (LOD) order."""

    width: int  # native size in pixels
    height: int
    channels: int

    def __len__(self) -> int: ...

    def render(self, width: int, height: int, lod: float) -> np.ndarray:
        """[height, width, channels] float in [0,1], drawn with the first ``lod`` fraction."""

    def ellipses(self, width: int, height: int, lod: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(centres [M,2] px, 1-sigma semi-axes [M,2] px, angles [M] rad) at that size and LOD."""


def to_display_rgb(img: np.ndarray, background: Sequence[int] = (0, 0, 0)) -> np.ndarray:
    """[H,W,C] float -> [H,W,3] uint8: grey is repeated, alpha composited on ``background``,
    channels past 4 dropped (feature images show their first three)."""
    img = np.asarray(img, np.float32)
    if img.ndim == 2:
        img = img[..., None]
    c = img.shape[-1]
    if c == 1:
        rgb = np.repeat(img, 3, axis=-1)
    elif c == 2:  # grey + alpha
        a = img[..., 1:2]
        rgb = np.repeat(img[..., :1], 3, axis=-1) * a + (np.asarray(background, np.float32) / 255.0) * (1 - a)
    elif c == 4:
        a = img[..., 3:4]
        rgb = img[..., :3] * a + (np.asarray(background, np.float32) / 255.0) * (1 - a)
    else:
        rgb = img[..., :3]
    return (np.clip(rgb, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def draw_ellipses(
    rgb: np.ndarray,
    centers: np.ndarray,
    axes: np.ndarray,
    angles: np.ndarray,
    *,
    color: tuple[int, int, int] = (255, 220, 0),
    sigma: float = 2.0,
    max_count: int = 20000,
    segments: int = 20,
) -> np.ndarray:
    """A copy of ``rgb`` [H,W,3] uint8 with the ``sigma``-level outline of each ellipse drawn.

    At most ``max_count`` ellipses are drawn (the first ones, i.e. the most important).
    """
    from PIL import Image, ImageDraw

    im = Image.fromarray(np.ascontiguousarray(rgb))
    draw = ImageDraw.Draw(im)
    m = min(len(centers), max_count)
    t = np.linspace(0.0, 2.0 * math.pi, segments, endpoint=False)
    ct, st = np.cos(t), np.sin(t)
    for i in range(m):
        cx, cy = centers[i]
        a, b = axes[i] * sigma
        ca, sa = math.cos(angles[i]), math.sin(angles[i])
        xs = cx + a * ct * ca - b * st * sa
        ys = cy + a * ct * sa + b * st * ca
        draw.polygon(list(zip(xs.tolist(), ys.tolist())), outline=color)
    return np.asarray(im)


class ImageAsset(ViewerAsset):
    """A decoded image model, shared by every tab."""

    def __init__(self, model: ImageModel, info: AssetInfo) -> None:
        self.model = model
        self.info = info
        info.extra.setdefault("size", f"{model.width} × {model.height} × {model.channels}")

    def up_direction(self):
        return (0.0, 1.0, 0.0)

    def plane_size(self) -> tuple[float, float]:
        return PLANE_HEIGHT * self.model.width / self.model.height, PLANE_HEIGHT

    def initial_view(self) -> CameraPose:
        fov = math.radians(50.0)
        w, h = self.plane_size()
        dist = 1.15 * max(h, w * 0.75) / 2 / math.tan(fov / 2)
        return CameraPose(position=(0.0, 0.0, dist), look_at=(0.0, 0.0, 0.0), up=(0.0, 1.0, 0.0), fov=fov)

    def resolutions(self) -> list[tuple[str, int, int]]:
        """(label, width, height) choices: native and scaled, longest side <= MAX_SIDE."""
        out = []
        for s in SCALES:
            w, h = max(1, round(self.model.width * s)), max(1, round(self.model.height * s))
            if max(w, h) <= MAX_SIDE or s <= 1.0:
                out.append((f"{w} × {h} ({s:g}×{' native' if s == 1.0 else ''})", w, h))
        return out

    def render_rgb(self, width: int, height: int, lod: float, overlay: bool,
                   background: Sequence[int] = (0, 0, 0)) -> np.ndarray:
        """[H,W,3] uint8 of the model at this size and LOD, with ellipse outlines if asked."""
        rgb = to_display_rgb(self.model.render(width, height, lod), background)
        if overlay:
            c, a, ang = self.model.ellipses(width, height, lod)
            rgb = draw_ellipses(rgb, c, a, ang)
        return rgb

    def attach(self, ctx) -> "ImageClientView":
        return ImageClientView(self, ctx)


class _LatestOnly:
    """Runs the most recently submitted job on one background thread (older pending ones are dropped)."""

    def __init__(self, name: str) -> None:
        self._cv = threading.Condition()
        self._job: Callable[[], None] | None = None
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def submit(self, job: Callable[[], None]) -> None:
        with self._cv:
            self._job = job
            self._cv.notify_all()

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cv:
            while (self._job is not None or self._busy) and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cv.wait(left)
        return True

    def close(self) -> None:
        with self._cv:
            self._closed = True
            self._cv.notify_all()

    def _run(self) -> None:
        while True:
            with self._cv:
                while self._job is None and not self._closed:
                    self._cv.wait()
                if self._closed:
                    return
                job, self._job, self._busy = self._job, None, True
            try:
                job()
            except Exception:
                pass
            finally:
                with self._cv:
                    self._busy = False
                    self._cv.notify_all()


class ImageClientView(ClientView):
    """One tab's image plane and panel (LOD, resolution, ellipse overlay)."""

    def __init__(self, asset: ImageAsset, ctx) -> None:
        self.asset, self.ctx = asset, ctx
        self._bytes = 0
        self._handle = None
        self._closed = False
        self.background = tuple(ctx.background)
        self.last_image: np.ndarray | None = None
        self.last_render_ms = 0.0
        self._worker = _LatestOnly(f"image-view-{ctx.client_id}")
        res = asset.resolutions()
        self._res = {label: (w, h) for label, w, h in res}
        native = next(label for label, w, h in res if w == asset.model.width and h == asset.model.height)
        gui = ctx.gui
        with gui.add_folder("Image", expand_by_default=True):
            self.lod = gui.add_slider("LOD (fraction of Gaussians)", min=0.01, max=1.0, step=0.01, initial_value=1.0)
            self.resolution = gui.add_dropdown("Resolution", [label for label, _, _ in res], initial_value=native)
            self.overlay = gui.add_checkbox("Show Gaussian ellipses", initial_value=False)
            self.status = gui.add_markdown("")
        for h in (self.lod, self.resolution, self.overlay):
            h.on_update(ctx.guard(lambda _e: self.refresh()))
        self.refresh()

    def settings(self) -> tuple[int, int, float, bool]:
        w, h = self._res[self.resolution.value]
        return w, h, float(np.clip(self.lod.value, 0.01, 1.0)), bool(self.overlay.value)

    def refresh(self) -> None:
        w, h, lod, overlay = self.settings()
        bg = self.background
        self._worker.submit(lambda: self._draw(w, h, lod, overlay, bg))

    def _draw(self, w: int, h: int, lod: float, overlay: bool, bg) -> None:
        if self._closed:
            return
        t0 = time.perf_counter()
        rgb = self.asset.render_rgb(w, h, lod, overlay, bg)
        self.last_render_ms = 1000 * (time.perf_counter() - t0)
        pw, ph = self.asset.plane_size()
        # viser's image plane puts row 0 at -Y; the camera looks down -Z with +Y up, so
        # the rows are sent bottom-up to show the image upright (checked by the browser test).
        wire = np.ascontiguousarray(rgb[::-1])
        if self._handle is None:
            self._handle = self.ctx.scene.add_image(IMAGE_NODE, wire, render_width=pw, render_height=ph, format="png",
                                                    cast_shadow=False, receive_shadow=False)
        else:
            self._handle.image = wire
        self.last_image = rgb
        self._bytes += rgb.nbytes
        n = len(self.asset.model)
        shown = max(1, round(lod * n))
        try:
            self.status.content = (f"{shown:,} of {n:,} Gaussians at {w} × {h}; "
                                   f"rendered in {self.last_render_ms:.0f} ms")
        except Exception:
            pass

    # ------------------------------------------------------------------ ClientView
    def set_background(self, rgb) -> None:
        self.background = tuple(int(c) for c in rgb)
        img = np.empty((2, 2, 3), np.uint8)
        img[...] = np.asarray(self.background, np.uint8)
        self.ctx.scene.set_background_image(img, format="png")
        if self.asset.model.channels in (2, 4):
            self.refresh()  # transparent pixels show the background colour

    def first_frame_ready(self, timeout: float) -> bool:
        return self._worker.wait_idle(timeout)

    def bytes_sent(self) -> int:
        return self._bytes

    def render_view(self, ctx) -> np.ndarray:
        w, h, lod, overlay = self.settings()
        return self.asset.render_rgb(w, h, lod, overlay, self.background)

    def detach(self) -> None:
        self._closed = True
        self._worker.close()


# ---------------------------------------------------------------------- .gsi loader
def _is_gsi(path: Path, head: bytes) -> bool:
    return path.name.lower().endswith(".gsi") or head.startswith(GSI_MAGIC_PREFIXES)


def load_gsi_asset(path: Path, **_ignored) -> ImageAsset:
    """Decode a ``.gsi`` file (timed) through the image codec, ``compress.image``."""
    path = Path(path)
    try:
        from .gsi_model import decode_gsi
        import compress.image.gsi  # noqa: F401  (the codec itself)
    except ImportError:
        raise FormatError(
            "the .gsi image codec (compress.image) is not part of this build, so .gsi files cannot be viewed yet",
            path,
        ) from None
    data = path.read_bytes()
    t0 = time.perf_counter()
    model = decode_gsi(data, path=path)
    decode_s = time.perf_counter() - t0
    info = AssetInfo(path=path, format="GSI (2D Gaussian image)", kind="image", count=len(model),
                     file_size=len(data), decode_s=decode_s)
    info.extra["bits per pixel"] = f"{8 * len(data) / (model.width * model.height):.3f}"
    return ImageAsset(model, info)


IMAGE_ASSET = AssetType(
    name="image",
    extensions=(".gsi",),
    load=load_gsi_asset,
    matches=_is_gsi,
    description="2D Gaussian images (.gsi)",
)
