"""The CPU backend against the dense float64 reference: images, gradients, stats, edge cases.

Tolerances: the CPU backend computes in float32 and the reference in float64, so the
forward agrees to float32 rounding accumulated over a few dozen blended Gaussians
(asserted max abs error 1e-4 per pixel, typically ~1e-6). Gradients are compared as
norm-relative errors ||g_cpu - g_ref|| / ||g_ref|| <= 1e-3 per scene tensor: individual
entries of Gaussians that barely touch a pixel can be tiny and dominated by float32
rounding, so an elementwise relative bound would test noise, while the norm-relative
bound still catches any wrong term (a missing or mis-signed term gives errors of order 1).
"""
from __future__ import annotations

import numba
import numpy as np
import pytest
import torch

from render import rasterize
from render.cpu import bin_gaussians, depth_order, rasterize_to_pixels
from render.cpu._fastmath import exp_neg
from render.projection import project_gaussians
from splat import Camera, GaussianScene
from splat.camera import stack_cameras
from splat.threads import threads

W, H = 45, 37  # deliberately not multiples of the tile size


def _cams(n: int = 2, width: int = W, height: int = H) -> list[Camera]:
    eyes = [[0.3, -0.5, -3.5], [2.0, -1.0, -2.5], [-2.5, 0.5, -2.0]]
    fovs = [50, 40, 60]
    return [Camera.look_at(eyes[i], [0, 0, 0], width=width, height=height, fov_y_deg=fovs[i]) for i in range(n)]


def _grads(scene: GaussianScene, cams, backend, dtype, *, mode="RGB", background=None, features=None, seed=0):
    """Render, contract the outputs with fixed random weights, backprop; return the output and grads."""
    sc = scene.to(dtype=dtype).requires_grad_()
    feats = None if features is None else features.to(dtype).detach().requires_grad_()
    bg = None if background is None else torch.as_tensor(background, dtype=dtype).requires_grad_()
    out = rasterize(sc, cams, backend=backend, mode=mode, background=bg, features=feats, return_stats=True)
    g = torch.Generator().manual_seed(1000 + seed)
    loss = (out.colors.double() * torch.randn(out.colors.shape, generator=g, dtype=torch.float64)).sum()
    loss = loss + (out.alphas.double() * torch.randn(out.alphas.shape, generator=g, dtype=torch.float64)).sum()
    if out.depths is not None:
        loss = loss + 0.1 * (out.depths.double() * torch.randn(out.depths.shape, generator=g, dtype=torch.float64)).sum()
    loss.backward()
    grads = {k: v.grad for k, v in sc.fields().items()}
    if feats is not None:
        grads["features"] = feats.grad
    if bg is not None:
        grads["background"] = bg.grad
    return out, grads


def _compare(scene, cams, *, seed=0, **kw):
    ref, g_ref = _grads(scene, cams, "reference", torch.float64, seed=seed, **kw)
    cpu, g_cpu = _grads(scene, cams, "cpu", torch.float32, seed=seed, **kw)
    assert cpu.colors.dtype == torch.float32
    assert (cpu.colors.double() - ref.colors).abs().max() <= 1e-4
    assert (cpu.alphas.double() - ref.alphas).abs().max() <= 1e-4
    if ref.depths is not None:
        # expected depth = accumulated depth / alpha: compare where alpha is not tiny
        m = ref.alphas > 0.05
        assert (cpu.depths.double() - ref.depths)[m].abs().max() <= 1e-3
    assert torch.equal(cpu.stats.hit_count, ref.stats.hit_count)
    assert torch.allclose(cpu.stats.blend_weight.double(), ref.stats.blend_weight, rtol=1e-4, atol=1e-4)
    for k, r in g_ref.items():
        c = g_cpu[k]
        if r is None:  # e.g. SH in feature mode: no gradient on either side
            assert c is None, k
            continue
        assert c is not None, k
        if r.norm() == 0:
            assert c.norm() == 0, k
            continue
        rel = float((c.double() - r).norm() / r.norm())
        assert rel <= 1e-3, f"{k}: norm-relative gradient error {rel:.2e}"
    return ref, cpu


@pytest.mark.parametrize("seed,sh_degree", [(0, 0), (1, 1), (2, 2), (3, 3)])
def test_rgb_parity_with_reference(seed, sh_degree):
    scene = GaussianScene.random(150, sh_degree=sh_degree, seed=seed)
    ref, _ = _compare(scene, _cams(2), seed=seed)
    assert ref.alphas.max() > 0.9 and (ref.alphas > 1e-3).float().mean() > 0.3  # the scene is really on screen


@pytest.mark.parametrize("seed", [4, 5])
def test_rgbd_and_background_parity(seed):
    scene = GaussianScene.random(120, sh_degree=1, seed=seed)
    _compare(scene, _cams(3), seed=seed, mode="RGB+D", background=[0.2, 0.7, 0.4])


@pytest.mark.parametrize("D", [1, 3, 7])
def test_feature_channels_parity(D):
    scene = GaussianScene.random(100, seed=10 + D)
    feats = torch.randn(100, D, generator=torch.Generator().manual_seed(D), dtype=torch.float64)
    bg = torch.linspace(-1, 1, D, dtype=torch.float64).tolist()
    _compare(scene, _cams(2), seed=D, mode="features", features=feats, background=bg)


def test_many_feature_channels():
    scene = GaussianScene.random(60, seed=7)
    feats = torch.randn(60, 64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    _compare(scene, _cams(1, 24, 19), mode="features", features=feats)


def test_huge_gaussians_cover_the_screen():
    # a few Gaussians bigger than the view, plus small ones in front of and behind them
    big = GaussianScene.random(4, scale_range=(2.0, 4.0), extent=0.3, seed=3)
    small = GaussianScene.random(60, seed=4)
    scene = GaussianScene.cat([big, small])
    ref, cpu = _compare(scene, _cams(2), seed=3)
    assert ref.alphas.min() > 0.5


def test_behind_camera_and_culled():
    cams = _cams(1)
    scene = GaussianScene.random(80, seed=8)
    behind = scene.replace(means=scene.means + torch.tensor([[0.3, -0.5, -3.5]]) * 2.0)  # beyond the eye, behind it
    off = scene.replace(means=scene.means + torch.tensor([[40.0, 0.0, 0.0]]))  # far outside the view
    out = rasterize(GaussianScene.cat([behind, off]), cams, backend="cpu", return_stats=True)
    assert out.alphas.abs().max() == 0 and out.colors.abs().max() == 0
    assert out.stats.hit_count.sum() == 0
    _compare(GaussianScene.cat([scene, behind, off]), cams)


def test_empty_scene_gives_background_and_zero_grads():
    scene = GaussianScene.empty(sh_degree=1)
    bg = torch.tensor([0.1, 0.2, 0.3], requires_grad=True)
    out = rasterize(scene, _cams(2), backend="cpu", background=bg, return_stats=True)
    assert out.colors.shape == (2, H, W, 3)
    assert torch.allclose(out.colors, bg.detach().expand(2, H, W, 3))
    assert out.alphas.abs().max() == 0
    out.colors.sum().backward()
    assert torch.allclose(bg.grad, torch.full((3,), 2.0 * H * W))


@pytest.mark.parametrize("size", [(1, 1), (17, 3), (16, 16), (33, 70)])
def test_odd_image_sizes(size):
    w, h = size
    scene = GaussianScene.random(40, seed=w + h)
    _compare(scene, _cams(1, w, h), seed=w)


def test_tile_size_does_not_change_the_image():
    scene = GaussianScene.random(200, seed=11)
    cams = _cams(2)
    a = rasterize(scene, cams, backend="cpu", tile_size=16, return_stats=True)
    b = rasterize(scene, cams, backend="cpu", tile_size=8, return_stats=True)
    assert (a.colors - b.colors).abs().max() <= 1e-6
    assert torch.equal(a.stats.hit_count, b.stats.hit_count)


def _projected(scene, cams):
    viewmats, Ks = stack_cameras(cams)
    return project_gaussians(scene.means, scene.quats, scene.scales, scene.opacities, viewmats, Ks, cams[0].width, cams[0].height)


@pytest.mark.parametrize("ts", [8, 16])
def test_tile_assignment_is_exact_and_tighter_than_the_box(ts):
    scene = GaussianScene.random(300, seed=12)
    cams = _cams(1, 96, 80)
    proj = _projected(scene, cams)
    order, camid = depth_order(proj.depths.numpy(), proj.radii.numpy())
    xy = proj.means2d.reshape(-1, 2)[order].numpy().astype(np.float32)
    con = proj.conics.reshape(-1, 3)[order].numpy().astype(np.float32)
    op = proj.opacities.reshape(-1)[order].numpy().astype(np.float32)
    bins = bin_gaussians(xy, con, op, order, camid, 1, 96, 80, ts)
    tiles = {}
    for t in range(len(bins.tile_offsets) - 1):
        for k in bins.tile_entries[bins.tile_offsets[t]:bins.tile_offsets[t + 1]]:
            tiles.setdefault(int(k), set()).add(t)
    # every pixel where a Gaussian reaches alpha >= 1/255 (float64) is in one of its tiles
    ys, xs = np.meshgrid(np.arange(80) + 0.5, np.arange(96) + 0.5, indexing="ij")
    box_pairs = 0
    r = proj.radii.reshape(-1, 2)[order].numpy()
    for k in range(len(order)):
        dx, dy = xy[k, 0] - xs, xy[k, 1] - ys
        a, b, c = con[k].astype(np.float64)
        sig = 0.5 * (a * dx * dx + c * dy * dy) + b * dx * dy
        reach = op[k] * np.exp(-sig) >= 1 / 255
        need = {int((i // ts) * bins.tiles_x + j // ts) for i, j in zip(*np.nonzero(reach))}
        assert need <= tiles.get(k, set())
        # gsplat's tile box from the radii
        x0, x1 = max(int((xy[k, 0] - r[k, 0]) // ts), 0), min(int(np.ceil((xy[k, 0] + r[k, 0]) / ts)), bins.tiles_x)
        y0, y1 = max(int((xy[k, 1] - r[k, 1]) // ts), 0), min(int(np.ceil((xy[k, 1] + r[k, 1]) / ts)), bins.tiles_y)
        box_pairs += max(x1 - x0, 0) * max(y1 - y0, 0)
    assert bins.num_pairs < 0.85 * box_pairs
    # lists are in depth order
    d = proj.depths.reshape(-1)[order].numpy()
    for t in range(len(bins.tile_offsets) - 1):
        ks = bins.tile_entries[bins.tile_offsets[t]:bins.tile_offsets[t + 1]]
        assert np.all(np.diff(d[ks]) >= 0)


def test_backward_is_deterministic_across_thread_counts():
    scene = GaussianScene.random(300, sh_degree=1, seed=13)
    cams = _cams(2)
    results = []
    for n in (1, numba.get_num_threads(), numba.get_num_threads()):
        with threads(n):
            _, g = _grads(scene, cams, "cpu", torch.float32)
        results.append(g)
    for g in results[1:]:
        for k in g:
            assert torch.equal(g[k], results[0][k]), k


def test_direct_contract_gradcheck_style():
    """Gradients of rasterize_to_pixels w.r.t. its own inputs match the reference compositor."""
    from render._torch_impl import composite_reference

    scene = GaussianScene.random(60, seed=14)
    cams = _cams(1)
    proj = _projected(scene, cams)
    cols = torch.rand(1, len(scene), 5, generator=torch.Generator().manual_seed(0))
    bg = torch.rand(1, 5, generator=torch.Generator().manual_seed(1))
    leaves = [proj.means2d.detach(), proj.conics.detach(), cols, proj.opacities.detach(), bg]
    out = {}
    for name in ("cpu", "ref"):
        xs = [t.clone().to(torch.float64 if name == "ref" else torch.float32).requires_grad_() for t in leaves]
        if name == "cpu":
            img, alpha, _ = rasterize_to_pixels(xs[0], xs[1], xs[2], xs[3], proj.depths, proj.radii, W, H, background=xs[4])
        else:
            img, alpha, _, _ = composite_reference(xs[0][0], xs[1][0], xs[2][0], xs[3][0], proj.depths[0].double(), proj.radii[0], W, H, xs[4][0])
            img, alpha = img[None], alpha[None]
        g = torch.Generator().manual_seed(2)
        loss = (img.double() * torch.randn(img.shape, generator=g, dtype=torch.float64)).sum() + (alpha.double() ** 2).sum()
        loss.backward()
        out[name] = [x.grad.double() for x in xs]
    for i, (c, r) in enumerate(zip(out["cpu"], out["ref"])):
        assert float((c - r).norm() / r.norm()) <= 1e-3, i


def test_exp_neg_accuracy():
    from numba import njit

    @njit
    def run(xs, out):
        for i in range(xs.shape[0]):
            out[i] = exp_neg(xs[i])

    xs = np.linspace(0, 90, 200001, dtype=np.float32)
    out = np.empty_like(xs)
    run(xs, out)
    exact = np.exp(-np.maximum(xs.astype(np.float64), 0.0))
    m = xs <= 87
    rel = np.abs(out[m] - exact[m]) / exact[m]
    assert rel.max() < 2.5e-7
    assert out[xs > 87].max() <= np.exp(-86.9)


def test_antialiased_mode_parity():
    scene = GaussianScene.random(100, seed=21)
    cams = _cams(1)
    ref = rasterize(scene.to(dtype=torch.float64), cams, backend="reference", antialiased=True)
    cpu = rasterize(scene, cams, backend="cpu", antialiased=True)
    plain = rasterize(scene, cams, backend="cpu")
    assert (cpu.colors.double() - ref.colors).abs().max() <= 1e-4
    assert (cpu.colors - plain.colors).abs().max() > 1e-3  # the mode really changes the image
