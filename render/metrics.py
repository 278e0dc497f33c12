"""Image quality metrics: PSNR, SSIM (pytorch-msssim) and, when its weights are installed, LPIPS.

Images are float tensors in [0, 1] (``data_range`` otherwise), laid out [H,W,C] or
[B,H,W,C] like the renderer's output (channels last). Every function returns one
value per image ([B] float64 tensor, or a 0-d tensor for a single [H,W,C] image).
Nothing here downloads anything: LPIPS works only when the ``lpips`` package and the
torchvision backbone weights are already on disk.
"""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor


def _batch(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor, bool]:
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {tuple(x.shape)} vs {tuple(y.shape)}")
    if x.ndim == 3:
        return x[None], y[None], True
    if x.ndim != 4:
        raise ValueError(f"expected [H,W,C] or [B,H,W,C] images, got shape {tuple(x.shape)}")
    return x, y, False


def mse(x: Tensor, y: Tensor) -> Tensor:
    """Mean squared error per image."""
    xb, yb, single = _batch(x, y)
    m = ((xb.double() - yb.double()) ** 2).flatten(1).mean(1)
    return m[0] if single else m


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio in dB, 10 log10(range^2 / MSE); +inf for identical images."""
    m = mse(x, y)
    return 10.0 * torch.log10(torch.as_tensor(data_range, dtype=torch.float64) ** 2 / m)


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Structural similarity (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K=(0.01, 0.03)).

    Computed by pytorch-msssim (differentiable). Images need at least 11 pixels per side.
    """
    from pytorch_msssim import ssim as _ssim

    xb, yb, single = _batch(x, y)
    if min(xb.shape[1], xb.shape[2]) < 11:
        raise ValueError(f"SSIM needs images of at least 11x11 pixels, got {xb.shape[2]}x{xb.shape[1]}")
    xc = xb.permute(0, 3, 1, 2).double()
    yc = yb.permute(0, 3, 1, 2).double()
    s = _ssim(xc, yc, data_range=data_range, size_average=False)
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
