"""Rate control's pieces: the first count's model and the measured rate-distortion slope."""

import pytest
import torch

from compress.image import FitConfig, compress_image, decode, encode, rate
from compress.image.imageio import load_image
from tests.conftest import shared_file


def test_first_guess_grows_with_rate_and_size():
    """More bits or more pixels never give fewer Gaussians, and the count's file (at the
    model's bits per Gaussian) is the first share of the budget."""
    for pixels in (96 * 64, 384 * 256, 768 * 512, 2048 * 2048):
        counts = [rate.first_guess(b, pixels) for b in (0.125, 0.25, 0.5, 1.0, 2.0, 4.0)]
        assert counts == sorted(counts), (pixels, counts)
    for b in (0.25, 0.5, 1.0):
        counts = [rate.first_guess(b, p) for p in (384 * 256, 768 * 512, 2048 * 2048)]
        assert counts == sorted(counts), (b, counts)
        n = rate.first_guess(b, 768 * 512)
        bits = n * rate.bits_per_gaussian(n, 768 * 512) + rate.HEADER_BITS
        assert bits == pytest.approx(rate.FIRST_SHARE * b * 768 * 512, rel=0.02)


def test_rd_slope_is_loss_per_bit_of_the_decoded_prefixes():
    """With no SSIM term the slope is the L1 error added per bit per pixel saved, measured on
    the decoded files of the two prefixes (torch's mean absolute error as the reference)."""
    img = load_image(shared_file("images", "kodak", "kodim03.png")).pixels[200:264, 200:264].copy()
    res = compress_image(img, gaussians=160, config=FitConfig(steps=120))
    g, spec = res.gaussians, res.spec
    target = torch.from_numpy(img)
    n = len(g)
    ends = []
    for m in (int(0.5 * n), n):
        data = encode(g.prefix(m), spec)
        err = float((decode(data).render().clamp(0, 1) - target).abs().mean())
        ends.append((len(data) * 8 / (64 * 64), err))
    (r0, e0), (r1, e1) = ends
    slope = rate.rd_slope(g, spec, n, target, 0.0, fraction=0.5)
    assert e0 > e1 and slope == pytest.approx((e0 - e1) / (r1 - r0), rel=1e-3)
    assert rate.rd_slope(g, spec, n, target, 0.1, fraction=0.5) > slope  # SSIM's share adds to it
