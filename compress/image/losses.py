"""Image losses and metrics on [H,W,C] tensors in [0,1]: PSNR, SSIM, L1 + SSIM fitting loss."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

_C1 = 0.01**2
_C2 = 0.03**2


def _window(size: int = 11, sigma: float = 1.5, dtype=torch.float32) -> Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).to(dtype)


def _blur(x: Tensor, win: Tensor) -> Tensor:
    """Separable Gaussian filter, 'valid' padding; x [1,C,H,W]."""
    c = x.shape[1]
    k = win.numel()
    x = F.conv2d(x, win.view(1, 1, 1, k).expand(c, 1, 1, k), groups=c)
    return F.conv2d(x, win.view(1, 1, k, 1).expand(c, 1, k, 1), groups=c)


class SSIM:
    """SSIM (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, data range 1, valid region)
    against a fixed target whose local statistics are computed once. Images smaller than
    the window use a window of their size."""

    def __init__(self, target: Tensor):
        h, w = target.shape[:2]
        size = min(11, h, w)
        size -= (size + 1) % 2  # odd
        self.win = _window(max(1, size), 1.5 * max(1, size) / 11, target.dtype).to(target.device)
        self.y = target.permute(2, 0, 1).unsqueeze(0)
        self.mu_y = _blur(self.y, self.win)
        self.var_y = _blur(self.y * self.y, self.win) - self.mu_y**2

    def __call__(self, img: Tensor) -> Tensor:
        x = img.permute(2, 0, 1).unsqueeze(0)
        mu_x = _blur(x, self.win)
        var_x = _blur(x * x, self.win) - mu_x**2
        cov = _blur(x * self.y, self.win) - mu_x * self.mu_y
        num = (2 * mu_x * self.mu_y + _C1) * (2 * cov + _C2)
        den = (mu_x**2 + self.mu_y**2 + _C1) * (var_x + self.var_y + _C2)
        return (num / den).mean()


def ssim(img: Tensor, target: Tensor) -> float:
    with torch.no_grad():
        return float(SSIM(target.float())(img.float()))


def psnr(img: Tensor, target: Tensor) -> float:
    """PSNR in dB of [0,1] images (img clamped to [0,1] first)."""
    with torch.no_grad():
        mse = float(((img.float().clamp(0, 1) - target.float()) ** 2).mean())
    return float("inf") if mse == 0 else 10.0 * math.log10(1.0 / mse)
