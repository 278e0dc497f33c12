"""Sanity checks of the float64 reference renderer itself (the other backends are tested against it)."""
import math

import torch

from render import rasterize
from render.sh import sh_basis
from splat import Camera, GaussianScene


def _single(opacity=0.8, scale=0.05, z=2.0):
    s = GaussianScene.from_activated(
        torch.tensor([[0.0, 0.0, 0.0]], dtype=torch.float64),
        torch.tensor([[1.0, 0.0, 0.0, 0.0]], dtype=torch.float64),
        torch.full((1, 3), scale, dtype=torch.float64),
        torch.tensor([opacity], dtype=torch.float64),
        torch.tensor([[1.0, 0.5, 0.25]], dtype=torch.float64),
    )
    cam = Camera.look_at([0, 0, -z], [0, 0, 0], up=[0, -1, 0], width=32, height=32, fov_y_deg=30)
    return s, cam


def test_single_gaussian_matches_closed_form():
    s, cam = _single()
    out = rasterize(s, cam, backend="reference", return_stats=True)
    # screen-space std: f * scale / z, plus the 0.3 px^2 low-pass on the variance
    var = (cam.fx * 0.05 / 2.0) ** 2 + 0.3
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")
    d2 = (xs + 0.5 - 16) ** 2 + (ys + 0.5 - 16) ** 2
    alpha = torch.clamp(0.8 * torch.exp(-0.5 * d2.double() / var), max=0.99)
    alpha = torch.where(alpha >= 1 / 255, alpha, torch.zeros_like(alpha))
    assert torch.allclose(out.alphas[0, ..., 0], alpha, atol=1e-10)
    assert torch.allclose(out.colors[0, ..., 1], 0.5 * alpha, atol=1e-10)
    assert out.stats.hit_count.item() == int((alpha > 0).sum())
    assert math.isclose(out.stats.blend_weight.item(), float(alpha.sum()), rel_tol=1e-10)


def test_transmittance_cutoff_is_exclusive():
    # 3 stacked opaque Gaussians: 1 - 0.99 - ... T after two = 1e-4 exactly -> second is excluded
    s, cam = _single(opacity=0.999)
    s3 = GaussianScene.cat([s, s.replace(means=s.means + torch.tensor([[0, 0, 0.1]], dtype=torch.float64)),
                            s.replace(means=s.means + torch.tensor([[0, 0, 0.2]], dtype=torch.float64))])
    out = rasterize(s3, cam, backend="reference", return_stats=True)
    # near the centre alpha is clamped to 0.99: after two Gaussians T is ~1e-4, so the third,
    # which would bring T to ~1e-6, is excluded there (exclusive cutoff) but counted further out
    assert out.alphas[0, 16, 16, 0].item() >= 0.99
    assert 0 < out.stats.hit_count[2] < out.stats.hit_count[0]


def test_sh_basis_is_orthonormal():
    g = torch.Generator().manual_seed(0)
    d = torch.randn(400000, 3, generator=g, dtype=torch.float64)
    d = d / d.norm(dim=-1, keepdim=True)
    b = sh_basis(3, d)
    gram = 4 * math.pi * (b.T @ b) / len(d)
    assert torch.allclose(gram, torch.eye(16, dtype=torch.float64), atol=0.02)
