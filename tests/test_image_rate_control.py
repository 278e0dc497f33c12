"""Rate control's pieces: the first count's model and the measured rate-distortion slope."""

from dataclasses import asdict

import pytest
import torch

from compress.image import BitDepths, FitConfig, compress_image, decode, encode, rate
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


def test_coding_follows_the_target_rate():
    """A higher target rate never raises the rate term's weight; the weight falls as the
    model's power of the rate between the clamps; the bit depths stay BitDepths' defaults."""
    rates = [0.05, 0.125, 0.25, 0.3, 0.5, 0.75, 1.0, 1.5, 2.0, 4.0, 8.0]
    chosen = [rate.coding_for(b) for b in rates]
    weights = [lam for lam, _ in chosen]
    assert weights == sorted(weights, reverse=True) and weights[0] > weights[-1], weights
    assert all(rate.LAMBDA_RANGE[0] <= lam <= rate.LAMBDA_RANGE[1] for lam in weights)
    assert all(bits == BitDepths() for _, bits in chosen)
    assert rate.coding_for(rate.LAMBDA_REF[0])[0] == pytest.approx(rate.LAMBDA_REF[1])
    lo, hi = rate.coding_for(0.2)[0], rate.coding_for(0.4)[0]
    assert lo / hi == pytest.approx(2.0 ** rate.LAMBDA_EXPONENT)
    assert rate.coding_for(2.0)[0] == rate.LAMBDA_RANGE[0]  # the floor


def test_explicit_weight_and_bit_depths_win():
    """Rate control fills in only what the configuration leaves to it (None), for every
    target, and the file's quantiser is the one chosen."""
    mine = BitDepths(pos_step=1.0, color_bits=5)
    cfg = rate.with_coding(FitConfig(rate_weight=0.001, bits=mine), 0.25)
    assert cfg.rate_weight == 0.001 and cfg.bits == mine
    lam, bits = rate.coding_for(0.25)
    assert rate.with_coding(FitConfig(rate_weight=0.001), 0.25).bits == bits
    assert rate.with_coding(FitConfig(bits=mine), 0.25).rate_weight == lam
    img = load_image(shared_file("images", "kodak", "kodim03.png")).pixels[200:248, 200:248].copy()
    px = 48 * 48
    for given, target in ((FitConfig(steps=30, rate_weight=0.001, bits=mine), {"gaussians": 40}),
                          (FitConfig(steps=30), {"gaussians": 40}), (FitConfig(steps=30), {"bpp": 2.0})):
        res = compress_image(img, config=given, **target)
        if "bpp" in target:
            want_lam, want_bits = rate.coding_for(2.0)
        else:
            want_lam, want_bits = rate.coding_for(rate.expected_bpp(40, px))
        want_lam = given.rate_weight if given.rate_weight is not None else want_lam
        want_bits = given.bits or want_bits
        assert res.notes["rate_weight"] == pytest.approx(want_lam)
        assert res.notes["bits"] == asdict(want_bits)
        assert res.spec.pos_step == want_bits.pos_step and res.spec.color_bits[0] == want_bits.color_bits
        assert decode(res.data).spec.pos_step == want_bits.pos_step
