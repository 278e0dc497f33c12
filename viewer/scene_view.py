"""3D scenes in the viewer: every format the toolkit reads, drawn by the browser as splats.

The scene is decoded and prepared once (:func:`viewer.splats.prepare_splats`); each tab
gets a :class:`~viewer.splat_layer.SplatLayer` and a panel with splat scale, opacity
threshold, Gaussian budget (most significant / largest contribution), and the
view-dependent colour (SH) switch with its status.
"""
from __future__ import annotations

import math
import os
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch

from splat.camera import Camera, load_cameras, orbit_cameras, hemisphere_cameras, parse_up
from splat.errors import FormatError
from splat.scene import GaussianScene
from splat.threads import threads

from .assets import AssetInfo, AssetType, CameraPose, ClientView, ViewerAsset, asset_size
from .splat_layer import DisplaySettings, SplatLayer
from .splats import PreparedSplats, contribution_scores, prepare_splats

SPLAT_NODE = "/splats"


# ---------------------------------------------------------------------- camera conversions
def camera_to_pose(cam: Camera, focus: np.ndarray | None = None) -> CameraPose:
    """A toolkit camera (OpenCV) as a viser pose; look_at is the point on the optical axis
    nearest to ``focus`` (at least 0.1 in front), or 1 unit ahead when no focus is given."""
    c2w = cam.camera_to_world.numpy()
    pos, fwd, down = c2w[:3, 3], c2w[:3, 2], c2w[:3, 1]
    dist = 1.0 if focus is None else max(float((np.asarray(focus) - pos) @ fwd), 0.1)
    return CameraPose(
        position=tuple(pos.tolist()),
        look_at=tuple((pos + dist * fwd).tolist()),
        up=tuple((-down).tolist()),
        fov=2.0 * math.atan(0.5 * cam.height / cam.fy),
        name=cam.name,
    )


def orbit_start_pose(scene: GaussianScene, up, focus: np.ndarray, elevation_deg: float) -> CameraPose | None:
    """The opening view of an asset: one orbit camera fitted to ``scene`` (None when empty)."""
    if len(scene) == 0:
        return None
    with threads(1):
        cam = orbit_cameras(scene, 1, up=up, width=640, height=480, elevation_deg=elevation_deg)[0]
    return camera_to_pose(cam, focus=focus)


def viser_to_camera(position, wxyz, fov: float, width: int, height: int) -> Camera:
    """A tab's camera (OpenCV frame, orientation wxyz, vertical fov rad) as a toolkit Camera."""
    from render.projection import quat_to_rotmat

    rot = quat_to_rotmat(torch.as_tensor(np.asarray(wxyz, np.float64)).reshape(1, 4))[0]
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = rot
    c2w[:3, 3] = torch.as_tensor(np.asarray(position, np.float64))
    f = 0.5 * height / math.tan(0.5 * fov)
    return Camera(f, f, width / 2.0, height / 2.0, int(width), int(height), torch.linalg.inv(c2w))


# ---------------------------------------------------------------------- the asset
class SceneAsset(ViewerAsset):
    """A decoded 3D scene, shared by every tab.

    ``cameras``: presets (e.g. from cameras.json); ``up``: world up ('-y', '+z', ...);
    ``budget``: initial Gaussian budget (None = all); ``sh``: start with SH colour on.
    """

    def __init__(
        self,
        scene: GaussianScene,
        info: AssetInfo,
        *,
        cameras: Sequence[Camera] = (),
        up: str | Sequence[float] = "-y",
        budget: int | None = None,
        sh: bool = True,
        min_sh_interval: float = 0.1,
        render_backend: str = "auto",
    ) -> None:
        self.scene = scene.detach().to(device="cpu", dtype=torch.float32)
        t0 = time.perf_counter()
        self.prepared: PreparedSplats = prepare_splats(self.scene)
        info.extra.setdefault("SH degree", self.scene.sh_degree)
        info.extra["prepare time"] = f"{(time.perf_counter() - t0) * 1000:.0f} ms"
        self.info = info
        self.cameras = list(cameras)
        self._up = parse_up(up).tolist()
        self.default_settings = DisplaySettings(budget=budget, sh=sh)
        self.min_sh_interval = min_sh_interval
        self.render_backend = render_backend
        self._contrib_lock = threading.Lock()
        self._contrib_thread: threading.Thread | None = None
        self._contrib_waiters: list[Callable[[str | None], None]] = []
        self._views: list["SceneClientView"] = []
        self._initial: CameraPose | None = None

    def up_direction(self):
        return tuple(self._up)

    def initial_view(self) -> CameraPose | None:
        if self._initial is None:
            self._initial = orbit_start_pose(self.scene, self._up, self.prepared.center, 20.0)
        return self._initial

    def camera_presets(self) -> list[CameraPose]:
        return [camera_to_pose(c, focus=self.prepared.center) for c in self.cameras]

    def attach(self, ctx) -> "SceneClientView":
        view = SceneClientView(self, ctx)
        self._views.append(view)
        return view

    def close(self) -> None:
        for v in list(self._views):
            v.detach()

    # ------------------------------------------------------------------ contribution ranking
    def contribution_cameras(self, width: int = 256) -> list[Camera]:
        """Views for the contribution ranking: the presets if any, else a hemisphere of 12."""
        if self.cameras:
            cams = self.cameras[:: max(1, len(self.cameras) // 16)][:16]
            return [c.resized(width, max(1, round(width * c.height / c.width))) for c in cams]
        return hemisphere_cameras(self.scene, 12, up=self._up, width=width, height=width * 3 // 4)

    def request_contribution(self, done: Callable[[str | None], None]) -> None:
        """Compute the contribution scores once (background thread); ``done(error or None)``."""
        with self._contrib_lock:
            if self.prepared.contribution is not None:
                ready = True
            else:
                ready = False
                self._contrib_waiters.append(done)
                if self._contrib_thread is None:
                    self._contrib_thread = threading.Thread(target=self._compute_contribution, daemon=True)
                    self._contrib_thread.start()
        if ready:
            done(None)

    def _compute_contribution(self) -> None:
        err = None
        try:
            scores = contribution_scores(self.scene, self.contribution_cameras(), backend=self.render_backend)
            self.prepared.set_contribution(scores)
        except Exception as e:  # noqa: BLE001 - reported to the tabs that asked
            err = f"{type(e).__name__}: {e}"
        with self._contrib_lock:
            waiters, self._contrib_waiters = self._contrib_waiters, []
            self._contrib_thread = None
        for w in waiters:
            try:
                w(err)
            except Exception:
                pass

    # ------------------------------------------------------------------ toolkit render of a view
    def render(self, camera: Camera, indices: np.ndarray, settings: DisplaySettings,
               background: Sequence[int] = (0, 0, 0)) -> np.ndarray:
        """The toolkit's own render [H,W,3] uint8 of what a tab shows with ``settings``."""
        return render_shown(self.scene, camera, indices, settings, background, backend=self.render_backend)


def render_shown(scene: GaussianScene, camera: Camera, indices: np.ndarray, settings: DisplaySettings,
                 background: Sequence[int] = (0, 0, 0), *, backend: str = "auto") -> np.ndarray:
    """The toolkit's render [H,W,3] uint8 of Gaussians ``indices`` of ``scene`` as a tab shows
    them with ``settings`` (splat scale, SH on/off) over ``background`` (0-255)."""
    from render import rasterize

    sub = scene[torch.from_numpy(np.asarray(indices, np.int64))]
    if settings.splat_scale != 1.0:
        sub = sub.replace(log_scales=sub.log_scales + math.log(settings.splat_scale))
    sh_degree = sub.sh_degree if settings.sh else 0
    bg = torch.tensor([c / 255.0 for c in background], dtype=torch.float32)
    with torch.no_grad():
        out = rasterize(sub, camera, sh_degree=sh_degree, background=bg, backend=backend)
    img = out.colors[0].clamp(0, 1).numpy()
    return (img * 255.0 + 0.5).astype(np.uint8)


class SplatLayerView(ClientView):
    """The ClientView calls every splat-drawing tab answers the same way, through its
    ``self.layer`` (a :class:`SplatLayer`) and ``self.ctx`` (its client context)."""

    def on_camera(self, position, wxyz) -> None:
        self.layer.camera_changed(position)

    def set_background(self, rgb) -> None:
        img = np.empty((2, 2, 3), np.uint8)
        img[...] = np.asarray(rgb, np.uint8)
        self.ctx.scene.set_background_image(img, format="png")

    def first_frame_ready(self, timeout: float) -> bool:
        return self.layer.flush(timeout)

    def bytes_sent(self) -> int:
        return self.layer.stats.bytes_sent


class SceneClientView(SplatLayerView):
    """One tab's splats and panel."""

    def __init__(self, asset: SceneAsset, ctx) -> None:
        self.asset, self.ctx = asset, ctx
        n = len(asset.scene)
        prep = asset.prepared
        pose = asset.initial_view()
        campos = None if pose is None else np.asarray(pose.position)
        self._closed = False
        self.layer = SplatLayer(ctx.scene, SPLAT_NODE, prep, asset.default_settings, camera_position=campos,
                                min_interval=asset.min_sh_interval, on_change=self._on_layer_change)
        gui = ctx.gui
        s = asset.default_settings
        with gui.add_folder("Splats", expand_by_default=True):
            self.shown_md = gui.add_markdown(self._shown_text())
            self.scale = gui.add_slider("Splat scale", min=0.05, max=3.0, step=0.05, initial_value=1.0)
            self.opacity = gui.add_slider("Opacity threshold", min=0.0, max=1.0, step=0.01, initial_value=0.0)
            self.budget = gui.add_slider("Gaussian budget", min=1, max=max(n, 1), step=1,
                                         initial_value=n if s.budget is None else min(s.budget, n))
            self.ranking = gui.add_dropdown("Budget keeps", ["most significant", "largest contribution"],
                                            initial_value="most significant",
                                            hint="most significant: opacity × size; largest contribution: "
                                                 "blend weight rendered from several views")
            has_sh = prep.sh_coeffs is not None
            self.sh = gui.add_checkbox("View-dependent colour (SH)", initial_value=bool(s.sh and has_sh),
                                       disabled=not has_sh)
            self.sh_md = gui.add_markdown(self._sh_text())
        # the number boxes beside the sliders accept any value: clamp to the slider ranges
        self.scale.on_update(ctx.guard(lambda _e: self.layer.update(
            splat_scale=float(np.clip(self.scale.value, 0.05, 3.0)))))
        self.opacity.on_update(ctx.guard(lambda _e: self.layer.update(
            opacity_threshold=float(np.clip(self.opacity.value, 0.0, 1.0)))))
        self.budget.on_update(ctx.guard(lambda _e: self.layer.update(budget=self._budget_value())))
        self.sh.on_update(ctx.guard(lambda _e: self.layer.update(sh=bool(self.sh.value))))
        self.ranking.on_update(ctx.guard(self._on_ranking))

    # ------------------------------------------------------------------ GUI helpers
    def _budget_value(self) -> int | None:
        v = max(1, int(self.budget.value))
        return None if v >= len(self.asset.scene) else v

    def _shown_text(self) -> str:
        from splat.progress import human_bytes

        n = len(self.asset.scene)
        st = self.layer.stats
        return f"showing **{st.shown:,}** of {n:,} Gaussians; {human_bytes(st.bytes_sent)} sent to this tab"

    def _sh_text(self) -> str:
        prep, st = self.asset.prepared, self.layer.stats
        if prep.sh_coeffs is None:
            return "SH: none (the scene stores degree 0 colour only)"
        if not self.layer.settings.sh:
            return f"SH: **off** (degree {prep.sh_degree} available; base colour shown)"
        return (f"SH: **active**, degree {prep.sh_degree}; {st.sh_refreshes} refreshes"
                + (f", last {st.last_sh_ms:.0f} ms" if st.sh_refreshes else ""))

    def _on_layer_change(self, _layer) -> None:
        if self._closed:
            return
        try:
            self.shown_md.content = self._shown_text()
            self.sh_md.content = self._sh_text()
        except Exception:
            pass

    def _on_ranking(self, _event) -> None:
        if self.ranking.value == "most significant":
            self.layer.update(ranking="significance")
            return

        def done(err: str | None) -> None:
            if self._closed:
                return
            if err is not None:
                self.ctx.notify("Contribution ranking unavailable", err, error=True)
                self.ranking.value = "most significant"
                return
            self.layer.update(ranking="contribution")
            self.ctx.notify("Contribution ranking", "computed from rendered views", seconds=3)

        self.ctx.notify("Contribution ranking", "rendering views to rank Gaussians…", seconds=3)
        self.asset.request_contribution(done)

    # ------------------------------------------------------------------ ClientView

    def render_view(self, ctx) -> np.ndarray:
        pos, wxyz, fov, w, h = ctx.camera_state()
        cam = viser_to_camera(pos, wxyz, fov, w, h)
        return self.asset.render(cam, self.layer.indices, self.layer.settings, ctx.background)

    def detach(self) -> None:
        self._closed = True
        self.layer.close(remove=False)
        try:
            self.asset._views.remove(self)
        except ValueError:
            pass


# ---------------------------------------------------------------------- loader
def _sibling_cameras(path: Path) -> list[Camera]:
    """Camera presets from a ``cameras.json`` / ``transforms.json`` beside the asset, if one is
    there and readable; one that leads out of the folder (a link), or is not a regular file, is
    not read (see :func:`splat.bounded.resolve_inside`)."""
    from splat.bounded import resolve_inside

    for name in ("cameras.json", "transforms.json"):
        if os.path.lexists(path.parent / name):
            try:
                return load_cameras(resolve_inside(path.parent, name))
            except FormatError:
                return []
    return []


def read_scene_file(path: Path) -> tuple[GaussianScene, str]:
    """Decode a scene file with the toolkit's readers: (scene, format name)."""
    try:
        from splat.io import detect_format, read_scene
    except ImportError as e:  # the readers are part of the foundation; a broken install lands here
        raise FormatError(f"scene readers unavailable in this build ({e})", path) from None
    fmt = detect_format(path)
    return read_scene(path), str(getattr(fmt, "name", fmt))


def load_scene_asset(
    path: Path,
    *,
    cameras: str | os.PathLike | Sequence[Camera] | None = None,
    up: str = "-y",
    budget: int | None = None,
    sh: bool = True,
    **_ignored,
) -> SceneAsset:
    """Decode a scene file (timed) and wrap it for the viewer."""
    path = Path(path)
    t0 = time.perf_counter()
    scene, fmt = read_scene_file(path)
    decode_s = time.perf_counter() - t0
    if isinstance(cameras, (str, os.PathLike)):
        cams = load_cameras(cameras)
    elif cameras is None:
        cams = _sibling_cameras(path)
    else:
        cams = list(cameras)
    info = AssetInfo(path=path, format=fmt, kind="scene", count=len(scene), file_size=asset_size(path),
                     decode_s=decode_s)
    return SceneAsset(scene, info, cameras=cams, up=up, budget=budget, sh=sh)


def scene_asset_from_memory(scene: GaussianScene, *, name: str = "in-memory scene", **kwargs) -> SceneAsset:
    """Wrap an in-memory scene (no file, no decode) for the viewer."""
    info = AssetInfo(path=None, format=name, kind="scene", count=len(scene), file_size=None, decode_s=0.0)
    return SceneAsset(scene, info, **kwargs)


def _is_scene(path: Path, head: bytes) -> bool:
    # Anything that is not claimed by a more specific type goes to the scene readers,
    # which raise a precise FormatError for what they cannot read.
    return True


SCENE_ASSET = AssetType(
    name="scene",
    extensions=(".ply", ".splat", ".spz", ".sog", ".lgs", ".compressed.ply"),
    load=load_scene_asset,
    matches=_is_scene,
    description="3D Gaussian scenes (INRIA PLY, .splat, SPZ, SOG, compressed PLY, .lgs)",
)
