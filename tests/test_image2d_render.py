"""2D Gaussian renderer (render/image2d): numba kernels vs the dense float64 reference."""
import math

import pytest
import torch

from render.image2d import conics_from_scale_rotation, contribution, rasterize_conics, render_image


def _random(n, w, h, c, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g, dtype=dtype) * torch.tensor([w, h], dtype=dtype)
    scales = torch.rand(n, 2, generator=g, dtype=dtype) * 3.0 + 0.7
    rot = torch.rand(n, generator=g, dtype=dtype) * math.pi
    colors = torch.rand(n, c, generator=g, dtype=dtype) * 1.4 - 0.2
    return means, scales, rot, colors


@pytest.mark.parametrize("tile", [16, 64])
@pytest.mark.parametrize("mode,k,c", [("topk", 10, 3), ("topk", 3, 1), ("topk", 2, 16), ("sum", 10, 3), ("sum", 10, 5)])
def test_forward_and_gradients_match_reference(mode, k, c, tile, monkeypatch):
    from render.image2d import raster

    monkeypatch.setattr(raster, "TILE", tile)
    w, h = 45, 37  # 3x3 tiles of 16 pixels or one of 64, the last ones partial
    means, scales, rot, colors = _random(60, w, h, c, seed=k * 7 + c)
    conics = conics_from_scale_rotation(scales, rot)
    gout = torch.randn(h, w, c, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    res = {}
    for backend in ("cpu", "reference"):
        m, q, col = (x.clone().requires_grad_(True) for x in (means, conics, colors))
        img = rasterize_conics(m, q, col, w, h, mode=mode, k=k, backend=backend)
        grads = torch.autograd.grad((img * gout).sum(), [m, q, col])
        res[backend] = (img.detach(), grads)
    img_c, g_c = res["cpu"]
    img_r, g_r = res["reference"]
    assert img_c.shape == (h, w, c)
    assert float(img_r.abs().max()) > 0.1  # the scene is not empty
    assert torch.allclose(img_c, img_r, atol=1e-4), float((img_c - img_r).abs().max())
    for a, b, name in zip(g_c, g_r, ["means", "conics", "colors"]):
        rel = float((a - b).norm() / b.norm())
        assert rel < 1e-3, f"{mode} d/d{name}: relative error {rel:.2e}"


@pytest.mark.parametrize("mode", ["topk", "sum"])
def test_gradients_through_scale_and_rotation(mode):
    means, scales, rot, colors = _random(25, 24, 20, 3, seed=3)
    out = {}
    for backend in ("cpu", "reference"):
        p = [x.clone().requires_grad_(True) for x in (means, scales, rot, colors)]
        img = render_image(*p, 24, 20, mode=mode, backend=backend)
        out[backend] = torch.autograd.grad((img ** 2).sum(), p)
    for a, b in zip(out["cpu"], out["reference"]):
        assert float((a - b).norm() / b.norm()) < 1e-3


def test_topk_keeps_the_largest_weights_and_normalises():
    # two Gaussians on one pixel: with k=1 the nearer one wins outright; with k=2 the mix is weighted
    means = torch.tensor([[0.5, 0.5], [1.5, 0.5]], dtype=torch.float64)
    scales = torch.ones(2, 2, dtype=torch.float64)
    rot = torch.zeros(2, dtype=torch.float64)
    colors = torch.tensor([[1.0], [0.0]], dtype=torch.float64)
    one = render_image(means, scales, rot, colors, 1, 1, mode="topk", k=1)
    two = render_image(means, scales, rot, colors, 1, 1, mode="topk", k=2)
    assert abs(float(one) - 1.0) < 1e-5
    w1, w2 = 1.0, math.exp(-0.5)
    assert abs(float(two) - w1 / (w1 + w2)) < 1e-5
    summed = render_image(means, scales, rot, colors * 2, 1, 1, mode="sum")
    assert abs(float(summed) - 2.0) < 1e-5


def test_scale_and_crop_render_the_same_image():
    means, scales, rot, colors = _random(80, 64, 48, 3, seed=5, dtype=torch.float32)
    full = render_image(means, scales, rot, colors, 64, 48, scale=2.0)
    assert full.shape == (96, 128, 3)
    crop = render_image(means, scales, rot, colors, 64, 48, scale=2.0, crop=(37, 20, 50, 41))
    assert torch.allclose(crop, full[20:61, 37:87], atol=1e-6)
    ref = render_image(means.double(), scales.double(), rot.double(), colors.double(), 64, 48, scale=2.0,
                       backend="reference")
    assert torch.allclose(full.double(), ref, atol=1e-4)


def test_contribution_counts_pixel_shares():
    means, scales, rot, colors = _random(30, 32, 32, 3, seed=9, dtype=torch.float32)
    conics = conics_from_scale_rotation(scales, rot)
    share = contribution(means, conics, colors, 32, 32, mode="topk")
    # every covered pixel distributes a total share of sum(w)/(sum(w)+eps) ~ 1
    covered = rasterize_conics(means, conics, torch.ones(30, 1), 32, 32, mode="topk")
    assert abs(float(share.sum()) - float(covered.sum())) < 1e-2


def test_rejects_bad_arguments():
    means, scales, rot, colors = _random(4, 8, 8, 3, seed=0)
    with pytest.raises(ValueError, match="channels"):
        render_image(means, scales, rot, torch.zeros(4, 17, dtype=torch.float64), 8, 8)
    with pytest.raises(ValueError, match="mode"):
        render_image(means, scales, rot, colors, 8, 8, mode="max")


def test_polynomial_exp_matches_exp_over_the_support():
    import numpy as np

    from render.image2d.kernels import SIGMA_MAX, fexp_neg

    s = np.linspace(0.0, SIGMA_MAX, 2001).astype(np.float32)
    approx = np.array([fexp_neg(np.float32(v)) for v in s], np.float64)
    rel = np.abs(approx / np.exp(-s.astype(np.float64)) - 1.0)
    assert rel.max() < 3e-6, rel.max()


@pytest.mark.parametrize("weight_cache", [True, False])
def test_elongated_rotated_gaussians_across_tile_borders_match_reference(weight_cache, monkeypatch):
    """Thin (up to ~180:1), rotated Gaussians crossing tile borders, in the sum mode; the
    backward reads the forward's weights (cache) or recomputes them (over the cache limit)."""
    from render.image2d import kernels

    if not weight_cache:
        monkeypatch.setattr(kernels, "WEIGHT_CACHE_MAX", 0)
    w, h = 150, 90  # 3x2 tiles of 64 px (the renderer's), the last ones partial
    g = torch.Generator().manual_seed(12)
    n = 160
    means = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([w + 20.0, h + 20.0]) - 10.0
    scales = torch.stack([torch.exp(torch.rand(n, generator=g, dtype=torch.float64) * 3.5 + 0.5),
                          torch.exp(torch.rand(n, generator=g, dtype=torch.float64) * 1.6 - 1.2)], 1)
    rot = torch.rand(n, generator=g, dtype=torch.float64) * 2 * math.pi
    colors = torch.rand(n, 3, generator=g, dtype=torch.float64) * 1.4 - 0.2
    conics = conics_from_scale_rotation(scales, rot)
    gout = torch.randn(h, w, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    res = {}
    for backend in ("cpu", "reference"):
        m, q, col = (x.clone().requires_grad_(True) for x in (means, conics, colors))
        img = rasterize_conics(m, q, col, w, h, mode="sum", backend=backend)
        res[backend] = (img.detach(), torch.autograd.grad((img * gout).sum(), [m, q, col]))
    (img_c, g_c), (img_r, g_r) = res["cpu"], res["reference"]
    assert float(img_r.abs().max()) > 0.5
    # float32 sigma of thin, rotated Gaussians: a little more rounding than round ones
    assert torch.allclose(img_c, img_r, atol=1e-3), float((img_c - img_r).abs().max())
    for a, b, name in zip(g_c, g_r, ["means", "conics", "colors"]):
        rel = float((a - b).norm() / b.norm())
        assert rel < 1e-3, f"d/d{name}: relative error {rel:.2e}"
