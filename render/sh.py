"""Real spherical harmonics up to degree 3 (the basis INRIA 3DGS and gsplat use)."""
from __future__ import annotations

import torch
from torch import Tensor

_C0 = 0.28209479177387814
_C1 = 0.4886025119029199
_C2 = (1.0925484305920792, -1.0925484305920792, 0.31539156525252005, -1.0925484305920792, 0.5462742152960396)
_C3 = (
    -0.5900435899266435,
    2.890611442640554,
    -0.4570457994644658,
    0.3731763325901154,
    -0.4570457994644658,
    1.445305721320277,
    -0.5900435899266435,
)


def sh_basis(degree: int, dirs: Tensor) -> Tensor:
    """SH basis values [..., (degree+1)^2] at unit directions ``dirs`` [..., 3]."""
    if not 0 <= degree <= 3:
        raise ValueError(f"SH degree must be 0..3, got {degree}")
    x, y, z = dirs.unbind(-1)
    out = [torch.full_like(x, _C0)]
    if degree >= 1:
        out += [-_C1 * y, _C1 * z, -_C1 * x]
    if degree >= 2:
        xx, yy, zz = x * x, y * y, z * z
        out += [
            _C2[0] * x * y,
            _C2[1] * y * z,
            _C2[2] * (2.0 * zz - xx - yy),
            _C2[3] * x * z,
            _C2[4] * (xx - yy),
        ]
    if degree >= 3:
        out += [
            _C3[0] * y * (3.0 * xx - yy),
            _C3[1] * x * y * z,
            _C3[2] * y * (4.0 * zz - xx - yy),
            _C3[3] * z * (2.0 * zz - 3.0 * xx - 3.0 * yy),
            _C3[4] * x * (4.0 * zz - xx - yy),
            _C3[5] * z * (xx - yy),
            _C3[6] * x * (xx - 3.0 * yy),
        ]
    return torch.stack(out, dim=-1)


def eval_sh(degree: int, coeffs: Tensor, dirs: Tensor) -> Tensor:
    """Evaluate SH colour.

    coeffs [N,K,D] with K >= (degree+1)^2; dirs [...,N,3] (any length, normalised here).
    Returns [...,N,D] (no +0.5 offset, no clamping).
    """
    nb = (degree + 1) ** 2
    if coeffs.shape[-2] < nb:
        raise ValueError(f"need {nb} SH coefficients for degree {degree}, got {coeffs.shape[-2]}")
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    basis = sh_basis(degree, d)  # [...,N,nb]
    return (basis[..., None] * coeffs[..., :nb, :]).sum(dim=-2)


SH_CHUNK = 1 << 17
"""Gaussians per block when :func:`sh_colors` runs without autograd (bounds its temporaries)."""


def sh_colors(degree: int, coeffs: Tensor, means: Tensor, campos: Tensor) -> Tensor:
    """View-dependent RGB as gsplat computes it: max(SH(dir) + 0.5, 0).

    coeffs [N,K,3], means [N,3], campos [C,3] -> [C,N,3]. Without autograd, large N is
    evaluated in blocks of :data:`SH_CHUNK` Gaussians into one output (same values), so the
    basis and direction temporaries stay ~20 MB whatever N is.
    """
    if degree == 0:  # view-independent: skip the directions
        rgb = torch.clamp_min(_C0 * coeffs[:, 0, :] + 0.5, 0.0)
        return rgb[None].expand(campos.shape[0], -1, -1)
    n = means.shape[0]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (coeffs, means, campos))
    if n <= SH_CHUNK or grad:
        return _sh_colors(degree, coeffs, means, campos)
    out = means.new_empty(campos.shape[0], n, coeffs.shape[-1])
    for s in range(0, n, SH_CHUNK):
        out[:, s:s + SH_CHUNK] = _sh_colors(degree, coeffs[s:s + SH_CHUNK], means[s:s + SH_CHUNK], campos)
    return out


def sh_colors_split(degree: int, sh_dc: Tensor, sh_rest: Tensor, means: Tensor, campos: Tensor) -> Tensor:
    """:func:`sh_colors` from a scene's ``sh_dc`` [N,3] and ``sh_rest`` [N,K-1,3] without
    concatenating them for all N at once when no gradient is needed (blocks of
    :data:`SH_CHUNK`; only the coefficients ``degree`` uses)."""
    nb = (degree + 1) ** 2
    n = means.shape[0]
    grad = torch.is_grad_enabled() and any(t.requires_grad for t in (sh_dc, sh_rest, means, campos))
    if degree == 0 or (n <= SH_CHUNK and not grad):
        return sh_colors(degree, torch.cat([sh_dc[:, None, :], sh_rest], dim=1), means, campos)
    if sh_rest.shape[1] < nb - 1:
        raise ValueError(f"need {nb} SH coefficients for degree {degree}, got {sh_rest.shape[1] + 1}")
    if grad:
        return _sh_colors_lean(degree, sh_dc, sh_rest[:, : nb - 1], means, campos)
    out = means.new_empty(campos.shape[0], n, sh_dc.shape[-1])
    for s in range(0, n, SH_CHUNK):
        co = torch.cat([sh_dc[s:s + SH_CHUNK, None, :], sh_rest[s:s + SH_CHUNK, : nb - 1]], dim=1)
        out[:, s:s + SH_CHUNK] = _sh_colors(degree, co, means[s:s + SH_CHUNK], campos)
    return out


def _sh_colors_lean(degree: int, sh_dc: Tensor, sh_rest: Tensor, means: Tensor, campos: Tensor) -> Tensor:
    """:func:`sh_colors` for autograd without the concatenated coefficients or the [C,N,K,3]
    products: the DC term plus a batched contraction of the higher bands, so what backward
    keeps is the [C,N,K-1] basis (the parameters themselves are not copied). Same values to
    float rounding, same gradients."""
    dirs = means[None, :, :] - campos[:, None, :]
    d = dirs / dirs.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    rest = torch.einsum("cnb,nbd->cnd", sh_basis(degree, d)[..., 1:], sh_rest)
    return torch.clamp_min(_C0 * sh_dc + rest + 0.5, 0.0)


def _sh_colors(degree: int, coeffs: Tensor, means: Tensor, campos: Tensor) -> Tensor:
    dirs = means[None, :, :] - campos[:, None, :]
    return torch.clamp_min(eval_sh(degree, coeffs, dirs) + 0.5, 0.0)
