"""Pinhole cameras: the dataclass, loaders for common camera files, and view generators.

Convention (OpenCV / COLMAP, the same as gsplat and INRIA 3DGS): camera space has
+x right, +y down, +z forward (into the scene). ``world_to_camera`` maps homogeneous
world points to camera space. Pixel (i, j) (row, column) has its centre at
(u, v) = (j + 0.5, i + 0.5), and a camera-space point projects to
u = fx * x / z + cx, v = fy * y / z + cy.
"""
from __future__ import annotations

import json
import math
import os
import warnings
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Sequence

import torch
from torch import Tensor

from .errors import FormatError

_AXES = {"x": 0, "y": 1, "z": 2}
_PINHOLE_MODELS = {"PINHOLE", "SIMPLE_PINHOLE", "OPENCV", "SIMPLE_RADIAL", "RADIAL"}
_DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


class CameraWarning(UserWarning):
    """A camera file holds something these pinhole cameras do not model (lens distortion, fisheye...)."""


@dataclass(frozen=True)
class Camera:
    """One pinhole camera. Focal lengths and principal point are in pixels."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int
    world_to_camera: Tensor  # [4,4] float64
    name: str = ""

    def __post_init__(self) -> None:
        w2c = torch.as_tensor(self.world_to_camera, dtype=torch.float64).reshape(4, 4)
        object.__setattr__(self, "world_to_camera", w2c)
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"camera size must be positive, got {self.width}x{self.height}")
        if not (self.fx > 0 and self.fy > 0):
            raise ValueError(f"focal lengths must be positive, got fx={self.fx}, fy={self.fy}")

    # ------------------------------------------------------------------ derived values
    @property
    def K(self) -> Tensor:
        """Intrinsic matrix [3,3] (float64)."""
        return torch.tensor(
            [[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]], dtype=torch.float64
        )

    @property
    def camera_to_world(self) -> Tensor:
        """Inverse of ``world_to_camera`` [4,4] (float64)."""
        return torch.linalg.inv(self.world_to_camera)

    @property
    def position(self) -> Tensor:
        """Camera centre in world space [3] (float64)."""
        return self.camera_to_world[:3, 3]

    @property
    def fov_x(self) -> float:
        """Horizontal field of view in radians."""
        return 2.0 * math.atan(0.5 * self.width / self.fx)

    @property
    def fov_y(self) -> float:
        return 2.0 * math.atan(0.5 * self.height / self.fy)

    def resized(self, width: int, height: int) -> "Camera":
        """The same view at another resolution (intrinsics scaled accordingly)."""
        sx, sy = width / self.width, height / self.height
        return replace(self, fx=self.fx * sx, fy=self.fy * sy, cx=self.cx * sx, cy=self.cy * sy, width=width, height=height)

    def scaled(self, factor: float) -> "Camera":
        """Resolution multiplied by ``factor`` (at least 1 pixel)."""
        return self.resized(max(1, round(self.width * factor)), max(1, round(self.height * factor)))

    # ------------------------------------------------------------------ constructors
    @staticmethod
    def look_at(
        eye: Sequence[float] | Tensor,
        target: Sequence[float] | Tensor,
        up: Sequence[float] | Tensor = (0.0, -1.0, 0.0),
        *,
        fov_y_deg: float = 50.0,
        width: int = 640,
        height: int = 480,
        name: str = "",
    ) -> "Camera":
        """A camera at ``eye`` looking at ``target``; ``up`` is the world up direction."""
        eye_t = torch.as_tensor(eye, dtype=torch.float64)
        tgt = torch.as_tensor(target, dtype=torch.float64)
        up_t = torch.as_tensor(up, dtype=torch.float64)
        fwd = tgt - eye_t
        if float(fwd.norm()) < 1e-12:
            raise ValueError("look_at: eye and target coincide")
        fwd = fwd / fwd.norm()
        right = torch.linalg.cross(fwd, up_t)
        if float(right.norm()) < 1e-9:  # looking along up: pick any perpendicular
            alt = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
            if abs(float(fwd @ alt)) > 0.9:
                alt = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
            right = torch.linalg.cross(fwd, alt)
        right = right / right.norm()
        down = torch.linalg.cross(fwd, right)  # camera +y points down in the image
        c2w = torch.eye(4, dtype=torch.float64)
        c2w[:3, 0], c2w[:3, 1], c2w[:3, 2], c2w[:3, 3] = right, down, fwd, eye_t
        f = 0.5 * height / math.tan(math.radians(fov_y_deg) / 2)
        return Camera(f, f, width / 2.0, height / 2.0, width, height, torch.linalg.inv(c2w), name)


def stack_cameras(cameras: Sequence[Camera], dtype: torch.dtype = torch.float32, device=None) -> tuple[Tensor, Tensor]:
    """(viewmats [C,4,4], Ks [C,3,3]) for a list of cameras."""
    viewmats = torch.stack([c.world_to_camera for c in cameras]).to(dtype=dtype, device=device)
    Ks = torch.stack([c.K for c in cameras]).to(dtype=dtype, device=device)
    return viewmats, Ks


# ---------------------------------------------------------------------- generators
def parse_up(up: str | Sequence[float]) -> Tensor:
    """'+y', '-z', 'y' or a 3-vector -> unit world up vector (float64)."""
    if isinstance(up, str):
        s = up.strip().lower()
        sign = -1.0 if s.startswith("-") else 1.0
        axis = s.lstrip("+-")
        if axis not in _AXES:
            raise ValueError(f"up axis must be one of x, y, z with an optional sign, got {up!r}")
        v = torch.zeros(3, dtype=torch.float64)
        v[_AXES[axis]] = sign
        return v
    v = torch.as_tensor(up, dtype=torch.float64).reshape(3)
    return v / v.norm()


def _view_sphere(scene, n: int, width: int, height: int, fov_y_deg: float, up, distance_factor: float,
                 quantile: float) -> tuple[Tensor, float, Tensor, Tensor, Tensor]:
    """Centre and camera distance that frame the scene's robust bounding sphere, the unit up
    vector, and an orthonormal basis (a, b) of the plane perpendicular to it."""
    if n < 1:
        raise ValueError("n must be >= 1")
    lo, hi = scene.bounds(quantile=quantile)
    center = ((lo + hi) / 2).double()
    radius = max(float((hi - lo).double().norm()) / 2, 1e-6)
    upv = parse_up(up)
    fov = math.radians(fov_y_deg)
    fov_x = 2 * math.atan(math.tan(fov / 2) * width / height)
    dist = distance_factor * radius / math.sin(min(fov, fov_x) / 2)
    helper = torch.tensor([1.0, 0.0, 0.0], dtype=torch.float64)
    if abs(float(helper @ upv)) > 0.9:
        helper = torch.tensor([0.0, 0.0, 1.0], dtype=torch.float64)
    a = torch.linalg.cross(upv, helper)
    a = a / a.norm()
    b = torch.linalg.cross(upv, a)
    return center, dist, upv, a, b


def orbit_cameras(
    scene,
    n: int = 8,
    *,
    width: int = 640,
    height: int = 480,
    fov_y_deg: float = 50.0,
    elevation_deg: float = 20.0,
    up: str | Sequence[float] = "-y",
    distance_factor: float = 1.15,
    quantile: float = 0.02,
    phase_deg: float = 0.0,
) -> list[Camera]:
    """``n`` views on a circle around the scene's robust centre, looking at it.

    The distance is chosen so that the bounding sphere of the robust bounds (ignoring
    ``quantile`` outliers per side) fills the narrower field of view, times
    ``distance_factor``. ``up`` is the world up axis ('-y' for most COLMAP-derived scenes).
    """
    center, dist, upv, a, b = _view_sphere(scene, n, width, height, fov_y_deg, up, distance_factor, quantile)
    el = math.radians(elevation_deg)
    cams = []
    for i in range(n):
        th = math.radians(phase_deg) + 2 * math.pi * i / n
        d = math.cos(el) * (math.cos(th) * a + math.sin(th) * b) + math.sin(el) * upv
        eye = center + dist * d
        cams.append(Camera.look_at(eye, center, upv, fov_y_deg=fov_y_deg, width=width, height=height, name=f"orbit_{i:03d}"))
    return cams


def hemisphere_cameras(
    scene,
    n: int = 24,
    *,
    width: int = 640,
    height: int = 480,
    fov_y_deg: float = 50.0,
    up: str | Sequence[float] = "-y",
    min_elevation_deg: float = -10.0,
    max_elevation_deg: float = 70.0,
    distance_factor: float = 1.15,
    quantile: float = 0.02,
    seed: int = 0,
) -> list[Camera]:
    """``n`` views spread over a band of the upper hemisphere (Fibonacci spiral, deterministic)."""
    center, dist, upv, a, b = _view_sphere(scene, n, width, height, fov_y_deg, up, distance_factor, quantile)
    s_lo, s_hi = math.sin(math.radians(min_elevation_deg)), math.sin(math.radians(max_elevation_deg))
    golden = math.pi * (3.0 - math.sqrt(5.0))
    offset = (seed * 0.6180339887) % 1.0
    cams = []
    for i in range(n):
        s = s_lo + (s_hi - s_lo) * ((i + 0.5) / n)
        el = math.asin(s)
        th = golden * i + 2 * math.pi * offset
        d = math.cos(el) * (math.cos(th) * a + math.sin(th) * b) + math.sin(el) * upv
        eye = center + dist * d
        cams.append(Camera.look_at(eye, center, upv, fov_y_deg=fov_y_deg, width=width, height=height, name=f"hemi_{i:03d}"))
    return cams


# ---------------------------------------------------------------------- loaders
MAX_CAMERA_FILE_BYTES = 256 << 20
"""The largest camera file read (a million cameras at ~250 bytes each)."""


def _load_json(path: Path, root: str | os.PathLike | None = None):
    """A camera file's JSON (a regular file of at most :data:`MAX_CAMERA_FILE_BYTES`; with
    ``root``, a name that must resolve inside that folder: a camera file found beside an asset)."""
    from .bounded import read_regular
    from .header import parse_json

    raw = read_regular(path, MAX_CAMERA_FILE_BYTES, root=root, what="camera file")
    return parse_json(raw, path, "camera file", top=(dict, list))


def _num(d: dict, key: str, path: Path, ctx: str) -> float:
    if key not in d:
        raise FormatError(f"{ctx} lacks '{key}'", path)
    try:
        v = float(d[key])
    except (TypeError, ValueError):
        raise FormatError(f"{ctx}: '{key}' is not a number", path) from None
    if not math.isfinite(v):
        raise FormatError(f"{ctx}: '{key}' is not finite", path)
    return v


def _matrix(value, rows: int, cols: int, path: Path, ctx: str) -> Tensor:
    try:
        m = torch.tensor(value, dtype=torch.float64)
    except (TypeError, ValueError):
        raise FormatError(f"{ctx} is not a numeric matrix", path) from None
    if m.shape == (3, 4) and rows == 4:
        m = torch.cat([m, torch.tensor([[0.0, 0.0, 0.0, 1.0]], dtype=torch.float64)])
    if tuple(m.shape) != (rows, cols):
        raise FormatError(f"{ctx} must be {rows}x{cols}, got {tuple(m.shape)}", path)
    if not bool(torch.isfinite(m).all()):
        raise FormatError(f"{ctx} holds non-finite values", path)
    return m


def load_inria_cameras(path: str | os.PathLike) -> list[Camera]:
    """INRIA 3DGS ``cameras.json``: a list of {width, height, position, rotation, fx, fy, img_name}.

    ``rotation`` is the camera-to-world rotation (columns are the camera axes in world
    space, OpenCV convention) and ``position`` the camera centre.
    """
    path = Path(path)
    return inria_cameras_from_json(_load_json(path), path)


def inria_cameras_from_json(data, path: str | os.PathLike = "cameras.json") -> list[Camera]:
    """Cameras from the parsed JSON of an INRIA ``cameras.json`` (what :func:`load_inria_cameras`
    reads, or :func:`inria_cameras_json` wrote); ``path`` names the source in errors."""
    path = Path(path)
    if not isinstance(data, list) or not data:
        raise FormatError("expected a non-empty JSON list of cameras (INRIA cameras.json)", path)
    cams = []
    for i, e in enumerate(data):
        ctx = f"camera {i}"
        if not isinstance(e, dict):
            raise FormatError(f"{ctx} is not an object", path)
        w, h = int(_num(e, "width", path, ctx)), int(_num(e, "height", path, ctx))
        fx, fy = _num(e, "fx", path, ctx), _num(e, "fy", path, ctx)
        if w <= 0 or h <= 0 or fx <= 0 or fy <= 0:
            raise FormatError(f"{ctx} has a non-positive size or focal length", path)
        rot = _matrix(e.get("rotation"), 3, 3, path, f"{ctx} rotation")
        pos = _matrix([e.get("position")], 1, 3, path, f"{ctx} position")[0]
        c2w = torch.eye(4, dtype=torch.float64)
        c2w[:3, :3], c2w[:3, 3] = rot, pos
        cx = float(e.get("cx", w / 2.0))
        cy = float(e.get("cy", h / 2.0))
        cams.append(Camera(fx, fy, cx, cy, w, h, torch.linalg.inv(c2w), str(e.get("img_name", e.get("id", i)))))
    return cams


def load_transforms_json(path: str | os.PathLike) -> list[Camera]:
    """nerfstudio / instant-ngp ``transforms.json``.

    Camera models other than pinhole ones and non-zero distortion (k1..k4, p1, p2,
    distortion_params) are ignored with a :class:`CameraWarning`.

    ``transform_matrix`` is camera-to-world in the OpenGL convention (+y up, +z back);
    it is converted to OpenCV. Intrinsics come from per-frame or top-level
    fl_x/fl_y/cx/cy/w/h, or from camera_angle_x/y (Blender synthetic scenes).
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict) or not isinstance(data.get("frames"), list) or not data["frames"]:
        raise FormatError("expected an object with a non-empty 'frames' list (transforms.json)", path)
    cams = []
    warned: set = set()
    for i, fr in enumerate(data["frames"]):
        ctx = f"frame {i}"
        if not isinstance(fr, dict):
            raise FormatError(f"{ctx} is not an object", path)
        merged = {**data, **fr}
        _warn_distortion(merged, path, ctx, warned)
        if "w" not in merged or "h" not in merged:
            raise FormatError(f"{ctx}: image size unknown (add 'w' and 'h')", path)
        w, h = int(_num(merged, "w", path, ctx)), int(_num(merged, "h", path, ctx))
        if "fl_x" in merged:
            fx = _num(merged, "fl_x", path, ctx)
            fy = _num(merged, "fl_y", path, ctx) if "fl_y" in merged else fx
        elif "camera_angle_x" in merged:
            fx = 0.5 * w / math.tan(0.5 * _num(merged, "camera_angle_x", path, ctx))
            fy = 0.5 * h / math.tan(0.5 * _num(merged, "camera_angle_y", path, ctx)) if "camera_angle_y" in merged else fx
        else:
            raise FormatError(f"{ctx}: no focal length (fl_x or camera_angle_x)", path)
        cx = _num(merged, "cx", path, ctx) if "cx" in merged else w / 2.0
        cy = _num(merged, "cy", path, ctx) if "cy" in merged else h / 2.0
        c2w = _matrix(fr.get("transform_matrix"), 4, 4, path, f"{ctx} transform_matrix").clone()
        c2w[:3, 1:3] *= -1.0  # OpenGL -> OpenCV
        if w <= 0 or h <= 0 or fx <= 0 or fy <= 0:
            raise FormatError(f"{ctx} has a non-positive size or focal length", path)
        cams.append(Camera(fx, fy, cx, cy, w, h, torch.linalg.inv(c2w), str(fr.get("file_path", i))))
    return cams


def _warn_distortion(merged: dict, path: Path, ctx: str, seen: set) -> None:
    """Warn once per file about camera models or distortion these pinhole cameras ignore."""
    model = merged.get("camera_model")
    if isinstance(model, str) and model.upper() not in _PINHOLE_MODELS and "model" not in seen:
        seen.add("model")
        warnings.warn(f"{path}: camera_model {model} is not modelled; rendered as a pinhole camera", CameraWarning,
                      stacklevel=4)
    dist = [k for k in _DISTORTION_KEYS if isinstance(merged.get(k), (int, float)) and merged[k] != 0]
    params = merged.get("distortion_params")
    if isinstance(params, list) and any(isinstance(v, (int, float)) and v != 0 for v in params):
        dist.append("distortion_params")
    if dist and "dist" not in seen:
        seen.add("dist")
        warnings.warn(f"{path}: {ctx} has lens distortion ({', '.join(dist)}), which is ignored (images are "
                      "assumed undistorted)", CameraWarning, stacklevel=4)


@dataclass(frozen=True)
class DataparserTransform:
    """nerfstudio's ``dataparser_transforms.json``: the similarity from data coordinates to the
    frame the model was trained (and ``ns-export`` exports) in: ``p' = scale * (T @ [p, 1])``.

    ``transform`` is [4,4] float64 (a rotation and translation; the file stores its top 3x4),
    ``scale`` a positive float.
    """

    transform: Tensor
    scale: float

    def matrix(self, inverse: bool = False) -> Tensor:
        """The [4,4] similarity (data -> dataparser frame, or back with ``inverse``)."""
        m = self.transform.clone()
        m[:3] *= self.scale
        return torch.linalg.inv(m) if inverse else m

    def cameras(self, cameras: Sequence[Camera], inverse: bool = False) -> list[Camera]:
        """Cameras moved into the dataparser frame (or back to data coordinates with ``inverse``)."""
        return transform_cameras(cameras, self.matrix(inverse))

    def composed(self, applied: Tensor, applied_scale: float = 1.0) -> "DataparserTransform":
        """The transform for poses saved after ``applied`` ([3,4] or [4,4]) and ``applied_scale``.

        nerfstudio's dataparser stores ``transform @ applied_transform`` and ``scale * applied_scale``
        when a ``transforms.json`` carries ``applied_transform`` / ``applied_scale``; poses in that file
        are already in the applied frame, so this undoes the applied part.
        """
        a = torch.eye(4, dtype=torch.float64)
        a[: applied.shape[0]] = applied
        return DataparserTransform(self.transform @ torch.linalg.inv(a), self.scale / applied_scale)


def transform_cameras(cameras: Sequence[Camera], similarity: Tensor) -> list[Camera]:
    """Cameras moved by a world similarity [4,4] (rotation * uniform scale, translation).

    The camera sees the transformed world exactly as it saw the original: its centre is mapped,
    its axes rotated, and its intrinsics kept.
    """
    m = torch.as_tensor(similarity, dtype=torch.float64)
    s = float(torch.linalg.det(m[:3, :3])) ** (1.0 / 3.0)
    if not s > 0:
        raise ValueError("the transform must be a similarity with a positive scale")
    out = []
    for c in cameras:
        c2w = c.camera_to_world
        new = torch.eye(4, dtype=torch.float64)
        new[:3, :3] = m[:3, :3] @ c2w[:3, :3] / s
        new[:3, 3] = m[:3, :3] @ c2w[:3, 3] + m[:3, 3]
        out.append(replace(c, world_to_camera=torch.linalg.inv(new)))
    return out


def load_dataparser_transforms(path: str | os.PathLike) -> DataparserTransform:
    """Read nerfstudio's ``dataparser_transforms.json`` ({"transform": 3x4, "scale": s})."""
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, dict):
        raise FormatError("expected an object with 'transform' and 'scale' (dataparser_transforms.json)", path)
    t = _matrix(data.get("transform"), 4, 4, path, "transform")
    scale = _num(data, "scale", path, "dataparser_transforms.json")
    if scale <= 0:
        raise FormatError(f"scale must be positive, got {scale}", path)
    r = t[:3, :3]
    if float((r @ r.T - torch.eye(3, dtype=torch.float64)).abs().max()) > 1e-4 or float(torch.linalg.det(r)) < 0:
        raise FormatError("transform's 3x3 part is not a rotation", path)
    return DataparserTransform(t, scale)


def load_ns_export_cameras(path: str | os.PathLike, intrinsics: Sequence[Camera] | str | os.PathLike) -> list[Camera]:
    """``ns-export cameras`` JSON (``transforms_train.json``/``transforms_eval.json``).

    It is a list of ``{"file_path", "transform"}``: camera-to-world [3,4] in the OpenGL
    convention, already in the dataparser frame (matching exported splats), and no
    intrinsics. Those come from ``intrinsics``: cameras (or a camera file, usually the
    dataset's ``transforms.json``) matched by image file name, else by position in the
    list when the counts agree.
    """
    path = Path(path)
    data = _load_json(path)
    if not isinstance(data, list) or not data:
        raise FormatError("expected a non-empty JSON list of {file_path, transform} (ns-export cameras)", path)
    ref = list(intrinsics) if not isinstance(intrinsics, (str, os.PathLike)) else load_cameras(intrinsics)
    by_name = {Path(c.name).name: c for c in ref}
    cams = []
    for i, e in enumerate(data):
        ctx = f"camera {i}"
        if not isinstance(e, dict):
            raise FormatError(f"{ctx} is not an object", path)
        name = str(e.get("file_path", i))
        k = by_name.get(Path(name).name)
        if k is None:
            if len(ref) != len(data):
                raise FormatError(f"{ctx} ({name}): no camera of that image name among the {len(ref)} intrinsics, "
                                  "and the counts differ", path)
            k = ref[i]
        c2w = _matrix(e.get("transform"), 4, 4, path, f"{ctx} transform").clone()
        c2w[:3, 1:3] *= -1.0  # OpenGL -> OpenCV
        cams.append(replace(k, world_to_camera=torch.linalg.inv(c2w), name=name))
    return cams


def is_ns_export_cameras(data) -> bool:
    """Whether parsed JSON looks like ``ns-export cameras`` output (a list with 'transform' poses)."""
    return isinstance(data, list) and bool(data) and isinstance(data[0], dict) and "transform" in data[0] \
        and "rotation" not in data[0]


def load_cameras(path: str | os.PathLike, *, dataparser: str | os.PathLike | DataparserTransform | None = None,
                 intrinsics: str | os.PathLike | Sequence[Camera] | None = None) -> list[Camera]:
    """Load cameras from an INRIA ``cameras.json``, a ``transforms.json`` or ``ns-export cameras`` JSON.

    With ``dataparser`` (nerfstudio's ``dataparser_transforms.json``) the cameras come back in
    the frame splatfacto trained in, matching its checkpoints and ``ns-export`` PLYs:
    ``transforms.json`` (its ``applied_transform`` accounted for) and INRIA cameras are moved
    into it; ``ns-export cameras`` are already there and stay. For the other direction use
    ``DataparserTransform.cameras(cams, inverse=True)``. ``intrinsics`` (cameras or a camera
    file, e.g. the dataset's ``transforms.json``) gives ns-export cameras their intrinsics.
    """
    path = Path(path)
    data = _load_json(path)
    dp = load_dataparser_transforms(dataparser) if isinstance(dataparser, (str, os.PathLike)) else dataparser
    if is_ns_export_cameras(data):
        if intrinsics is None:
            raise FormatError("ns-export cameras hold poses only; give the dataset's transforms.json for the "
                              "intrinsics", path)
        return load_ns_export_cameras(path, intrinsics)
    if isinstance(data, list):
        cams = load_inria_cameras(path)
    elif isinstance(data, dict) and "frames" in data:
        cams = load_transforms_json(path)
        if dp is not None and ("applied_transform" in data or "applied_scale" in data):
            applied = _matrix(data.get("applied_transform", torch.eye(4).tolist()), 4, 4, path, "applied_transform")
            dp = dp.composed(applied, _num(data, "applied_scale", path, "transforms.json")
                             if "applied_scale" in data else 1.0)
    else:
        raise FormatError("unrecognised camera file: expected INRIA cameras.json (a list), transforms.json (with "
                          "'frames') or ns-export cameras (a list with 'transform')", path)
    return dp.cameras(cams) if dp is not None else cams


def save_inria_cameras(cameras: Sequence[Camera], path: str | os.PathLike) -> None:
    """Write cameras as an INRIA ``cameras.json`` (cx, cy are added as extra keys)."""
    from .atomic import atomic_write_bytes

    atomic_write_bytes(path, inria_cameras_json(cameras))


def inria_cameras_json(cameras: Sequence[Camera]) -> bytes:
    """Cameras as the bytes of an INRIA ``cameras.json`` (cx, cy are added as extra keys)."""
    out = []
    for i, c in enumerate(cameras):
        c2w = c.camera_to_world
        out.append(
            {
                "id": i,
                "img_name": c.name or f"{i:05d}",
                "width": c.width,
                "height": c.height,
                "position": c2w[:3, 3].tolist(),
                "rotation": c2w[:3, :3].tolist(),
                "fx": c.fx,
                "fy": c.fy,
                "cx": c.cx,
                "cy": c.cy,
            }
        )
    return json.dumps(out, indent=1).encode()
