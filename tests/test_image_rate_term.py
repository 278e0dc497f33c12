"""The differentiable rate term of image fitting (``compress/image/rate_term.py``) and the
rate control that re-targets the count with the real coder (``compress/image/rate.py``)."""
from __future__ import annotations

import numpy as np
import torch

from compress.image.gsi import encode
from compress.image.model import ImageGaussians
from compress.image.quant import BitDepths, attribute_names, make_spec, quantize
from compress.image.rate import count_for_budget
from compress.image.rate_term import (
    bits_per_value,
    continuous_indices,
    estimate_bits,
    histograms,
    rate_bits,
)


def _params(n=400, w=64, h=48, c=3, seed=0):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([w, h], dtype=torch.float64)
    log_scales = (torch.randn(n, 2, generator=g, dtype=torch.float64) * 0.4 + 0.7)
    rotations = torch.rand(n, generator=g, dtype=torch.float64) * 3.0
    colors = torch.rand(n, c, generator=g, dtype=torch.float64)
    spec = make_spec(means, torch.exp(log_scales), colors, w, h, BitDepths(), rotations)
    return spec, means, log_scales, rotations, colors


def test_continuous_indices_round_to_the_file_indices():
    spec, means, ls, rot, col = _params()
    idx = continuous_indices(spec, ls, rot, col)
    q = quantize(spec, means.numpy(), torch.exp(ls).numpy(), rot.numpy(), col.numpy())
    for name in attribute_names(3):
        assert np.array_equal(torch.round(idx[name]).clamp_min(0).long().numpy(), q[name]), name


def test_rate_gradient_matches_finite_differences():
    spec, _, ls, rot, col = _params(n=60, seed=1)
    probs = histograms(spec, continuous_indices(spec, ls, rot, col))  # statistics held fixed, as in a step

    def f(a, b, c):
        return rate_bits(continuous_indices(spec, a, b, c), probs)

    args = [x.clone().requires_grad_(True) for x in (ls, rot, col)]
    f(*args).backward()
    eps = 1e-6
    for k, x in enumerate((ls, rot, col)):
        flat = x.reshape(-1)
        for i in range(0, flat.numel(), max(1, flat.numel() // 25)):
            up, dn = [y.clone() for y in (ls, rot, col)], [y.clone() for y in (ls, rot, col)]
            up[k].reshape(-1)[i] += eps
            dn[k].reshape(-1)[i] -= eps
            fd = (float(f(*up)) - float(f(*dn))) / (2 * eps)
            ad = float(args[k].grad.reshape(-1)[i])
            assert abs(fd - ad) <= 1e-5 * max(1.0, abs(fd)), (k, i, fd, ad)


def test_bits_are_the_blurred_histogram():
    probs = torch.tensor([0.5, 0.25, 0.125, 0.125], dtype=torch.float64)
    at0 = bits_per_value(torch.tensor([0.0], dtype=torch.float64), probs)
    # at an index the kernel's own bin dominates: close to -log2 P(0) blurred with its neighbours
    assert 1.0 < float(at0) < 3.0
    # a common index costs fewer bits than a rare one
    b = bits_per_value(torch.tensor([0.0, 3.0], dtype=torch.float64), probs)
    assert float(b[0]) < float(b[1])


def test_descending_the_rate_term_shrinks_the_real_file():
    """A few gradient steps on the proxy alone make the real context-coded streams smaller."""
    spec, means, ls, rot, col = _params(n=1500, w=96, h=64, seed=2)

    def size(a, b, c) -> int:
        g = ImageGaussians(means.float(), torch.exp(a).float(), b.float(), c.float(), spec.width, spec.height)
        return len(encode(g, spec))

    before = size(ls, rot, col)
    est0 = float(estimate_bits(spec, ls, rot, col))
    params = [x.clone().requires_grad_(True) for x in (ls, rot, col)]
    opt = torch.optim.Adam(params, lr=0.01)
    for _ in range(30):
        opt.zero_grad()
        estimate_bits(spec, *params).backward()
        opt.step()
    after = size(*(p.detach() for p in params))
    assert float(estimate_bits(spec, *(p.detach() for p in params))) < 0.9 * est0
    assert after < 0.9 * before, (before, after)


def test_count_for_budget_uses_the_real_coder():
    spec, means, ls, rot, col = _params(n=500, seed=3)
    g = ImageGaussians(means.float(), torch.exp(ls).float(), rot.float(), col.float(), spec.width, spec.height)
    per = len(encode(g, spec)) / len(g)
    assert 445 <= count_for_budget(g, spec, int(per * 450)) <= 450  # the budget's count at the measured bytes
    assert count_for_budget(g, spec, int(per * 5000)) == 1000  # one growth stage at most doubles
    assert count_for_budget(g, spec, int(per * 5000), max_gaussians=520) == 520
    # a known size stands in for the encode, and a different one changes the answer
    size = len(encode(g, spec))
    assert count_for_budget(g, spec, int(per * 450), size=size) == count_for_budget(g, spec, int(per * 450))
    assert count_for_budget(g, spec, int(per * 450), size=2 * size) < 240


def test_fit_image_default_steps_are_the_benchmarked_ones():
    """``splat fit-image`` without --steps runs FitConfig's steps, which bench/image_rd.py measures."""
    import inspect
    import re

    from compress.image.cli import fit_image_cmd
    from compress.image.fit import FitConfig

    opt = inspect.signature(fit_image_cmd).parameters["steps"].default
    assert opt.default is None  # None -> FitConfig().steps in compress_image
    from compress.image.schedules import DEFAULT_SCHEDULE

    assert re.search(rf"(\d+) \({DEFAULT_SCHEDULE}\)", opt.help).group(1) == str(FitConfig().steps)
    assert inspect.signature(fit_image_cmd).parameters["schedule"].default.default == DEFAULT_SCHEDULE
    bench = (__import__("pathlib").Path(__file__).parents[1] / "bench" / "image_rd.py").read_text()
    # the bench's steps: the schedule's (FitConfig's without --schedule) unless --steps is given
    assert 'ap.add_argument("--steps", type=int, default=None' in bench
    assert "cfg = FitConfig(rate_weight=args.rate_weight)" in bench and "if args.steps is not None:" in bench


def test_fused_rate_matches_the_torch_reference_per_stream():
    """``rate_bits`` (one numba pass with its derivative) against the sum of the plain torch
    ``bits_per_value`` over the streams, value and gradients, including values off the grid."""
    spec, _, ls, rot, col = _params(n=300, seed=4)
    col = col * 1.6 - 0.3  # some colours outside the quantiser's range
    probs = histograms(spec, continuous_indices(spec, ls, rot, col))
    out = []
    for fused in (True, False):
        args = [x.clone().requires_grad_(True) for x in (ls, rot, col)]
        idx = continuous_indices(spec, *args)
        total = rate_bits(idx, probs) if fused else sum(bits_per_value(x, probs[k]).sum() for k, x in idx.items())
        total.backward()
        out.append([total.detach()] + [a.grad for a in args])
    for a, b in zip(*out):
        assert torch.allclose(a, b, rtol=1e-10, atol=1e-10), float((a - b).abs().max())
