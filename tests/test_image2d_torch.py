"""The banded torch "sum" path of render/image2d (the GPU path) against the float64 reference, on the CPU."""
import math

import pytest
import torch

from render.image2d import conics_from_scale_rotation, rasterize_conics
from render.image2d.torch_sum import rasterize_sum_torch

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _case(n: int, w: int, h: int, c: int, seed: int):
    g = torch.Generator().manual_seed(seed)
    means = torch.rand(n, 2, generator=g, dtype=torch.float64) * torch.tensor([w + 8.0, h + 8.0], dtype=torch.float64) - 4.0
    scales = torch.rand(n, 2, generator=g, dtype=torch.float64) * 4.0 + 0.5
    rot = torch.rand(n, generator=g, dtype=torch.float64) * math.pi
    colors = torch.rand(n, c, generator=g, dtype=torch.float64) * 1.4 - 0.2
    return means, conics_from_scale_rotation(scales, rot), colors


@pytest.mark.parametrize("band_rows,max_elems", [(16, 1 << 24), (5, 700), (1, 100)])
def test_sum_path_matches_reference(band_rows, max_elems):
    """Forward and gradients equal the dense reference, however the image is cut into blocks."""
    w, h, c = 41, 29, 3
    means, conics, colors = _case(90, w, h, c, seed=band_rows)
    gout = torch.randn(h, w, c, dtype=torch.float64, generator=torch.Generator().manual_seed(5))
    res = {}
    for name in ("torch", "reference"):
        xs = [x.clone().requires_grad_() for x in (means, conics, colors)]
        if name == "torch":
            img = rasterize_sum_torch(*xs, w, h, band_rows=band_rows, max_elems=max_elems)
        else:
            img = rasterize_conics(*xs, w, h, mode="sum", backend="reference")
        res[name] = (img.detach(), torch.autograd.grad((img * gout).sum(), xs))
    (img_t, g_t), (img_r, g_r) = res["torch"], res["reference"]
    assert float(img_r.abs().max()) > 0.1
    assert torch.allclose(img_t, img_r, atol=1e-12, rtol=0)
    for a, b in zip(g_t, g_r):
        assert torch.allclose(a, b, atol=1e-10, rtol=1e-10)


def test_float32_path_close_to_reference_and_auto_routing():
    """float32 (the GPU dtype) stays within float32 rounding; backend='torch' refuses topk."""
    w, h = 33, 20
    means, conics, colors = _case(50, w, h, 2, seed=9)
    ref = rasterize_conics(means, conics, colors, w, h, mode="sum", backend="reference")
    out = rasterize_conics(means.float(), conics.float(), colors.float(), w, h, mode="sum", backend="torch")
    assert out.dtype == torch.float32
    assert float((out.double() - ref).abs().max()) < 1e-5
    with pytest.raises(ValueError, match="sum"):
        rasterize_conics(means, conics, colors, w, h, mode="topk", backend="torch")


def test_degenerate_conic_reaches_every_band():
    """A conic that is not positive definite has no bounded ellipse: it must not be dropped."""
    means = torch.tensor([[5.0, 2.0]], dtype=torch.float64)
    conics = torch.tensor([[0.5, 0.0, 0.0]], dtype=torch.float64)  # constant along y
    colors = torch.ones(1, 1, dtype=torch.float64)
    ref = rasterize_conics(means, conics, colors, 9, 40, mode="sum", backend="reference")
    out = rasterize_sum_torch(means, conics, colors, 9, 40, band_rows=4)
    assert float(ref[-1].abs().max()) > 0.5 and torch.allclose(out, ref)
