"""One client's Gaussian splat node, kept up to date in place.

A :class:`SplatLayer` owns a viser ``GaussianSplatHandle`` in one client's scene. Changes
(display settings, new content such as the next video frame, camera motion for
view-dependent colour) only mark what is stale; a single worker thread per layer does
the pushing, so bursts of slider events or camera messages collapse into one update,
and a slow or vanished client never blocks a GUI callback.

Pushes are full buffer replacements (viser has no partial update): 32 bytes a Gaussian.
A colour-only refresh re-uses the packed geometry and rewrites the RGBA word.

A *tint* (:meth:`SplatLayer.set_tint`) replaces every Gaussian's colour (e.g. a feature
similarity heat map) and may keep only a subset on screen; while it is set,
view-dependent colour is not evaluated.
"""
from __future__ import annotations

import dataclasses
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from .splats import PreparedSplats, Ranking, ShSubset, camera_moved, pack_buffer, select_indices, set_rgba


@dataclass(frozen=True)
class DisplaySettings:
    """What a client asked to see.

    splat_scale multiplies every Gaussian's extent; opacity_threshold hides Gaussians
    below it; budget (None = all) keeps only the N most important under ``ranking``;
    sh turns view-dependent colour on (only meaningful for SH degree > 0).
    """

    splat_scale: float = 1.0
    opacity_threshold: float = 0.0
    budget: int | None = None
    ranking: Ranking = "significance"
    sh: bool = True


@dataclass
class LayerStats:
    """Counters for the GUI and the benchmark (bytes are buffer payload, before framing)."""

    pushes: int = 0
    sh_refreshes: int = 0
    bytes_sent: int = 0
    shown: int = 0
    last_push_ms: float = 0.0
    last_sh_ms: float = 0.0
    errors: int = 0
    last_error: str = ""


class SplatLayer:
    """A client's splat node, updated in place by a worker thread.

    ``scene_api`` is a viser ``SceneApi`` (``client.scene``); ``name`` the node name.
    ``min_interval`` (s) is the shortest time between two SH colour refreshes; it grows
    to twice the cost of the last refresh so that a big scene cannot saturate the link.
    ``on_change`` is called (from the worker thread) after every push.
    """

    def __init__(
        self,
        scene_api,
        name: str,
        prep: PreparedSplats,
        settings: DisplaySettings = DisplaySettings(),
        *,
        camera_position: np.ndarray | None = None,
        min_interval: float = 0.1,
        on_change: Callable[["SplatLayer"], None] | None = None,
    ) -> None:
        self._api = scene_api
        self.name = name
        self.min_interval = float(min_interval)
        self.on_change = on_change
        self.stats = LayerStats()
        self._lock = threading.Lock()
        self._wake = threading.Condition(self._lock)
        self._prep = prep
        self._settings = settings
        self._campos = None if camera_position is None else np.asarray(camera_position, np.float64)
        self._geometry_dirty = False
        self._colors_dirty = False
        self._tint: np.ndarray | None = None  # uint8 [N,3] over the prepared arrays
        self._keep: np.ndarray | None = None  # bool [N]: Gaussians the tint leaves on screen
        self._closed = False
        self._busy = False
        self._generation = 0  # bumped by every request; the worker reports the last one it served
        self._served = 0
        self._idx = np.zeros(0, np.int64)
        self._buf: np.ndarray | None = None
        self._sh: ShSubset | None = None
        self._sh_pos: np.ndarray | None = None
        self._last_sh_time = 0.0
        self._center, self._radius = prep.center, prep.radius
        # First push synchronously: the caller (a client connecting) wants the scene now.
        self._handle = None
        self._push_geometry(prep, settings, self._campos)
        self._thread = threading.Thread(target=self._run, name=f"splat-layer{name}", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ requests (any thread)
    @property
    def settings(self) -> DisplaySettings:
        return self._settings

    @property
    def prepared(self) -> PreparedSplats:
        return self._prep

    @property
    def indices(self) -> np.ndarray:
        """Indices (into the prepared arrays) of the Gaussians on screen now."""
        return self._idx

    @property
    def sh_active(self) -> bool:
        """True when view-dependent colour is being evaluated for this client."""
        return bool(self._settings.sh and self._prep.sh_coeffs is not None and self._tint is None)

    def set_tint(self, rgb: np.ndarray | None, keep: np.ndarray | None = None) -> None:
        """Show every Gaussian in colour ``rgb`` (uint8 [N,3], indexed like the prepared arrays;
        None = their own colours again), and only those where ``keep`` (bool [N]; None = all).

        A new tint with the same ``keep`` is a colour-only push (the packed geometry is reused).
        """
        n = len(self._prep)
        if rgb is not None and (rgb.shape != (n, 3) or rgb.dtype != np.uint8):
            raise ValueError(f"tint must be uint8 [{n}, 3], got {rgb.dtype} {rgb.shape}")
        if keep is not None and keep.shape != (n,):
            raise ValueError(f"keep must be bool [{n}], got {keep.shape}")
        with self._lock:
            same_keep = (keep is None and self._keep is None) or (
                keep is not None and self._keep is not None and np.array_equal(keep, self._keep))
            if rgb is None or self._tint is None or not same_keep:
                self._geometry_dirty = True
            else:
                self._colors_dirty = True
            self._tint = None if rgb is None else rgb.copy()
            self._keep = None if keep is None else keep.astype(bool, copy=True)
            self._generation += 1
            self._wake.notify_all()

    @property
    def closed(self) -> bool:
        return self._closed

    def update(self, **changes) -> None:
        """Change display settings (fields of :class:`DisplaySettings`); pushed asynchronously."""
        with self._lock:
            self._settings = dataclasses.replace(self._settings, **changes)
            self._geometry_dirty = True
            self._generation += 1
            self._wake.notify_all()

    def set_splats(self, prep: PreparedSplats) -> None:
        """Show new content (e.g. the next video frame) in the same node, in place."""
        with self._lock:
            self._prep = prep
            self._center, self._radius = prep.center, prep.radius
            self._geometry_dirty = True
            self._generation += 1
            self._wake.notify_all()

    def camera_changed(self, position: np.ndarray) -> None:
        """The client's camera moved to ``position`` [3]; colours follow if SH is on."""
        with self._lock:
            self._campos = np.asarray(position, np.float64).copy()
            if self.sh_active:
                self._generation += 1
                self._wake.notify_all()

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until every request made so far has been pushed (True) or ``timeout`` passes."""
        deadline = time.monotonic() + timeout
        with self._lock:
            target = self._generation
            while (self._served < target or self._busy) and not self._closed:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.wait(left)
        return True

    def close(self, remove: bool = True) -> None:
        """Stop the worker; remove the node unless the client is already gone."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
            self._wake.notify_all()
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=5.0)
        if remove and self._handle is not None:
            try:
                self._handle.remove()
            except Exception:  # the client may be gone already
                pass

    # ------------------------------------------------------------------ worker
    def _run(self) -> None:
        while True:
            with self._lock:
                while not self._closed and not self._pending():
                    self._wake.wait(timeout=0.5)
                if self._closed:
                    return
                # respect the refresh interval for view-dependent colour updates
                if not self._geometry_dirty and not self._colors_dirty:
                    wait = self._last_sh_time + self._interval() - time.monotonic()
                    if wait > 0:
                        self._wake.wait(wait)
                        continue
                prep, settings, campos = self._prep, self._settings, self._campos
                tint, keep = self._tint, self._keep
                geometry, colors = self._geometry_dirty, self._colors_dirty
                self._geometry_dirty = self._colors_dirty = False
                target = self._generation
                self._busy = True
            try:
                if geometry:
                    self._push_geometry(prep, settings, campos, tint, keep)
                elif colors and tint is not None:
                    self._push_tint(tint)
                elif self.sh_active and campos is not None:
                    self._push_colors(prep, campos)
            except Exception as e:  # a vanished client must not kill the worker silently
                self.stats.errors += 1
                self.stats.last_error = f"{type(e).__name__}: {e}"
            finally:
                with self._lock:
                    self._busy = False
                    self._served = max(self._served, target)
                    self._wake.notify_all()
            if self.on_change is not None:
                try:
                    self.on_change(self)
                except Exception:
                    pass

    def _pending(self) -> bool:
        if self._geometry_dirty or self._colors_dirty:
            return True
        if self._served < self._generation:
            if self.sh_active and self._campos is not None and camera_moved(
                self._sh_pos, self._campos, self._center, self._radius
            ):
                return True
            self._served = self._generation  # nothing to do for these requests
            self._wake.notify_all()
        return False

    def _interval(self) -> float:
        return max(self.min_interval, 2.0 * self.stats.last_sh_ms / 1000.0)

    def _send(self, buf: np.ndarray) -> None:
        if self._handle is None:
            # Created with an empty buffer, then filled through the same in-place path
            # every later update takes.
            z3 = np.zeros((0, 3), np.float32)
            self._handle = self._api.add_gaussian_splats(
                self.name, centers=z3, covariances=np.zeros((0, 3, 3), np.float32), rgbs=z3,
                opacities=np.zeros((0, 1), np.float32),
            )
        self._handle.buffer = buf
        self.stats.pushes += 1
        self.stats.bytes_sent += int(buf.nbytes)

    def _push_geometry(self, prep: PreparedSplats, settings: DisplaySettings, campos,
                       tint: np.ndarray | None = None, keep: np.ndarray | None = None) -> None:
        t0 = time.perf_counter()
        idx = select_indices(
            prep, opacity_threshold=settings.opacity_threshold, budget=settings.budget, ranking=settings.ranking
        )
        if tint is not None and len(tint) != len(prep):  # new content (a video frame): the tint is stale
            tint = keep = None
        if keep is not None:
            idx = idx[keep[idx]]
        sh = settings.sh and prep.sh_coeffs is not None and campos is not None and tint is None
        subset = ShSubset(prep, idx) if prep.sh_coeffs is not None else None
        rgb = tint[idx] if tint is not None else subset.colors_uint8(campos) if sh else prep.base_rgb[idx]
        buf = pack_buffer(prep, idx, rgb, splat_scale=settings.splat_scale)
        self._send(buf)
        self._idx, self._buf, self._sh = idx, buf, subset
        self._sh_pos = None if campos is None or not sh else np.asarray(campos, np.float64).copy()
        self.stats.shown = len(idx)
        self.stats.last_push_ms = 1000 * (time.perf_counter() - t0)

    def _push_tint(self, tint: np.ndarray) -> None:
        t0 = time.perf_counter()
        buf = self._buf.copy()
        set_rgba(buf, tint[self._idx])
        self._send(buf)
        self._buf = buf
        self.stats.last_push_ms = 1000 * (time.perf_counter() - t0)

    def _push_colors(self, prep: PreparedSplats, campos: np.ndarray) -> None:
        t0 = time.perf_counter()
        buf = self._buf.copy()
        set_rgba(buf, self._sh.colors_uint8(campos))
        self._send(buf)
        self._buf = buf
        self._sh_pos = np.asarray(campos, np.float64).copy()
        self.stats.sh_refreshes += 1
        self.stats.last_sh_ms = 1000 * (time.perf_counter() - t0)
        self._last_sh_time = time.monotonic()
