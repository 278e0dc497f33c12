"""The viewer server: one decoded asset, served to any number of browser tabs through viser.

Each tab (a viser client) gets its own :class:`ClientSession`: its scene nodes, its GUI
(asset info, the asset's own panel, background colour, camera reset and presets,
"render this view") and its own display settings, so tabs never disturb each other.
The asset is decoded before the server starts, so the first push follows the
connection at once; the time to the first frame the tab actually drew is measured with
a round trip (viser's ``get_render``, which sorts and draws the splats) and printed.

Hosting: binds 127.0.0.1 unless told otherwise; the HTTP side serves only viser's bundled
client (no file of ours, no path from a request); a websocket handshake from another web
page's origin is refused (:mod:`viewer.origin`); viser's share-link feature, the one
thing that would reach outside, is disabled. Every callback is guarded: a tab that
vanishes mid-update costs that tab's session only.
"""
from __future__ import annotations

import contextlib
import functools
import io
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from splat.atomic import atomic_write_bytes
from splat.bounded import read_regular
from splat.errors import UsageError

from .assets import CameraPose, ClientView, ViewerAsset
from .origin import DroppedHandshakeFilter, OriginPolicy, origin_checked_serve

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8080
DEFAULT_BACKGROUND = (0, 0, 0)


def _import_viser():
    import viser  # imported lazily: `splat --help` must not pay for it

    return viser


def _png_bytes(image: np.ndarray) -> bytes:
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def next_free_path(folder: Path, stem: str, suffix: str = ".png") -> Path:
    """``folder/stem_NNN.suffix`` with the smallest NNN not taken (never overwrites)."""
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(1, 100_000):
        p = folder / f"{stem}_{i:03d}{suffix}"
        if not p.exists():
            return p
    raise RuntimeError(f"no free file name for {stem} in {folder}")


def check_bindable(host: str) -> None:
    """Raise UsageError unless ``host`` is an address this machine can listen on.

    (viser retries the next port on any bind error, so a bad host would loop forever.)
    """
    import socket

    try:
        infos = socket.getaddrinfo(host, 0, type=socket.SOCK_STREAM)
    except socket.gaierror as e:
        raise UsageError(f"cannot resolve host {host!r} ({e.strerror})") from None
    last = None
    for family, socktype, proto, _name, addr in infos:
        with socket.socket(family, socktype, proto) as s:
            try:
                s.bind(addr[:2] if family == socket.AF_INET else addr)
                return
            except OSError as e:
                last = e
    raise UsageError(f"cannot listen on {host!r} ({getattr(last, 'strerror', last)})")


@dataclass
class ClientContext:
    """What an asset's client view may use: the tab's viser handles and a few helpers."""

    client: object  # viser.ClientHandle
    server: "ViewerServer"
    background: tuple[int, int, int] = DEFAULT_BACKGROUND

    @property
    def gui(self):
        return self.client.gui

    @property
    def scene(self):
        return self.client.scene

    @property
    def client_id(self) -> int:
        return int(self.client.client_id)

    def camera_state(self) -> tuple[np.ndarray, np.ndarray, float, int, int]:
        """(position [3], wxyz [4], vertical fov rad, image width, image height) of the tab."""
        cam = self.client.camera
        return (np.asarray(cam.position, np.float64), np.asarray(cam.wxyz, np.float64), float(cam.fov),
                int(cam.image_width), int(cam.image_height))

    def notify(self, title: str, body: str, *, error: bool = False, seconds: float = 6.0) -> None:
        try:
            self.client.add_notification(title, body, auto_close_seconds=seconds, color="red" if error else None)
        except Exception:
            pass

    def guard(self, fn: Callable) -> Callable:
        """Wrap a GUI callback: errors become a notification, never an exception in viser."""

        @functools.wraps(fn)
        def wrapped(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except Exception as e:  # noqa: BLE001 - reported to the user, not raised
                self.server.log(f"[yellow]client {self.client_id}: {type(e).__name__}: {e}[/]")
                self.notify("Error", f"{type(e).__name__}: {e}", error=True)

        return wrapped


@dataclass
class ClientSession:
    ctx: ClientContext
    view: ClientView | None = None
    connected_at: float = 0.0
    first_frame_s: float | None = None
    info_md: object | None = None  # the asset-info markdown handle


def camera_pose_to_viser(client, pose: CameraPose) -> None:
    """Move a tab's camera to ``pose`` (one atomic update)."""
    with client.atomic():
        client.camera.up_direction = np.asarray(pose.up, np.float64)
        client.camera.fov = float(pose.fov)
        client.camera.position = np.asarray(pose.position, np.float64)
        client.camera.look_at = np.asarray(pose.look_at, np.float64)


class ViewerServer:
    """Serve ``asset`` on ``http://host:port`` until :meth:`stop`.

    ``render_dir``: where "render this view" writes PNGs. ``t_start``: perf_counter time
    the user's request began (for the printed time to first frame); defaults to now.
    ``log``: a callable taking rich markup (default: print to stderr); ``None`` is silent.
    """

    def __init__(
        self,
        asset: ViewerAsset,
        *,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        render_dir: str | Path = "splat_view_renders",
        background: tuple[int, int, int] = DEFAULT_BACKGROUND,
        t_start: float | None = None,
        log: Callable[[str], None] | None | bool = True,
        measure_first_frame: bool = True,
        allow_origins: Sequence[str] = (),
    ) -> None:
        viser = _import_viser()
        self.asset = asset
        self.render_dir = Path(render_dir)
        self.background = tuple(int(c) for c in background)
        self.t_start = time.perf_counter() if t_start is None else t_start
        self.measure_first_frame = measure_first_frame
        if log is True:
            from rich.console import Console

            console = Console(stderr=True)
            self._log = lambda msg: console.print(msg, highlight=False)
        else:
            self._log = log or None
        self.sessions: dict[int, ClientSession] = {}
        self._lock = threading.Lock()
        self.first_frame_s: float | None = None  # t_start -> first frame drawn by the first tab
        self.first_frame_event = threading.Event()

        check_bindable(host)
        self.origins = OriginPolicy(allow_origins, log=self.log)
        self._dropped = DroppedHandshakeFilter(self.log).install()
        try:
            # viser prints its own banner on stdout; the viewer prints one line of its own instead
            with contextlib.redirect_stdout(io.StringIO()), origin_checked_serve(self.origins):
                self._viser = viser.ViserServer(host=host, port=port, label="splatkit", verbose=False)
        except OSError as e:
            self._dropped.remove()
            raise UsageError(f"cannot listen on {host}:{port} ({e.strerror or e})") from None
        # The share-link feature is the only code path in viser that reaches an outside host;
        # a client can ask for it with a websocket message, so refuse it here as well as
        # hiding the button.
        self._viser.request_share_url = lambda *a, **k: None  # type: ignore[method-assign]
        self._viser.gui.configure_theme(show_share_button=False, dark_mode=True, control_width="medium",
                                        brand_color=(74, 144, 226))
        self._viser.scene.set_up_direction(np.asarray(asset.up_direction(), np.float64))
        pose = asset.initial_view()
        if pose is not None:
            ic = self._viser.initial_camera
            ic.position, ic.look_at, ic.up, ic.fov = pose.position, pose.look_at, pose.up, pose.fov
        self._viser.on_client_connect(self._on_connect)
        self._viser.on_client_disconnect(self._on_disconnect)
        self.host = host
        self.port = int(self._viser.get_port())
        self.origins.bind(host, self.port)
        self.ready_s = time.perf_counter() - self.t_start  # t_start -> listening, asset decoded

    # ------------------------------------------------------------------ public
    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def viser_server(self):
        return self._viser

    def log(self, msg: str) -> None:
        if self._log is not None:
            self._log(msg)

    def stop(self) -> None:
        with self._lock:
            sessions = list(self.sessions.values())
            self.sessions.clear()
        for s in sessions:
            if s.view is not None:
                s.view.detach()
        with contextlib.redirect_stdout(io.StringIO()):
            self._viser.stop()
        self._dropped.remove()
        self.asset.close()

    def wait_first_frame(self, timeout: float | None = None) -> float | None:
        """Block until a tab has drawn its first frame; the time to first frame (s) or None."""
        self.first_frame_event.wait(timeout)
        return self.first_frame_s

    def client_ids(self) -> list[int]:
        with self._lock:
            return sorted(self.sessions)

    def session(self, client_id: int) -> ClientSession | None:
        with self._lock:
            return self.sessions.get(client_id)

    def save_render(self, image: np.ndarray, stem: str) -> Path:
        """Write ``image`` [H,W,3|4] uint8 as ``render_dir/stem_NNN.png`` atomically."""
        path = next_free_path(self.render_dir, stem)
        atomic_write_bytes(path, _png_bytes(image))
        return path

    # ------------------------------------------------------------------ connection life cycle
    def _on_connect(self, client) -> None:
        ctx = ClientContext(client=client, server=self, background=self.background)
        sess = ClientSession(ctx=ctx, connected_at=time.perf_counter())
        with self._lock:
            self.sessions[int(client.client_id)] = sess
        try:
            self._build_common_gui(sess)
            sess.view = self.asset.attach(ctx)
            sess.view.set_background(self.background)
            self._build_view_gui(sess)
            client.camera.on_update(lambda cam: self._on_camera(sess, cam))
            if self.session(int(client.client_id)) is not sess:  # the tab left while we built it
                sess.view.detach()
                return
            if self.measure_first_frame:
                threading.Thread(target=self._measure_first_frame, args=(sess,), daemon=True).start()
        except Exception as e:  # noqa: BLE001 - e.g. a tab that vanished while we built it
            if sess.view is not None:
                sess.view.detach()
            if self.session(int(client.client_id)) is not None:
                self.log(f"[yellow]client {client.client_id}: setup failed ({type(e).__name__}: {e})[/]")

    def _on_disconnect(self, client) -> None:
        with self._lock:
            sess = self.sessions.pop(int(client.client_id), None)
        if sess is not None and sess.view is not None:
            try:
                sess.view.detach()
            except Exception:
                pass

    def _on_camera(self, sess: ClientSession, cam) -> None:
        if sess.view is None:
            return
        try:
            sess.view.on_camera(np.asarray(cam.position, np.float64), np.asarray(cam.wxyz, np.float64))
        except Exception:
            pass

    def _measure_first_frame(self, sess: ClientSession) -> None:
        """Round trip: viser's get_render makes the tab sort and draw everything received so far."""
        client = sess.ctx.client
        try:
            if sess.view is not None and not sess.view.first_frame_ready(timeout=60.0):
                return
            client.get_render(height=48, width=64, transport_format="jpeg", timeout=120.0)
        except Exception:
            return  # the tab went away first
        now = time.perf_counter()
        sess.first_frame_s = now - sess.connected_at
        first = False
        with self._lock:
            if self.first_frame_s is None:
                self.first_frame_s = now - self.t_start
                first = True
        if first:
            self.log(
                f"[bold green]time to first frame[/]: {self.first_frame_s:.2f} s since start "
                f"(decoded in {self.asset.info.decode_s:.2f} s, serving after {self.ready_s:.2f} s; the first tab "
                f"connected at {sess.connected_at - self.t_start:.2f} s and drew its first frame "
                f"{sess.first_frame_s:.2f} s later)"
            )
            self.first_frame_event.set()
        else:
            self.log(f"client {sess.ctx.client_id}: first frame {sess.first_frame_s:.2f} s after connecting")
        if sess.info_md is not None:
            try:
                sess.info_md.content = self._stats_markdown(sess)
            except Exception:
                pass

    # ------------------------------------------------------------------ GUI shared by every asset type
    def _stats_markdown(self, sess: ClientSession) -> str:
        ff = "…" if sess.first_frame_s is None else f"{sess.first_frame_s:.2f} s after connecting"
        return f"{self.asset.info.markdown()}\n- **first frame**: {ff}"

    def _build_common_gui(self, sess: ClientSession) -> None:
        gui = sess.ctx.gui
        with gui.add_folder("Asset", expand_by_default=True):
            sess.info_md = gui.add_markdown(self._stats_markdown(sess))

    def _build_view_gui(self, sess: ClientSession) -> None:
        ctx, gui = sess.ctx, sess.ctx.gui
        with gui.add_folder("View", expand_by_default=True):
            bg = gui.add_rgb("Background", initial_value=self.background)

            @bg.on_update
            @ctx.guard
            def _(_event) -> None:
                ctx.background = tuple(int(c) for c in bg.value)
                sess.view.set_background(ctx.background)

            pose = self.asset.initial_view()
            reset = gui.add_button("Reset camera")

            @reset.on_click
            @ctx.guard
            def _(_event) -> None:
                if pose is not None:
                    camera_pose_to_viser(ctx.client, pose)

            presets = self.asset.camera_presets()
            if presets:
                names = [p.name or f"camera {i}" for i, p in enumerate(presets)]
                names = [f"{i}: {n}" for i, n in enumerate(names)]
                dd = gui.add_dropdown("Camera preset", ["(free)"] + names, initial_value="(free)")

                @dd.on_update
                @ctx.guard
                def _(_event) -> None:
                    if dd.value != "(free)":
                        camera_pose_to_viser(ctx.client, presets[names.index(dd.value)])

            btn = gui.add_button("Render this view (PNG)")

            @btn.on_click
            @ctx.guard
            def _(_event) -> None:
                btn.disabled = True
                try:
                    self._render_view(sess)
                finally:
                    btn.disabled = False

    def _render_view(self, sess: ClientSession) -> Path | None:
        ctx = sess.ctx
        t0 = time.perf_counter()
        image = sess.view.render_view(ctx)
        if image is None:
            ctx.notify("Render", "this asset has nothing to render")
            return None
        stem = (self.asset.info.path.stem if self.asset.info.path else "view") + "_view"
        path = self.save_render(image, stem)
        dt = time.perf_counter() - t0
        self.log(f"rendered {image.shape[1]}x{image.shape[0]} view to {path} in {dt:.2f} s")
        ctx.notify("Rendered", f"{path} ({image.shape[1]}×{image.shape[0]}, {dt:.2f} s)")
        try:
            ctx.client.send_file_download(path.name, read_regular(path))  # the PNG just written
        except Exception:
            pass
        return path
