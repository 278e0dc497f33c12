"""Our renderer against gsplat's own reference code, on the CPU (runs in every `make test`).

gsplat's projection and SH come from ``gsplat.cuda._torch_impl`` (plain torch in the
installed wheel); its radii and compositing from the rules of its CUDA kernels
(``tests/gsplat_reference.py``). Both alpha clamps are covered: 0.999 (gsplat 1.4-1.5) and
0.99 (gsplat >= 1.6). The CUDA backend's argument conversion runs here against the same code.
"""
from __future__ import annotations

import pytest
import torch

import gsplat_reference as gref
from render import rasterize
from render.cpu.projection import project_gaussians_fused
from render.gsplat_backend import project_gsplat, sh_colors_gsplat
from render.gsplat_compat import gsplat_max_alpha, installed_gsplat_version, parse_version, per_axis_radii
from render.projection import project_gaussians
from render.rasterize import resolve_max_alpha
from render.sh import sh_colors
from splat import GaussianScene
from splat.camera import stack_cameras

W, H = 48, 36
pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _scene(seed: int, n: int = 150, sh_degree: int = 3, opaque: bool = False) -> GaussianScene:
    s = GaussianScene.random(n, sh_degree=sh_degree, seed=seed, extent=1.0, scale_range=(0.02, 0.25),
                             dtype=torch.float64)
    if opaque:  # many alphas above 0.99, where the two clamps differ
        s = s.replace(opacity_logits=s.opacity_logits.abs() + 6.0)
    return s


def _cams(seed: int, n: int = 2):
    return stack_cameras(gref.random_cameras(n, W, H, seed), dtype=torch.float64), gref.random_cameras(n, W, H, seed)


@pytest.mark.parametrize("seed,antialiased", [(0, False), (1, True), (2, False)])
def test_projection_matches_gsplat(seed, antialiased):
    """means2d, conics, depths, compensation and radii against _torch_impl + the kernel's radii rule."""
    s = _scene(seed)
    (vm, Ks), _ = _cams(seed, 3)
    ours = project_gaussians(s.means, s.quats, s.scales, s.opacities, vm, Ks, W, H, antialiased=antialiased)
    ref = gref.project(s.means, s.quats, s.scales, s.opacities, vm, Ks, W, H, antialiased=antialiased)
    vis = ours.radii[..., 0] > 0
    assert int(vis.sum()) > 50
    assert torch.equal(ours.radii, ref["radii"])
    # gsplat's torch radii (3.33 sigma, no opacity culling) bound the tight ones
    assert bool((ours.radii <= ref["torch_radii"]).all()) and bool((ref["torch_radii"][vis] > 0).all())
    torch.testing.assert_close(ours.depths, ref["depths"], rtol=1e-12, atol=1e-12)
    for name in ("means2d", "conics"):
        torch.testing.assert_close(getattr(ours, name)[vis], ref[name][vis], rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(ours.opacities[vis], ref["opacities"][vis], rtol=1e-12, atol=1e-12)
    if not antialiased:
        fused = project_gaussians_fused(s.means, s.quats, s.scales, s.opacities, vm, Ks, W, H)
        assert torch.equal(fused.radii, ref["radii"])
        torch.testing.assert_close(fused.conics[vis], ref["conics"][vis], rtol=1e-10, atol=1e-10)


def test_projection_gradients_match_gsplat():
    """d/d(means, quats, scales) of a random functional of means2d, conics, depths (torch and fused numba)."""
    s = _scene(3)
    (vm, Ks), _ = _cams(3, 2)
    ref = gref.project(s.means, s.quats, s.scales, s.opacities, vm, Ks, W, H)
    vis = (ref["radii"] > 0).all(-1)
    g = torch.Generator().manual_seed(0)
    weights = [torch.randn(t.shape, generator=g, dtype=torch.float64) for t in (ref["means2d"], ref["conics"], ref["depths"])]

    def grads(fn):
        leaves = [t.clone().requires_grad_() for t in (s.means, s.quats, s.scales)]
        m2, con, dep = fn(*leaves)
        m = vis.to(torch.float64)
        loss = (m[..., None] * m2 * weights[0]).sum() + (m[..., None] * con * weights[1]).sum() + (dep * weights[2]).sum()
        return torch.autograd.grad(loss, leaves)

    def theirs(mu, q, sc):
        p = gref.project(mu, q, sc, s.opacities, vm, Ks, W, H)
        return p["means2d"], p["conics"], p["depths"]

    def ours(mu, q, sc):
        p = project_gaussians(mu, q, sc, s.opacities, vm, Ks, W, H)
        return p.means2d, p.conics, p.depths

    def fused(mu, q, sc):
        p = project_gaussians_fused(mu, q, sc, s.opacities, vm, Ks, W, H)
        return p.means2d, p.conics, p.depths

    want = grads(theirs)
    for fn in (ours, fused):
        for a, b in zip(grads(fn), want):
            torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("degree", [0, 1, 2, 3])
def test_sh_colours_match_gsplat(degree):
    """max(SH + 0.5, 0) against _spherical_harmonics, values and gradients (coefficients, means)."""
    s = _scene(4, n=80)
    campos = torch.tensor([[0.5, -2.0, -3.0], [3.0, 0.2, 0.1]], dtype=torch.float64)
    coeffs = s.sh_coeffs.detach()
    out = {}
    for name, fn in (("ours", sh_colors), ("gsplat", gref.sh_colors)):
        c, m = coeffs.clone().requires_grad_(), s.means.detach().clone().requires_grad_()
        rgb = fn(degree, c, m, campos)
        w = torch.randn(rgb.shape, generator=torch.Generator().manual_seed(degree), dtype=torch.float64)
        gc, gm = torch.autograd.grad((rgb * w).sum(), [c, m], allow_unused=True)
        out[name] = (rgb.detach(), gc, torch.zeros_like(m) if gm is None else gm)
    for a, b in zip(out["ours"], out["gsplat"]):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("max_alpha", [0.99, 0.999])
def test_render_matches_gsplat_rules(max_alpha):
    """Images and gradients of the reference and cpu backends against gsplat's pipeline, both clamps."""
    s = _scene(5, opaque=True)
    (vm, Ks), cams = _cams(5, 2)
    bg = torch.tensor([0.2, 0.1, 0.3], dtype=torch.float64)
    gout = torch.randn(2, H, W, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)

    def run(fn):
        sc = s.requires_grad_()
        img, alpha = fn(sc)
        grads = torch.autograd.grad((img * gout).sum() + alpha.sum(), list(sc.fields().values()), allow_unused=True)
        return img.detach(), alpha.detach(), grads

    def theirs(sc):
        return gref.render(sc.means, sc.quats, sc.scales, sc.opacities, sc.sh_coeffs, 3, vm, Ks, W, H, max_alpha, bg)

    def ours(backend):
        def fn(sc):
            out = rasterize(sc, cams, backend=backend, background=bg, max_alpha=max_alpha)
            return out.colors.double(), out.alphas.double()
        return fn

    img_g, alpha_g, grads_g = run(theirs)
    other = gref.render(s.means, s.quats, s.scales, s.opacities, s.sh_coeffs, 3, vm, Ks, W, H,
                        0.999 if max_alpha == 0.99 else 0.99, bg)[0]
    assert float((other - img_g).abs().max()) > 1e-3  # the scene exercises the clamp
    img_r, alpha_r, grads_r = run(ours("reference"))
    torch.testing.assert_close(img_r, img_g, rtol=1e-9, atol=1e-9)
    torch.testing.assert_close(alpha_r, alpha_g, rtol=1e-9, atol=1e-9)
    for a, b in zip(grads_r, grads_g):
        torch.testing.assert_close(a, b, rtol=1e-7, atol=1e-7)
    img_c, alpha_c, grads_c = run(ours("cpu"))  # float32 kernels: within float32 rounding
    assert float((img_c - img_g).abs().max()) < 1e-4 and float((alpha_c - alpha_g).abs().max()) < 1e-4
    for a, b in zip(grads_c, grads_g):
        assert float((a - b).norm() / b.norm()) < 1e-3


@pytest.mark.parametrize("version", [gref.gsplat.__version__, "1.4.0"])
@pytest.mark.parametrize("antialiased", [False, True])
def test_backend_argument_conversion(version, antialiased):
    """project_gsplat / sh_colors_gsplat through gsplat's API (answered on the CPU) equal our torch path."""
    s = _scene(6, n=120)
    (vm, Ks), _ = _cams(6, 2)
    gs = gref.TorchGsplat(version)
    got = project_gsplat(gs, s.means, s.quats, s.scales, s.opacities, vm, Ks, W, H, antialiased=antialiased)
    want = project_gaussians(s.means, s.quats, s.scales, s.opacities, vm, Ks, W, H, antialiased=antialiased)
    assert got.radii.shape == want.radii.shape and got.radii.dtype == torch.int32
    assert got.means2d.dtype == torch.float64  # back in the caller's dtype
    vis = want.radii[..., 0] > 0
    assert torch.equal(got.radii[..., 0] > 0, vis) or version == "1.4.0"
    if version == "1.4.0":  # scalar radii, repeated per axis; no opacity culling but a superset
        assert torch.equal(got.radii[..., 0], got.radii[..., 1]) and bool((got.radii[vis] > 0).all())
    else:
        assert (got.radii - want.radii).abs().max() <= 1  # float32 ceil can step by one
    for name in ("means2d", "conics", "depths", "opacities"):
        a, b = getattr(got, name), getattr(want, name)
        assert float(((a - b).abs() / (b.abs() + 1e-3))[vis].max()) < 1e-4, name
    campos = torch.linalg.inv(vm)[:, :3, 3]
    rgb = sh_colors_gsplat(gs, 3, s.sh_coeffs, s.means, campos, got.radii)
    assert rgb.dtype == torch.float64
    torch.testing.assert_close(rgb[vis], sh_colors(3, s.sh_coeffs, s.means, campos)[vis], rtol=1e-5, atol=1e-5)


def test_version_detection_and_clamp():
    assert parse_version("1.5.3") == (1, 5, 3) and parse_version("1.6.0+pt24cu121") == (1, 6, 0)
    assert parse_version("2.0") == (2, 0, 0) and parse_version("1.6.0rc1") == (1, 6, 0)
    for v, clamp in [("1.4.0", 0.999), ("1.5.3", 0.999), ("1.6.0", 0.99), ("1.7.1+cu124", 0.99), ("2.0.0", 0.99)]:
        assert gsplat_max_alpha(v) == clamp, v
    assert not per_axis_radii("1.4.0") and per_axis_radii("1.5.0")
    with pytest.raises(RuntimeError, match="too old"):
        gsplat_max_alpha("1.3.0")
    with pytest.raises(RuntimeError, match="not installed"):
        gsplat_max_alpha(None)
    with pytest.raises(ValueError):
        parse_version("latest")
    installed = installed_gsplat_version()
    assert installed == gref.gsplat.__version__


def test_resolve_max_alpha(monkeypatch):
    assert resolve_max_alpha("cpu", None) == 0.99 and resolve_max_alpha("reference", 0.999) == 0.999
    for bad in (1.0, 0.0, 1.5, float("nan")):
        with pytest.raises(ValueError, match="max_alpha"):
            resolve_max_alpha("cpu", bad)
    import render.gsplat_compat as compat

    for version, clamp in (("1.5.3", 0.999), ("1.6.0", 0.99)):
        monkeypatch.setattr(compat, "installed_gsplat_version", lambda v=version: v)
        assert resolve_max_alpha("gsplat", None) == clamp
        assert resolve_max_alpha("gsplat", clamp) == clamp
        with pytest.raises(ValueError, match="clamps alpha"):
            resolve_max_alpha("gsplat", 0.99 if clamp == 0.999 else 0.999)


def test_blend_weight_only_stats():
    """return_stats='blend_weight' gives the same blend weights and no hit counts."""
    s = _scene(7, n=100).to(dtype=torch.float32)
    _, cams = _cams(7, 2)
    full = rasterize(s, cams, backend="cpu", return_stats=True)
    blend = rasterize(s, cams, backend="cpu", return_stats="blend_weight")
    ref = rasterize(s, cams, backend="reference", return_stats="blend_weight")
    assert blend.stats.hit_count is None and ref.stats.hit_count is None and full.stats.hit_count is not None
    assert torch.equal(blend.stats.blend_weight, full.stats.blend_weight)
    torch.testing.assert_close(blend.stats.blend_weight.double(), ref.stats.blend_weight, rtol=1e-3, atol=1e-3)
    with pytest.raises(ValueError, match="return_stats"):
        rasterize(s, cams, backend="cpu", return_stats="hits")


@pytest.fixture
def gsplat_on_cpu(monkeypatch):
    """backend='gsplat' on CPU tensors, with gsplat's API answered by tests/gsplat_reference.py."""
    import importlib

    gb = importlib.import_module("render.gsplat_backend")
    rz = importlib.import_module("render.rasterize")  # the module (render.rasterize is also the function)

    gs = gref.TorchGsplat()
    monkeypatch.setattr(rz, "_gsplat_available", lambda device: True)
    monkeypatch.setattr(gb, "gsplat_module", lambda: gs)
    return gs


@pytest.mark.parametrize("mode", ["RGB", "RGB+D", "features"])
def test_gsplat_backend_end_to_end_on_cpu(gsplat_on_cpu, mode):
    """The whole gsplat backend (projection, SH, tiles, channel padding, background, stats by the
    gradient trick, the hit-count fallback) against the cpu backend at gsplat's clamp."""
    s = _scene(8, n=60, opaque=True).to(dtype=torch.float32)
    _, cams = _cams(8, 2)
    g = torch.Generator().manual_seed(2)
    feats = torch.rand(len(s), 7, generator=g) if mode == "features" else None  # 7 channels: padded to 8
    bg = [0.2] * (7 if feats is not None else 3)
    gout = None
    res = {}
    amax = gsplat_max_alpha(installed_gsplat_version())
    for backend in ("gsplat", "cpu"):
        sc = s.requires_grad_()
        f = None if feats is None else feats.clone().requires_grad_()
        out = rasterize(sc, cams, backend=backend, mode=mode, features=f, background=bg, return_stats=True,
                        max_alpha=None if backend == "gsplat" else amax)
        if gout is None:
            gout = torch.randn(out.colors.shape, generator=g)
        leaves = list(sc.fields().values()) + ([f] if f is not None else [])
        grads = torch.autograd.grad((out.colors * gout).sum() + out.alphas.sum(), leaves, allow_unused=True)
        res[backend] = (out, grads)
    (a, ga), (b, gb) = res["gsplat"], res["cpu"]
    assert a.meta["backend"] == "gsplat" and a.colors.shape == b.colors.shape
    assert float((a.colors - b.colors).detach().abs().max()) < 1e-4
    assert float((a.alphas - b.alphas).detach().abs().max()) < 1e-4
    if mode == "RGB+D":
        assert float((a.depths - b.depths).detach().abs().max()) < 1e-3
    assert torch.equal(a.radii, b.radii)
    assert torch.equal(a.stats.hit_count, b.stats.hit_count)
    torch.testing.assert_close(a.stats.blend_weight, b.stats.blend_weight, rtol=1e-4, atol=1e-4)
    for x, y in zip(ga, gb):
        if y is not None and float(y.norm()) > 0:
            assert float((x - y).norm() / y.norm()) < 1e-3
    blend = rasterize(s, cams, backend="gsplat", return_stats="blend_weight")
    assert blend.stats.hit_count is None
    torch.testing.assert_close(blend.stats.blend_weight, a.stats.blend_weight)
