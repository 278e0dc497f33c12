"""Feature memories (``.m3``) in the viewer: the scene, plus click-to-query by feature similarity.

The scene (embedded in the ``.m3`` or referenced by path and SHA-256) is shown with the
usual splat controls (:class:`~viewer.scene_view.SceneClientView`). A click on the view
picks the feature under the cursor: the query map is rendered for the tab's camera at
that pixel alone (a 1×1 window of the same camera, so a click costs one pixel's render,
not a frame's) and decoded by the memory attention
(:func:`compress.memory.pick_pixel_feature`). Every Gaussian's cosine similarity to it
comes from :func:`compress.memory.gaussian_similarity` (one vectorised pass over the
Gaussians' decoded features, which are computed once per model and cached), and
:func:`compress.memory.similarity_colors` turns it into a heat map blended over the
Gaussians' own colours. Only the colours change on the tab: the packed geometry is reused
(:meth:`viewer.splat_layer.SplatLayer.set_tint`).

The threshold dims what falls below it; "show only matches" hides it. A text box queries
by text through a user-supplied encoder (``--encoder package.module:function``, the
plug-in of ``splat memory query --text``). Matches export as a scene file, the similarity
of the tab's view as a PNG.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from splat.camera import Camera, load_cameras
from splat.errors import FormatError, UsageError
from splat.threads import threads

from .assets import AssetInfo, AssetType, asset_size
from .scene_view import SceneAsset, SceneClientView, viser_to_camera
from .server import next_free_path
from .splats import to_uint8

HEAT_ALPHA = 0.7
"""Weight of the similarity heat map over a Gaussian's own colour."""
DEFAULT_THRESHOLD = 0.8
EXPORT_FORMATS = (".ply", ".spz", ".splat", ".sog", ".lgs")


def _memory_api():
    try:
        import compress.memory as memory
    except ImportError as e:
        raise FormatError(f"the feature-memory codec (compress.memory) is not available in this build ({e})") from None
    return memory


def pixel_window(camera: Camera, x: int, y: int) -> Camera:
    """The 1×1 camera that sees exactly pixel (x, y) of ``camera`` (same pose and focal length)."""
    if not (0 <= x < camera.width and 0 <= y < camera.height):
        raise UsageError(f"pixel ({x}, {y}) is outside the {camera.width}x{camera.height} image")
    return Camera(camera.fx, camera.fy, camera.cx - x, camera.cy - y, 1, 1, camera.world_to_camera, camera.name)


@dataclass
class QueryResult:
    """One query: where it came from, the feature vector [D] and each Gaussian's similarity [N].

    Times in milliseconds: ``pick`` (render + decode the clicked pixel, or encode the text),
    ``similarity`` (every Gaussian), ``colors`` (heat map and blend).
    """

    source: str
    model: str
    vector: torch.Tensor
    scores: torch.Tensor
    pixel: tuple[int, int] | None = None
    camera: Camera | None = None
    text: str | None = None
    ms: dict[str, float] = field(default_factory=dict)


class MemoryAsset(SceneAsset):
    """A decoded feature memory: its scene (shared with :class:`SceneAsset`) and the query state
    every tab shares (each model's decoded per-Gaussian features: the first model's on a
    background thread from the start, the others on first use)."""

    def __init__(self, memory, info: AssetInfo, *, encoder=None, encoder_spec: str | None = None, **scene_kw) -> None:
        super().__init__(memory.scene.replace(extras={}), info, **scene_kw)
        self.memory = memory
        self.encoder = encoder
        self.encoder_spec = encoder_spec
        self._features: dict[str, torch.Tensor] = {}
        self._features_lock = threading.Lock()
        # decode the first model's per-Gaussian features while the page loads, not on the first click
        threading.Thread(target=self._warm_up, name="m3-features", daemon=True).start()

    def _warm_up(self) -> None:
        try:
            self.gaussian_features(self.model_names[0])
        except Exception:  # noqa: BLE001 - the first query computes it again and reports the error
            pass

    @property
    def model_names(self) -> list[str]:
        return [m.name for m in self.memory.models]

    def attach(self, ctx) -> "MemoryClientView":
        view = MemoryClientView(self, ctx)
        self._views.append(view)
        return view

    # ------------------------------------------------------------------ queries (any thread)
    def gaussian_features(self, model: str) -> torch.Tensor:
        """Every Gaussian's decoded feature [N,D] for ``model`` (cached, unit length)."""
        with self._features_lock:
            f = self._features.get(model)
            if f is None:
                api = _memory_api()
                with threads(1):
                    f = api.gaussian_features(self.memory, model)
                    f = f / f.norm(dim=-1, keepdim=True).clamp_min(1e-12)
                self._features[model] = f
            return f

    def pick(self, camera: Camera, x: int, y: int, model: str) -> torch.Tensor:
        """The feature [D] at pixel (x, y) of ``camera``: the query map rendered for that pixel only."""
        api = _memory_api()
        with threads(1):
            return api.pick_pixel_feature(self.memory, pixel_window(camera, x, y), 0, 0, model,
                                          backend=self.render_backend)

    def scores(self, vector: torch.Tensor, model: str) -> torch.Tensor:
        """Cosine similarity [N] of every Gaussian to ``vector`` [D] (one vectorised pass)."""
        api = _memory_api()
        feats = self.gaussian_features(model)
        with threads(1):
            return api.gaussian_similarity(self.memory, vector, model, features=feats, unit_features=True)

    def tint(self, scores: torch.Tensor, threshold: float) -> np.ndarray:
        """uint8 [N,3]: the similarity heat map blended over each Gaussian's own colour; below
        ``threshold`` the heat map is dark grey, which dims the Gaussian."""
        api = _memory_api()
        with threads(1):
            heat = api.similarity_colors(scores, threshold).numpy()
        return to_uint8((1.0 - HEAT_ALPHA) * self.prepared.base_rgb + HEAT_ALPHA * heat)

    def similarity_image(self, camera: Camera, vector: torch.Tensor, model: str, threshold: float) -> np.ndarray:
        """The similarity of every pixel of ``camera`` to ``vector``, as heat-map RGB uint8 [H,W,3]."""
        api = _memory_api()
        with torch.no_grad():
            sim = api.similarity(self.memory, camera, vector, model, backend=self.render_backend)
            return to_uint8(api.similarity_colors(sim, threshold).numpy())

    def render_tinted(self, camera: Camera, indices: np.ndarray, settings, tint: np.ndarray,
                      background: Sequence[int] = (0, 0, 0)) -> np.ndarray:
        """The toolkit's render [H,W,3] uint8 of Gaussians ``indices`` drawn in ``tint`` (uint8 [N,3],
        scene order) instead of their own colours: what a tab shows while a query is active."""
        from splat.scene import rgb_to_sh_dc

        from .scene_view import render_shown

        rgb = torch.from_numpy(np.asarray(tint, np.float32) / 255.0)
        flat = self.scene.with_sh_degree(0).replace(sh_dc=rgb_to_sh_dc(rgb))
        return render_shown(flat, camera, indices, settings, background, backend=self.render_backend)

    def export_matches(self, keep: np.ndarray, path: Path) -> Path:
        """Write the Gaussians where ``keep`` (bool [N]) to ``path`` (format from the extension)."""
        from splat.io import write_scene

        if not keep.any():
            raise UsageError("no Gaussian is above the threshold: nothing to export")
        write_scene(self.scene[torch.from_numpy(np.flatnonzero(keep))], path)
        return path


class MemoryClientView(SceneClientView):
    """One tab: the scene's splats and panel, plus the "Feature memory" panel."""

    def __init__(self, asset: MemoryAsset, ctx) -> None:
        super().__init__(asset, ctx)
        self.asset: MemoryAsset = asset
        self.result: QueryResult | None = None
        self.queries = 0
        self._query_lock = threading.Lock()
        gui = ctx.gui
        names = asset.model_names
        with gui.add_folder("Feature memory", expand_by_default=True):
            self.query_md = gui.add_markdown("**Click the scene** to find what is similar to the point under the cursor.")
            self.model = gui.add_dropdown("Model", names, initial_value=names[0], disabled=len(names) == 1,
                                          hint="whose features the query uses")
            self.threshold = gui.add_slider("Similarity threshold", min=-1.0, max=1.0, step=0.01,
                                            initial_value=DEFAULT_THRESHOLD,
                                            hint="cosine similarity; Gaussians below it are dimmed (or hidden)")
            self.only = gui.add_checkbox("Show only matches", initial_value=False)
            if asset.encoder is not None:
                self.text = gui.add_text("Text query", initial_value="", hint=f"encoded by {asset.encoder_spec}")
                self.text_btn = gui.add_button("Search text")
                self.text_btn.on_click(ctx.guard(lambda _e: self.query_text(self.text.value)))
            else:
                self.text = self.text_btn = None
                gui.add_markdown("Text queries are off: start the viewer with `--encoder package.module:function` "
                                 "(a callable text → vector [D] in the model's feature space).")
            self.clear_btn = gui.add_button("Clear query")
            self.export_fmt = gui.add_dropdown("Export format", list(EXPORT_FORMATS), initial_value=".ply")
            self.export_btn = gui.add_button("Export matches (scene file)")
            self.png_btn = gui.add_button("Save similarity render (PNG)")
        self.model.on_update(ctx.guard(lambda _e: self.requery()))
        self.threshold.on_update(ctx.guard(lambda _e: self.apply()))
        self.only.on_update(ctx.guard(lambda _e: self.apply()))
        self.clear_btn.on_click(ctx.guard(lambda _e: self.clear()))
        self.export_btn.on_click(ctx.guard(lambda _e: self._send_download(self.export())))
        self.png_btn.on_click(ctx.guard(lambda _e: self._send_download(self.save_similarity_png())))
        ctx.scene.on_click()(ctx.guard(self._on_click))

    # ------------------------------------------------------------------ the tab's camera
    def camera(self) -> Camera:
        """The tab's current camera as a toolkit Camera (its canvas size in pixels)."""
        pos, wxyz, fov, w, h = self.ctx.camera_state()
        return viser_to_camera(pos, wxyz, fov, max(1, w), max(1, h))

    def _on_click(self, event) -> None:
        cam = self.camera()
        sx, sy = event.screen_pos
        x = min(max(int(sx * cam.width), 0), cam.width - 1)
        y = min(max(int(sy * cam.height), 0), cam.height - 1)
        self.query_pixel(x, y, cam)

    # ------------------------------------------------------------------ queries
    def query_pixel(self, x: int, y: int, camera: Camera | None = None) -> QueryResult:
        """Query by the feature at pixel (x, y) of ``camera`` (default: the tab's), recolour the tab."""
        cam = self.camera() if camera is None else camera
        model = str(self.model.value)
        t0 = time.perf_counter()
        vec = self.asset.pick(cam, x, y, model)
        return self._run(QueryResult(f"pixel ({x}, {y}) of {cam.width}×{cam.height}", model, vec, torch.empty(0),
                                     pixel=(x, y), camera=cam), t0)

    def query_text(self, text: str) -> QueryResult:
        """Query by a text prompt through the asset's encoder; recolour the tab."""
        if self.asset.encoder is None:
            raise UsageError("text queries need the viewer started with --encoder package.module:function")
        text = str(text).strip()
        if not text:
            raise UsageError("type a text to search for")
        model = str(self.model.value)
        t0 = time.perf_counter()
        vec = torch.as_tensor(self.asset.encoder(text), dtype=torch.float32).reshape(-1)
        return self._run(QueryResult(f"text {text!r}", model, vec, torch.empty(0), text=text), t0)

    def requery(self) -> QueryResult | None:
        """Run the last query again (e.g. for another model)."""
        r = self.result
        if r is None:
            return None
        if r.text is not None:
            return self.query_text(r.text)
        return self.query_pixel(*r.pixel, r.camera)

    def _run(self, r: QueryResult, t0: float) -> QueryResult:
        with self._query_lock:
            t1 = time.perf_counter()
            r.scores = self.asset.scores(r.vector, r.model)
            t2 = time.perf_counter()
            r.ms = {"pick": 1000 * (t1 - t0), "similarity": 1000 * (t2 - t1)}
            self.result = r
            self.queries += 1
            self.apply()
        return r

    def render_view(self, ctx) -> np.ndarray:
        """What the tab shows: the scene in its own colours, or the similarity heat map while a
        query is active (the same tint and "show only matches" subset the browser draws)."""
        r = self.result
        if r is None:
            return super().render_view(ctx)
        pos, wxyz, fov, w, h = ctx.camera_state()
        cam = viser_to_camera(pos, wxyz, fov, w, h)
        tint = self.asset.tint(r.scores, self.threshold_value())
        shown = self.layer.indices
        if self.only.value:
            shown = shown[self.matches()[shown]]
        return self.asset.render_tinted(cam, shown, self.layer.settings, tint, ctx.background)

    def matches(self) -> np.ndarray:
        """bool [N]: the Gaussians at or above the threshold for the current query."""
        if self.result is None:
            raise UsageError("no query yet: click the scene first")
        return (self.result.scores >= self.threshold_value()).numpy()

    def threshold_value(self) -> float:
        return float(np.clip(self.threshold.value, -1.0, 1.0))

    def apply(self) -> None:
        """Recolour (and, with "show only matches", filter) the tab for the current query."""
        r = self.result
        if r is None:
            return
        t0 = time.perf_counter()
        th = self.threshold_value()
        tint = self.asset.tint(r.scores, th)
        keep = self.matches() if self.only.value else None
        self.layer.set_tint(tint, keep)
        r.ms["colors"] = 1000 * (time.perf_counter() - t0)
        n_match = int((r.scores >= th).sum())
        self.query_md.content = (
            f"**{r.source}**, model `{r.model}`: {n_match:,} of {len(r.scores):,} Gaussians ≥ {th:.2f} "
            f"(similarity {float(r.scores.min()):.2f}…{float(r.scores.max()):.2f}); "
            f"pick {r.ms['pick']:.0f} ms, similarity {r.ms['similarity']:.0f} ms, colours {r.ms['colors']:.0f} ms")

    def clear(self) -> None:
        self.result = None
        self.layer.set_tint(None)
        self.query_md.content = "**Click the scene** to find what is similar to the point under the cursor."

    # ------------------------------------------------------------------ exports
    def _stem(self) -> str:
        p = self.asset.info.path
        return p.stem if p is not None else "memory"

    def export(self, fmt: str | None = None) -> Path:
        """Write the matching Gaussians to ``render_dir/<stem>_matches_NNN<fmt>``; returns the path."""
        fmt = str(self.export_fmt.value if fmt is None else fmt)
        if fmt not in EXPORT_FORMATS:
            raise UsageError(f"export format must be one of {', '.join(EXPORT_FORMATS)}, got {fmt!r}")
        path = next_free_path(self.ctx.server.render_dir, f"{self._stem()}_matches", fmt)
        self.asset.export_matches(self.matches(), path)
        self.ctx.server.log(f"exported {int(self.matches().sum()):,} matching Gaussians to {path}")
        self.ctx.notify("Exported", f"{int(self.matches().sum()):,} Gaussians → {path}")
        return path

    def save_similarity_png(self) -> Path:
        """The similarity of every pixel of the tab's view to the query, as a heat-map PNG."""
        r = self.result
        if r is None:
            raise UsageError("no query yet: click the scene first")
        img = self.asset.similarity_image(self.camera(), r.vector, r.model, self.threshold_value())
        path = self.ctx.server.save_render(img, f"{self._stem()}_similarity")
        self.ctx.notify("Saved", f"{path} ({img.shape[1]}×{img.shape[0]})")
        return path

    def _send_download(self, path: Path) -> None:
        if path.is_file():
            try:
                self.ctx.client.send_file_download(path.name, path.read_bytes())
            except Exception:
                pass


# ---------------------------------------------------------------------- loader
def load_memory_asset(
    path: Path,
    *,
    cameras: str | Sequence[Camera] | None = None,
    up: str = "-y",
    budget: int | None = None,
    sh: bool = True,
    encoder: str | None = None,
    allow_outside_ref: bool = False,
    **_ignored,
) -> MemoryAsset:
    """Read a ``.m3`` file (its scene embedded or referenced) for the viewer; ``encoder`` names
    a text encoder ``package.module:function``; ``allow_outside_ref`` follows a scene reference
    leading outside the .m3's folder."""
    from compress.memory.m3file import cameras_from_meta

    api = _memory_api()
    path = Path(path)
    enc = api.load_text_encoder(encoder) if encoder else None
    t0 = time.perf_counter()
    memory = api.read_m3(path, allow_outside_ref=allow_outside_ref)
    decode_s = time.perf_counter() - t0
    if cameras is None:
        cams = cameras_from_meta(memory.meta)
    elif isinstance(cameras, (str, Path)):
        cams = load_cameras(cameras)
    else:
        cams = list(cameras)
    extra = {
        "scene": f"referenced: {memory.scene_ref}" if memory.scene_ref else "embedded",
        "models": ", ".join(f"{m.name} (D={m.dim}, {m.query_dim} query channels)" for m in memory.models),
    }
    info = AssetInfo(path=path, format=".m3 feature memory", kind="scene", count=len(memory.scene),
                     file_size=asset_size(path), decode_s=decode_s, extra=extra)
    return MemoryAsset(memory, info, encoder=enc, encoder_spec=encoder, cameras=cams, up=up, budget=budget, sh=sh)


def memory_asset_from_memory(memory, *, name: str = "in-memory feature memory", encoder=None, **kwargs) -> MemoryAsset:
    """Wrap an in-memory :class:`compress.memory.Memory` (no file) for the viewer."""
    info = AssetInfo(path=None, format=name, kind="scene", count=len(memory.scene), file_size=None, decode_s=0.0)
    return MemoryAsset(memory, info, encoder=encoder, encoder_spec=getattr(encoder, "__name__", None), **kwargs)


def _is_m3(path: Path, head: bytes) -> bool:
    return head[:4] == b"GSM3" or path.name.lower().endswith(".m3")


MEMORY_ASSET = AssetType(
    name="feature memory",
    extensions=(".m3",),
    load=load_memory_asset,
    matches=_is_m3,
    description="feature memories (.m3): the scene, coloured by feature similarity to a click or a text",
)
