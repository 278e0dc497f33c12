"""Volumetric video (``.gsv``) in the viewer: streamed playback with play/pause, seek, speed, loop.

Every tab gets its own player: a ``compress.video.VideoReader`` on the file, a
``FrameStream`` that decodes ahead into a bounded ring buffer on a background thread,
a :class:`viewer.playback.PlaybackController` that takes frames off it at the clip's
frame rate × speed (dropping late ones), and one :class:`SplatLayer` whose splat node
gets each shown frame's buffer in place (viser's ``GaussianSplatHandle.buffer``
update: the node is never re-added). Memory per tab is the ring buffer plus the frame on
screen, whatever the clip's length.

On screen, besides the controls: decode time per frame, buffer health
(buffered / capacity), frames delivered per second (buffers pushed to the tab) against
the target rate, and the bitrate of the segment being played
(segment bytes × 8 × fps / frames in the segment).
"""
from __future__ import annotations

import contextlib
import threading
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from splat.camera import parse_up
from splat.errors import FormatError
from splat.scene import GaussianScene
from splat.threads import threads

from .assets import AssetInfo, AssetType, CameraPose, ViewerAsset, asset_size
from .playback import MAX_SPEED, MIN_SPEED, PlaybackController, Rate
from .scene_view import SplatLayerView, orbit_start_pose, render_shown, viser_to_camera
from .splat_layer import DisplaySettings, SplatLayer
from .splats import PreparedSplats, prepare_splats, select_indices

VIDEO_NODE = "/video"
GUI_INTERVAL = 0.1  # s between two updates of the frame slider and status line while playing
STATS_INTERVAL = 0.25  # s between two updates of the stats panel


def _codec():
    """The video codec package (``compress.video``), or a FormatError saying it is missing."""
    try:
        import compress.video as video
    except ImportError as e:
        raise FormatError(f"the .gsv video codec is not available in this build ({e})") from None
    return video


def segment_frame_counts(info) -> np.ndarray:
    """Frames in each segment [n_segments] (int64), from ``info.segment_of``."""
    seg = np.fromiter((info.segment_of(i) for i in range(info.n_frames)), np.int64, info.n_frames)
    return np.bincount(seg, minlength=int(info.n_segments))


def fmt_bitrate(bps: float) -> str:
    """Bits per second as 'x.xx Mbit/s' (or kbit/s below 1 Mbit/s)."""
    return f"{bps / 1e6:.2f} Mbit/s" if bps >= 1e6 else f"{bps / 1e3:.1f} kbit/s"


# ---------------------------------------------------------------------- the asset
class VideoAsset(ViewerAsset):
    """A ``.gsv`` clip: its header, first frame and per-segment bitrates, shared by every tab.

    ``source``: the file path (or the encoded bytes). ``autoplay``: tabs start playing;
    ``speed`` (0.25-4), ``loop``: their initial settings; ``capacity``: frames each tab's
    decoder keeps ready; ``sh``: start with view-dependent colour on.

    ``decode_threads``: torch intra-op threads for the process while the asset is open
    (``splat.threads.threads``, also numba's in the opening thread; restored by :meth:`close`;
    None leaves them alone). Decoding beside a web server and
    a browser, a pool of 2 waiting for busy cores was measured 8-60x slower per frame than
    one thread (50k performer on the loaded 2-core machine: 146 ms vs 18 ms in the frame
    stream, 1000 ms vs 16 ms in the caller's thread). The setting is process-wide in torch.
    """

    def __init__(
        self,
        source: Path | bytes,
        *,
        path: Path | None = None,
        up: str | Sequence[float] = "-y",
        sh: bool = True,
        autoplay: bool = True,
        speed: float = 1.0,
        loop: bool = True,
        capacity: int = 8,
        decode_threads: int | None = 1,
    ) -> None:
        video = _codec()
        self.source = source
        self._views: list[VideoClientView] = []
        self._views_lock = threading.Lock()
        self._threads = contextlib.ExitStack()  # the thread setting lives as long as the asset
        if decode_threads is not None:
            self._threads.enter_context(threads(max(int(decode_threads), 1)))
        try:
            self._open(video, source, path, up, sh, autoplay, speed, loop, capacity)
        except BaseException:
            self.close()
            raise

    def _open(self, video, source, path, up, sh, autoplay, speed, loop, capacity) -> None:
        t0 = time.perf_counter()
        reader = video.VideoReader(source)
        try:
            self.video = reader.info
            first = reader.frame(0)
            decode_s = time.perf_counter() - t0
            counts = segment_frame_counts(self.video)
            seg_bytes = np.array([reader.segment_bytes(s) for s in range(int(self.video.n_segments))], np.float64)
        finally:
            reader.close()
        v = self.video
        self.frames_per_segment = counts
        # bits per second while segment s plays: its bytes over its duration
        self.segment_bps = seg_bytes * 8.0 * float(v.fps) / np.maximum(counts, 1)
        self.first_scene = first.detach().to(device="cpu", dtype=torch.float32)
        t1 = time.perf_counter()
        self.first_prepared: PreparedSplats = prepare_splats(self.first_scene)
        prep_ms = 1000 * (time.perf_counter() - t1)
        size = asset_size(path) if path is not None else len(source) if isinstance(source, (bytes, bytearray)) else None
        duration = v.n_frames / float(v.fps)
        mean_bps = 8.0 * float(v.total_bytes) / duration
        self.info = AssetInfo(path=path, format="gsv (volumetric video)", kind="video", count=int(v.n_gaussians),
                              file_size=size, decode_s=decode_s)
        self.info.extra.update({
            "frames": f"{v.n_frames:,}",
            "duration": f"{duration:.2f} s",
            "fps": f"{float(v.fps):g}",
            "bitrate": f"{fmt_bitrate(mean_bps)} mean",
            "bits / Gaussian / frame": f"{8.0 * float(v.total_bytes) / max(v.n_frames * v.n_gaussians, 1):.2f}",
            "segments": f"{v.n_segments} (GOP {v.gop})",
            "tracked": "yes" if v.tracked else "no",
            "SH degree": v.sh_degree,
            "prepare time": f"{prep_ms:.0f} ms / frame",
        })
        self._up = parse_up(up).tolist()
        self.sh, self.autoplay, self.speed, self.loop = bool(sh), bool(autoplay), float(speed), bool(loop)
        self.capacity = max(int(capacity), 1)
        self._initial: CameraPose | None = None

    def up_direction(self):
        return tuple(self._up)

    def initial_view(self) -> CameraPose | None:
        if self._initial is None:
            self._initial = orbit_start_pose(self.first_scene, self._up, self.first_prepared.center, 15.0)
        return self._initial

    def next_segment_start(self, frame: int) -> int | None:
        """First frame of the segment after the one holding ``frame`` (None after the last)."""
        s = int(self.video.segment_of(int(frame)))
        start = int(self.frames_per_segment[: s + 1].sum())
        return start if start < self.video.n_frames else None

    def open_stream(self, start: int = 0):
        """A new frame stream (its own reader and prefetch thread) for one tab."""
        video = _codec()
        reader = video.VideoReader(self.source)
        try:  # the stream opens a reader of its own on the same source
            return video.FrameStream(reader, start=start, capacity=self.capacity, loop=True)
        finally:
            reader.close()

    def attach(self, ctx) -> "VideoClientView":
        view = VideoClientView(self, ctx)
        with self._views_lock:
            self._views.append(view)
        return view

    def _forget(self, view: "VideoClientView") -> None:
        with self._views_lock:
            if view in self._views:
                self._views.remove(view)

    def close(self) -> None:
        with self._views_lock:
            views = list(self._views)
        for v in views:
            v.detach()
        self._threads.close()


# ---------------------------------------------------------------------- one tab
class VideoClientView(SplatLayerView):
    """One tab's player: stream, controller, splat node and panel."""

    def __init__(self, asset: VideoAsset, ctx) -> None:
        self.asset, self.ctx = asset, ctx
        v = asset.video
        self.n_frames, self.fps = int(v.n_frames), float(v.fps)
        self._closed = False
        self._gui_lock = threading.Lock()
        self._last_gui = 0.0
        self._last_stats = 0.0
        self._current: tuple[GaussianScene, PreparedSplats] = (asset.first_scene, asset.first_prepared)
        self._current_index = 0
        self._geometry_pushes = 0
        self.delivered = Rate(1.0)
        pose = asset.initial_view()
        campos = None if pose is None else np.asarray(pose.position)
        has_sh = asset.first_prepared.sh_coeffs is not None
        self.layer = SplatLayer(ctx.scene, VIDEO_NODE, asset.first_prepared, DisplaySettings(sh=asset.sh and has_sh),
                                camera_position=campos, on_change=self._on_push)
        self.stream = asset.open_stream(0)
        gui = ctx.gui
        with gui.add_folder("Playback", expand_by_default=True):
            self.status_md = gui.add_markdown(self._status_text())
            self.play_btn = gui.add_button("Pause" if asset.autoplay else "Play")
            self.frame_slider = gui.add_slider("Frame", min=0, max=max(self.n_frames - 1, 1), step=1, initial_value=0,
                                               disabled=self.n_frames < 2)
            self.speed_slider = gui.add_slider("Speed", min=MIN_SPEED, max=MAX_SPEED, step=0.25,
                                               initial_value=min(max(asset.speed, MIN_SPEED), MAX_SPEED))
            self.loop_box = gui.add_checkbox("Loop", initial_value=asset.loop)
        with gui.add_folder("Stream", expand_by_default=True):
            self.stats_md = gui.add_markdown("…")
        with gui.add_folder("Splats", expand_by_default=False):
            self.scale = gui.add_slider("Splat scale", min=0.05, max=3.0, step=0.05, initial_value=1.0)
            self.sh_box = gui.add_checkbox("View-dependent colour (SH)", initial_value=bool(asset.sh and has_sh),
                                           disabled=not has_sh)
        self.controller = PlaybackController(
            self.stream, fps=self.fps, n_frames=self.n_frames, show=self._show, speed=asset.speed, loop=asset.loop,
            on_state=self._on_state, on_error=self._on_error, next_segment_start=asset.next_segment_start,
        )
        self.play_btn.on_click(ctx.guard(lambda _e: self.controller.toggle() or self._on_state()))
        self.frame_slider.on_update(ctx.guard(self._on_seek))
        self.speed_slider.on_update(ctx.guard(lambda e: e.client is not None and self.controller.set_speed(
            float(self.speed_slider.value))))
        self.loop_box.on_update(ctx.guard(lambda _e: self.controller.set_loop(bool(self.loop_box.value))))
        self.scale.on_update(ctx.guard(lambda _e: self.layer.update(
            splat_scale=float(np.clip(self.scale.value, 0.05, 3.0)))))
        self.sh_box.on_update(ctx.guard(lambda _e: self.layer.update(sh=bool(self.sh_box.value))))
        self._refresh_gui(force=True)
        if asset.autoplay:
            self.controller.play()

    # ------------------------------------------------------------------ playback callbacks
    def _show(self, frame) -> None:
        """Controller thread: prepare the frame's splat arrays and hand them to the layer."""
        if self._closed:
            return
        scene = frame.scene
        prep = prepare_splats(scene)
        self._current, self._current_index = (scene, prep), int(frame.index)
        self.layer.set_splats(prep)
        self._refresh_gui(force=not self.controller.playing, index=int(frame.index))

    def _on_push(self, layer: SplatLayer) -> None:
        """Layer worker: count buffers that carried a new frame (not colour-only refreshes)."""
        geometry = layer.stats.pushes - layer.stats.sh_refreshes
        if geometry > self._geometry_pushes:
            self._geometry_pushes = geometry
            self.delivered.tick()

    def _on_state(self) -> None:
        self._refresh_gui(force=True)

    def _on_error(self, exc: BaseException) -> None:
        self.ctx.notify("Video", f"{type(exc).__name__}: {exc}", error=True)

    def _on_seek(self, event) -> None:
        if event.client is None:  # our own update of the slider while playing
            return
        self.controller.seek(int(round(float(self.frame_slider.value))))

    # ------------------------------------------------------------------ GUI
    def segment_bitrate(self, index: int) -> float:
        """Bits per second of the segment holding frame ``index``."""
        return float(self.asset.segment_bps[int(self.asset.video.segment_of(int(index)))])

    def _status_text(self, index: int | None = None) -> str:
        i = self._current_index if index is None else index
        c = getattr(self, "controller", None)  # None while the panel is being built
        playing = self.asset.autoplay if c is None else c.playing
        speed = self.asset.speed if c is None else c.speed
        state = "at the end" if c is not None and c.at_end else "playing" if playing else "paused"
        return (f"frame **{i}** of {self.n_frames} · {i / self.fps:.2f} s / {self.n_frames / self.fps:.2f} s · "
                f"{state} at {speed:g}×")

    def stats_text(self) -> str:
        c = self.controller
        st = c.stats
        target = self.fps * c.speed if c.playing else 0.0
        delivered = self.delivered.rate() if c.playing else 0.0
        seg = int(self.asset.video.segment_of(self._current_index))
        return "\n".join([
            f"- **decode**: {st.decode_ms:.1f} ms / frame (prepare {st.show_ms:.1f} ms, push "
            f"{self.layer.stats.last_push_ms:.1f} ms)",
            f"- **buffer**: {c.buffered()} / {self.asset.capacity} frames",
            f"- **delivered**: {delivered:.1f} fps (target {target:g})",
            f"- **bitrate**: {fmt_bitrate(self.segment_bitrate(self._current_index))} (segment {seg})",
            f"- **frames**: {st.shown:,} shown, {st.dropped:,} dropped, {st.stalls:,} waits for the decoder"
            + (f", {st.errors} errors" if st.errors else ""),
        ])

    def _refresh_gui(self, force: bool = False, index: int | None = None) -> None:
        if self._closed:
            return
        now = time.monotonic()
        with self._gui_lock:
            if not force and now - self._last_gui < GUI_INTERVAL:
                return
            self._last_gui = now
            stats = force or now - self._last_stats >= STATS_INTERVAL
            if stats:
                self._last_stats = now
        try:
            i = self._current_index if index is None else index
            self.status_md.content = self._status_text(i)
            self.frame_slider.value = i
            c = getattr(self, "controller", None)
            if c is not None:
                self.play_btn.label = "Pause" if c.playing else "Play"
                if stats:
                    self.stats_md.content = self.stats_text()
        except Exception:  # the tab may be gone
            pass

    # ------------------------------------------------------------------ ClientView

    @property
    def frame_index(self) -> int:
        """Index of the frame handed to the tab last."""
        return self._current_index

    def render_view(self, ctx) -> np.ndarray:
        """The toolkit's render of the frame on screen from the tab's camera."""
        scene, prep = self._current
        s = self.layer.settings
        idx = select_indices(prep, opacity_threshold=s.opacity_threshold, budget=s.budget, ranking="significance")
        pos, wxyz, fov, w, h = ctx.camera_state()
        return render_shown(scene, viser_to_camera(pos, wxyz, fov, w, h), idx, s, ctx.background)

    def detach(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.controller.close()  # closes the stream
        self.layer.close(remove=False)
        self.asset._forget(self)


# ---------------------------------------------------------------------- loader
def load_video_asset(
    path: Path,
    *,
    up: str = "-y",
    sh: bool = True,
    paused: bool = False,
    speed: float = 1.0,
    loop: bool = True,
    capacity: int = 8,
    **_ignored: Any,
) -> VideoAsset:
    """Open a ``.gsv`` file for the viewer (header, first frame, segment sizes)."""
    path = Path(path)
    if not path.is_file():
        raise FormatError("file not found", path)
    try:
        return VideoAsset(path, path=path, up=up, sh=sh, autoplay=not paused, speed=speed, loop=loop,
                          capacity=capacity)
    except FormatError as e:
        if e.path is None:
            raise FormatError(e.reason, path) from None
        raise


def _is_gsv(path: Path, head: bytes) -> bool:
    if path.name.lower().endswith(".gsv"):
        return True
    try:
        import compress.video as video
    except ImportError:
        return False
    magic = getattr(video, "MAGIC", None)
    return bool(magic) and head.startswith(magic)


VIDEO_ASSET = AssetType(
    name="video",
    extensions=(".gsv",),
    load=load_video_asset,
    matches=_is_gsv,
    description="volumetric video (.gsv): Gaussian sequences played from a prefetching stream",
)
