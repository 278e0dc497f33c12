"""The fused numba L1 + RMSE + SSIM loss against the project's SSIM (render.metrics, float64): value and gradient."""
import numpy as np
import pytest
import torch

from compress.image.fused_loss import FusedLoss
from render.metrics import ssim


@pytest.mark.parametrize("h,w,c,weight,l1,l2", [
    (37, 29, 3, 0.1, 1.0, 0.0), (8, 9, 1, 0.1, 1.0, 0.0), (24, 40, 4, 0.5, 1.0, 0.0), (20, 20, 3, 0.0, 1.0, 0.0),
    (37, 29, 3, 0.1, 0.0, 1.0), (24, 40, 4, 0.3, 0.5, 0.7), (20, 20, 3, 0.0, 0.0, 1.0), (13, 31, 3, 0.0, 0.4, 0.6)])
def test_fused_loss_matches_reference(h, w, c, weight, l1, l2):
    g = torch.Generator().manual_seed(h * w + c)
    t = torch.rand(h, w, c, generator=g)
    x = (t + 0.1 * torch.randn(h, w, c, generator=g)).clamp(0, 1)
    loss, grad = FusedLoss(t, weight, l1, l2)(x.numpy())
    xd = x.double().requires_grad_(True)
    d = xd - t.double()
    ref = l1 * d.abs().mean() + l2 * (d * d).mean().sqrt() + weight * (1 - ssim(xd, t.double()))
    ref.backward()
    assert abs(loss - float(ref.detach())) < 1e-6
    scale = float(xd.grad.abs().max())
    assert np.abs(grad - xd.grad.numpy()).max() < 1e-4 * scale
    # through autograd, as the fitter uses it
    xt = x.clone().requires_grad_(True)
    (2.0 * FusedLoss(t, weight, l1, l2).loss_tensor(xt)).backward()
    assert torch.allclose(xt.grad.double(), 2 * xd.grad, atol=1e-4 * scale)


def test_fused_loss_l2_gradient_is_finite_differences():
    """The RMSE term alone against central differences of its own value (float32 kernels)."""
    g = torch.Generator().manual_seed(5)
    t = torch.rand(12, 14, 3, generator=g)
    x = (t + 0.05 * torch.randn(12, 14, 3, generator=g)).clamp(0, 1).numpy().astype(np.float64)
    fl = FusedLoss(t, 0.0, 0.0, 1.0)
    _, grad = fl(x)
    for idx in [(0, 0, 0), (5, 7, 1), (11, 13, 2)]:
        e = np.zeros_like(x)
        e[idx] = 1e-3
        num = (fl(x + e)[0] - fl(x - e)[0]) / 2e-3
        assert abs(num - grad[idx]) < 2e-3 * abs(grad).max()


def test_fused_loss_set_weights_and_exact_fit():
    t = torch.rand(16, 16, 3, generator=torch.Generator().manual_seed(1))
    fl = FusedLoss(t, 0.1)
    fl.set_weights(0.0, 1.0, 0.0)
    loss, grad = fl(t.numpy())  # RMSE 0: value 0, gradient 0 (no division by zero)
    assert loss == 0.0 and np.all(grad == 0)
    x = (t + 0.1).clamp(0, 1)
    assert abs(fl(x.numpy())[0] - float(((x - t) ** 2).mean().sqrt())) < 1e-6
    with pytest.raises(ValueError, match="loss weights"):
        fl.set_weights(1.0, -0.5, 0.1)
