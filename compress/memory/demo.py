"""`make demo` step: distil real CNN features into a generated scene, write .m3, query it."""
from __future__ import annotations

import math
from pathlib import Path

import torch

from splat.camera import orbit_cameras
from splat.scene import GaussianScene


def blob_scene(n_per_object: int = 1200, seed: int = 0) -> GaussianScene:
    """Three coloured objects (a red ball, a green box, a blue ring) on a grey floor."""
    g = torch.Generator().manual_seed(seed)
    parts = []

    def add(means: torch.Tensor, rgb: tuple[float, float, float], scale: float) -> None:
        n = means.shape[0]
        cols = torch.tensor(rgb).expand(n, 3) + 0.08 * torch.randn(n, 3, generator=g)
        parts.append(GaussianScene.from_activated(
            means.float(), torch.randn(n, 4, generator=g), torch.full((n, 3), scale) * (0.7 + 0.6 * torch.rand(n, 3, generator=g)),
            torch.full((n,), 0.9), cols.clamp(0, 1).float(),
        ))

    d = torch.randn(n_per_object, 3, generator=g)
    add(d / d.norm(dim=1, keepdim=True) * 0.45 + torch.tensor([-0.8, 0.0, 0.0]), (0.85, 0.15, 0.1), 0.05)
    add((torch.rand(n_per_object, 3, generator=g) - 0.5) * torch.tensor([0.7, 0.7, 0.7]) + torch.tensor([0.8, 0.0, 0.0]),
        (0.15, 0.75, 0.2), 0.05)
    t = torch.rand(n_per_object, generator=g) * 2 * math.pi
    ring = torch.stack([0.4 * torch.cos(t), 0.05 * torch.randn(n_per_object, generator=g), 0.4 * torch.sin(t)], 1)
    add(ring + torch.tensor([0.0, -0.1, 0.9]), (0.15, 0.25, 0.9), 0.04)
    fl = (torch.rand(n_per_object, 2, generator=g) - 0.5) * 3.0
    add(torch.stack([fl[:, 0], torch.full((n_per_object,), 0.45), fl[:, 1]], 1), (0.55, 0.55, 0.55), 0.07)
    return GaussianScene.cat(parts)


def run(out_dir: Path) -> list[tuple[str, str]]:
    from splat.progress import human_bytes

    from .cli import holdout_indices
    from .distill import DistillConfig, distill
    from .extract import MISSING, available, extract_scene_features
    from .features import load_features
    from .fit import FitConfig
    from .m3file import cameras_to_meta, encode_m3, read_m3, write_m3
    from .query import pick_feature, render_features, similarity, similarity_colors

    if not available():
        return [("skipped", MISSING)]
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = blob_scene()
    cams = orbit_cameras(scene, 16, width=320, height=240, elevation_deg=25.0, up="-y")
    hold = holdout_indices(len(cams), 3)
    extract_scene_features(scene, cams, out_dir / "features", layers=["b10"], holdout=hold, save_images=True)
    fs = load_features(out_dir / "features")
    cfg = DistillConfig(query_dim=8, bank_max=512, fit=FitConfig(max_seconds=60))
    mem, rep = distill(scene, cams, fs, cfg)
    mem.meta["cameras"] = cameras_to_meta(cams)
    nbytes = write_m3(mem, out_dir / "blobs.m3")
    feat_bytes = len(encode_m3(mem, embed_scene=False, scene_ref="scene", scene_sha256=""))
    mem = read_m3(out_dir / "blobs.m3")
    cam = cams[hold[0]]
    feats = render_features(mem, cam)
    # click the centre of the red ball's projection
    c = cam.world_to_camera[:3, :3] @ torch.tensor([-0.8, 0.0, 0.0], dtype=torch.float64) + cam.world_to_camera[:3, 3]
    x = int(min(max(cam.fx * c[0] / c[2] + cam.cx, 0), cam.width - 1))
    y = int(min(max(cam.fy * c[1] / c[2] + cam.cy, 0), cam.height - 1))
    sim = similarity(mem, cam, pick_feature(feats, x, y), features=feats)
    import imageio.v3 as iio

    iio.imwrite(out_dir / "similarity.png", (similarity_colors(sim, 0.8).numpy() * 255 + 0.5).astype("uint8"))
    ho = rep.heldout[fs.models[0].name]
    full = len(scene) * fs.models[0].dim * 4
    return [
        ("scene", f"{len(scene):,} Gaussians, {len(cams)} views ({len(hold)} held out)"),
        ("bank", f"{rep.banks[fs.models[0].name].size} principal components of D={fs.models[0].dim}"),
        ("held-out cosine / L2", f"{ho['cos']:.3f} / {ho['l2']:.2f}"),
        (".m3 size", f"{human_bytes(nbytes)} with the scene; features alone {human_bytes(feat_bytes)}, "
                     f"{full / feat_bytes:.1f}x below full per-Gaussian float32 features"),
        ("build time", f"{rep.seconds:.1f} s"),
        ("query", f"pixel ({x},{y}) of view {hold[0]} -> similarity.png"),
    ]
