"""PSNR and SSIM on cases with known answers."""
import math

import pytest
import torch

from render.metrics import LPIPS, lpips_available, mse, psnr, ssim


def _img(seed=0, h=32, w=40, c=3):
    return torch.rand(h, w, c, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def test_psnr_of_constant_offset():
    x = _img()
    y = x + 0.1
    assert math.isclose(float(psnr(x, y)), 20.0, abs_tol=1e-9)  # 10 log10(1 / 0.01)
    assert math.isclose(float(psnr(x * 255, y * 255, data_range=255)), 20.0, abs_tol=1e-9)
    assert torch.isinf(psnr(x, x))


def test_psnr_batch_and_mse():
    x = torch.stack([_img(0), _img(1)])
    y = x.clone()
    y[1] += 0.01
    p = psnr(x, y)
    assert tuple(p.shape) == (2,) and torch.isinf(p[0]) and math.isclose(float(p[1]), 40.0, abs_tol=1e-6)
    assert math.isclose(float(mse(x[1], y[1])), 1e-4, rel_tol=1e-6)


def test_ssim_identity_and_constant_images():
    x = _img()
    assert math.isclose(float(ssim(x, x)), 1.0, abs_tol=1e-9)
    # two constant images: variances are 0, so SSIM = (2ab + C1) / (a^2 + b^2 + C1)
    a, b = 0.3, 0.6
    c1 = 0.01**2
    expect = (2 * a * b + c1) / (a * a + b * b + c1)
    got = ssim(torch.full((24, 24, 1), a, dtype=torch.float64), torch.full((24, 24, 1), b, dtype=torch.float64))
    assert math.isclose(float(got), expect, rel_tol=1e-9)


def test_ssim_decreases_with_noise():
    x = _img(2, 64, 64)
    g = torch.Generator().manual_seed(3)
    vals = [float(ssim(x, (x + s * torch.randn(x.shape, generator=g)).clamp(0, 1))) for s in (0.01, 0.05, 0.2)]
    assert 1.0 > vals[0] > vals[1] > vals[2] > 0.0


def test_shape_errors():
    with pytest.raises(ValueError, match="differ in shape"):
        psnr(_img(), _img(h=16))
    chw = _img().permute(2, 0, 1)  # [C,H,W]: rejected, not silently read as a 40-channel image
    for fn in (psnr, ssim, mse):
        with pytest.raises(ValueError, match=r"channels-last.*channels first\?"):
            fn(chw, chw)
    with pytest.raises(ValueError, match="channels-last"):
        psnr(torch.zeros(8, 8), torch.zeros(8, 8))


def test_ssim_matches_pytorch_msssim():
    """The one SSIM equals the reference library's (valid windows, float64), batched too."""
    ref = pytest.importorskip("pytorch_msssim")
    x = torch.stack([_img(4, 40, 48), _img(5, 40, 48)])
    y = (x + 0.1 * torch.randn(x.shape, generator=torch.Generator().manual_seed(6), dtype=torch.float64)).clamp(0, 1)
    want = ref.ssim(x.permute(0, 3, 1, 2), y.permute(0, 3, 1, 2), data_range=1.0, size_average=False)
    assert torch.allclose(ssim(x, y), want, atol=1e-6)


def test_ssim_small_images_and_padding():
    x, y = _img(7, 8, 9), _img(8, 8, 9)
    assert math.isclose(float(ssim(x, x)), 1.0, abs_tol=1e-9)  # a 7-tap window fits an 8x9 image
    assert 0 < float(ssim(x, y)) < 1
    same = ssim(x.float(), y.float(), padding="same", dtype=None)
    assert same.dtype == torch.float32 and 0 < float(same) < 1
    xg = x.clone().requires_grad_(True)
    ssim(xg, y).backward()
    assert torch.isfinite(xg.grad).all() and float(xg.grad.abs().sum()) > 0


def test_lpips_is_optional():
    if lpips_available():
        d = LPIPS()(_img(), _img())
        assert float(d) > 0
    else:
        with pytest.raises(RuntimeError, match="nothing is downloaded"):
            LPIPS()
