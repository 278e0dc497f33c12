"""The SUM kernels visit only each row's span of a Gaussian's ellipse: no counted pixel may
fall outside it, and very elongated, rotated Gaussians across tile borders still render and
differentiate like the float64 reference."""
import math

import numpy as np
import pytest
import torch

from render.image2d import conics_from_scale_rotation, rasterize_conics
from render.image2d.kernels import SIGMA_MAX, _box, _row_span, _span_setup


def _elongated(n, w, h, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g, dtype=dtype) * torch.tensor([w + 20.0, h + 20.0], dtype=dtype) - 10.0
    long = torch.exp(torch.rand(n, generator=g, dtype=dtype) * 3.5 + 0.5)  # 1.6 .. 55 px
    short = torch.exp(torch.rand(n, generator=g, dtype=dtype) * 1.6 - 1.2)  # 0.3 .. 1.5 px
    scales = torch.stack([long, short], 1)
    rot = torch.rand(n, generator=g, dtype=dtype) * 2 * math.pi
    colors = torch.rand(n, 3, generator=g, dtype=dtype) * 1.4 - 0.2
    return means, scales, rot, colors


def test_no_counted_pixel_lies_outside_the_row_span():
    """Every pixel of a Gaussian's box whose float32 sigma the kernels count (<= SIGMA_MAX)
    lies inside the row span, for round, elongated and near-degenerate Gaussians."""
    rng = np.random.default_rng(5)
    smax = np.float32(SIGMA_MAX)
    checked = 0
    for trial in range(1500):
        ls = rng.uniform(-1.2, 5.5, 2)
        if trial % 3 == 0:
            ls[1] = ls[0] - rng.uniform(4.0, 6.0)  # anisotropy up to ~400:1
        s = torch.tensor(np.exp(ls), dtype=torch.float32)[None]
        r = torch.tensor([rng.uniform(0, 2 * math.pi)], dtype=torch.float32)
        q = conics_from_scale_rotation(s, r)[0].numpy().astype(np.float32)
        mx, my = (np.float32(v) for v in rng.uniform(-5.0, 69.0, 2))
        lx, hx, ly, hy = _box(mx, my, q[0], q[1], q[2], 0, 64, 0, 64)
        a64, boa, det, thr = _span_setup(q[0], q[1], q[2])
        a, b, c = q[0] * np.float32(0.5), q[1], q[2] * np.float32(0.5)
        for py in range(ly, hy + 1):
            dy = np.float32(py + 0.5) - my
            rl, rh = _row_span(mx, dy, a64, boa, det, thr, lx, hx)
            assert lx <= rl and rh <= hx or rl > rh
            dx = np.arange(lx, hx + 1, dtype=np.float32) + np.float32(0.5) - mx
            sg = a * dx * dx + c * dy * dy + b * dx * dy
            counted = np.nonzero((sg <= smax) & (sg >= 0))[0] + lx
            checked += counted.size
            assert np.all((counted >= rl) & (counted <= rh)), (trial, py, counted, rl, rh)
    assert checked > 10_000


def test_pixels_on_the_ellipse_boundary_stay_in_the_span():
    """Pixel centres exactly on the 1/255 contour (where float32 rounding decides whether
    they count): conics chosen so that sigma = SIGMA_MAX at an integer offset, give or take
    a few ulps."""
    smax = np.float32(SIGMA_MAX)
    misses = 0
    for k in range(1, 120):
        base = np.float32(2.0 * SIGMA_MAX / (k * k))
        for u in range(-3, 4):
            a_full = base
            for _ in range(abs(u)):
                a_full = np.nextafter(a_full, np.float32(np.inf if u > 0 else 0.0), dtype=np.float32)
            for c_full, b in ((np.float32(1.0), np.float32(0.0)), (a_full * np.float32(0.25), np.float32(0.0))):
                mx, my = np.float32(200.5), np.float32(100.5)
                lx, hx, ly, hy = _box(mx, my, a_full, b, c_full, 0, 512, 0, 512)
                a64, boa, det, thr = _span_setup(a_full, b, c_full)
                dy = np.float32(100.5) - my
                rl, rh = _row_span(mx, dy, a64, boa, det, thr, lx, hx)
                dx = np.arange(lx, hx + 1, dtype=np.float32) + np.float32(0.5) - mx
                sg = a_full * np.float32(0.5) * dx * dx + c_full * np.float32(0.5) * dy * dy + b * dx * dy
                counted = np.nonzero(sg <= smax)[0] + lx
                misses += int(np.sum((counted < rl) | (counted > rh)))
    assert misses == 0


@pytest.mark.parametrize("c", [3, 1])
def test_elongated_rotated_gaussians_across_tile_borders_match_reference(c):
    w, h = 70, 41  # 3x2 tiles of 32 pixels, the last ones partial
    means, scales, rot, colors = _elongated(80, w, h, seed=11 + c)
    colors = colors[:, :c].contiguous()
    conics = conics_from_scale_rotation(scales, rot)
    gout = torch.randn(h, w, c, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    res = {}
    for backend in ("cpu", "reference"):
        m, q, col = (x.clone().requires_grad_(True) for x in (means, conics, colors))
        img = rasterize_conics(m, q, col, w, h, mode="sum", backend=backend)
        res[backend] = (img.detach(), torch.autograd.grad((img * gout).sum(), [m, q, col]))
    (img_c, g_c), (img_r, g_r) = res["cpu"], res["reference"]
    assert float(img_r.abs().max()) > 0.5
    # float32 sigma of thin, rotated Gaussians: a little more rounding than round ones
    assert torch.allclose(img_c, img_r, atol=3e-4), float((img_c - img_r).abs().max())
    for a, b, name in zip(g_c, g_r, ["means", "conics", "colors"]):
        rel = float((a - b).norm() / b.norm())
        assert rel < 1e-3, f"d/d{name}: relative error {rel:.2e}"
