"""Structure-guided initialisation (compress/image/init.py): placement, shapes, closed-form colours."""
from __future__ import annotations

import math

import torch

from compress.image import init as I
from compress.image.fit import FitConfig, _Fitter
from render.image2d import render_image
from render.metrics import psnr


def _edge_image(h: int = 48, w: int = 64) -> torch.Tensor:
    """Left half dark, right half bright (one vertical edge at x = w/2), with a soft ramp on top."""
    x = torch.arange(w).float()[None, :].expand(h, w)
    y = torch.arange(h).float()[:, None].expand(h, w)
    v = torch.where(x < w / 2, 0.2, 0.8) + 0.05 * y / h
    return torch.stack([v, 0.9 * v, 0.5 + 0.0 * v], 2).contiguous()


def test_place_gives_n_points_inside_and_follows_the_density():
    h, w = 40, 60
    d = torch.ones(h, w, dtype=torch.float64)
    d[:, w // 2:] = 4.0
    n = 300
    d = d / d.sum() * n
    xy = I.place(d, n, torch.Generator().manual_seed(1))
    assert xy.shape == (n, 2)
    assert float(xy[:, 0].min()) >= 0 and float(xy[:, 0].max()) <= w
    assert float(xy[:, 1].min()) >= 0 and float(xy[:, 1].max()) <= h
    right = int((xy[:, 0] >= w / 2).sum())
    assert abs(right - 0.8 * n) <= 0.05 * n  # 4:1 density -> 80% on the right
    # evenly spread: no pixel picked twice, every 10x10 block of the dense half gets some
    keys = (xy[:, 1].long() * w + xy[:, 0].long())
    assert keys.unique().numel() == n
    for by in range(0, h, 10):
        for bx in range(w // 2, w, 10):
            inside = ((xy[:, 0] >= bx) & (xy[:, 0] < bx + 10) & (xy[:, 1] >= by) & (xy[:, 1] < by + 10)).sum()
            assert int(inside) >= 4


def test_density_is_capped_and_sums_to_n():
    t = _edge_image()
    jxx, _jxy, jyy = I.structure_tensor(t)
    n = 2000  # close to the pixel count: the edge alone would ask for more than one per pixel
    d = I.density_map(jxx, jyy, n)
    assert float(d.max()) <= 1.0 + 1e-9
    assert abs(float(d.sum()) - n) < 1e-3 * n


def test_shapes_follow_the_edge():
    t = _edge_image()
    jxx, jxy, jyy = I.structure_tensor(t)
    d = I.density_map(jxx, jyy, 200)
    xy = torch.tensor([[32.0, 24.0], [31.5, 10.0]])  # on the vertical edge
    log_s, rot = I.shapes(xy, d, jxx, jxy, jyy, 100.0)
    s = torch.exp(log_s)
    assert bool((s[:, 0] > 1.5 * s[:, 1]).all())  # elongated...
    # ...along the edge: axis 0 points along y (rotation pi/2 modulo pi)
    assert bool((torch.cos(rot).abs() < 0.1).all())


def test_solve_colors_matches_dense_least_squares():
    torch.manual_seed(0)
    n, w, h = 40, 32, 24
    m = torch.rand(n, 2) * torch.tensor([float(w), float(h)])
    s = torch.rand(n, 2) * 3 + 1
    r = torch.rand(n) * math.pi
    t = torch.rand(h, w, 3)
    x = I.solve_colors(t, m, s, r, torch.zeros(n, 3), iters=80)
    cols = [render_image(m, s, r, torch.eye(n)[:, i:i + 1], w, h, mode="sum")[..., 0].reshape(-1) for i in range(n)]
    W = torch.stack(cols, 1).double()
    best = torch.linalg.lstsq(W, t.reshape(-1, 3).double()).solution
    res = float(((W @ x.double() - t.reshape(-1, 3).double()) ** 2).sum())
    ref = float(((W @ best - t.reshape(-1, 3).double()) ** 2).sum())
    assert res <= ref * 1.001 + 1e-9


def test_structure_init_starts_closer_than_gradient_init():
    t = _edge_image(64, 96)
    out = {}
    for init in ("gradient", "structure"):
        ft = _Fitter(t, 120, FitConfig(init=init), None, None)
        with torch.no_grad():
            out[init] = float(psnr(ft.render(False).clamp(0, 1), t))
    assert out["structure"] > out["gradient"] + 3.0, out


def test_compress_image_with_structure_init_decodes_to_what_it_returns():
    import pytest

    from compress.image import compress_image, decode

    t = _edge_image(32, 48).numpy()
    res = compress_image(t, gaussians=40, steps=30, init="structure")
    g = decode(res.data)
    assert torch.equal(g.means, res.gaussians.means) and torch.equal(g.colors, res.gaussians.colors)
    assert res.psnr > 25.0, res.psnr  # one edge and a ramp: easy
    with pytest.raises(ValueError, match="init must be"):
        compress_image(t, gaussians=40, steps=5, init="bogus")
