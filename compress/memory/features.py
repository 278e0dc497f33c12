"""Bring-your-own per-view features: the index JSON and memory-mapped per-view maps.

A feature folder holds one file per view and model -- ``.npy``, ``.pt`` or
``.safetensors``, shape [h', w', C], float16 or float32, unnormalised -- an optional
validity mask per view ([h', w'] bool/uint8, same formats), and an index JSON
(default name ``features.json``; spec in ``docs/formats/m3.md``)::

    {"format": "splat-features", "version": 1,
     "holdout": ["cam_007"],                      # optional: views kept out of training
     "models": [{"name": "clip-vit-b16", "dim": 512,
                 "image_size": [H, W], "feature_size": [h, w],
                 "views": [{"camera": "cam_000", "file": "clip/000.npy",
                            "mask": "clip/000_mask.npy"}, ...]}]}

``camera`` is a camera name or an integer index into the camera list. Maps are opened
memory-mapped and read one view at a time: nothing loads every view at once.
"""
from __future__ import annotations

import json
import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from splat.atomic import atomic_write_bytes
from splat.camera import Camera
from splat.errors import FormatError, UsageError

INDEX_NAME = "features.json"
FORMAT_TAG = "splat-features"
_SUFFIXES = (".npy", ".pt", ".safetensors")
_ST_DTYPES = {"F16": np.float16, "F32": np.float32, "BOOL": np.bool_, "U8": np.uint8}
_ST_NAMES = {np.dtype(v): k for k, v in _ST_DTYPES.items()}


# ---------------------------------------------------------------------- array files
def _read_safetensors(path: Path) -> np.ndarray:
    """The single tensor of a .safetensors file, memory-mapped (F16, F32, BOOL or U8)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise FormatError("truncated safetensors file (no header length)", path)
        (hlen,) = struct.unpack("<Q", head)
        if hlen > min(size - 8, 1 << 24):
            raise FormatError(f"safetensors header length {hlen} does not fit the file", path)
        try:
            header = json.loads(f.read(hlen).decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise FormatError("safetensors header is not valid JSON", path) from None
    tensors = {k: v for k, v in header.items() if k != "__metadata__"} if isinstance(header, dict) else {}
    if len(tensors) != 1:
        raise FormatError(f"expected exactly one tensor in the safetensors file, found {len(tensors)}", path)
    (info,) = tensors.values()
    try:
        dtype = _ST_DTYPES[info["dtype"]]
        shape = tuple(int(s) for s in info["shape"])
        begin, end = (int(x) for x in info["data_offsets"])
    except (KeyError, TypeError, ValueError):
        raise FormatError("safetensors tensor entry needs a supported dtype (F16, F32, BOOL, U8), shape and data_offsets", path) from None
    nbytes = int(np.prod(shape, dtype=np.int64)) * np.dtype(dtype).itemsize
    if end - begin != nbytes or 8 + hlen + end > size or begin < 0:
        raise FormatError(f"safetensors data of shape {shape} does not match its offsets or the file size", path)
    if nbytes == 0:
        return np.zeros(shape, dtype)
    return np.memmap(path, dtype=dtype, mode="r", offset=8 + hlen + begin, shape=shape)


def write_safetensors(path: str | os.PathLike, array: np.ndarray, name: str = "features") -> None:
    """Write one array as a .safetensors file (F16, F32, BOOL or U8), atomically."""
    a = np.ascontiguousarray(array)
    if a.dtype not in _ST_NAMES:
        raise ValueError(f"safetensors writer supports float16/float32/bool/uint8, got {a.dtype}")
    hdr = {name: {"dtype": _ST_NAMES[a.dtype], "shape": list(a.shape), "data_offsets": [0, a.nbytes]}}
    h = json.dumps(hdr, separators=(",", ":")).encode()
    h += b" " * (-len(h) % 8)
    atomic_write_bytes(path, struct.pack("<Q", len(h)) + h + a.tobytes())


def read_array(path: str | os.PathLike) -> np.ndarray:
    """Open a .npy / .pt / .safetensors array without reading it all (memory-mapped)."""
    p = Path(path)
    if not p.is_file():
        raise FormatError("feature file not found", p)
    suf = p.suffix.lower()
    try:
        if suf == ".npy":
            return np.load(p, mmap_mode="r", allow_pickle=False)
        if suf == ".pt":
            t = torch.load(p, map_location="cpu", mmap=True, weights_only=True)
            if not isinstance(t, torch.Tensor):
                raise FormatError(f"expected a tensor in the .pt file, found {type(t).__name__}", p)
            if t.dtype == torch.bfloat16:
                t = t.float()
            return t.numpy()
        if suf == ".safetensors":
            return _read_safetensors(p)
    except FormatError:
        raise
    except Exception as e:  # numpy / torch parse errors on corrupt files
        raise FormatError(f"cannot read array file ({type(e).__name__}: {e})", p) from None
    raise FormatError(f"unsupported feature file type {suf!r} (use {', '.join(_SUFFIXES)})", p)


def write_array(path: str | os.PathLike, array: np.ndarray) -> None:
    """Write an array in the format named by the path's suffix, atomically."""
    p = Path(path)
    suf = p.suffix.lower()
    if suf == ".npy":
        import io

        buf = io.BytesIO()
        np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
        atomic_write_bytes(p, buf.getvalue())
    elif suf == ".pt":
        import io

        buf = io.BytesIO()
        torch.save(torch.from_numpy(np.ascontiguousarray(array)), buf)
        atomic_write_bytes(p, buf.getvalue())
    elif suf == ".safetensors":
        write_safetensors(p, array)
    else:
        raise UsageError(f"unsupported feature file type {suf!r} (use {', '.join(_SUFFIXES)})")


# ---------------------------------------------------------------------- index
@dataclass
class FeatureView:
    camera: str | int
    file: Path
    mask: Path | None = None


@dataclass
class FeatureModel:
    """One foundation model's per-view features. Sizes are (height, width)."""

    name: str
    dim: int
    image_size: tuple[int, int]
    feature_size: tuple[int, int]
    views: list[FeatureView]
    index_path: Path | None = None

    def load(self, i: int) -> tuple[np.ndarray, np.ndarray | None]:
        """View ``i``: features [h',w',C] (memory-mapped, float16/32) and mask [h',w'] bool or None."""
        v = self.views[i]
        a = read_array(v.file)
        h, w = self.feature_size
        if a.ndim != 3 or a.shape[:2] != (h, w) or a.shape[2] != self.dim:
            raise FormatError(
                f"model {self.name!r}: feature map has shape {tuple(a.shape)}, the index says [{h}, {w}, {self.dim}]", v.file
            )
        if a.dtype not in (np.float16, np.float32):
            raise FormatError(f"model {self.name!r}: features must be float16 or float32, got {a.dtype}", v.file)
        m = None
        if v.mask is not None:
            m = read_array(v.mask)
            if m.shape != (h, w) and m.shape != (h, w, 1):
                raise FormatError(f"mask has shape {tuple(m.shape)}, expected [{h}, {w}]", v.mask)
            m = np.asarray(m).reshape(h, w) != 0
        return a, m

    def load_tensor(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """View ``i`` as float32 tensors: features [h',w',C] and a validity mask [h',w'] (finite and masked-in)."""
        a, m = self.load(i)
        f = torch.from_numpy(np.asarray(a, dtype=np.float32))
        valid = torch.isfinite(f).all(dim=-1)
        if m is not None:
            valid &= torch.from_numpy(m)
        return torch.nan_to_num(f), valid


@dataclass
class FeatureSet:
    """Every model's features for one scene, plus the held-out camera names."""

    models: list[FeatureModel]
    holdout: list[str | int] = field(default_factory=list)
    path: Path | None = None

    def model(self, name: str | None = None) -> FeatureModel:
        if name is None:
            return self.models[0]
        for m in self.models:
            if m.name == name:
                return m
        raise UsageError(f"no feature model named {name!r} (have {', '.join(m.name for m in self.models)})")

    def match(self, cameras: Sequence[Camera]) -> list[list[int | None]]:
        """For each model, the view index of each camera (None where a camera has no features).

        Raises FormatError when a view names a camera that is not in the list.
        """
        names = {c.name: i for i, c in enumerate(cameras) if c.name}
        out = []
        for m in self.models:
            per_cam: list[int | None] = [None] * len(cameras)
            for vi, v in enumerate(m.views):
                ci = _camera_index(v.camera, names, len(cameras))
                if ci is None:
                    raise FormatError(
                        f"model {m.name!r}: view {vi} refers to camera {v.camera!r}, which is not among the "
                        f"{len(cameras)} cameras given", self.path,
                    )
                if per_cam[ci] is not None:
                    raise FormatError(f"model {m.name!r}: camera {v.camera!r} has two feature files", self.path)
                per_cam[ci] = vi
            out.append(per_cam)
        return out

    def holdout_cameras(self, cameras: Sequence[Camera]) -> list[int]:
        names = {c.name: i for i, c in enumerate(cameras) if c.name}
        idx = []
        for h in self.holdout:
            ci = _camera_index(h, names, len(cameras))
            if ci is None:
                raise FormatError(f"held-out camera {h!r} is not among the cameras given", self.path)
            idx.append(ci)
        return sorted(set(idx))


def _camera_index(ref: str | int, names: dict[str, int], n: int) -> int | None:
    if isinstance(ref, int) and not isinstance(ref, bool):
        return ref if 0 <= ref < n else None
    if isinstance(ref, str):
        if ref in names:
            return names[ref]
        if ref.isdigit() and not names:
            i = int(ref)
            return i if i < n else None
    return None


def _size(v, what: str, path) -> tuple[int, int]:
    if not (isinstance(v, (list, tuple)) and len(v) == 2 and all(isinstance(x, int) and x > 0 for x in v)):
        raise FormatError(f"{what} must be [height, width] with positive integers, got {v!r}", path)
    return int(v[0]), int(v[1])


def _parse_model(d: dict, root: Path, path: Path) -> FeatureModel:
    if not isinstance(d, dict):
        raise FormatError("each entry of 'models' must be an object", path)
    name = d.get("name")
    dim = d.get("dim")
    if not isinstance(name, str) or not name:
        raise FormatError("a model entry needs a non-empty 'name'", path)
    if not isinstance(dim, int) or dim <= 0:
        raise FormatError(f"model {name!r}: 'dim' must be a positive integer, got {dim!r}", path)
    image_size = _size(d.get("image_size"), f"model {name!r}: image_size", path)
    feature_size = _size(d.get("feature_size"), f"model {name!r}: feature_size", path)
    views_raw = d.get("views")
    if not isinstance(views_raw, list) or not views_raw:
        raise FormatError(f"model {name!r}: 'views' must be a non-empty list", path)
    views = []
    for i, v in enumerate(views_raw):
        if not isinstance(v, dict) or "file" not in v or "camera" not in v:
            raise FormatError(f"model {name!r}: view {i} needs 'camera' and 'file'", path)
        f = root / str(v["file"])
        if f.suffix.lower() not in _SUFFIXES:
            raise FormatError(f"model {name!r}: view {i} file {v['file']!r} is not .npy/.pt/.safetensors", path)
        mk = v.get("mask")
        views.append(FeatureView(v["camera"], f, None if mk is None else root / str(mk)))
    return FeatureModel(name, dim, image_size, feature_size, views, path)


def load_features(path: str | os.PathLike) -> FeatureSet:
    """Read a feature index (a JSON file, or a folder holding ``features.json``). Maps open lazily."""
    p = Path(path)
    if p.is_dir():
        p = p / INDEX_NAME
    if not p.is_file():
        raise FormatError("feature index not found (expected a folder with features.json or the JSON file)", p)
    from splat.bounded import read_regular
    from splat.header import parse_json

    # bounded, regular files only; overlong integers, NaN and NUL bytes are clear errors
    doc = parse_json(read_regular(p, 64 << 20, what="feature index"), p, "feature index")
    if doc.get("format", FORMAT_TAG) != FORMAT_TAG:
        raise FormatError(f"feature index 'format' must be {FORMAT_TAG!r}", p)
    if "models" in doc:
        raw = doc["models"]
        if not isinstance(raw, list) or not raw:
            raise FormatError("'models' must be a non-empty list", p)
    else:  # single-model shorthand: the model's keys at the top level
        raw = [doc]
    models = [_parse_model(d, p.parent, p) for d in raw]
    if len({m.name for m in models}) != len(models):
        raise FormatError("model names must be unique", p)
    holdout = doc.get("holdout", [])
    if not isinstance(holdout, list):
        raise FormatError("'holdout' must be a list of camera names or indices", p)
    return FeatureSet(models, holdout, p)


def write_features(
    out_dir: str | os.PathLike,
    model_name: str,
    maps: Sequence[np.ndarray | torch.Tensor],
    cameras: Sequence[str | int],
    image_size: tuple[int, int],
    *,
    masks: Sequence[np.ndarray | None] | None = None,
    suffix: str = ".npy",
    dtype: str = "float16",
    holdout: Sequence[str | int] | None = None,
) -> Path:
    """Write one model's per-view maps [h',w',C] and add the model to ``out_dir/features.json``.

    Several models per scene: call once per model (an existing entry of the same name is
    replaced). ``image_size`` is (height, width) of the images the features came from.
    Returns the index path.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if len(maps) != len(cameras):
        raise UsageError(f"{len(maps)} feature maps for {len(cameras)} cameras")
    if not maps:
        raise UsageError("no feature maps to write")
    arrs = [m.detach().cpu().numpy() if isinstance(m, torch.Tensor) else np.asarray(m) for m in maps]
    shape = arrs[0].shape
    if any(a.ndim != 3 or a.shape != shape for a in arrs):
        raise UsageError("all feature maps of one model must share one [h', w', C] shape")
    sub = "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in model_name)
    views = []
    for i, (a, cam) in enumerate(zip(arrs, cameras)):
        rel = f"{sub}/{i:04d}{suffix}"
        write_array(out / rel, a.astype(dtype))
        v = {"camera": cam, "file": rel}
        if masks is not None and masks[i] is not None:
            mrel = f"{sub}/{i:04d}_mask{suffix}"
            mk = masks[i]
            mk = mk.detach().cpu().numpy() if isinstance(mk, torch.Tensor) else np.asarray(mk)
            write_array(out / mrel, mk.astype(np.uint8))
            v["mask"] = mrel
        views.append(v)
    idx_path = out / INDEX_NAME
    doc = {"format": FORMAT_TAG, "version": 1, "models": []}
    if idx_path.exists():
        doc = json.loads(idx_path.read_text(encoding="utf-8"))
    entry = {
        "name": model_name, "dim": int(shape[2]), "image_size": [int(image_size[0]), int(image_size[1])],
        "feature_size": [int(shape[0]), int(shape[1])], "views": views,
    }
    doc["models"] = [m for m in doc.get("models", []) if m.get("name") != model_name] + [entry]
    if holdout is not None:
        doc["holdout"] = list(holdout)
    atomic_write_bytes(idx_path, json.dumps(doc, indent=1).encode())
    return idx_path
