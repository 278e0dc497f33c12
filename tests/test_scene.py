import math

import pytest
import torch

from splat import GaussianScene, SH_C0
from splat.scene import rgb_to_sh_dc, sh_dc_to_rgb


def test_activated_round_trip():
    s = GaussianScene.random(50, sh_degree=2, seed=3, dtype=torch.float64)
    a = s.activated()
    s2 = GaussianScene.from_activated(a.means, a.quats, a.scales, a.opacities, a.colors, a.sh_rest)
    assert torch.allclose(s2.log_scales, s.log_scales, atol=1e-12)
    assert torch.allclose(s2.opacity_logits, s.opacity_logits, atol=1e-9)
    assert torch.allclose(s2.sh_dc, s.sh_dc, atol=1e-12)
    assert torch.allclose(s2.quats, s.unit_quats, atol=1e-12)
    assert math.isclose(SH_C0, 0.28209479, rel_tol=1e-8)
    assert torch.allclose(sh_dc_to_rgb(rgb_to_sh_dc(torch.tensor([0.2, 0.5, 1.0]))), torch.tensor([0.2, 0.5, 1.0]))


def test_slicing_mask_and_cat():
    s = GaussianScene.random(20, sh_degree=1, seed=0).with_extras(feat=torch.arange(20.0)[:, None])
    m = torch.zeros(20, dtype=torch.bool)
    m[::3] = True
    sub = s[m]
    assert len(sub) == 7 and torch.equal(sub.extras["feat"][:, 0], torch.arange(0, 20, 3).float())
    assert len(s[2:5]) == 3 and len(s[torch.tensor([1, 1, 2])]) == 3
    both = GaussianScene.cat([s[:5], s[5:].with_sh_degree(3)])
    assert both.sh_degree == 3 and len(both) == 20 and "feat" in both.extras
    assert torch.equal(both.with_sh_degree(1).sh_rest, s.sh_rest)
    with pytest.raises(IndexError):
        s[torch.ones(3, dtype=torch.bool)]


def test_sh_degree_truncation_and_validation():
    s = GaussianScene.random(10, sh_degree=3)
    assert s.with_sh_degree(0).sh_rest.shape == (10, 0, 3)
    assert s.with_sh_degree(2).sh_rest.shape == (10, 8, 3)
    assert torch.equal(s.with_sh_degree(2).sh_rest, s.sh_rest[:, :8])
    with pytest.raises(ValueError):
        GaussianScene(s.means, s.quats[:, :3], s.log_scales, s.opacity_logits, s.sh_dc, s.sh_rest)
    with pytest.raises(ValueError):
        GaussianScene(s.means, s.quats, s.log_scales, s.opacity_logits, s.sh_dc, s.sh_rest[:, :5])


def test_bounds_and_finite_check():
    s = GaussianScene.random(1000, extent=2.0)
    lo, hi = s.bounds()
    assert (lo >= -2).all() and (hi <= 2).all()
    rlo, rhi = s.bounds(quantile=0.05)
    assert (rlo > lo).all() and (rhi < hi).all()
    bad = s.clone()
    bad.means[7, 1] = float("nan")
    with pytest.raises(ValueError, match="means.*Gaussian 7"):
        bad.check_finite()
    s.check_finite()


def test_to_and_equal():
    s = GaussianScene.random(5)
    assert s.to(dtype=torch.float64).dtype == torch.float64
    assert s.equal(s.clone()) and not s.equal(s[:4])
