"""Tiled fitting of large images: memory bounded by one tile, time linear in the pixel count.

The image is cut into a grid of cores of about ``tile`` px square; each is fitted on its
core plus an apron of ``apron`` px on every side (clipped to the image), in raster order:

* the Gaussians kept from earlier tiles are rendered over the tile's region and added to
  every render of its fit (:class:`~compress.image.fit.FitContext`; exact in the ``sum``
  rule, where a render is a plain sum), so each tile is fitted jointly with its fixed upper
  and left neighbours and the error it sees along those borders is the real one;
* the tile's Gaussians are placed, grown and kept between its core's upper-left corner and
  the region's lower-right one, with standard deviations of at most ``apron / REACH`` px,
  so that none reaches (weight >= 1/255) past the region whose error the fit sees;
* the ones whose centres fall in the core are kept. Those in the lower/right apron are
  dropped: the next tile, which sees the kept ones as context, fills that area;
* one quantiser for every tile and the file: the first tile's, widened (:func:`widen_spec`),
  so each tile's quantisation-aware training runs on the file's own grid;
* budget (``bpp``): the Gaussian count is shared among the tiles by content (half by
  area, half by gradient energy) and re-estimated after each tile from the bytes per
  Gaussian of the tiles encoded so far. The union, sorted by pixel share (importance order),
  is one ordinary ``.gsi``, trimmed to the largest prefix within the budget.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, replace

import torch
from torch import Tensor

from render.image2d import conics_from_scale_rotation, contribution, render_image
from splat.progress import Progress

from .fit import FitConfig, FitContext, fit_gaussians
from .gsi import decode, encode
from .model import ImageGaussians, render_gaussians
from .quant import QuantSpec, _round_range
from .rate import RateResult, bits_per_gaussian, expected_bpp, first_guess, fit_rate, largest_prefix_within, with_coding

TILED_ABOVE = 2048 * 2048  # px: larger images are fitted in tiles by default
DEFAULT_TILE = 1024  # px, side of a core
DEFAULT_APRON = 64  # px, shared border fitted with each tile
REACH = 3.4  # a weight >= 1/255 reaches sqrt(2 ln 255) = 3.33 standard deviations
AREA_SHARE = 0.5  # share of the budget spread by area (the rest by gradient energy)
SIZE_MARGIN = 0.5  # log-size margin added to the first tile's quantiser range, each side
COLOR_MARGIN = 0.1  # fraction of each colour range added on each side
OVERSHOOT = 1.08  # the tiles' counts aim this far over the budget (the final pass trims to it)


def use_tiles(pixels: int, tile: int | None, psnr_target: bool, mode: str) -> int:
    """The core side to fit in tiles with (0: fit whole): ``tile`` if given, else
    ``DEFAULT_TILE`` for images over ``TILED_ABOVE`` pixels fitted to a size or count in the
    ``sum`` rule."""
    if tile is None:
        return DEFAULT_TILE if pixels > TILED_ABOVE and not psnr_target and mode == "sum" else 0
    if tile and psnr_target:
        raise ValueError("tiled fitting takes a bpp or Gaussian-count target, not a PSNR")
    if tile and mode != "sum":
        raise ValueError("tiled fitting needs the sum render rule")
    if tile and tile < 16:
        raise ValueError(f"tile must be 0 (never) or at least 16 px, got {tile}")
    return int(tile)


@dataclass(frozen=True)
class Tile:
    """A core (x0, y0, x1, y1) px and its region: the core plus the apron, inside the image."""

    core: tuple[int, int, int, int]
    region: tuple[int, int, int, int]

    def bounds(self) -> tuple[float, float, float, float]:
        """Where the tile's Gaussians may sit, in region coordinates: from the core's
        upper-left corner (earlier tiles own what is above and left) to the region's end."""
        rx0, ry0, rx1, ry1 = self.region
        return float(self.core[0] - rx0), float(self.core[1] - ry0), float(rx1 - rx0), float(ry1 - ry0)


def tile_grid(width: int, height: int, tile: int = DEFAULT_TILE, apron: int = DEFAULT_APRON) -> list[Tile]:
    """Tiles in raster order: ceil(W / tile) x ceil(H / tile) cores of near-equal size."""
    if tile < 16:
        raise ValueError(f"tile must be at least 16 px, got {tile}")
    if apron < 0:
        raise ValueError(f"apron must be >= 0 px, got {apron}")
    nx, ny = max(1, math.ceil(width / tile)), max(1, math.ceil(height / tile))
    xs = [round(i * width / nx) for i in range(nx + 1)]
    ys = [round(j * height / ny) for j in range(ny + 1)]
    out = []
    for j in range(ny):
        for i in range(nx):
            core = (xs[i], ys[j], xs[i + 1], ys[j + 1])
            region = (max(0, core[0] - apron), max(0, core[1] - apron), min(width, core[2] + apron),
                      min(height, core[3] + apron))
            out.append(Tile(core, region))
    return out


def content_weights(target: Tensor, tiles: list[Tile], area_share: float = AREA_SHARE) -> list[float]:
    """Each tile's share of the budget (sums to 1): ``area_share`` by core area, the rest by
    the core's summed gradient magnitude (one tile's pixels in memory at a time)."""
    area, energy = [], []
    for t in tiles:
        x0, y0, x1, y1 = t.core
        g = target[y0:y1, x0:x1].float().mean(dim=2)
        e = 0.0
        if g.shape[1] > 1:
            e += float((g[:, 1:] - g[:, :-1]).abs().sum())
        if g.shape[0] > 1:
            e += float((g[1:] - g[:-1]).abs().sum())
        area.append(float((x1 - x0) * (y1 - y0)))
        energy.append(e)
    ta, te = sum(area), sum(energy)
    if te <= 0:
        return [a / ta for a in area]
    return [area_share * a / ta + (1 - area_share) * e / te for a, e in zip(area, energy)]


def widen_spec(spec: QuantSpec, max_scale: float) -> QuantSpec:
    """``spec`` with room for the other tiles: the log-size range widened by ``SIZE_MARGIN``
    (within [ln 0.3, ln max_scale]), the anisotropy by a quarter, colours by ``COLOR_MARGIN``."""
    lo = max(math.log(0.3), spec.size_lo - SIZE_MARGIN)
    hi = max(lo + 1 / 64, min(math.log(max_scale) + 1 / 64, spec.size_hi + SIZE_MARGIN))
    lo, hi = _round_range(lo, hi)
    clo, chi = [], []
    for a, b in zip(spec.color_lo, spec.color_hi):
        m = COLOR_MARGIN * (b - a)
        a, b = _round_range(a - m, b + m)
        clo.append(a)
        chi.append(b)
    return replace(spec, size_lo=lo, size_hi=hi, aniso_max=_round_range(0.0, spec.aniso_max * 1.25)[1],
                   color_lo=clo, color_hi=chi)


def _near(means: Tensor, scales: Tensor, region: tuple[int, int, int, int]) -> Tensor:
    """Indices of the Gaussians whose reach touches ``region``."""
    r = REACH * scales.max(dim=1).values
    x0, y0, x1, y1 = region
    m = means
    ok = (m[:, 0] + r >= x0) & (m[:, 0] - r <= x1) & (m[:, 1] + r >= y0) & (m[:, 1] - r <= y1)
    return torch.nonzero(ok).reshape(-1)


def seam_bands(tiles: list[Tile], width: int, height: int, apron: int
               ) -> list[tuple[tuple[int, int, int, int], tuple[float, float, float, float]]]:
    """One (region, free window) per shared core edge, in global px: the free window holds the
    Gaussians within apron/2 of the edge along the core's length; the region adds ``apron``
    around it (clipped), so everything a free Gaussian reaches is in the fitted region."""
    out = []
    half = apron / 2
    for t in tiles:
        x0, y0, x1, y1 = t.core
        if x1 < width:  # edge with the right neighbour
            free = (x1 - half, float(y0), x1 + half, float(y1))
            out.append((free, ))
        if y1 < height:  # edge with the neighbour below
            free = (float(x0), y1 - half, float(x1), y1 + half)
            out.append((free, ))
    bands = []
    for (free,) in out:
        region = (max(0, int(math.floor(free[0])) - apron), max(0, int(math.floor(free[1])) - apron),
                  min(width, int(math.ceil(free[2])) + apron), min(height, int(math.ceil(free[3])) + apron))
        bands.append((region, free))
    return bands


def tune_config(cfg: FitConfig) -> FitConfig:
    """The seam fine-tuning schedule: a quarter of the steps (``finetune_fraction``), full
    resolution, learning rates at 0.3x."""
    return replace(cfg, steps=max(4, int(cfg.steps * cfg.finetune_fraction)), warmup_end=0.0, coarse_end=0.0,
                   refill_every=0.0, lr_means=cfg.lr_means * 0.3, lr_scales=cfg.lr_scales * 0.3,
                   lr_rotations=cfg.lr_rotations * 0.3, lr_colors=cfg.lr_colors * 0.3)


def refine_seams(params: tuple[Tensor, Tensor, Tensor, Tensor, Tensor], target: Tensor,
                 bands: list[tuple[tuple[int, int, int, int], tuple[float, float, float, float]]], cfg: FitConfig,
                 spec: QuantSpec, max_scale: float, progress: Progress | None = None
                 ) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, int]:
    """Fine-tune the Gaussians along each seam with all others fixed (their render is the
    context), on the file's quantiser: ``params`` = (means, scales, rotations, colors, share)
    in global px, returned updated, with the steps run."""
    m, s, r, col, share = params
    tune = tune_config(cfg)
    steps = 0
    if progress is not None:
        progress.start(f"seams ({len(bands)})", len(bands))
    for region, free in bands:
        rx0, ry0, rx1, ry1 = region
        rw, rh = rx1 - rx0, ry1 - ry0
        origin = torch.tensor([float(rx0), float(ry0)])
        inside = ((m[:, 0] >= free[0]) & (m[:, 0] <= free[2]) & (m[:, 1] >= free[1]) & (m[:, 1] <= free[3]))
        idx = torch.nonzero(inside).reshape(-1)
        if idx.numel() == 0:
            continue
        rest = torch.nonzero(~inside).reshape(-1)
        near = rest[_near(m[rest], s[rest], region)]
        offset = None
        if near.numel():
            with torch.no_grad():
                offset = render_image(m[near] - origin, s[near], r[near], col[near], rw, rh, mode=cfg.mode, k=cfg.k)
        local = replace(spec, width=rw, height=rh)
        init = ImageGaussians(m[idx] - origin, s[idx], r[idx], col[idx], rw, rh, cfg.mode, cfg.k, {}, local)
        bounds = (free[0] - rx0, free[1] - ry0, free[2] - rx0, free[3] - ry0)
        sub = target[ry0:ry1, rx0:rx1].float().contiguous()
        g, _, rep = fit_gaussians(sub, idx.numel(), tune, init=init, spec=local,
                                  context=FitContext(offset=offset, bounds=bounds, max_scale=max_scale))
        steps += rep.steps
        sh = contribution(g.means, conics_from_scale_rotation(g.scales, g.rotations), g.colors,
                          rw, rh, mode=g.mode, k=g.k)
        m = torch.cat([m[rest], g.means + origin])
        s = torch.cat([s[rest], g.scales])
        r = torch.cat([r[rest], g.rotations])
        col = torch.cat([col[rest], g.colors])
        share = torch.cat([share[rest], sh])
        if progress is not None:
            progress.advance(1, f"{len(m):,} Gaussians")
    if progress is not None:
        progress.end()
    return m, s, r, col, share, steps


def psnr_banded(g: ImageGaussians, target: Tensor, band_pixels: int = 1 << 21) -> float:
    """PSNR (dB, peak 1) of ``g``'s render (clamped) against ``target`` [H,W,C], band by band."""
    h, w = int(target.shape[0]), int(target.shape[1])
    rows = max(1, band_pixels // w)
    se = 0.0
    for y in range(0, h, rows):
        b = min(rows, h - y)
        img = render_gaussians(g, crop=(0, y, w, b))
        se += float(((img - target[y:y + b].float()) ** 2).double().sum())
    mse = se / (h * w * int(target.shape[2]))
    return float("inf") if mse <= 0 else 10 * math.log10(1.0 / mse)


def fit_tiled(target: Tensor, *, bpp: float | None = None, gaussians: int | None = None,
              cfg: FitConfig | None = None, tile: int = DEFAULT_TILE, apron: int | None = None,
              refine: bool = True, meta: dict | None = None, progress: Progress | None = None) -> RateResult:
    """Fit ``target`` [H,W,C] (float32 in [0,1]) tile by tile (module doc) to ``bpp`` (real
    file size) or ``gaussians``, in cores of ``tile`` px with an ``apron`` (default: tile / 4,
    16 to ``DEFAULT_APRON`` px); ``refine``: then fine-tune the seams (:func:`refine_seams`).
    ``progress``: one stage per tile, and one for the seams."""
    if (bpp is None) == (gaussians is None):
        raise ValueError("tiled fitting takes exactly one of bpp, gaussians")
    cfg = cfg or FitConfig()
    if cfg.mode != "sum":
        raise ValueError("tiled fitting needs the sum render rule (mode='sum')")
    apron = max(16, min(DEFAULT_APRON, tile // 4)) if apron is None else int(apron)
    if apron < 8:
        raise ValueError(f"apron must be at least 8 px, got {apron}")
    t0 = time.perf_counter()
    h, w, c = (int(v) for v in target.shape)
    tiles = tile_grid(w, h, tile, apron)
    if len(tiles) == 1:  # one tile is a whole fit: rate control's refinement stage lands the size better
        return fit_rate(target, bpp=bpp, gaussians=gaussians, cfg=cfg, meta=meta, progress=progress)
    if bpp is not None:  # the weight and quantiser (rate.coding_for): from the rate
        cfg = with_coding(cfg, bpp) if bpp > 0 else cfg
    else:
        cfg = with_coding(cfg, expected_bpp(gaussians, w * h))
    weights = content_weights(target, tiles)
    max_scale = apron / REACH
    if bpp is not None:
        if not bpp > 0:
            raise ValueError("bpp must be positive")
        budget = int(bpp * w * h / 8)
        px = min(w * h, tile * tile)  # each tile is fitted as an image of about this size
        per_gaussian = bits_per_gaussian(first_guess(bpp, px, cfg.bits.pos_step), px, cfg.bits.pos_step) / 8  # bytes, until measured
    else:
        if gaussians < 1:
            raise ValueError("the Gaussian count must be >= 1")
        budget = 0
        per_gaussian = 1.0
    shared: dict[str, QuantSpec] = {}

    def spec_hook(spec: QuantSpec) -> QuantSpec:
        if "spec" not in shared:
            shared["spec"] = widen_spec(spec, max_scale)
        return replace(shared["spec"], width=spec.width, height=spec.height)

    parts: list[tuple[Tensor, Tensor, Tensor, Tensor, Tensor]] = []
    used_bytes, used_count, steps = 0, 0, 0
    for i, t in enumerate(tiles):
        rx0, ry0, rx1, ry1 = t.region
        rw, rh = rx1 - rx0, ry1 - ry0
        origin = torch.tensor([float(rx0), float(ry0)])
        # this tile's count: its share of what is left, scaled up by the apron it also fills
        rest = sum(weights[i:])
        if bpp is not None:
            left = max(0.0, budget * OVERSHOOT - used_bytes) / per_gaussian
        else:
            left = float(gaussians - used_count)
        n_core = max(1.0, left * weights[i] / rest)
        bx0, by0, bx1, by1 = t.bounds()
        cx0, cy0, cx1, cy1 = t.core
        n_fit = max(1, int(round(n_core * (bx1 - bx0) * (by1 - by0) / ((cx1 - cx0) * (cy1 - cy0)))))
        # the fixed context: kept Gaussians of earlier tiles that reach this region
        offset = None
        if parts:
            m, s, r, col = (torch.cat([p[k] for p in parts]) for k in range(4))
            near = _near(m, s, t.region)
            if near.numel():
                with torch.no_grad():
                    offset = render_image(m[near] - origin, s[near], r[near], col[near], rw, rh, mode=cfg.mode,
                                          k=cfg.k)
            del m, s, r, col
        sub = target[ry0:ry1, rx0:rx1].float().contiguous()
        ctx = FitContext(offset=offset, bounds=t.bounds(), max_scale=max_scale, spec_hook=spec_hook)
        if progress is not None:
            progress.start(f"tile {i + 1}/{len(tiles)}", cfg.steps)
        g, spec, rep = fit_gaussians(sub, n_fit, replace(cfg, seed=cfg.seed + i), progress=progress, context=ctx)
        if progress is not None:
            progress.end()
        steps += rep.steps
        lx, ly = g.means[:, 0] + rx0, g.means[:, 1] + ry0
        keep = (lx >= cx0) & ((lx < cx1) | (cx1 == w)) & (ly >= cy0) & ((ly < cy1) | (cy1 == h))
        idx = torch.nonzero(keep).reshape(-1)
        if idx.numel() == 0:
            continue
        kg = ImageGaussians(g.means[idx], g.scales[idx], g.rotations[idx], g.colors[idx], rw, rh, g.mode, g.k, {},
                            spec)
        share = contribution(kg.means, conics_from_scale_rotation(kg.scales, kg.rotations), kg.colors, rw, rh,
                             mode=kg.mode, k=kg.k)
        parts.append((kg.means + origin, kg.scales, kg.rotations, kg.colors, share))
        used_count += idx.numel()
        if bpp is not None:  # the real size of everything kept so far, as one file
            so_far = ImageGaussians(*(torch.cat([p[k] for p in parts]) for k in range(4)), w, h, cfg.mode, cfg.k)
            used_bytes = len(encode(so_far, replace(spec, width=w, height=h), extra=meta))
        per_gaussian = used_bytes / used_count if bpp is not None else 1.0
        del sub, offset, g, ctx
    if not parts:
        raise ValueError("tiled fitting kept no Gaussians")
    m, s, r, col, share = (torch.cat([p[k] for p in parts]) for k in range(5))
    seams = seam_bands(tiles, w, h, apron)
    if seams and refine:
        spec = replace(shared["spec"], width=w, height=h)
        m, s, r, col, share, more = refine_seams((m, s, r, col, share), target, seams, cfg, spec, max_scale,
                                                 progress)
        steps += more
    order = torch.argsort(share, descending=True, stable=True)
    spec = replace(shared["spec"], width=w, height=h)
    g = ImageGaussians(m[order], s[order], r[order], col[order], w, h, cfg.mode, cfg.k, dict(meta or {}), spec)
    if bpp is not None:
        g = g.prefix(largest_prefix_within(g, spec, budget, meta))
    data = encode(g, spec, extra=meta)
    dec = decode(data)
    return RateResult(dec, spec, data, psnr_banded(dec, target), steps, time.perf_counter() - t0, True,
                      {"rate_weight": cfg.rate_weight, "bits": asdict(cfg.bits)})
