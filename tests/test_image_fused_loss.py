"""The fused numba L1 + SSIM loss against the project's SSIM (render.metrics, float64): value and gradient."""
import numpy as np
import pytest
import torch

from compress.image.fused_loss import FusedLoss
from render.metrics import ssim


@pytest.mark.parametrize("h,w,c,weight", [(37, 29, 3, 0.1), (8, 9, 1, 0.1), (24, 40, 4, 0.5), (20, 20, 3, 0.0)])
def test_fused_loss_matches_reference(h, w, c, weight):
    g = torch.Generator().manual_seed(h * w + c)
    t = torch.rand(h, w, c, generator=g)
    x = (t + 0.1 * torch.randn(h, w, c, generator=g)).clamp(0, 1)
    loss, grad = FusedLoss(t, weight)(x.numpy())
    xd = x.double().requires_grad_(True)
    ref = (xd - t.double()).abs().mean() + weight * (1 - ssim(xd, t.double()))
    ref.backward()
    assert abs(loss - float(ref.detach())) < 1e-6
    scale = float(xd.grad.abs().max())
    assert np.abs(grad - xd.grad.numpy()).max() < 1e-4 * scale
    # through autograd, as the fitter uses it
    xt = x.clone().requires_grad_(True)
    (2.0 * FusedLoss(t, weight).loss_tensor(xt)).backward()
    assert torch.allclose(xt.grad.double(), 2 * xd.grad, atol=1e-4 * scale)
