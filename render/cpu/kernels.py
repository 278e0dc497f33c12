"""numba kernels: per-tile alpha compositing (forward) and its gradient (backward).

Layout, chosen so LLVM vectorises the pixel loops: one tile at a time per thread
(``prange`` over tiles); for each Gaussian of the tile's depth-ordered list the inner
loop runs over the tile's P = tile_size^2 pixels with flat float32 state arrays
(transmittance, active mask, weights, per-channel accumulators laid out [D, P]),
float32 constants, branch-free selects and :func:`exp_neg` instead of ``np.exp``.

Rules (identical to gsplat and to ``render/_torch_impl.py``): pixel centres at
(j + 0.5, i + 0.5); sigma = 0.5 (A dx^2 + C dy^2) + B dx dy with d = mean - pixel;
alpha = min(max_alpha, opacity * exp(-sigma)) (max_alpha 0.99 by default, 0.999 to match
gsplat < 1.6); skipped when sigma < 0 or alpha < 1/255;
a pixel stops *before* the Gaussian that would bring its transmittance to <= 1e-4.

The forward stores, per pixel, the final transmittance and the list position of the
Gaussian that stopped it (``last``), so the backward replays exactly the same set of
contributions front to back. Gradients are accumulated per (Gaussian, tile) pair into
buffers and reduced per Gaussian afterwards in a fixed order: deterministic results
independent of the thread count.
"""
from __future__ import annotations

import numpy as np
from numba import njit, prange

from ._fastmath import F0, F1, HALF, exp_neg

ALPHA_MIN = np.float32(1.0 / 255.0)
T_MIN = np.float32(1e-4)

# 'reassoc' lets LLVM vectorise the float reductions over pixels; 'contract' allows FMA.
# Neither changes any result by more than float32 rounding (the tests bound it).
_FM = {"reassoc", "contract"}


@njit(cache=True)
def _tile_setup(t, tiles_x, ntile, ts):
    """Camera, pixel origin and pixel-centre coordinates [P] of flat tile index t."""
    cam = t // ntile
    rem = t - cam * ntile
    ty = rem // tiles_x
    x0 = (rem - ty * tiles_x) * ts
    y0 = ty * ts
    P = ts * ts
    px = np.empty(P, dtype=np.float32)
    py = np.empty(P, dtype=np.float32)
    for p in range(P):
        i = p // ts
        px[p] = np.float32(x0 + p - i * ts) + HALF
        py[p] = np.float32(y0 + i) + HALF
    return cam, x0, y0, px, py


@njit(parallel=True, cache=True, fastmath=_FM)
def forward_tiles(
    tile_offsets, tile_entries, xy, conic, opac, color, tiles_x, tiles_y, ts, width, height, bg,
    out_color, out_T, out_last, pair_weight, pair_hits, max_alpha,
):
    """Composite every tile.

    xy [K,2], conic [K,3], opac [K], color [K,D] float32 in depth order; bg [C,D] float32.
    Writes out_color [C,H,W,D], out_T [C,H,W] final transmittance, out_last [C,H,W] int32
    (list position of the Gaussian that stopped the pixel, or the list length), and per
    tile-major pair: pair_weight (sum of alpha*T over the tile's pixels), pair_hits.
    max_alpha: float32 clamp on a single Gaussian's alpha.
    """
    amax = np.float32(max_alpha)
    D = color.shape[1]
    P = ts * ts
    ntile = tiles_x * tiles_y
    total = tile_offsets.shape[0] - 1
    for t in prange(total):
        cam, x0, y0, px, py = _tile_setup(t, tiles_x, ntile, ts)
        T = np.empty(P, dtype=np.float32)
        act = np.empty(P, dtype=np.float32)
        w = np.empty(P, dtype=np.float32)
        acc = np.zeros(D * P, dtype=np.float32)
        last = np.empty(P, dtype=np.int32)
        start = tile_offsets[t]
        n = tile_offsets[t + 1] - start
        n_live = 0
        for p in range(P):
            i = p // ts
            j = p - i * ts
            T[p] = F1
            last[p] = np.int32(n)
            if x0 + j < width and y0 + i < height:
                act[p] = F1
                n_live += 1
            else:
                act[p] = F0
        for g in range(n):
            if n_live == 0:
                break
            k = tile_entries[start + g]
            mx = xy[k, 0]
            my = xy[k, 1]
            ca = conic[k, 0]
            cb = conic[k, 1]
            cc = conic[k, 2]
            o = opac[k]
            wsum = F0
            hits = 0
            stopped = 0
            for p in range(P):
                dx = mx - px[p]
                dy = my - py[p]
                sig = HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                al = min(amax, o * exp_neg(sig))
                Tp = T[p]
                Tn = Tp * (F1 - al)
                ok = (sig >= F0) and (al >= ALPHA_MIN) and (act[p] > F0)
                stop = ok and (Tn <= T_MIN)
                use = ok and (Tn > T_MIN)
                wp = al * Tp if use else F0
                w[p] = wp
                T[p] = Tn if use else Tp
                act[p] = F0 if stop else act[p]
                last[p] = np.int32(g) if stop else last[p]
                stopped += 1 if stop else 0
                hits += 1 if use else 0
                wsum += wp
            n_live -= stopped
            pair_weight[start + g] = wsum
            pair_hits[start + g] = hits
            for d in range(D):
                cd = color[k, d]
                base = d * P
                for p in range(P):
                    acc[base + p] += w[p] * cd
        for p in range(P):
            i = p // ts
            j = p - i * ts
            yy = y0 + i
            xx = x0 + j
            if xx < width and yy < height:
                out_T[cam, yy, xx] = T[p]
                out_last[cam, yy, xx] = last[p]
                for d in range(D):
                    out_color[cam, yy, xx, d] = acc[d * P + p] + T[p] * bg[cam, d]


@njit(parallel=True, cache=True, fastmath=_FM)
def backward_tiles(
    tile_offsets, tile_entries, xy, conic, opac, color, tiles_x, tiles_y, ts, width, height,
    out_color, out_T, out_last, v_color_img, v_alpha_img, pair_geo, pair_col, max_alpha,
):
    """Gradients per (Gaussian, tile) pair, front to back.

    v_color_img [C,H,W,D], v_alpha_img [C,H,W] are dL/d(outputs). Writes pair_geo [M,6]
    = dL/d(mean x, mean y, conic A, B, C, opacity) and pair_col [M,D] = dL/d(colour),
    each summed over the tile's pixels. Uses, per pixel, R = sum over later contributions
    of w (c . g) plus T_final (bg . g - g_alpha) = out . g - T_final g_alpha minus what
    has been passed, so dL/dalpha_i = T_i (c_i . g) - R_i / (1 - alpha_i).
    max_alpha: the forward's clamp.
    """
    amax = np.float32(max_alpha)
    D = color.shape[1]
    P = ts * ts
    ntile = tiles_x * tiles_y
    total = tile_offsets.shape[0] - 1
    for t in prange(total):
        start = tile_offsets[t]
        n = tile_offsets[t + 1] - start
        if n == 0:
            continue
        cam, x0, y0, px, py = _tile_setup(t, tiles_x, ntile, ts)
        T = np.empty(P, dtype=np.float32)
        R = np.zeros(P, dtype=np.float32)
        lastp = np.zeros(P, dtype=np.int32)
        G = np.zeros(D * P, dtype=np.float32)
        cg = np.empty(P, dtype=np.float32)
        w = np.empty(P, dtype=np.float32)
        max_last = 0
        for p in range(P):
            i = p // ts
            j = p - i * ts
            T[p] = F1
            yy = y0 + i
            xx = x0 + j
            if xx < width and yy < height:
                lp = out_last[cam, yy, xx]
                lastp[p] = lp
                if lp > max_last:
                    max_last = lp
                r = -out_T[cam, yy, xx] * v_alpha_img[cam, yy, xx]
                for d in range(D):
                    gd = v_color_img[cam, yy, xx, d]
                    G[d * P + p] = gd
                    r += out_color[cam, yy, xx, d] * gd
                R[p] = r
        for g in range(min(n, max_last)):
            k = tile_entries[start + g]
            mx = xy[k, 0]
            my = xy[k, 1]
            ca = conic[k, 0]
            cb = conic[k, 1]
            cc = conic[k, 2]
            o = opac[k]
            for p in range(P):
                cg[p] = F0
            for d in range(D):
                cd = color[k, d]
                base = d * P
                for p in range(P):
                    cg[p] += cd * G[base + p]
            v_mx = F0
            v_my = F0
            v_a = F0
            v_b = F0
            v_c = F0
            v_o = F0
            for p in range(P):
                dx = mx - px[p]
                dy = my - py[p]
                sig = HALF * (ca * dx * dx + cc * dy * dy) + cb * dx * dy
                e = exp_neg(sig)
                raw = o * e
                al = min(amax, raw)
                ok = (sig >= F0) and (al >= ALPHA_MIN) and (g < lastp[p])
                Tp = T[p]
                wp = al * Tp if ok else F0
                w[p] = wp
                r = R[p] - wp * cg[p]
                R[p] = r
                one_m = F1 - al
                va = Tp * cg[p] - r / one_m
                va = va if ok else F0
                vfree = va if raw <= amax else F0  # clamped alpha has no gradient
                vs = -raw * vfree
                v_o += e * vfree
                v_mx += vs * (ca * dx + cb * dy)
                v_my += vs * (cc * dy + cb * dx)
                v_a += HALF * vs * dx * dx
                v_b += vs * dx * dy
                v_c += HALF * vs * dy * dy
                T[p] = Tp * one_m if ok else Tp
            pos = start + g
            pair_geo[pos, 0] = v_mx
            pair_geo[pos, 1] = v_my
            pair_geo[pos, 2] = v_a
            pair_geo[pos, 3] = v_b
            pair_geo[pos, 4] = v_c
            pair_geo[pos, 5] = v_o
            for d in range(D):
                base = d * P
                s = F0
                for p in range(P):
                    s += w[p] * G[base + p]
                pair_col[pos, d] = s


@njit(parallel=True, cache=True)
def reduce_pairs(pair_offsets, pair_pos, pair_vals, out):
    """out[k] = sum over Gaussian k's pairs (in Gaussian-major order) of pair_vals[pair_pos[e]]."""
    F = pair_vals.shape[1]
    for k in prange(pair_offsets.shape[0] - 1):
        for f in range(F):
            out[k, f] = 0.0
        for e in range(pair_offsets[k], pair_offsets[k + 1]):
            pos = pair_pos[e]
            for f in range(F):
                out[k, f] += pair_vals[pos, f]
