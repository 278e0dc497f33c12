"""Fused fitting loss a L1 + b RMSE + w (1 - SSIM) with its gradient, in one numba pass (float32).

The fitter's hot path: PyTorch's grouped convolutions and autograd spend about as long on
this loss as the renderer spends on the image. Here the separable 11-tap Gaussian blurs of
x, x^2 and x*y (the target's statistics are precomputed once), the SSIM map, its adjoint
and the three transposed blurs run as row-parallel loops; dL/dx comes back directly.
Same definition as :func:`render.metrics.ssim` (valid region, data range 1), the float64
reference the tests compare against.

The L2 term is the root mean square error sqrt(mean((x - y)^2)), not the MSE: it is on the
scale of L1 (for Gaussian residuals RMSE = 1.25 L1, Laplacian 1.41 L1), so a rate term's
weight (loss per bit per pixel) keeps about the same trade whichever of the two is used.
Its gradient is the MSE's divided by 2 RMSE, i.e. the MSE trade at a slope that follows
the distortion level. Minimising RMSE minimises the MSE (PSNR) for a fixed rate.
"""
from __future__ import annotations

import numba as nb
import numpy as np
import torch
from torch import Tensor

from render.metrics import SSIM_K, blur, ssim_window

# fused multiply-adds in the blurs (one rounding instead of two: about 8% faster, results
# within float32 rounding of the separate multiply and add)

C1 = np.float32(SSIM_K[0] ** 2)
C2 = np.float32(SSIM_K[1] ** 2)


@nb.njit(cache=True, parallel=True, fastmath={"contract"})
def _forward(x, y, mu_y, var_y, win, hx, hxx, hxy, gmu, gxx, gxy, sq):
    """Planar [C,H,W] arrays. Horizontal valid blur of x, x^2, x*y into h* [C,H,Wo] and the
    sum of (x - y)^2 per (channel, row) into sq [C*H]; then per output row the vertical blur,
    SSIM map and its adjoint w.r.t. (mu_x, E[x^2], E[xy]) into g* [C,Ho,Wo]. Returns the
    SSIM sum per (channel, output row) [C*Ho] (float64)."""
    c, h, w = x.shape
    ho, wo = mu_y.shape[1], mu_y.shape[2]
    k = win.shape[0]
    for rr in nb.prange(c * h):
        ch = rr // h
        r = rr % h
        a = hx[ch, r]
        b = hxx[ch, r]
        d = hxy[ch, r]
        xs = x[ch, r]
        ys = y[ch, r]
        for j in range(wo):
            a[j] = 0.0
            b[j] = 0.0
            d[j] = 0.0
        for t in range(k):
            wt = win[t]
            for j in range(wo):
                v = xs[j + t]
                a[j] += wt * v
                b[j] += wt * v * v
                d[j] += wt * v * ys[j + t]
        e2 = np.float32(0.0)
        for j in range(w):
            e = xs[j] - ys[j]
            e2 += e * e
        sq[rr] = e2
    rows = np.empty(c * ho, np.float64)  # every row written (np.zeros: a parallel region of its own)
    for rr in nb.prange(c * ho):
        ch = rr // ho
        r = rr % ho
        mx = np.zeros(wo, np.float32)
        exx = np.zeros(wo, np.float32)
        exy = np.zeros(wo, np.float32)
        for t in range(k):
            wt = win[t]
            pa = hx[ch, r + t]
            pb = hxx[ch, r + t]
            pd = hxy[ch, r + t]
            for j in range(wo):
                mx[j] += wt * pa[j]
                exx[j] += wt * pb[j]
                exy[j] += wt * pd[j]
        my = mu_y[ch, r]
        vy = var_y[ch, r]
        o1 = gmu[ch, r]
        o2 = gxx[ch, r]
        o3 = gxy[ch, r]
        acc = np.float32(0.0)
        for j in range(wo):
            m = mx[j]
            cov = exy[j] - m * my[j]
            vx = exx[j] - m * m
            a1 = np.float32(2.0) * m * my[j] + C1
            a2 = np.float32(2.0) * cov + C2
            b1 = m * m + my[j] * my[j] + C1
            b2 = vx + vy[j] + C2
            inv = np.float32(1.0) / (b1 * b2)
            s = a1 * a2 * inv
            acc += s
            d_a1 = a2 * inv
            d_a2 = a1 * inv
            d_b1 = -s / b1
            d_b2 = -s / b2
            # cov = exy - mx my, vx = exx - mx^2
            o1[j] = np.float32(2.0) * (my[j] * (d_a1 - d_a2) + m * (d_b1 - d_b2))
            o2[j] = d_b2
            o3[j] = np.float32(2.0) * d_a2
        rows[rr] = acc
    return rows


@nb.njit(cache=True, parallel=True, fastmath={"contract"})
def _backward(x, y, gmu, gxx, gxy, win, l1_scale, l2_scale, ssim_scale, grad):
    """Transposed vertical then horizontal blur of the adjoints, the chain to x and the L1
    and L2 terms (l2_scale (x - y)); grad [C,H,W]. Returns sum |x - y| per (channel, row) [C*H]."""
    c, h, w = x.shape
    ho, wo = gmu.shape[1], gmu.shape[2]
    k = win.shape[0]
    rows = np.empty(c * h, np.float64)  # every row written (np.zeros: a parallel region of its own)
    for rr in nb.prange(c * h):
        ch = rr // h
        r = rr % h
        va = np.zeros(wo, np.float32)
        vb = np.zeros(wo, np.float32)
        vd = np.zeros(wo, np.float32)
        for t in range(max(0, r - ho + 1), min(k - 1, r) + 1):
            wt = win[t]
            pa = gmu[ch, r - t]
            pb = gxx[ch, r - t]
            pd = gxy[ch, r - t]
            for j in range(wo):
                va[j] += wt * pa[j]
                vb[j] += wt * pb[j]
                vd[j] += wt * pd[j]
        ga = np.zeros(w, np.float32)
        gb = np.zeros(w, np.float32)
        gd = np.zeros(w, np.float32)
        for t in range(k):
            wt = win[t]
            for j in range(wo):
                ga[j + t] += wt * va[j]
                gb[j + t] += wt * vb[j]
                gd[j + t] += wt * vd[j]
        xs = x[ch, r]
        ys = y[ch, r]
        out = grad[ch, r]
        acc = np.float32(0.0)
        for i in range(w):
            xv = xs[i]
            yv = ys[i]
            diff = xv - yv
            acc += abs(diff)
            sg = np.float32(1.0) if diff > 0 else (np.float32(-1.0) if diff < 0 else np.float32(0.0))
            out[i] = l1_scale * sg + l2_scale * diff - ssim_scale * (ga[i] + np.float32(2.0) * xv * gb[i] + yv * gd[i])
        rows[rr] = acc
    return rows


@nb.njit(cache=True, parallel=True)
def _sq(x, y):
    """Sum of (x - y)^2 per (channel, row) [C*H] of planar [C,H,W] arrays (float64)."""
    c, h, w = x.shape
    rows = np.empty(c * h, np.float64)
    for rr in nb.prange(c * h):
        ch = rr // h
        r = rr % h
        xs = x[ch, r]
        ys = y[ch, r]
        acc = np.float32(0.0)
        for i in range(w):
            e = xs[i] - ys[i]
            acc += e * e
        rows[rr] = acc
    return rows


@nb.njit(cache=True, parallel=True, fastmath={"contract"})
def _l1(x, y, l1_scale, l2_scale, grad):
    """The pixel terms alone: grad [C,H,W] = l1_scale sign(x - y) + l2_scale (x - y); returns
    sum |x - y| per (channel, row)."""
    c, h, w = x.shape
    rows = np.empty(c * h, np.float64)  # every row written (np.zeros: a parallel region of its own)
    for rr in nb.prange(c * h):
        ch = rr // h
        r = rr % h
        xs = x[ch, r]
        ys = y[ch, r]
        out = grad[ch, r]
        acc = np.float32(0.0)
        for i in range(w):
            diff = xs[i] - ys[i]
            acc += abs(diff)
            sg = l1_scale if diff > 0 else (-l1_scale if diff < 0 else np.float32(0.0))
            out[i] = sg + l2_scale * diff
        rows[rr] = acc
    return rows


class FusedLoss:
    """``l1_weight`` L1 + ``l2_weight`` RMSE + ``ssim_weight`` (1 - SSIM) against a fixed
    target [H,W,C] (float32 in [0,1]); L1 and RMSE are means over every value.

    ``loss, grad = FusedLoss(target, 0.1)(img)`` with img [H,W,C]; grad = dloss/dimg [H,W,C]
    (float32, numpy). ``loss_tensor(img)`` wraps it as a differentiable torch scalar.
    ``set_weights`` changes the weights (the target's statistics are kept)."""

    def __init__(self, target: Tensor, ssim_weight: float = 0.1, l1_weight: float = 1.0, l2_weight: float = 0.0):
        y = target.float().permute(2, 0, 1)[None]
        win = ssim_window(y.shape[2], y.shape[3], torch.float32)  # the metric's window and statistics
        mu_y = blur(y, win)
        self.win = win.numpy()
        self.y = np.ascontiguousarray(y[0].numpy())
        self.mu_y = np.ascontiguousarray(mu_y[0].numpy())
        self.var_y = np.ascontiguousarray((blur(y * y, win) - mu_y**2)[0].numpy())
        self.set_weights(l1_weight, l2_weight, ssim_weight)
        c, h, w = self.y.shape
        ho, wo = self.mu_y.shape[1:]
        f = np.float32
        self._h = [np.empty((c, h, wo), f) for _ in range(3)]
        self._g = [np.empty((c, ho, wo), f) for _ in range(3)]
        self._sq = np.empty(c * h, f)

    def set_weights(self, l1_weight: float, l2_weight: float, ssim_weight: float) -> None:
        if min(l1_weight, l2_weight, ssim_weight) < 0:
            raise ValueError(f"loss weights must be >= 0 (got L1 {l1_weight}, L2 {l2_weight}, SSIM {ssim_weight})")
        self.l1, self.l2, self.w = float(l1_weight), float(l2_weight), float(ssim_weight)

    def _l2_scale(self, sq_sum: float, n: int) -> tuple[float, np.float32]:
        """(l2_weight RMSE, its gradient factor l2_weight / (n RMSE); 0 where RMSE is 0)."""
        rmse = (max(sq_sum, 0.0) / n) ** 0.5
        return self.l2 * rmse, np.float32(self.l2 / (n * rmse) if rmse > 0 else 0.0)

    def __call__(self, img: np.ndarray) -> tuple[float, np.ndarray]:
        """img [H,W,C] -> (loss, dloss/dimg [H,W,C] float32)."""
        x = np.ascontiguousarray(np.asarray(img, dtype=np.float32).transpose(2, 0, 1))
        n = x.size
        if self.w == 0.0:  # pixel terms only: no SSIM pass
            grad = np.empty_like(x)
            l2_val, l2_scale = self._l2_scale(float(_sq(x, self.y).sum()), n) if self.l2 else (0.0, np.float32(0.0))
            l1_sum = float(_l1(x, self.y, np.float32(self.l1 / n), l2_scale, grad).sum())
            return self.l1 * l1_sum / n + l2_val, grad.transpose(1, 2, 0)
        c, h, w = x.shape
        ho, wo = self.mu_y.shape[1:]
        ssim_sum = float(_forward(x, self.y, self.mu_y, self.var_y, self.win, *self._h, *self._g, self._sq).sum())
        l2_val, l2_scale = self._l2_scale(float(self._sq.sum(dtype=np.float64)), n)
        n_s = ho * wo * c
        grad = np.empty_like(x)
        l1_sum = float(_backward(x, self.y, *self._g, self.win, np.float32(self.l1 / n), l2_scale,
                                 np.float32(self.w / n_s), grad).sum())
        loss = self.l1 * l1_sum / n + l2_val + self.w * (1.0 - ssim_sum / n_s)
        return loss, grad.transpose(1, 2, 0)

    def loss_tensor(self, img: Tensor) -> Tensor:
        return _FusedFn.apply(img, self)


class _FusedFn(torch.autograd.Function):
    @staticmethod
    def forward(ctx, img, fl):
        loss, grad = fl(img.detach().cpu().numpy())
        ctx.save_for_backward(torch.from_numpy(grad).to(img.device))
        return torch.tensor(loss, dtype=img.dtype, device=img.device)

    @staticmethod
    def backward(ctx, g):
        (grad,) = ctx.saved_tensors
        # the loss is usually the root (g = 1): pass the gradient on as it is, keeping
        # its planar layout (the renderer's backward reads it without a copy)
        return (grad if g.numel() == 1 and float(g) == 1.0 else grad * g), None
