"""The fused numba projection against the torch projection (values and gradients)."""
import torch

from render.cpu.projection import project_gaussians_fused
from render.projection import project_gaussians
from splat import Camera, GaussianScene
from splat.camera import stack_cameras


def _setup(seed=0, n=400):
    scene = GaussianScene.random(n, seed=seed, extent=2.0, scale_range=(0.01, 0.5), dtype=torch.float64)
    # some Gaussians behind or beside the cameras, some at the edge of the clamped frustum
    off = Camera.look_at([-0.5, 0.2, -2.0], [0, 0, 0], width=61, height=47, fov_y_deg=55)
    off = Camera(off.fx * 1.2, off.fy * 0.9, 20.0, 30.5, 61, 47, off.world_to_camera)  # skewed principal point, fx != fy
    cams = [
        Camera.look_at([0.3, -0.5, -3.0], [0, 0, 0], width=61, height=47, fov_y_deg=60),
        Camera.look_at([1.0, -1.0, -1.5], [0, 0, 0.5], width=61, height=47, fov_y_deg=70),
        off,
    ]
    viewmats, Ks = stack_cameras(cams, dtype=torch.float64)
    return scene, viewmats, Ks


def test_fused_projection_matches_torch():
    for seed in range(3):
        scene, viewmats, Ks = _setup(seed)
        outs, grads = [], []
        for fn in (project_gaussians, project_gaussians_fused):
            leaves = [scene.means.clone().requires_grad_(), scene.quats.clone().requires_grad_(),
                      scene.scales.detach().clone().requires_grad_()]
            p = fn(leaves[0], leaves[1], leaves[2], scene.opacities, viewmats, Ks, 61, 47)
            g = torch.Generator().manual_seed(seed)
            vis = (p.radii > 0).all(-1)
            w = lambda t: torch.randn(t.shape, generator=g, dtype=torch.float64)  # noqa: E731
            loss = (p.means2d * w(p.means2d))[vis].sum() + (p.conics * w(p.conics) * 10)[vis].sum() + (p.depths * w(p.depths)).sum()
            loss.backward()
            outs.append(p)
            grads.append([x.grad for x in leaves])
        a, b = outs
        assert torch.equal(a.radii, b.radii)
        vis = (a.radii > 0).all(-1)
        assert vis.any() and (~vis).any()
        assert torch.allclose(a.means2d[vis], b.means2d[vis], rtol=1e-10, atol=1e-9)
        assert torch.allclose(a.conics[vis], b.conics[vis], rtol=1e-10, atol=1e-12)
        assert torch.allclose(a.depths, b.depths, rtol=1e-12, atol=1e-12)
        for ga, gb in zip(*grads):
            assert torch.allclose(ga, gb, rtol=1e-8, atol=1e-10), (ga - gb).abs().max()
