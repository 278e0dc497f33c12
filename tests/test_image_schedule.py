"""Step schedules of the image fitter (coarse to fine) and banded rendering of .gsi images."""
import math

import numpy as np
import pytest
import torch

from compress.image import FitConfig, compress_image, render_gaussians
from compress.image.fit import DEFAULT_SCHEDULE, schedule
from compress.image.imageio import load_image, save_image
from compress.image.model import ImageGaussians, render_to_array
from render.metrics import psnr
from tests.conftest import shared_file


def _gaussians(n=400, w=70, h=45, c=3, seed=0) -> ImageGaussians:
    g = torch.Generator().manual_seed(seed)
    return ImageGaussians(torch.rand(n, 2, generator=g) * torch.tensor([w, h]), torch.rand(n, 2, generator=g) * 3 + 0.5,
                          torch.rand(n, generator=g) * 6 - 3, torch.rand(n, c, generator=g) * 0.5, w, h)


@pytest.mark.parametrize("kw", [{}, {"scale": 2.7}, {"scale": 0.5, "lod": 0.5}, {"scale": 3.0, "crop": (13, 7, 101, 77)}])
def test_banded_render_matches_one_render(kw):
    """Rendering band by band (a few rows at a time) gives the one-shot render's pixels."""
    g = _gaussians()
    full = render_gaussians(g, **kw).numpy()
    f32 = render_to_array(g, dtype=np.float32, band_pixels=500, **kw)
    assert f32.shape == full.shape
    np.testing.assert_allclose(f32, full, atol=2e-6)
    for dtype, top in ((np.uint8, 255), (np.uint16, 65535)):
        q = render_to_array(g, dtype=dtype, band_pixels=777, **kw)
        assert q.dtype == dtype
        ref = np.round(full * np.float32(top)).astype(np.int64)
        assert np.abs(q.astype(np.int64) - ref).max() <= 1


def test_banded_render_checks_crop_and_size():
    g = _gaussians()
    with pytest.raises(ValueError, match="not inside"):
        render_to_array(g, crop=(60, 0, 20, 10))
    with pytest.raises(ValueError, match="dtype"):
        render_to_array(g, dtype=np.int32)
    from splat import FormatError

    with pytest.raises(FormatError):
        render_to_array(g, scale=100.0, max_pixels=1000)


def test_save_image_takes_integer_pixels(tmp_path):
    g = _gaussians()
    f = render_gaussians(g).numpy()
    save_image(tmp_path / "a.png", f)
    save_image(tmp_path / "b.png", render_to_array(g))
    a, b = load_image(tmp_path / "a.png").pixels, load_image(tmp_path / "b.png").pixels
    assert np.abs(a - b).max() <= 1 / 255 + 1e-6


def test_schedules():
    assert FitConfig() == schedule(FitConfig(), DEFAULT_SCHEDULE)
    t = schedule(FitConfig(seed=3), "thorough")
    assert (t.steps, t.warmup_end, t.coarse_end, t.seed) == (180, 0.25, 0.0, 3)
    b = schedule(t, "best")
    assert b.steps > t.steps and b.seed == 3
    # rate control's refinement stage keeps thorough's length
    assert int(b.steps * b.finetune_fraction) == int(t.steps * t.finetune_fraction)
    with pytest.raises(ValueError, match="unknown schedule"):
        schedule(FitConfig(), "quick")
    with pytest.raises(ValueError, match="unknown schedule"):
        compress_image(np.zeros((8, 8, 3), np.float32), gaussians=4, schedule="quick")


def test_coarse_to_fine_fit_on_an_odd_sized_crop():
    """Quarter and half resolution steps run on an odd-sized real crop (the reduced targets
    take the renderer's rounding) and the fit beats a flat image by far."""
    img = load_image(shared_file("images", "kodak", "kodim03.png")).pixels[150:281, 200:333].copy()  # 131 x 133
    res = compress_image(img, gaussians=300, config=FitConfig(steps=60))
    t = torch.from_numpy(img)
    flat = psnr(t.mean(dim=(0, 1), keepdim=True).expand_as(t), t)
    assert res.psnr > flat + 8, (res.psnr, flat)


def test_largest_within_agrees_with_bisection_in_fewer_calls():
    """The interpolating search returns the plain bisection's answer (largest n whose size
    fits) on near-linear, stepped and flat size curves, and needs fewer calls on a linear one."""
    from compress.image.rate import _bisect, largest_within

    rng = np.random.default_rng(0)
    curves = [lambda n: 37 * n + 100, lambda n: 9 * (n // 7) + 5, lambda n: 50]
    steps = np.cumsum(rng.integers(0, 60, 6000))
    curves.append(lambda n: int(steps[n - 1]))
    for size in curves:
        for cap in (0, 49, 50, 99, 5000, 123_456, 10**9):
            calls = []

            def counted(n, size=size):
                calls.append(n)
                return size(n)

            got = largest_within(1, 5000, counted, cap)
            assert got == _bisect(1, 5000, lambda n: size(n) <= cap), (cap, got)
            if size is curves[0] and 137 < cap < 37 * 5000:
                assert len(calls) <= 6, len(calls)


def test_plateau_check_does_not_compare_losses_across_resolutions(monkeypatch):
    """The reduced-resolution warm-up's (lower) losses never enter the plateau check of the
    full-resolution steps: a steadily falling full-resolution loss gets no learning-rate drop."""
    from compress.image import fit as fit_mod

    def step(self, quantised, scale=1.0):
        self._it = getattr(self, "_it", 0) + 1
        return 0.01 if scale < 1.0 else 1.0 - 0.002 * self._it  # improving by far more than plateau_tol

    drops = []
    monkeypatch.setattr(fit_mod._Fitter, "step", step)
    monkeypatch.setattr(fit_mod._Fitter, "set_lr_scale",
                        lambda self, s: (drops.append(s) if s < self.lr_scale else None, setattr(self, "lr_scale", s)))
    t = torch.rand(40, 40, 3, generator=torch.Generator().manual_seed(0))
    cfg = FitConfig(steps=200, warmup_end=0.25, coarse_end=0.0, start_fraction=1.0, refill_every=0, qat_start=1.0)
    fit_mod.fit_gaussians(t, 30, cfg)
    assert drops == []


def test_fit_adam_is_torch_adam_bit_for_bit():
    """The fitter's Adam gives torch.optim.Adam's parameters exactly (per-group learning
    rates changed between steps, gradients dropped for a step, state carried over)."""
    from compress.image.fit import Adam

    gen = torch.Generator().manual_seed(0)
    shapes = {"means": (300, 2), "log_scales": (300, 2), "rotations": (300,), "colors": (300, 3)}
    ours = {k: torch.randn(s, generator=gen).requires_grad_(True) for k, s in shapes.items()}
    ref = {k: v.detach().clone().requires_grad_(True) for k, v in ours.items()}
    lrs = {"means": 1.5, "log_scales": 0.12, "rotations": 0.12, "colors": 0.06}

    def groups(p):
        return [{"params": [p[k]], "lr": lr, "name": k} for k, lr in lrs.items()]

    opt = Adam(groups(ours), betas=(0.9, 0.99), eps=1e-10)
    opt_ref = torch.optim.Adam(groups(ref), betas=(0.9, 0.99), eps=1e-10)
    for step in range(25):
        grads = {k: torch.randn(s, generator=gen) * (10.0 ** (step % 3 - 1)) for k, s in shapes.items()}
        for o, params in ((opt, ours), (opt_ref, ref)):
            o.zero_grad(set_to_none=True)
            for k, p in params.items():
                if not (step == 7 and k == "colors"):
                    p.grad = grads[k].clone()
            for grp in o.param_groups:
                grp["lr"] = lrs[grp["name"]] * (0.05 + 0.95 * math.cos(step / 30))
            o.step()
        for k in shapes:
            assert torch.equal(ours[k], ref[k]), (step, k)
            for key in ("exp_avg", "exp_avg_sq", "step"):
                assert torch.equal(opt.state[ours[k]][key], opt_ref.state[ref[k]][key]), (step, k, key)


def test_refills_are_a_share_of_the_steps(monkeypatch):
    """A longer fit refills (prune + re-add) as often as a shorter one: the period is a
    fraction of the steps, so long fits are not disturbed ever more often."""
    from compress.image import fit as fit_mod

    calls: dict[int, int] = {}
    real_grow = fit_mod._Fitter.grow

    def grow(self, n_add, prune, relocate=0.0):
        if n_add == 0:
            calls[self.cfg.steps] = calls.get(self.cfg.steps, 0) + 1
        real_grow(self, n_add, prune, relocate)

    monkeypatch.setattr(fit_mod._Fitter, "grow", grow)
    monkeypatch.setattr(fit_mod._Fitter, "step", lambda self, quantised, scale=1.0: 1.0)
    t = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
    for steps in (180, 720):
        fit_mod.fit_gaussians(t, 40, FitConfig(steps=steps, max_decays=10**6))
    assert calls[180] == calls[720] == 2, calls


def test_a_longer_fit_is_not_worse():
    """On a small real crop at a fixed count, three times the steps end at least as high."""
    img = load_image(shared_file("images", "kodak", "kodim07.png")).pixels[200:264, 300:364].copy()
    t = torch.from_numpy(img)
    from compress.image.fit import fit_gaussians

    got = {s: fit_gaussians(t, 120, FitConfig(steps=s))[2].psnr for s in (100, 300)}
    assert got[300] >= got[100] + 0.1, got


def test_loss_weights_switch_when_qat_starts(monkeypatch):
    """The fitter's loss uses (l1_weight, l2_weight, ssim_weight) before QAT and ``qat_weights`` after."""
    from compress.image import fit as fit_mod
    from compress.image.fused_loss import FusedLoss

    seen = []
    orig = FusedLoss.loss_tensor
    monkeypatch.setattr(FusedLoss, "loss_tensor", lambda self, img: (seen.append((self.l1, self.l2, self.w)),
                                                                    orig(self, img))[1])
    t = torch.rand(24, 24, 3, generator=torch.Generator().manual_seed(0))
    cfg = FitConfig(steps=20, warmup_end=0.0, start_fraction=1.0, refill_every=0, qat_start=0.5,
                    l1_weight=0.3, l2_weight=0.7, ssim_weight=0.0, qat_weights=(0.0, 1.0, 0.2))
    _, _, rep = fit_mod.fit_gaussians(t, 40, cfg)
    assert rep.steps == 20
    assert seen[:9] == [(0.3, 0.7, 0.0)] * 9 and seen[9:] == [(0.0, 1.0, 0.2)] * 11  # QAT from step int(0.5 * 20)
    cfg = FitConfig(steps=20, warmup_end=0.0, start_fraction=1.0, refill_every=0, qat_start=0.5, l1_weight=1.0, l2_weight=0.5)
    seen.clear()
    fit_mod.fit_gaussians(t, 40, cfg)
    assert set(seen) == {(1.0, 0.5, 0.1)}
