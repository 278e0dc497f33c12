"""Quantisation of 2D Gaussian parameters, shared by the file format and QAT.

Every parameter maps to an integer index; the same grid is used by the encoder and by
quantisation-aware training (straight-through rounding in the forward pass):

* position: q = round(x / pos_step), x in [0, W] (resp. H);
* shape: the matrix logarithm of the covariance, split into its size and anisotropy parts:
  a = (ln s0 + ln s1) / 2, h = (ln s0 - ln s1) / 2, u = h cos(2 theta), v = h sin(2 theta);
  a on [a_lo, a_hi] with ``size_bits``, u and v on [-h_max, h_max] with ``aniso_bits``
  (uniform grids, q = round((x - lo) / step), step = (hi - lo) / (2^bits - 1)). The angle's
  precision thus grows with the anisotropy, and round Gaussians spend no bits on it;
* colour: channels are first decorrelated (YCoCg for the first three when C >= 3), then
  q = round((v - lo_c) / step_c), step_c = (hi_c - lo_c) / (2^bits_c - 1).

Dequantisation is computed in float64 and cast to float32, so decoding is exact and
repeatable. Ranges are fixed when QAT starts and stored in the file header.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import numpy as np
import torch
from torch import Tensor

from compress.uniform import dequantize_uniform, quantize_uniform

# YCoCg (float, orthogonal up to scale): Y = (R + 2G + B)/4, Co = (R - B)/2, Cg = (-R + 2G - B)/4
_FWD = np.array([[0.25, 0.5, 0.25], [0.5, 0.0, -0.5], [-0.25, 0.5, -0.25]])
_INV = np.array([[1.0, 1.0, -1.0], [1.0, 0.0, 1.0], [1.0, -1.0, -1.0]])


RANGE_TAIL = 0.0  # fraction of values left outside each end of a quantiser range (clamping outliers hurts)


@dataclass
class BitDepths:
    """Bits per parameter. ``pos_step`` is the position grid in pixels: 1/8 px costs about 2 more
    bits per Gaussian than 1/4 px (the finest quadtree level is close to uniform), and at equal
    file size (fewer Gaussians) measured +0.1, +0.06 and +0.29 dB on Kodak at 0.25, 0.5, 1.0 bpp."""

    pos_step: float = 0.125
    size_bits: int = 7
    aniso_bits: int = 7
    color_bits: int = 7
    chroma_bits: int = 6


@dataclass
class QuantSpec:
    """A complete quantiser: bit depths plus the value ranges (stored in the file)."""

    width: int
    height: int
    pos_step: float
    size_lo: float
    size_hi: float
    size_bits: int
    aniso_max: float
    aniso_bits: int
    color_transform: str  # "ycocg" or "none"
    color_lo: list[float] = field(default_factory=list)
    color_hi: list[float] = field(default_factory=list)
    color_bits: list[int] = field(default_factory=list)

    def to_json(self) -> dict:
        d = asdict(self)
        d.pop("width")
        d.pop("height")
        return d

    @classmethod
    def from_json(cls, d: dict, width: int, height: int) -> "QuantSpec":
        return cls(width=width, height=height, **d)


def _mix3(colors: Tensor | np.ndarray, mat: np.ndarray):
    """Apply a 3x3 matrix to the first three channels (other channels pass through)."""
    if isinstance(colors, np.ndarray):
        out = colors.astype(np.float64, copy=True)
        out[:, :3] = colors[:, :3].astype(np.float64) @ mat.T
        return out
    m = torch.as_tensor(mat, dtype=colors.dtype, device=colors.device)
    return torch.cat([colors[:, :3] @ m.T, colors[:, 3:]], dim=1)


def color_forward(colors: Tensor | np.ndarray, transform: str):
    """RGB(+extra) -> coded colour space (same shape)."""
    return colors if transform == "none" else _mix3(colors, _FWD)


def color_inverse(coded: Tensor | np.ndarray, transform: str):
    return coded if transform == "none" else _mix3(coded, _INV)


def shape_coords(scales: Tensor | np.ndarray, rotations: Tensor | np.ndarray):
    """(a, u, v) of the log-covariance (see module doc); works on tensors and arrays."""
    lib = torch if isinstance(scales, Tensor) else np
    ls = lib.log(scales)
    a = 0.5 * (ls[:, 0] + ls[:, 1])
    h = 0.5 * (ls[:, 0] - ls[:, 1])
    return a, h * lib.cos(2 * rotations), h * lib.sin(2 * rotations)


def make_spec(means: Tensor, scales: Tensor, colors: Tensor, width: int, height: int, bits: BitDepths,
              rotations: Tensor | None = None) -> QuantSpec:
    """Fix the ranges from current parameters (called once, when QAT starts)."""
    rot = torch.zeros(scales.shape[0], dtype=torch.float64) if rotations is None else rotations.detach().double()
    a, u, v = shape_coords(scales.detach().double(), rot)
    # ranges cover all but the most extreme values (a few outliers would coarsen every step;
    # QAT then clamps them into range)
    lo, hi = _round_range(_quantile(a, RANGE_TAIL), _quantile(a, 1 - RANGE_TAIL))
    hm = _round_range(0.0, _quantile(torch.maximum(u.abs(), v.abs()), 1 - RANGE_TAIL))[1]
    c = colors.shape[1]
    tr = "ycocg" if c >= 3 else "none"
    coded = color_forward(colors.detach().double(), tr)
    clo, chi, cbits = [], [], []
    for ch in range(c):
        x, y = _round_range(_quantile(coded[:, ch], RANGE_TAIL), _quantile(coded[:, ch], 1 - RANGE_TAIL))
        clo.append(x)
        chi.append(y)
        cbits.append(bits.chroma_bits if tr == "ycocg" and ch in (1, 2) else bits.color_bits)
    return QuantSpec(width, height, float(bits.pos_step), lo, hi, int(bits.size_bits), hm, int(bits.aniso_bits), tr,
                     clo, chi, cbits)


def _quantile(x: Tensor, q: float) -> float:
    return float(torch.quantile(x.reshape(-1).double(), q)) if x.numel() > 1 else float(x.reshape(-1)[0])


def _round_range(lo: float, hi: float) -> tuple[float, float]:
    """Round a range outward to 1/64 so the header stays short; never empty."""
    lo = math.floor(lo * 64.0) / 64.0
    hi = math.ceil(hi * 64.0) / 64.0
    if hi <= lo:
        hi = lo + 1.0 / 64.0
    return lo, hi


# ---------------------------------------------------------------------- integer indices


def attribute_names(channels: int) -> list[str]:
    """Integer streams besides the position: shape (sa, su, sv), then colours c0..c{C-1}."""
    return ["sa", "su", "sv"] + [f"c{i}" for i in range(channels)]


def quantize(spec: QuantSpec, means: np.ndarray, scales: np.ndarray, rotations: np.ndarray, colors: np.ndarray
             ) -> dict[str, np.ndarray]:
    """Parameters -> integer indices {"px","py","sa","su","sv","c0".."c{C-1}"} (int64 arrays)."""
    out: dict[str, np.ndarray] = {}
    nx = int(round(spec.width / spec.pos_step))
    ny = int(round(spec.height / spec.pos_step))
    out["px"] = np.clip(np.round(means[:, 0].astype(np.float64) / spec.pos_step), 0, nx).astype(np.int64)
    out["py"] = np.clip(np.round(means[:, 1].astype(np.float64) / spec.pos_step), 0, ny).astype(np.int64)
    a, u, v = shape_coords(scales.astype(np.float64), rotations.astype(np.float64))
    out["sa"] = quantize_uniform(a, spec.size_lo, spec.size_hi, spec.size_bits)
    out["su"] = quantize_uniform(u, -spec.aniso_max, spec.aniso_max, spec.aniso_bits)
    out["sv"] = quantize_uniform(v, -spec.aniso_max, spec.aniso_max, spec.aniso_bits)
    coded = color_forward(colors.astype(np.float64), spec.color_transform)
    for ch in range(colors.shape[1]):
        out[f"c{ch}"] = quantize_uniform(coded[:, ch], spec.color_lo[ch], spec.color_hi[ch], spec.color_bits[ch])
    return out


def dequantize64(spec: QuantSpec, q: dict[str, np.ndarray], channels: int
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer indices -> (means [N,2], scales [N,2], rotations [N], colors [N,C]) in float64."""
    means = np.stack([q["px"], q["py"]], 1).astype(np.float64) * spec.pos_step
    a = dequantize_uniform(q["sa"], spec.size_lo, spec.size_hi, spec.size_bits)
    u = dequantize_uniform(q["su"], -spec.aniso_max, spec.aniso_max, spec.aniso_bits)
    v = dequantize_uniform(q["sv"], -spec.aniso_max, spec.aniso_max, spec.aniso_bits)
    h = np.sqrt(u * u + v * v)
    rot = 0.5 * np.arctan2(v, u)
    scales = np.exp(np.stack([a + h, a - h], 1))
    coded = np.empty((len(a), channels), np.float64)
    for ch in range(channels):
        coded[:, ch] = dequantize_uniform(q[f"c{ch}"], spec.color_lo[ch], spec.color_hi[ch], spec.color_bits[ch])
    return means, scales, rot, color_inverse(coded, spec.color_transform)


def dequantize(spec: QuantSpec, q: dict[str, np.ndarray], channels: int
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Integer indices -> (means [N,2], scales [N,2], rotations [N], colors [N,C]) float32."""
    return tuple(x.astype(np.float32) for x in dequantize64(spec, q, channels))  # type: ignore[return-value]


# ---------------------------------------------------------------------- straight-through (QAT)
def fake_quantize(spec: QuantSpec, means: Tensor, log_scales: Tensor, rotations: Tensor, colors: Tensor
                  ) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Quantise+dequantise on the file's grid in the forward pass; identity gradient
    (straight-through). Takes log-scales; returns (means, scales, rotations, colors)."""
    with torch.no_grad():
        q = quantize(spec, means.double().cpu().numpy(), torch.exp(log_scales.double()).cpu().numpy(),
                     rotations.double().cpu().numpy(), colors.double().cpu().numpy())
        m, s, r, c = (torch.from_numpy(x).to(means.device, means.dtype) for x in dequantize64(spec, q, colors.shape[1]))
        # keep the rotation parameter on its own branch (the angle is defined modulo pi)
        r = r + torch.round((rotations.detach() - r) / math.pi) * math.pi
        ls = torch.log(s)
        # the two axes may come back swapped (h < 0 is stored as h > 0 with theta + pi/2)
        swap = (ls[:, 0] - ls[:, 1]) * (log_scales[:, 0] - log_scales[:, 1]).detach() < 0
        ls = torch.where(swap[:, None], ls.flip(1), ls)
        r = torch.where(swap, r + math.pi / 2, r)
        r = r + torch.round((rotations.detach() - r) / math.pi) * math.pi
    lq = log_scales + (ls - log_scales).detach()
    return (means + (m - means).detach(), torch.exp(lq), rotations + (r - rotations).detach(),
            colors + (c - colors).detach())
