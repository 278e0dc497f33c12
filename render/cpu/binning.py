"""Assign depth-sorted Gaussians to screen tiles.

1. Per camera, the visible Gaussians (both radii > 0) are sorted once by depth
   (stable, so ties keep index order, as gsplat's stable radix sort does).
2. Each one is tested against the tiles its ellipse can reach. A tile is kept only if
   some pixel centre in it can get alpha >= 1/255, i.e. sigma <= ln(255 * opacity):
   the minimum of the quadratic form over the rectangle of the tile's pixel centres is
   computed exactly (float64) and compared with that bound plus a small margin (so
   float32 rounding in the blend can never need a tile that was dropped). This keeps
   about half as many (Gaussian, tile) pairs as gsplat's 3-sigma box, with the same image.
3. A stable counting sort by tile id turns the Gaussian-major pair list into per-tile
   lists that stay in depth order (no global 64-bit key sort).

The result, :class:`TileBins`, also keeps the permutation between the two orders so the
backward pass can reduce per-pair gradient buffers per Gaussian deterministically.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numba import njit, prange

# sigma bound margin: relative and absolute slack on ln(255 * opacity)
_REL_MARGIN = 0.02
_ABS_MARGIN = 0.02


@dataclass
class TileBins:
    """Per-tile Gaussian lists for C cameras.

    order [K] int64: flat ids c*N + n of the visible Gaussians, camera-major, each
    camera's block sorted front to back. cams [K] int32: camera of each entry.
    tile_offsets [C*TY*TX + 1] int64: entries tile_offsets[t]:tile_offsets[t+1] of
    ``tile_entries`` are the tile's Gaussians (indices into ``order``) in depth order.
    pair_offsets [K+1] int64 and pair_pos [M] int64: pair e of entry k (Gaussian-major,
    pair_offsets[k] <= e < pair_offsets[k+1]) sits at tile-major position pair_pos[e].
    """

    order: np.ndarray
    cams: np.ndarray
    tile_offsets: np.ndarray
    tile_entries: np.ndarray
    pair_offsets: np.ndarray
    pair_pos: np.ndarray
    tiles_x: int
    tiles_y: int
    tile_size: int

    @property
    def num_pairs(self) -> int:
        return int(self.tile_entries.shape[0])


@njit(cache=True)
def _reach(a, b, c, opac):
    """sigma bound (with margin) below which alpha can reach 1/255, or -1 if degenerate."""
    if not (a > 0.0 and c > 0.0 and a * c - b * b > 0.0 and opac > 0.0):
        return -1.0
    s = math.log(255.0 * opac)
    return max(s, 0.0) * (1.0 + _REL_MARGIN) + _ABS_MARGIN


@njit(cache=True)
def _pairs_of(mx, my, a, b, c, opac, width, height, ts, tiles_x, tile_base, out, start):
    """Count (and, if ``out`` is non-empty, write from ``start``) the tiles one Gaussian reaches.

    Row band by row band: the set {sigma <= s} cut by the band of a tile row's pixel-centre
    rows is convex, so its x extent is [xl(y_l), xr(y_r)] with the left/right boundary
    functions evaluated at their stationary points clamped into the band. The tiles of
    the pixel columns whose centres fall in that extent are the row's tiles: every pixel
    that can reach alpha >= 1/255 is covered, and only columns that can are visited.
    """
    s = _reach(a, b, c, opac)
    if s < 0.0:
        return 0
    det = a * c - b * b
    hx = math.sqrt(2.0 * s * c / det)  # x half-extent of {sigma <= s}: sqrt(2 s cov_xx)
    hy = math.sqrt(2.0 * s * a / det)
    # pixel columns/rows whose centres (j + 0.5) fall inside the ellipse's box
    j0 = max(int(math.ceil(mx - hx - 0.5)), 0)
    j1 = min(int(math.floor(mx + hx - 0.5)), width - 1)
    i0 = max(int(math.ceil(my - hy - 0.5)), 0)
    i1 = min(int(math.floor(my + hy - 0.5)), height - 1)
    if j0 > j1 or i0 > i1:
        return 0
    y_right = -b * hx / c  # dy of the rightmost point of the ellipse (the leftmost is at -y_right)
    two_sa = 2.0 * s * a
    n = 0
    for ty in range(i0 // ts, i1 // ts + 1):
        ylo = max(ty * ts, i0) + 0.5 - my
        yhi = min(ty * ts + ts - 1, i1) + 0.5 - my
        yr = min(max(y_right, ylo), yhi)
        yl = min(max(-y_right, ylo), yhi)
        xmax = (-b * yr + math.sqrt(max(two_sa - det * yr * yr, 0.0))) / a
        xmin = (-b * yl - math.sqrt(max(two_sa - det * yl * yl, 0.0))) / a
        jlo = max(int(math.ceil(mx + xmin - 0.5)), j0)
        jhi = min(int(math.floor(mx + xmax - 0.5)), j1)
        if jlo > jhi:
            continue
        for tx in range(jlo // ts, jhi // ts + 1):
            if out.shape[0] > 0:
                out[start + n] = tile_base + ty * tiles_x + tx
            n += 1
    return n


@njit(parallel=True, cache=True)
def _count_pairs(xy, conic, opac, cams, width, height, ts, tiles_x, tiles_y, counts):
    dummy = np.empty(0, dtype=np.int64)
    for k in prange(xy.shape[0]):
        counts[k] = _pairs_of(
            np.float64(xy[k, 0]), np.float64(xy[k, 1]), np.float64(conic[k, 0]), np.float64(conic[k, 1]),
            np.float64(conic[k, 2]), np.float64(opac[k]), width, height, ts, tiles_x,
            np.int64(cams[k]) * tiles_x * tiles_y, dummy, 0,
        )


@njit(parallel=True, cache=True)
def _write_pairs(xy, conic, opac, cams, width, height, ts, tiles_x, tiles_y, offsets, pair_tile):
    for k in prange(xy.shape[0]):
        _pairs_of(
            np.float64(xy[k, 0]), np.float64(xy[k, 1]), np.float64(conic[k, 0]), np.float64(conic[k, 1]),
            np.float64(conic[k, 2]), np.float64(opac[k]), width, height, ts, tiles_x,
            np.int64(cams[k]) * tiles_x * tiles_y, pair_tile, offsets[k],
        )


@njit(cache=True)
def _counting_sort(pair_offsets, pair_tile, num_tiles):
    """Stable bucket sort of the Gaussian-major pairs by tile id."""
    m = pair_tile.shape[0]
    tile_offsets = np.zeros(num_tiles + 1, dtype=np.int64)
    for e in range(m):
        tile_offsets[pair_tile[e] + 1] += 1
    for t in range(num_tiles):
        tile_offsets[t + 1] += tile_offsets[t]
    cursor = tile_offsets[:-1].copy()
    tile_entries = np.empty(m, dtype=np.int64)
    pair_pos = np.empty(m, dtype=np.int64)
    for k in range(pair_offsets.shape[0] - 1):
        for e in range(pair_offsets[k], pair_offsets[k + 1]):
            t = pair_tile[e]
            pos = cursor[t]
            cursor[t] = pos + 1
            tile_entries[pos] = k
            pair_pos[e] = pos
    return tile_offsets, tile_entries, pair_pos


def depth_order(depths: np.ndarray, radii: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Flat ids (c*N+n) of visible Gaussians, camera-major and front to back; and their cameras."""
    C, N = depths.shape
    ids, cams = [], []
    for c in range(C):
        vis = np.flatnonzero((radii[c, :, 0] > 0) & (radii[c, :, 1] > 0))
        vis = vis[np.argsort(depths[c, vis], kind="stable")]
        ids.append(vis + c * N)
        cams.append(np.full(vis.shape[0], c, dtype=np.int32))
    return np.concatenate(ids).astype(np.int64), np.concatenate(cams)


def bin_gaussians(
    xy: np.ndarray,
    conic: np.ndarray,
    opac: np.ndarray,
    order: np.ndarray,
    cams: np.ndarray,
    num_cameras: int,
    width: int,
    height: int,
    tile_size: int,
) -> TileBins:
    """Build per-tile lists. xy [K,2], conic [K,3], opac [K] float32 are already in ``order``."""
    tiles_x = (width + tile_size - 1) // tile_size
    tiles_y = (height + tile_size - 1) // tile_size
    K = xy.shape[0]
    counts = np.zeros(K, dtype=np.int64)
    if K:
        _count_pairs(xy, conic, opac, cams, width, height, tile_size, tiles_x, tiles_y, counts)
    pair_offsets = np.zeros(K + 1, dtype=np.int64)
    np.cumsum(counts, out=pair_offsets[1:])
    pair_tile = np.empty(int(pair_offsets[-1]), dtype=np.int64)
    if pair_tile.shape[0]:
        _write_pairs(xy, conic, opac, cams, width, height, tile_size, tiles_x, tiles_y, pair_offsets, pair_tile)
    tile_offsets, tile_entries, pair_pos = _counting_sort(pair_offsets, pair_tile, num_cameras * tiles_x * tiles_y)
    return TileBins(order, cams, tile_offsets, tile_entries, pair_offsets, pair_pos, tiles_x, tiles_y, tile_size)
