"""Image quality metrics, the project's one definition of each: MSE, PSNR, SSIM and, when
its weights are installed, LPIPS.

Layout: images are float tensors laid out channels last, [H,W,C] or [B,H,W,C] like the
renderer's output, with at most 16 channels; any other layout (e.g. [C,H,W]) is rejected.
Values are in [0, 1] (``data_range`` otherwise). Every metric returns one value per image
([B] tensor, or a 0-d tensor for a single [H,W,C] image). Nothing here downloads anything:
LPIPS works only when the ``lpips`` package and the torchvision backbone weights are on disk.
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor

MAX_CHANNELS = 16
SSIM_WINDOW = 11  # Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K = (0.01, 0.03)
SSIM_SIGMA = 1.5
SSIM_K = (0.01, 0.03)


def _batch(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, bool]:
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim not in (3, 4) or x.shape[-1] > MAX_CHANNELS:
        hint = " (channels first? transpose to [H,W,C])" if x.ndim in (3, 4) and x.shape[-3] <= MAX_CHANNELS else ""
        raise ValueError(f"expected channels-last images [H,W,C] or [B,H,W,C] with C <= {MAX_CHANNELS}, "
                         f"got shape {tuple(x.shape)}{hint}")
    if x.ndim == 3:
        return x[None], y[None], True
    return x, y, False


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per image (float64)."""
    xb, yb, single = _batch(x, y)
    m = ((xb.double() - yb.double()) ** 2).flatten(1).mean(1)
    return m[0] if single else m


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB (float64), 10 log10(range^2 / MSE); +inf for identical
    images. Clamp a render to the range first if it can leave it."""
    m = mse(x, y)
    return 10.0 * torch.log10(torch.as_tensor(data_range, dtype=torch.float64) ** 2 / m)


def ssim_window(height: int, width: int, dtype: torch.dtype = torch.float64) -> Tensor:
    """The 1D Gaussian window [K] (sum 1): 11 taps, sigma 1.5; an image smaller than that gets
    the largest odd window that fits, with sigma scaled alike."""
    size = min(SSIM_WINDOW, height, width)
    size = max(1, size - (size + 1) % 2)
    sigma = SSIM_SIGMA * size / SSIM_WINDOW
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-0.5 * (x / sigma) ** 2)
    return (g / g.sum()).to(dtype)


def blur(x: Tensor, win: Tensor, padding: Literal["valid", "same"] = "valid") -> Tensor:
    """Separable filter of [B,C,H,W] with the 1D window ``win`` in both directions ("same":
    zero padding keeps the size; "valid": only full windows)."""
    c, k = x.shape[1], win.numel()
    pad = (k // 2) if padding == "same" else 0
    x = F.conv2d(x, win.view(1, 1, 1, k).expand(c, 1, 1, k), padding=(0, pad), groups=c)
    return F.conv2d(x, win.view(1, 1, k, 1).expand(c, 1, k, 1), padding=(pad, 0), groups=c)


def ssim_map(x: Tensor, y: Tensor, data_range: float = 1.0, padding: Literal["valid", "same"] = "valid") -> Tensor:
    """Per-pixel SSIM of channels-first batches [B,C,H,W] (differentiable), in their dtype."""
    win = ssim_window(x.shape[-2], x.shape[-1], x.dtype).to(x.device)
    mx, my = blur(x, win, padding), blur(y, win, padding)
    sxx = blur(x * x, win, padding) - mx * mx
    syy = blur(y * y, win, padding) - my * my
    sxy = blur(x * y, win, padding) - mx * my
    c1, c2 = (SSIM_K[0] * data_range) ** 2, (SSIM_K[1] * data_range) ** 2
    return ((2 * mx * my + c1) * (2 * sxy + c2)) / ((mx * mx + my * my + c1) * (sxx + syy + c2))


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0, *, padding: Literal["valid", "same"] = "valid",
         dtype: torch.dtype | None = torch.float64) -> Tensor:
    """Structural similarity per image (Wang et al. 2004; mean of the SSIM map over pixels and
    channels). Differentiable. ``padding``: "valid" (the standard, what pytorch-msssim and
    skimage report) or "same" (zero padding; training losses). ``dtype``: computed in float64
    by default; None keeps the inputs' dtype (faster, for losses)."""
    xb, yb, single = _batch(x, y)
    if dtype is None:
        dtype = torch.promote_types(xb.dtype, yb.dtype)
    s = ssim_map(xb.permute(0, 3, 1, 2).to(dtype), yb.permute(0, 3, 1, 2).to(dtype), data_range, padding)
    s = s.flatten(1).mean(1)
    return s[0] if single else s


def _alexnet_weights() -> Path | None:
    try:
        hub = Path(torch.hub.get_dir()) / "checkpoints"
    except Exception:
        return None
    found = sorted(hub.glob("alexnet-*.pth")) if hub.exists() else []
    return found[0] if found else None


def lpips_available() -> bool:
    """True when LPIPS can run offline: the ``lpips`` package and AlexNet weights are installed."""
    try:
        import lpips  # noqa: F401
    except Exception:
        return False
    return _alexnet_weights() is not None


class LPIPS:
    """LPIPS (AlexNet) distance per image; raises RuntimeError when not installed offline."""

    def __init__(self) -> None:
        if not lpips_available():
            raise RuntimeError(
                "LPIPS is unavailable: install the 'lpips' package and put torchvision's AlexNet "
                f"weights in {Path(torch.hub.get_dir()) / 'checkpoints'} (nothing is downloaded at run time)"
            )
        import lpips

        self._net = lpips.LPIPS(net="alex", verbose=False).eval()

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        xb, yb, single = _batch(x, y)
        with torch.no_grad():
            d = self._net(xb.permute(0, 3, 1, 2).float() * 2 - 1, yb.permute(0, 3, 1, 2).float() * 2 - 1)
        d = d.flatten().double()
        return d[0] if single else d
