"""Numba kernels of the 2D Gaussian image renderer (forward, hand-written backward).

All arrays are float32 unless noted. Conventions (shared with ``reference.py``):

* pixel (x, y) is sampled at its centre (x + 0.5, y + 0.5);
* a Gaussian's weight at offset d = p - mu is w = exp(-sigma), with
  sigma = 0.5*(A dx^2 + C dy^2) + B dx dy and (A, B, C) its conic (inverse covariance);
* a weight counts only where sigma <= SIGMA_MAX (w >= 1/255); everything else is 0;
* mode TOPK: each pixel keeps the K largest weights (ties: the lower index wins) and outputs
  sum(c w) / (sum(w) + EPS); mode SUM: every counted weight, output sum(c w).

Work is split into square tiles; a Gaussian is listed in every tile its 1/255 ellipse
reaches. Inside a tile the work is Gaussian-centric: each listed Gaussian visits only the
pixels of its ellipse's bounding box (clipped to the tile). In SUM mode those rows are
branch-free and vectorise, with exp() replaced by a float32 polynomial (``fexp_neg``,
relative error < 3e-6; the float64 reference uses the true exp), evaluated with fused
multiply-adds. Inner loops index 1D row views (``a[ch, lo:hi]``), not 2D arrays: LLVM
vectorises those (the SUM forward pass takes about two thirds of the time it took with 2D
indexing, bit for bit the same). The backward pass runs
over the same tiles and accumulates per-Gaussian gradients into one buffer per worker
chunk (no atomics, deterministic).
``nthreads`` is the number of work chunks (pass ``numba.get_num_threads()``).
"""
from __future__ import annotations

import math
import types

import numba as nb
import numpy as np

SIGMA_MAX = math.log(255.0)
EPS = 1e-6
MODE_TOPK = 0
MODE_SUM = 1
DEFAULT_MODE = "sum"  # the mode fitting, ImageGaussians and the renderer use unless told otherwise


@nb.njit(cache=True, inline="always")
def _edge_min(a, b, c, ex, ey, lo, hi, vertical):
    """Minimum of sigma(d) = 0.5 a dx^2 + b dx dy + 0.5 c dy^2 along one rectangle edge:
    dx = ex fixed with dy in [lo, hi] (vertical) or dy = ey fixed with dx in [lo, hi]."""
    if vertical:
        t = -b * ex / c
        t = min(max(t, lo), hi)
        return 0.5 * a * ex * ex + b * ex * t + 0.5 * c * t * t
    t = -b * ey / a
    t = min(max(t, lo), hi)
    return 0.5 * a * t * t + b * t * ey + 0.5 * c * ey * ey


@nb.njit(cache=True)
def _reaches(mx, my, a, b, c, x0, x1, y0, y1):
    """True if sigma <= SIGMA_MAX somewhere on the rectangle of pixel centres [x0,x1] x [y0,y1]."""
    if x0 <= mx <= x1 and y0 <= my <= y1:
        return True
    lx, hx, ly, hy = x0 - mx, x1 - mx, y0 - my, y1 - my
    m = _edge_min(a, b, c, lx, 0.0, ly, hy, True)
    m = min(m, _edge_min(a, b, c, hx, 0.0, ly, hy, True))
    m = min(m, _edge_min(a, b, c, 0.0, ly, lx, hx, False))
    m = min(m, _edge_min(a, b, c, 0.0, hy, lx, hx, False))
    return m <= SIGMA_MAX * (1.0 + 1e-5) + 1e-6


@nb.njit(cache=True)
def bin_gaussians(means, conics, width, height, tile):
    """Tile lists. Returns (offsets [T+1] int64, ids [M] int32, tiles_x, tiles_y).

    A Gaussian is listed in a tile when its sigma <= SIGMA_MAX ellipse reaches one of the
    tile's pixel centres' bounding rectangle (exact test, tested in float64): about half
    the entries of a bounding-box assignment, the same image."""
    n = means.shape[0]
    tx = (width + tile - 1) // tile
    ty = (height + tile - 1) // tile
    x0 = np.empty(n, np.int64)
    x1 = np.empty(n, np.int64)
    y0 = np.empty(n, np.int64)
    y1 = np.empty(n, np.int64)
    counts = np.zeros(tx * ty + 1, np.int64)
    for i in range(n):
        a = np.float64(conics[i, 0])
        b = np.float64(conics[i, 1])
        c = np.float64(conics[i, 2])
        det = a * c - b * b
        x0[i] = 1
        x1[i] = 0
        if not (det > 0.0) or not (a > 0.0):
            continue
        # covariance diagonal = (c, a) / det; the sigma <= SIGMA_MAX ellipse spans
        # sqrt(2 SIGMA_MAX cov_ii) around the mean on each axis
        rx = math.sqrt(2.0 * SIGMA_MAX * c / det)
        ry = math.sqrt(2.0 * SIGMA_MAX * a / det)
        mx = np.float64(means[i, 0])
        my = np.float64(means[i, 1])
        if not (math.isfinite(mx) and math.isfinite(my) and math.isfinite(rx) and math.isfinite(ry)):
            continue
        # pixel centres px + 0.5 within [mx - rx, mx + rx]
        lo_x = max(0, int(math.ceil(mx - rx - 0.5)))
        hi_x = min(width - 1, int(math.floor(mx + rx - 0.5)))
        lo_y = max(0, int(math.ceil(my - ry - 0.5)))
        hi_y = min(height - 1, int(math.floor(my + ry - 0.5)))
        if lo_x > hi_x or lo_y > hi_y:
            continue
        x0[i] = lo_x // tile
        x1[i] = hi_x // tile
        y0[i] = lo_y // tile
        y1[i] = hi_y // tile
        for yy in range(y0[i], y1[i] + 1):
            for xx in range(x0[i], x1[i] + 1):
                if _reaches(mx, my, a, b, c, xx * tile + 0.5, min(xx * tile + tile, width) - 0.5,
                            yy * tile + 0.5, min(yy * tile + tile, height) - 0.5):
                    counts[yy * tx + xx + 1] += 1
    for t in range(tx * ty):
        counts[t + 1] += counts[t]
    ids = np.empty(counts[tx * ty], np.int32)
    fill = counts[:-1].copy()
    for i in range(n):
        if x0[i] > x1[i]:
            continue
        a = np.float64(conics[i, 0])
        b = np.float64(conics[i, 1])
        c = np.float64(conics[i, 2])
        mx = np.float64(means[i, 0])
        my = np.float64(means[i, 1])
        for yy in range(y0[i], y1[i] + 1):
            for xx in range(x0[i], x1[i] + 1):
                if _reaches(mx, my, a, b, c, xx * tile + 0.5, min(xx * tile + tile, width) - 0.5,
                            yy * tile + 0.5, min(yy * tile + tile, height) - 0.5):
                    t = yy * tx + xx
                    ids[fill[t]] = i
                    fill[t] += 1
    return counts, ids, tx, ty


@nb.njit(cache=True, inline="always", fastmath={"contract"})
def fexp_neg(s):
    """exp(-s) in float32 for s in [0, SIGMA_MAX] (relative error < 3e-6), branch-free so
    that loops over pixels vectorise: exp(-s) = (exp(-s/8))^8 with a degree-8 Taylor
    polynomial on [-0.7, 0]."""
    t = s * np.float32(-0.125)
    p = np.float32(1.0 / 40320.0)
    p = p * t + np.float32(1.0 / 5040.0)
    p = p * t + np.float32(1.0 / 720.0)
    p = p * t + np.float32(1.0 / 120.0)
    p = p * t + np.float32(1.0 / 24.0)
    p = p * t + np.float32(1.0 / 6.0)
    p = p * t + np.float32(0.5)
    p = p * t + np.float32(1.0)
    p = p * t + np.float32(1.0)
    p = p * p
    p = p * p
    return p * p


@nb.njit(cache=True, inline="always")
def _box(mx, my, a, b, c, x0, x1, y0, y1):
    """Pixel range [lx, hx] x [ly, hy] (inclusive) of the window [x0, x1) x [y0, y1) whose
    centres may have sigma <= SIGMA_MAX (the ellipse's bounding box, padded by 0.01 px so
    float32 rounding never drops a pixel; the per-pixel test decides)."""
    det = np.float64(a) * np.float64(c) - np.float64(b) * np.float64(b)
    if not det > 0.0:
        return x0, x0 - 1, y0, y0 - 1
    rx = math.sqrt(2.0 * SIGMA_MAX * np.float64(c) / det) + 0.01
    ry = math.sqrt(2.0 * SIGMA_MAX * np.float64(a) / det) + 0.01
    lx = max(x0, int(math.ceil(mx - rx - 0.5)))
    hx = min(x1 - 1, int(math.floor(mx + rx - 0.5)))
    ly = max(y0, int(math.ceil(my - ry - 0.5)))
    hy = min(y1 - 1, int(math.floor(my + ry - 0.5)))
    return lx, hx, ly, hy


@nb.njit(cache=True)
def weight_offsets(means, conics, width, height, tile, offsets, ids, tx):
    """Start of each tile-list entry's weights in the SUM mode's weight cache: [M+1] int64,
    the running sum of the entries' clipped box sizes (rows x columns, as the kernels visit)."""
    m = ids.shape[0]
    woff = np.empty(m + 1, np.int64)
    woff[0] = 0
    for t in range(offsets.shape[0] - 1):
        ty0 = (t // tx) * tile
        tx0 = (t % tx) * tile
        ty1 = min(ty0 + tile, height)
        tx1 = min(tx0 + tile, width)
        for e in range(offsets[t], offsets[t + 1]):
            g = ids[e]
            lx, hx, ly, hy = _box(means[g, 0], means[g, 1], conics[g, 0], conics[g, 1], conics[g, 2], tx0, tx1, ty0, ty1)
            woff[e + 1] = woff[e] + max(0, hx - lx + 1) * max(0, hy - ly + 1)
    return woff


def _forward(means, conics, colors, width, height, tile, offsets, ids, tx, mode, k, out, top_ids, wsum, stats, wcache,
             woff, nthreads):
    """Render into out [H,W,C] (any strides: the renderer passes a view of planar [C,H,W]
    memory, so that the SUM mode's output rows and the loss read contiguous). TOPK mode also stores top_ids [H*W,K] int32 (-1 = empty) and
    wsum [H*W] for the backward pass when ``top_ids.shape[0] > 0``. ``stats`` [N] (if non-empty)
    receives each Gaussian's summed pixel share: w / (sum w + EPS) in TOPK mode, w in SUM mode.
    SUM mode with a non-empty ``wcache`` (size ``woff[-1]``, see :func:`weight_offsets`) also
    stores every weight it computes there, for :func:`_backward` to read instead of recomputing.

    Gaussian-centric per tile: each listed Gaussian visits only the tile pixels inside its
    ellipse's bounding box, adding into a tile-local accumulator (SUM) or inserting its sigma
    into the pixel's sorted top-K list (TOPK; Gaussians arrive in index order and ties keep
    the earlier one, so the lower index wins). exp() then runs only for the K winners."""
    nch = colors.shape[1]
    ntiles = offsets.shape[0] - 1
    store = top_ids.shape[0] > 0
    want_stats = stats.shape[0] > 0
    cache = wcache.shape[0] > 0 and mode == MODE_SUM
    n = means.shape[0]
    # np.empty, zeroed by each worker: in the parallel build np.zeros and array expressions
    # become parallel regions of their own, each a thread wake-up (costly on busy cores)
    stat_buf = np.empty((nthreads if want_stats else 0, n if want_stats else 0), np.float32)
    smax = np.float32(SIGMA_MAX)
    half = np.float32(0.5)
    tt = tile * tile
    for chunk in nb.prange(nthreads):
        for i in range(stat_buf.shape[1]):
            stat_buf[chunk, i] = 0.0
        acc = np.empty((tt, nch), np.float32)
        sacc_px = np.empty((nch, tt), np.float32)
        wrow = np.empty(tile, np.float32)
        tops = np.empty((tt, k), np.float32)
        topi = np.empty((tt, k), np.int32)
        cnt = np.empty(tt, np.int32)
        topw = np.empty(k, np.float32)
        for t in range(chunk, ntiles, nthreads):
            start = offsets[t]
            m = offsets[t + 1] - start
            ty0 = (t // tx) * tile
            tx0 = (t % tx) * tile
            ty1 = min(ty0 + tile, height)
            tx1 = min(tx0 + tile, width)
            tw = tx1 - tx0
            npx = tw * (ty1 - ty0)
            if mode == MODE_SUM:
                for ch in range(nch):
                    srow = sacc_px[ch]
                    for p in range(npx):
                        srow[p] = 0.0
            else:
                for p in range(npx):
                    cnt[p] = 0
                    for ch in range(nch):
                        acc[p, ch] = 0.0
            for j in range(m):
                g = ids[start + j]
                wbase = woff[start + j] if cache else 0
                mx = means[g, 0]
                my = means[g, 1]
                a = conics[g, 0] * half
                b = conics[g, 1]
                c = conics[g, 2] * half
                lx, hx, ly, hy = _box(mx, my, conics[g, 0], b, conics[g, 2], tx0, tx1, ty0, ty1)
                sacc = np.float32(0.0)
                if mode == MODE_SUM:
                    # branch-free rows: weights for the box's row segment, then one
                    # contiguous multiply-add per channel (vectorises)
                    nx = hx - lx + 1
                    for py in range(ly, hy + 1):
                        dy = np.float32(py + 0.5) - my
                        # the weights go straight into the cache when there is one
                        wr = wcache[wbase:wbase + nx] if cache else wrow[:nx]
                        for i in range(nx):
                            dx = np.float32(lx + i + 0.5) - mx
                            sg = a * dx * dx + c * dy * dy + b * dx * dy
                            e = fexp_neg(sg)
                            wr[i] = e if (sg <= smax and sg >= np.float32(0.0)) else np.float32(0.0)
                        if cache:
                            wbase += nx
                        base = (py - ty0) * tw + lx - tx0
                        for ch in range(nch):
                            cg = colors[g, ch]
                            srow = sacc_px[ch, base:base + nx]
                            for i in range(nx):
                                srow[i] += wr[i] * cg
                        if want_stats:
                            for i in range(nx):
                                sacc += wr[i]
                    if want_stats:
                        stat_buf[chunk, g] += sacc
                    continue
                for py in range(ly, hy + 1):
                    dy = np.float32(py + 0.5) - my
                    row = (py - ty0) * tw - tx0
                    for px in range(lx, hx + 1):
                        dx = np.float32(px + 0.5) - mx
                        sg = a * dx * dx + c * dy * dy + b * dx * dy
                        if sg > smax or sg < 0.0:
                            continue
                        p = row + px
                        q = cnt[p]
                        if q == k and sg >= tops[p, k - 1]:
                            continue
                        pos = q if q < k else k - 1
                        while pos > 0 and tops[p, pos - 1] > sg:
                            tops[p, pos] = tops[p, pos - 1]
                            topi[p, pos] = topi[p, pos - 1]
                            pos -= 1
                        tops[p, pos] = sg
                        topi[p, pos] = g
                        if q < k:
                            cnt[p] = q + 1
            for py in range(ty0, ty1):
                for px in range(tx0, tx1):
                    p = (py - ty0) * tw + px - tx0
                    if mode == MODE_SUM:
                        for ch in range(nch):
                            out[py, px, ch] = sacc_px[ch, p]
                        continue
                    pix = py * width + px
                    nq = cnt[p]
                    ws = np.float32(0.0)
                    for q in range(nq):
                        w = np.float32(math.exp(-tops[p, q]))
                        topw[q] = w
                        ws += w
                        g = topi[p, q]
                        for ch in range(nch):
                            acc[p, ch] += w * colors[g, ch]
                    inv = np.float32(1.0) / (ws + np.float32(EPS))
                    for ch in range(nch):
                        out[py, px, ch] = acc[p, ch] * inv
                    if store:
                        wsum[pix] = ws
                        for q in range(k):
                            top_ids[pix, q] = topi[p, q] if q < nq else -1
                    if want_stats:
                        for q in range(nq):
                            stat_buf[chunk, topi[p, q]] += topw[q] * inv
    if want_stats:
        for c in range(nthreads):
            for i in range(n):
                stats[i] += stat_buf[c, i]


def _backward(means, conics, colors, width, height, tile, offsets, ids, tx, mode, k, out, top_ids, wsum, grad_out,
              wcache, woff, nthreads):
    """Gradients w.r.t. means [N,2], conics [N,3], colors [N,C] given dL/dout: ``grad_out``
    [H,W,C] in TOPK mode, planar [C,H,W] (C-contiguous) in SUM mode. SUM mode reads the
    weights from ``wcache`` when the forward pass filled it (non-empty)."""
    cache = wcache.shape[0] > 0
    n = means.shape[0]
    nch = colors.shape[1]
    ntiles = offsets.shape[0] - 1
    # per-worker sums, zeroed by their worker (np.zeros would be extra parallel regions)
    gm = np.empty((nthreads, n, 2), np.float32)
    gq = np.empty((nthreads, n, 3), np.float32)
    gc = np.empty((nthreads, n, nch), np.float32)
    half = np.float32(0.5)
    smax = np.float32(SIGMA_MAX)
    # SUM mode: dL/dout comes planar [C,H,W], for contiguous row segments
    gop = grad_out
    for chunk in nb.prange(nthreads):
        for i in range(n):
            gm[chunk, i, 0] = 0.0
            gm[chunk, i, 1] = 0.0
            for j in range(3):
                gq[chunk, i, j] = 0.0
            for ch in range(nch):
                gc[chunk, i, ch] = 0.0
        lgc = np.empty(nch, np.float32)
        wrow = np.empty(tile, np.float32)
        dwrow = np.empty(tile, np.float32)
        for t in range(chunk, ntiles, nthreads):
            ty0 = (t // tx) * tile
            tx0 = (t % tx) * tile
            if mode == MODE_SUM:
                # Gaussian-centric: each listed Gaussian visits the tile pixels in its
                # bounding box and sums its own gradient in registers
                ty1 = min(ty0 + tile, height)
                tx1 = min(tx0 + tile, width)
                for ent in range(offsets[t], offsets[t + 1]):
                    g = ids[ent]
                    wbase = woff[ent] if cache else 0
                    mx = means[g, 0]
                    my = means[g, 1]
                    a = conics[g, 0] * half
                    b = conics[g, 1]
                    c = conics[g, 2] * half
                    lx, hx, ly, hy = _box(mx, my, conics[g, 0], b, conics[g, 2], tx0, tx1, ty0, ty1)
                    sdx = np.float32(0.0)
                    sdy = np.float32(0.0)
                    sxx = np.float32(0.0)
                    sxy = np.float32(0.0)
                    syy = np.float32(0.0)
                    for ch in range(nch):
                        lgc[ch] = 0.0
                    nx = hx - lx + 1
                    for py in range(ly, hy + 1):
                        dy = np.float32(py + 0.5) - my
                        # branch-free row segment (vectorises): weights, then the
                        # per-channel products with dL/dout, then the geometry sums
                        if cache:  # the forward pass's weights
                            wsrc = wcache[wbase:wbase + nx]
                            for i in range(nx):
                                wrow[i] = wsrc[i]
                                dwrow[i] = 0.0
                            wbase += nx
                        else:
                            for i in range(nx):
                                dx = np.float32(lx + i + 0.5) - mx
                                sg = a * dx * dx + c * dy * dy + b * dx * dy
                                e = fexp_neg(sg)
                                wrow[i] = e if (sg <= smax and sg >= np.float32(0.0)) else np.float32(0.0)
                                dwrow[i] = 0.0
                        for ch in range(nch):
                            cg = colors[g, ch]
                            gr = gop[ch, py]
                            s_c = np.float32(0.0)
                            for i in range(nx):
                                go = gr[lx + i]
                                s_c += go * wrow[i]
                                dwrow[i] += go * cg
                            lgc[ch] += s_c
                        for i in range(nx):
                            dx = np.float32(lx + i + 0.5) - mx
                            ds = -wrow[i] * dwrow[i]
                            # dsigma/dmu = -(conic d); dsigma/dconic = (dx^2/2, dx dy, dy^2/2)
                            sdx += ds * dx
                            sdy += ds * dy
                            sxx += ds * dx * dx
                            sxy += ds * dx * dy
                            syy += ds * dy * dy
                    gm[chunk, g, 0] -= conics[g, 0] * sdx + b * sdy
                    gm[chunk, g, 1] -= b * sdx + conics[g, 2] * sdy
                    gq[chunk, g, 0] += half * sxx
                    gq[chunk, g, 1] += sxy
                    gq[chunk, g, 2] += half * syy
                    for ch in range(nch):
                        gc[chunk, g, ch] += lgc[ch]
                continue
            for py in range(ty0, min(ty0 + tile, height)):
                fy = np.float32(py + 0.5)
                for px in range(tx0, min(tx0 + tile, width)):
                    fx = np.float32(px + 0.5)
                    pix = py * width + px
                    inv = np.float32(1.0) / (wsum[pix] + np.float32(EPS))
                    for q in range(k):
                        g = top_ids[pix, q]
                        if g < 0:
                            break
                        dx = fx - means[g, 0]
                        dy = fy - means[g, 1]
                        sig = np.float32(0.5) * (conics[g, 0] * dx * dx + conics[g, 2] * dy * dy) + conics[g, 1] * dx * dy
                        w = np.float32(math.exp(-sig))
                        dw = np.float32(0.0)
                        for ch in range(nch):
                            go = grad_out[py, px, ch] * inv
                            gc[chunk, g, ch] += go * w
                            dw += go * (colors[g, ch] - out[py, px, ch])
                        _accum_geom(gm, gq, chunk, g, conics, dx, dy, -w * dw)
    # the workers' sums in worker order, as plain loops (serial: tiny next to the pass)
    grad_means = np.empty((n, 2), np.float32)
    grad_conics = np.empty((n, 3), np.float32)
    grad_colors = np.empty((n, nch), np.float32)
    for i in range(n):
        for j in range(2):
            v = np.float32(0.0)
            for c in range(nthreads):
                v += gm[c, i, j]
            grad_means[i, j] = v
        for j in range(3):
            v = np.float32(0.0)
            for c in range(nthreads):
                v += gq[c, i, j]
            grad_conics[i, j] = v
        for j in range(nch):
            v = np.float32(0.0)
            for c in range(nthreads):
                v += gc[c, i, j]
            grad_colors[i, j] = v
    return grad_means, grad_conics, grad_colors


@nb.njit(cache=True, inline="always")
def _accum_geom(gm, gq, chunk, g, conics, dx, dy, dsig):
    """Chain dL/dsigma into the mean (d = p - mu, so dsigma/dmu = -(conic d)) and the conic."""
    gm[chunk, g, 0] -= dsig * (conics[g, 0] * dx + conics[g, 1] * dy)
    gm[chunk, g, 1] -= dsig * (conics[g, 1] * dx + conics[g, 2] * dy)
    gq[chunk, g, 0] += dsig * np.float32(0.5) * dx * dx
    gq[chunk, g, 1] += dsig * dx * dy
    gq[chunk, g, 2] += dsig * np.float32(0.5) * dy * dy


def _compile(fn, name: str, parallel: bool, fastmath=False):
    """A separately cached numba dispatcher of ``fn`` (serial or parallel)."""
    copy = types.FunctionType(fn.__code__, fn.__globals__, name, fn.__defaults__, fn.__closure__)
    copy.__qualname__ = name
    copy.__doc__ = fn.__doc__
    return nb.njit(cache=True, parallel=parallel, fastmath=fastmath)(copy)


# Parallel regions cost a fixed synchronisation overhead that dominates small images (and
# grows badly when the cores are oversubscribed), so small work runs the serial builds.
forward_parallel = _compile(_forward, "forward_parallel", True, {"contract"})
forward_serial = _compile(_forward, "forward_serial", False, {"contract"})
# the backward's per-Gaussian sums may be reassociated (vectorised reductions)
_REASSOC = {"reassoc", "contract"}
backward_parallel = _compile(_backward, "backward_parallel", True, _REASSOC)
backward_serial = _compile(_backward, "backward_serial", False, _REASSOC)
PARALLEL_MIN_PIXELS = 1 << 16
# the SUM mode's weight cache (forward -> backward) is used up to this many weights (4 bytes each)
WEIGHT_CACHE_MAX = 1 << 25
_NO_CACHE = np.empty(0, np.float32)
_NO_OFFSETS = np.zeros(1, np.int64)


def forward(means, conics, colors, width, height, tile, offsets, ids, tx, mode, k, out, top_ids, wsum, stats,
            nthreads, wcache=_NO_CACHE, woff=_NO_OFFSETS):
    """See ``_forward``; dispatches to the serial build below PARALLEL_MIN_PIXELS or with one thread."""
    if nthreads <= 1 or width * height < PARALLEL_MIN_PIXELS:
        return forward_serial(means, conics, colors, width, height, tile, offsets, ids, tx, mode, k, out, top_ids,
                              wsum, stats, wcache, woff, 1)
    return forward_parallel(means, conics, colors, width, height, tile, offsets, ids, tx, mode, k, out, top_ids, wsum,
                            stats, wcache, woff, nthreads)


def backward(means, conics, colors, width, height, tile, offsets, ids, tx, mode, k, out, top_ids, wsum, grad_out,
             nthreads, wcache=_NO_CACHE, woff=_NO_OFFSETS):
    """See ``_backward``; same dispatch as :func:`forward`."""
    if nthreads <= 1 or width * height < PARALLEL_MIN_PIXELS:
        return backward_serial(means, conics, colors, width, height, tile, offsets, ids, tx, mode, k, out, top_ids,
                               wsum, grad_out, wcache, woff, 1)
    return backward_parallel(means, conics, colors, width, height, tile, offsets, ids, tx, mode, k, out, top_ids,
                             wsum, grad_out, wcache, woff, nthreads)
