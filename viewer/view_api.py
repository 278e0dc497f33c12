"""The local JSON API of ``splat view`` (never part of a published site): the toolkit's own
renderer behind the web player.

* ``POST /api/render``: the page's camera and display settings -> a PNG rendered by
  :func:`render.rasterize`, saved in the render folder (never over an existing file) and
  sent back for the browser to download.
* ``POST /api/contribution``: the "largest contribution" order of a scene's Gaussians: the
  blend weight (sum of alpha x transmittance over every pixel) each one has in 12 views of a
  hemisphere, or in the camera presets, computed once per asset on first request. Sent as
  little-endian float32, one weight per Gaussian, in the file's order.

A request body is one JSON object of at most :data:`MAX_BODY` bytes. Every field is checked;
a bad one is a :class:`ApiError` (HTTP 400) with one line naming it.

The camera is the page's three.js camera: ``position`` [3], ``quaternion`` [4] (x, y, z, w:
camera-to-world rotation, camera axes x right, y up, z back), ``fov`` (vertical, degrees),
``width`` x ``height`` (pixels), all in the scene's own (PLY) frame.
"""
from __future__ import annotations

import json
import math
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Sequence

import numpy as np
import torch

from splat.camera import Camera
from splat.scene import GaussianScene

MAX_BODY = 64 << 10
"""Largest request body the API reads, bytes."""
MAX_SIDE = 4096
"""Largest width or height of a render, pixels."""
CONTRIBUTION_VIEWS = 12
CONTRIBUTION_WIDTH = 256
Keep = Literal["significance", "contribution"]


class ApiError(Exception):
    """A request the API refuses: ``status`` (HTTP) and a one-line ``message``."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ViewRequest:
    """What ``/api/render`` draws (see the module docstring for the camera fields).

    ``budget``: Gaussians kept, 0 = all; ``keep``: which ones, the most significant (opacity x
    geometric-mean scale squared, as the page ranks them) or the largest contribution;
    ``background``: RGB 0-255; ``frame``: a clip's frame (0 for a scene)."""

    asset: str
    position: tuple[float, float, float]
    quaternion: tuple[float, float, float, float]
    fov: float
    width: int
    height: int
    splat_scale: float = 1.0
    opacity_threshold: float = 0.0
    budget: int = 0
    keep: Keep = "significance"
    sh: bool = True
    background: tuple[int, int, int] = (0, 0, 0)
    frame: int = 0


# ---------------------------------------------------------------------- parsing
def parse_body(body: bytes) -> dict:
    """A request body as a JSON object, by the readers' bounded parser (``splat.header.parse_json``:
    no NUL, no 100,000-digit integers, no deep nesting); ApiError otherwise."""
    from splat.errors import FormatError
    from splat.header import parse_json

    try:
        return parse_json(body, what="the body")
    except FormatError as e:
        raise ApiError(f"not JSON the API takes: {e.args[0] if e.args else 'no object'}") from None


def _number(obj: dict, key: str, lo: float, hi: float, default: float | None = None) -> float:
    v = obj.get(key, default)
    if v is None:
        raise ApiError(f"'{key}' is missing")
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or not lo <= v <= hi:
        raise ApiError(f"'{key}' must be a number in [{lo:g}, {hi:g}]")
    return float(v)


def _integer(obj: dict, key: str, lo: int, hi: int, default: int | None = None) -> int:
    v = obj.get(key, default)
    if v is None:
        raise ApiError(f"'{key}' is missing")
    if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
        raise ApiError(f"'{key}' must be an integer in [{lo}, {hi}]")
    return int(v)


def _vector(obj: dict, key: str, n: int, bound: float) -> tuple[float, ...]:
    v = obj.get(key)
    if not isinstance(v, list) or len(v) != n or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x) and abs(x) <= bound for x in v):
        raise ApiError(f"'{key}' must be a list of {n} finite numbers")
    return tuple(float(x) for x in v)


def _colour(obj: dict, key: str) -> tuple[int, int, int]:
    v = obj.get(key, "#000000")
    if not isinstance(v, str) or not re.fullmatch(r"#[0-9a-fA-F]{6}", v):
        raise ApiError(f"'{key}' must be a colour '#rrggbb'")
    return int(v[1:3], 16), int(v[3:5], 16), int(v[5:7], 16)


def asset_name(obj: dict, names: Sequence[str]) -> str:
    """The request's ``asset`` (one of ``names``; the first when absent)."""
    name = obj.get("asset", names[0])
    if not isinstance(name, str) or name not in names:
        raise ApiError(f"'asset' must name one of the served assets ({', '.join(names)[:200]})", 404)
    return name


def parse_view_request(obj: dict, names: Sequence[str]) -> ViewRequest:
    """Check a ``/api/render`` body; ``names``: the assets this server serves."""
    q = _vector(obj, "quaternion", 4, 2.0)
    if not 0.5 < math.sqrt(sum(x * x for x in q)) < 1.5:
        raise ApiError("'quaternion' must be a unit quaternion (x, y, z, w)")
    keep = obj.get("keep", "significance")
    if keep not in ("significance", "contribution"):
        raise ApiError("'keep' must be 'significance' or 'contribution'")
    sh = obj.get("sh", True)
    if not isinstance(sh, bool):
        raise ApiError("'sh' must be true or false")
    return ViewRequest(
        asset=asset_name(obj, names),
        position=_vector(obj, "position", 3, 1e9),  # type: ignore[arg-type]
        quaternion=q,  # type: ignore[arg-type]
        fov=_number(obj, "fov", 1.0, 179.0),
        width=_integer(obj, "width", 1, MAX_SIDE),
        height=_integer(obj, "height", 1, MAX_SIDE),
        splat_scale=_number(obj, "splatScale", 0.01, 10.0, 1.0),
        opacity_threshold=_number(obj, "opacityThreshold", 0.0, 1.0, 0.0),
        budget=_integer(obj, "budget", 0, 2**31 - 1, 0),
        keep=keep,
        sh=sh,
        background=_colour(obj, "background"),
        frame=_integer(obj, "frame", 0, 2**31 - 1, 0),
    )


# ---------------------------------------------------------------------- cameras and selection
def camera_from_three(position, quaternion, fov_deg: float, width: int, height: int) -> Camera:
    """The page's three.js camera as a toolkit :class:`~splat.camera.Camera` (OpenCV axes).

    ``quaternion`` (x, y, z, w) rotates three.js camera axes (x right, y up, z back) into the
    world; OpenCV's (x right, y down, z forward) are the same with y and z negated. The
    projection is three.js's: square pixels, vertical field of view ``fov_deg``, centred."""
    x, y, z, w = (float(v) for v in quaternion)
    n = math.sqrt(x * x + y * y + z * z + w * w)
    x, y, z, w = x / n, y / n, z / n, w / n
    rot = torch.tensor([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ], dtype=torch.float64)
    c2w = torch.eye(4, dtype=torch.float64)
    c2w[:3, :3] = rot @ torch.diag(torch.tensor([1.0, -1.0, -1.0], dtype=torch.float64))
    c2w[:3, 3] = torch.tensor([float(v) for v in position], dtype=torch.float64)
    f = 0.5 * height / math.tan(math.radians(fov_deg) / 2)
    return Camera(f, f, width / 2.0, height / 2.0, int(width), int(height), torch.linalg.inv(c2w))


def significance(scene: GaussianScene) -> np.ndarray:
    """opacity x geometric-mean scale squared [N] float32: the page's "most significant" score."""
    with torch.no_grad():
        s = scene.opacities * torch.exp(scene.log_scales.float().mean(dim=1) * 2)
    return np.nan_to_num(s.float().cpu().numpy(), nan=0.0, posinf=0.0).astype(np.float32)


def shown_indices(scene: GaussianScene, req: ViewRequest, weights: np.ndarray | None = None) -> np.ndarray:
    """Indices of the Gaussians the page shows with ``req``'s settings, ascending.

    As the page selects them: opacity >= the threshold, and with a budget N < count, either a
    significance at least the N-th largest, or (``keep`` contribution, ``weights`` given) one
    of the N first in descending weight order (ties in file order)."""
    n = len(scene)
    keep = (scene.opacities.detach().cpu().numpy() >= req.opacity_threshold) if req.opacity_threshold > 0 \
        else np.ones(n, bool)
    if 0 < req.budget < n:
        if req.keep == "contribution":
            if weights is None:
                raise ValueError("contribution weights are needed for keep='contribution'")
            top = np.zeros(n, bool)
            top[np.argsort(-weights, kind="stable")[: req.budget]] = True
            keep &= top
        else:
            sig = significance(scene)
            keep &= sig >= np.sort(sig)[n - req.budget]
    return np.flatnonzero(keep)


def render_view(scene: GaussianScene, req: ViewRequest, weights: np.ndarray | None = None, *,
                backend: str = "auto") -> np.ndarray:
    """The toolkit's render [H, W, 3] uint8 of what the page shows for ``req``."""
    from render import rasterize

    sub = scene[torch.from_numpy(shown_indices(scene, req, weights))]
    if req.splat_scale != 1.0:
        sub = sub.replace(log_scales=sub.log_scales + math.log(req.splat_scale))
    cam = camera_from_three(req.position, req.quaternion, req.fov, req.width, req.height)
    bg = torch.tensor([c / 255.0 for c in req.background], dtype=torch.float32)
    with torch.no_grad():
        out = rasterize(sub, cam, sh_degree=sub.sh_degree if req.sh else 0, background=bg, backend=backend)
    return (out.colors[0].clamp(0, 1).cpu().numpy() * 255.0 + 0.5).astype(np.uint8)


def contribution_scores(scene: GaussianScene, cameras: Sequence[Camera], *, backend: str = "auto",
                        chunk: int = 4) -> np.ndarray:
    """Blend weight (sum of alpha x transmittance over every pixel) per Gaussian [N] float32,
    summed over ``cameras`` (all one size) with the toolkit's renderer."""
    from render import rasterize

    cams = list(cameras)
    total = np.zeros(len(scene), dtype=np.float64)
    with torch.no_grad():
        for i in range(0, len(cams), chunk):
            out = rasterize(scene, cams[i: i + chunk], sh_degree=0, backend=backend, return_stats="blend_weight")
            total += out.stats.blend_weight.detach().double().cpu().numpy()
    return total.astype(np.float32)


def contribution_cameras(scene: GaussianScene, presets: Sequence[Camera] = (), *, up="-y",
                         width: int = CONTRIBUTION_WIDTH) -> list[Camera]:
    """The views the contribution order sums over: up to 16 of the presets, resized to
    ``width``, else :data:`CONTRIBUTION_VIEWS` views of a hemisphere around the scene."""
    from splat.camera import hemisphere_cameras

    if presets:
        cams = list(presets)[:: max(1, len(presets) // 16)][:16]
        return [c.resized(width, max(1, round(width * c.height / c.width))) for c in cams]
    return hemisphere_cameras(scene, CONTRIBUTION_VIEWS, up=up, width=width, height=width * 3 // 4)


# ---------------------------------------------------------------------- files
def png_bytes(image: np.ndarray) -> bytes:
    """[H, W, 3] uint8 as PNG bytes."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.ascontiguousarray(image)).save(buf, format="PNG")
    return buf.getvalue()


def save_new(folder: Path, stem: str, data: bytes, suffix: str = ".png") -> Path:
    """Write ``data`` as ``folder/stem_NNN.suffix`` with the smallest free NNN; never replaces
    a file, even one another process creates meanwhile (written aside, then hard-linked into
    place, which fails on an existing name). The file's mode honours the umask."""
    import secrets

    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{stem}.{os.getpid()}-{secrets.token_hex(4)}.part"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)  # the kernel applies the umask
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for i in range(1, 100_000):
            p = folder / f"{stem}_{i:03d}{suffix}"
            if os.path.lexists(p):
                continue
            try:
                os.link(tmp, p)
                return p
            except FileExistsError:
                continue
    finally:
        tmp.unlink(missing_ok=True)
    raise ApiError(f"no free file name for {stem} in {folder}", 500)


# ---------------------------------------------------------------------- the API
class ViewApi:
    """The API's state for one server: decoded scenes (on first use) and contribution weights.

    ``assets``: what the server serves (:class:`viewer.site.Asset`); ``render_dir``: where
    renders are saved; ``up``: world up for the hemisphere views."""

    def __init__(self, assets: Sequence, render_dir: str | os.PathLike = "splat_view_renders", *,
                 up: str = "-y", backend: str = "auto") -> None:
        self.assets = {a.name: a for a in assets}
        self.render_dir = Path(render_dir)
        self.up = up
        self.backend = backend
        self._lock = threading.Lock()
        self._scenes: dict[tuple[str, int], GaussianScene] = {}
        self._weights: dict[str, np.ndarray] = {}
        self._asset_locks: dict[str, threading.Lock] = {name: threading.Lock() for name in self.assets}

    @property
    def names(self) -> list[str]:
        return list(self.assets)

    def scene(self, name: str, frame: int = 0) -> GaussianScene:
        """Asset ``name`` decoded by the toolkit (a clip: its frame ``frame``); kept for reuse
        (a clip keeps its last frame only)."""
        from splat.errors import FormatError

        asset = self.assets[name]
        key = (name, frame)
        with self._asset_locks[name]:
            if key in self._scenes:
                return self._scenes[key]
            try:
                if asset.path.name.lower().endswith(".gsv"):
                    from compress.video import VideoReader

                    with VideoReader(asset.path) as reader:
                        if frame >= len(reader):
                            raise ApiError(f"'frame' must be below {len(reader)} (the clip's frames)")
                        scene = reader.frame(frame)
                    for k in [k for k in self._scenes if k[0] == name]:
                        del self._scenes[k]
                else:
                    if frame != 0:
                        raise ApiError("'frame' must be 0 for a scene")
                    from splat.io import read_scene

                    scene = read_scene(asset.path)
            except FormatError as e:
                raise ApiError(f"{name}: {e}", 422) from None
            scene = scene.detach().to(device="cpu", dtype=torch.float32)
            self._scenes[key] = scene
            return scene

    def presets(self, name: str) -> list[Camera]:
        """The asset's camera presets (those the page lists), or none."""
        from splat.camera import inria_cameras_from_json

        data = self.assets[name].cameras_json
        return [] if data is None else inria_cameras_from_json(json.loads(data), f"{name}.cameras.json")

    def weights(self, name: str) -> np.ndarray:
        """The contribution weights [N] float32 of scene ``name`` (computed once)."""
        if self.assets[name].path.name.lower().endswith(".gsv"):
            raise ApiError("the contribution order is for scenes; a clip's Gaussians change every frame")
        scene = self.scene(name)
        with self._asset_locks[name]:
            if name not in self._weights:
                cams = contribution_cameras(scene, self.presets(name), up=self.up)
                self._weights[name] = contribution_scores(scene, cams, backend=self.backend)
            return self._weights[name]

    # ------------------------------------------------------------------ endpoints
    def render(self, obj: dict) -> tuple[bytes, str]:
        """``/api/render``: (PNG bytes, the file name it was saved under)."""
        req = parse_view_request(obj, self.names)
        scene = self.scene(req.asset, req.frame)
        weights = self.weights(req.asset) if req.keep == "contribution" and 0 < req.budget < len(scene) else None
        png = png_bytes(render_view(scene, req, weights, backend=self.backend))
        stem = re.sub(r"[^A-Za-z0-9_-]", "_", Path(req.asset).stem)[:64] or "view"
        path = save_new(self.render_dir, stem, png)
        return png, path.name

    def contribution(self, obj: dict) -> bytes:
        """``/api/contribution``: the weights as little-endian float32 bytes."""
        name = asset_name(obj, self.names)
        return self.weights(name).astype("<f4").tobytes()
