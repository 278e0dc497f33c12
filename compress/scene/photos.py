"""Training photos for fine-tuning: find each camera's image in a folder, load it at the
view's resolution, and measure PSNR of a scene against the held-out photos.

Cameras name their image: INRIA ``cameras.json`` by ``img_name`` (usually without an
extension), nerfstudio ``transforms.json`` by ``file_path`` (relative, with or without one).
A photo is looked up as ``DIR/name``, ``DIR/<basename>``, each with the extensions below
tried when the name has none.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from splat.camera import Camera
from splat.errors import UsageError
from splat.scene import GaussianScene

EXTENSIONS = (".png", ".jpg", ".jpeg", ".PNG", ".JPG", ".JPEG", ".webp")


def find_photo(images: Path, name: str) -> Path | None:
    """The image file of a camera called ``name`` under ``images`` (None if absent)."""
    rel = Path(name.replace("\\", "/"))
    for stem in (rel, Path(rel.name)):
        cands = [images / stem] if stem.suffix else []
        cands += [images / (str(stem) + e) for e in EXTENSIONS]
        for c in cands:
            if c.is_file():
                return c
    return None


def load_photos(cameras: Sequence[Camera], images: str | Path) -> dict[str, Tensor]:
    """{camera name: photo [H,W,3] float32 in [0,1] at the camera's full resolution}.

    UsageError when the folder is missing or holds none of the cameras' images; a photo whose
    aspect ratio differs from its camera's by more than 1% is an error too."""
    from compress.image.imageio import load_image

    d = Path(images)
    if not d.is_dir():
        raise UsageError(f"--images: {d} is not a folder")
    out: dict[str, Tensor] = {}
    for cam in cameras:
        p = find_photo(d, cam.name)
        if p is None:
            continue
        px = load_image(p).pixels
        if px.shape[2] == 1:
            px = np.repeat(px, 3, axis=2)
        px = px[:, :, :3]
        h, w = px.shape[:2]
        if abs(w / h - cam.width / cam.height) > 0.01 * cam.width / cam.height:
            raise UsageError(f"{p}: {w}x{h} does not match its camera's {cam.width}x{cam.height} aspect ratio")
        out[cam.name] = torch.from_numpy(np.ascontiguousarray(px))
    if not out:
        raise UsageError(f"--images: none of the {len(cameras)} cameras' images found in {d}")
    return out


def resize_photo(photo: Tensor, width: int, height: int) -> Tensor:
    """[H,W,3] -> [height,width,3] (area averaging when shrinking, bilinear otherwise)."""
    if photo.shape[0] == height and photo.shape[1] == width:
        return photo
    x = photo.permute(2, 0, 1)[None]
    mode = "area" if height < photo.shape[0] else "bilinear"
    y = F.interpolate(x, size=(height, width), mode=mode, **({} if mode == "area" else {"align_corners": False}))
    return y[0].permute(1, 2, 0).contiguous()


def photo_targets(targets: Tensor, views: Sequence[Camera], photos: dict[str, Tensor]) -> tuple[Tensor, int]:
    """``targets`` [V,H,W,3] with each view that has a photo replaced by it; (targets, count)."""
    out = targets.clone()
    used = 0
    for i, v in enumerate(views):
        ph = photos.get(v.name)
        if ph is not None:
            out[i] = resize_photo(ph, v.width, v.height).to(out.dtype)
            used += 1
    return out, used


def heldout_photo_psnr(scene: GaussianScene, views: Sequence[Camera], photos: dict[str, Tensor], *,
                       backend: str = "auto") -> float | None:
    """Mean PSNR (dB) of ``scene``'s renders against the photos of the held-out ``views`` (None: no photos)."""
    from render.metrics import psnr

    from .eval import render_views

    vs = [v for v in views if v.name in photos]
    if not vs:
        return None
    vals = []
    for v in vs:
        out = render_views(scene, [v], backend=backend)[0]
        vals.append(min(100.0, float(psnr(out, resize_photo(photos[v.name], v.width, v.height).to(out.dtype)))))
    return sum(vals) / len(vals)
