"""Structure-guided initialisation of 2D Gaussians for an image.

1. Structure tensor: J = G_rho * (grad I grad I^T) of the image (channels summed), with
   central-difference gradients and a Gaussian window of ``STRUCTURE_SIGMA`` pixels.
2. Density: a blend of the local gradient energy sqrt(trace J) (normalised) and a uniform
   floor (``UNIFORM_SHARE``), capped so that no pixel expects more than one Gaussian.
3. Placement: systematic sampling of ``n x density`` along a Hilbert curve (a pixel is
   picked each time the running sum passes an integer), so the Gaussians land where the
   density asks, evenly spread (no clumps, no holes: the curve keeps neighbours together),
   and ``n`` of them (a remainder of one is dropped at random or topped up by density).
4. Shapes: the area a Gaussian owns is 1 / (n x density) pixels; the standard deviation
   is ``SIZE_FACTOR`` x sqrt(area), stretched along the local edge (the eigenvector of J's
   smaller eigenvalue) by up to ``MAX_ELONGATION`` with the coherence
   ((l1 - l2) / (l1 + l2))^2, at the same area.
5. Colours (``sum`` rule): the least-squares colours over the Gaussians' footprints,
   min_c ||W c - target||^2 with W the [pixels x N] weight matrix of the renderer, solved by
   conjugate gradients on the normal equations (CGLS); W c is a render and W^T r the
   colour gradient of the renderer's backward, so nothing of size pixels x N is stored.

Everything is linear in the pixel count and the Gaussian count.
"""
from __future__ import annotations

import math

import numba as nb
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from render.image2d import render_image

STRUCTURE_SIGMA = 1.5  # px, window of the structure tensor
UNIFORM_SHARE = 0.3  # share of the density spread uniformly (flat areas still need Gaussians)
SIZE_FACTOR = 0.8  # standard deviation / sqrt(area per Gaussian): neighbours overlap enough for flat areas
MAX_ELONGATION = 3.0  # largest ratio of the two standard deviations at full coherence
MIN_SCALE = 0.6  # px
CG_ITERS = 12


def _blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur of [H,W] (replicate padding)."""
    r = max(1, int(math.ceil(3 * sigma)))
    t = torch.arange(-r, r + 1, dtype=x.dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    k = k / k.sum()
    y = F.pad(x[None, None], (r, r, 0, 0), mode="replicate")
    y = F.conv2d(y, k.view(1, 1, 1, -1))
    y = F.pad(y, (0, 0, r, r), mode="replicate")
    return F.conv2d(y, k.view(1, 1, -1, 1))[0, 0]


def structure_tensor(target: Tensor, sigma: float = STRUCTURE_SIGMA) -> tuple[Tensor, Tensor, Tensor]:
    """(Jxx, Jxy, Jyy) [H,W] of target [H,W,C], channels summed, window ``sigma`` px."""
    img = target.float()
    gx = torch.zeros_like(img)
    gy = torch.zeros_like(img)
    gx[:, 1:-1] = 0.5 * (img[:, 2:] - img[:, :-2])
    gy[1:-1, :] = 0.5 * (img[2:, :] - img[:-2, :])
    jxx = (gx * gx).sum(2)
    jxy = (gx * gy).sum(2)
    jyy = (gy * gy).sum(2)
    return _blur(jxx, sigma), _blur(jxy, sigma), _blur(jyy, sigma)


def density_map(jxx: Tensor, jyy: Tensor, n: int, uniform_share: float = UNIFORM_SHARE) -> Tensor:
    """Expected Gaussians per pixel [H,W] (sums to n, each at most 1)."""
    energy = torch.sqrt((jxx + jyy).clamp_min(0.0)).double()
    total = float(energy.sum())
    px = energy.numel()
    d = torch.full_like(energy, 1.0 / px)
    if total > 0:
        d = (1.0 - uniform_share) * energy / total + uniform_share * d
    d = d * n
    for _ in range(8):  # cap at one per pixel, spread the excess over the rest
        over = float((d - 1.0).clamp_min(0.0).sum())
        if over <= 1e-9:
            break
        d = d.clamp_max(1.0)
        free = d < 1.0
        room = float(d[free].sum())
        if room <= 0:
            break
        d[free] *= 1.0 + over / room
    return d.clamp_max(1.0)


@nb.njit(cache=True)
def _hilbert_xy(side: int, t: int) -> tuple[int, int]:
    """Point t of the Hilbert curve over a side x side grid (side a power of two)."""
    x = 0
    y = 0
    s = 1
    while s < side:
        rx = 1 & (t // 2)
        ry = 1 & (t ^ rx)
        if ry == 0:
            if rx == 1:
                x = s - 1 - x
                y = s - 1 - y
            x, y = y, x
        x += s * rx
        y += s * ry
        t //= 4
        s *= 2
    return x, y


@nb.njit(cache=True)
def _hilbert_pick(d: np.ndarray, offset: float) -> np.ndarray:
    """Systematic sampling of d [H,W] (values in [0,1]) along a Hilbert curve: a pixel is
    picked each time the running sum (started at ``offset``) passes an integer. Returns the
    flat pixel indices (sum(d) of them, give or take one)."""
    h, w = d.shape
    side = 1
    while side < max(h, w):
        side *= 2
    out = np.empty(int(d.sum()) + 2, np.int64)
    acc = offset
    cnt = 0
    for t in range(side * side):
        x, y = _hilbert_xy(side, t)
        if x < w and y < h:
            acc += d[y, x]
            if acc >= 1.0 and cnt < out.shape[0]:
                out[cnt] = y * w + x
                cnt += 1
                acc -= 1.0
    return out[:cnt]


def place(density: Tensor, n: int, gen: torch.Generator) -> Tensor:
    """n positions [n,2] (px, pixel centres plus a small jitter) distributed as ``density``."""
    h, w = density.shape
    offset = float(torch.rand(1, generator=gen))
    idx = torch.sort(torch.from_numpy(_hilbert_pick(density.double().numpy(), offset))).values
    flat = density.reshape(-1)
    if idx.numel() > n:  # drop a random few (the rounding remainder, spread evenly)
        idx = idx[torch.sort(torch.randperm(idx.numel(), generator=gen)[:n]).values]
    elif idx.numel() < n:  # top up by sampling the density among the unused pixels
        rest = flat.clone()
        rest[idx] = 0.0
        extra = n - idx.numel()
        if float(rest.sum()) <= 0:
            rest = torch.ones_like(rest)
        idx = torch.cat([idx, torch.multinomial(rest.float(), extra, replacement=extra > int((rest > 0).sum()),
                                                generator=gen)])
    xy = torch.stack([(idx % w).float(), (idx // w).float()], 1)
    return xy + 0.5 + 0.5 * (torch.rand(n, 2, generator=gen) - 0.5)


def lookup(img: Tensor, xy: Tensor) -> Tensor:
    """The pixels of img [H,W,...] under positions xy [n,2] (px, clamped to the image): [n,...]."""
    h, w = img.shape[:2]
    x = xy[:, 0].long().clamp(0, w - 1)
    y = xy[:, 1].long().clamp(0, h - 1)
    return img[y, x]


def shapes(xy: Tensor, density: Tensor, jxx: Tensor, jxy: Tensor, jyy: Tensor, max_scale: float
           ) -> tuple[Tensor, Tensor]:
    """(log-scales [n,2], rotations [n]) from the local density and structure tensor."""
    area = 1.0 / lookup(density, xy).float().clamp_min(1e-12)
    s = (SIZE_FACTOR * torch.sqrt(area)).clamp(MIN_SCALE, max_scale)
    a, b, c = lookup(jxx, xy), lookup(jxy, xy), lookup(jyy, xy)
    half_tr = 0.5 * (a + c)
    disc = torch.sqrt((0.5 * (a - c)) ** 2 + b * b)
    l1, l2 = half_tr + disc, (half_tr - disc).clamp_min(0.0)
    coh = ((l1 - l2) / (l1 + l2).clamp_min(1e-12)) ** 2
    r = 1.0 + (MAX_ELONGATION - 1.0) * coh
    # the gradient direction (largest eigenvalue) is at angle phi; the edge runs across it
    phi = 0.5 * torch.atan2(2 * b, a - c)
    rot = phi + math.pi / 2
    along = (s * torch.sqrt(r)).clamp(MIN_SCALE, max_scale)
    across = (s / torch.sqrt(r)).clamp(MIN_SCALE, max_scale)
    return torch.log(torch.stack([along, across], 1)), rot


def solve_colors(target: Tensor, means: Tensor, scales: Tensor, rotations: Tensor, colors: Tensor,
                 iters: int = CG_ITERS) -> Tensor:
    """Least-squares colours [n,C] of the ``sum`` rule for fixed geometry (CGLS from ``colors``)."""
    h, w, _ = target.shape

    def fwd(c: Tensor) -> Tensor:
        return render_image(means, scales, rotations, c, w, h, mode="sum")

    def adj(r: Tensor) -> Tensor:
        c = torch.zeros_like(colors, requires_grad=True)
        with torch.enable_grad():
            img = render_image(means, scales, rotations, c, w, h, mode="sum")
            (g,) = torch.autograd.grad(img, c, r)
        return g

    with torch.no_grad():
        x = colors.clone()
        r = target - fwd(x)
        s = adj(r)
        p = s.clone()
        gamma = (s * s).sum(0)  # per channel: the channels are independent problems
        for _ in range(iters):
            q = fwd(p)
            qq = (q * q).sum((0, 1))
            alpha = torch.where(qq > 0, gamma / qq.clamp_min(1e-30), torch.zeros_like(qq))
            x = x + alpha * p
            r = r - alpha * q
            s = adj(r)
            g_new = (s * s).sum(0)
            beta = torch.where(gamma > 0, g_new / gamma.clamp_min(1e-30), torch.zeros_like(gamma))
            p = s + beta * p
            gamma = g_new
    return x


def structure_init(target: Tensor, n: int, gen: torch.Generator, *, mode: str = "sum",
                   solve: bool = True) -> dict[str, Tensor]:
    """Initial parameters {means [n,2], log_scales [n,2], rotations [n], colors [n,C]} for
    ``n`` Gaussians on target [H,W,C] (see module doc)."""
    h, w, _ = target.shape
    jxx, jxy, jyy = structure_tensor(target)
    dens = density_map(jxx, jyy, n)
    xy = place(dens, n, gen)
    log_s, rot = shapes(xy, dens, jxx, jxy, jyy, 0.25 * max(h, w))
    col = lookup(target, xy).float().clone()
    if mode == "sum":
        scales = torch.exp(log_s)
        # start at the target's brightness (overlapping footprints add up), then solve
        img = render_image(xy, scales, rot, col, w, h, mode="sum")
        col = col * min(1.0, float(target.mean()) / max(float(img.mean()), 1e-6))
        if solve:
            col = solve_colors(target, xy, scales, rot, col)
    return {"means": xy, "log_scales": log_s, "rotations": rot, "colors": col}
