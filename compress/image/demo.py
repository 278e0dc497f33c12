"""`make demo` step: fit a procedurally drawn image, write .gsi, render it back at 2x and at LOD 1/4."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np


def sample_image(width: int = 192, height: int = 128) -> np.ndarray:
    """A synthetic RGB picture (smooth sky, sun, hills, a striped house) as float32 [H,W,3]."""
    from PIL import Image, ImageDraw

    y = np.linspace(0, 1, height)[:, None, None]
    sky = np.concatenate([0.3 + 0.4 * y, 0.5 + 0.3 * y, 0.9 - 0.2 * y], axis=2) * np.ones((1, width, 1))
    im = Image.fromarray(np.round(sky * 255).astype(np.uint8))
    d = ImageDraw.Draw(im)
    d.ellipse([int(0.7 * width), 10, int(0.7 * width) + 28, 38], fill=(250, 220, 90))
    d.polygon([(0, height), (0, int(0.6 * height)), (int(0.4 * width), int(0.45 * height)), (width, int(0.7 * height)),
               (width, height)], fill=(70, 140, 60))
    x0, y0 = int(0.2 * width), int(0.55 * height)
    d.rectangle([x0, y0, x0 + 40, y0 + 30], fill=(180, 60, 50))
    for i in range(0, 40, 8):
        d.line([x0 + i, y0, x0 + i, y0 + 30], fill=(230, 210, 200), width=2)
    d.polygon([(x0 - 5, y0), (x0 + 20, y0 - 18), (x0 + 45, y0)], fill=(90, 50, 40))
    return np.asarray(im, dtype=np.float32) / 255.0


def run(out_dir: Path) -> list[tuple[str, str]]:
    from .api import compress_image
    from .gsi import read_gsi
    from .imageio import save_image
    from .model import render_gaussians

    out_dir.mkdir(parents=True, exist_ok=True)
    img = sample_image()
    save_image(out_dir / "input.png", img)
    t0 = time.perf_counter()
    res = compress_image(img, bpp=1.0, steps=150)
    fit_s = time.perf_counter() - t0
    (out_dir / "sample.gsi").write_bytes(res.data)
    g = read_gsi(out_dir / "sample.gsi")
    save_image(out_dir / "render_x1.png", render_gaussians(g).numpy())
    save_image(out_dir / "render_x2.png", render_gaussians(g, scale=2.0).numpy())
    save_image(out_dir / "render_lod25.png", render_gaussians(g, lod=0.25).numpy())
    return [
        ("fit 192x128 at 1 bpp", f"{len(res.data)} B, {res.bpp():.3f} bpp, {len(g)} Gaussians, "
                                 f"PSNR {res.psnr:.2f} dB, {fit_s:.1f} s"),
        ("renders", "render_x1.png, render_x2.png (2x), render_lod25.png (1/4 of the Gaussians)"),
    ]
