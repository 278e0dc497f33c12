/**
 * The tile index of a `.gsi` image: which Gaussians can reach each square tile of the
 * image, built once on the CPU in image pixels, so that it serves every view (any zoom,
 * pan and level of detail) without being rebuilt.
 *
 * A Gaussian counts at a point when sigma <= ln 255 (docs/formats/gsi.md, section 5). It is
 * listed in a tile when its sigma <= ln 255 ellipse reaches the tile's rectangle (an exact
 * ellipse-rectangle test in float64, with a small margin for the shader's float32 maths).
 * Lists hold Gaussian indices in ascending (file, level-of-detail) order, so a shader that
 * walks a list can stop at the first index past the level of detail.
 */
import type { Gaussians2D } from "../formats/gsi.js";

/** ln 255: the weight cut-off of the renderer (w = exp(-sigma) >= 1/255). */
export const SIGMA_MAX = Math.log(255);
const REACH = SIGMA_MAX * (1 + 1e-4) + 1e-5;
/** Most tile-list entries an index may hold (4 bytes each on the GPU): a file whose Gaussians cover this much is refused. */
export const MAX_TILE_ENTRIES = 1 << 26;
/** The far edge of the last tile column/row: samples just past the image (output sizes round up) use it. */
const FAR = 1e7;

/** Inverse covariances (A, B, C) [3N] of Sigma = R diag(s0^2, s1^2) R^T, rounded to float32 as the Python renderer's. */
export function conics(g: Gaussians2D): Float32Array {
  const out = new Float32Array(g.count * 3);
  const f = Math.fround;
  for (let i = 0; i < g.count; i++) {
    const r = g.rotations[i];
    const c = f(Math.cos(r)), s = f(Math.sin(r));
    const s0 = g.scales[2 * i], s1 = g.scales[2 * i + 1];
    const ix = f(1 / f(s0 * s0)), iy = f(1 / f(s1 * s1));
    out[3 * i] = f(f(f(c * c) * ix) + f(f(s * s) * iy));
    out[3 * i + 1] = f(f(c * s) * f(ix - iy));
    out[3 * i + 2] = f(f(f(s * s) * ix) + f(f(c * c) * iy));
  }
  return out;
}

/** Minimum of sigma = 0.5 a dx^2 + b dx dy + 0.5 c dy^2 along one edge of a rectangle (offsets from the mean). */
function edgeMin(a: number, b: number, c: number, ex: number, ey: number, lo: number, hi: number, vertical: boolean): number {
  if (vertical) {
    const t = Math.min(Math.max(-b * ex / c, lo), hi);
    return 0.5 * a * ex * ex + b * ex * t + 0.5 * c * t * t;
  }
  const t = Math.min(Math.max(-b * ey / a, lo), hi);
  return 0.5 * a * t * t + b * t * ey + 0.5 * c * ey * ey;
}

/** True when sigma <= ln 255 somewhere on the rectangle [x0, x1] x [y0, y1]. */
export function reaches(mx: number, my: number, a: number, b: number, c: number,
  x0: number, x1: number, y0: number, y1: number): boolean {
  if (mx >= x0 && mx <= x1 && my >= y0 && my <= y1) return true;
  const lx = x0 - mx, hx = x1 - mx, ly = y0 - my, hy = y1 - my;
  let m = edgeMin(a, b, c, lx, 0, ly, hy, true);
  m = Math.min(m, edgeMin(a, b, c, hx, 0, ly, hy, true));
  m = Math.min(m, edgeMin(a, b, c, 0, ly, lx, hx, false));
  m = Math.min(m, edgeMin(a, b, c, 0, hy, lx, hx, false));
  return m <= REACH;
}

export interface TileIndex {
  /** tile side in image pixels */
  tile: number;
  tilesX: number;
  tilesY: number;
  /** [T + 1] start of each tile's list in `ids` */
  offsets: Uint32Array;
  /** Gaussian indices, tile after tile, ascending inside a tile */
  ids: Uint32Array;
}

/** A tile side (image pixels): 8, doubled until the grid has at most 2^18 tiles. 8-pixel tiles drew a
 * fitted 768 x 512 image twice as fast as 16-pixel ones in software WebGL (bench/web_image.py --tile). */
export function tileSize(width: number, height: number): number {
  let t = 8;
  while (Math.ceil(width / t) * Math.ceil(height / t) > 1 << 18) t *= 2;
  return t;
}

/** Build the tile lists of `g` (conics from {@link conics}). Cost: O(N x tiles each Gaussian's box covers);
 * more than `maxEntries` entries throw a RangeError before they are allocated. */
export function buildTiles(g: Gaussians2D, q: Float32Array, tile = tileSize(g.width, g.height),
  maxEntries = MAX_TILE_ENTRIES): TileIndex {
  if (!(Number.isInteger(tile) && tile >= 1)) throw new RangeError(`tile size must be a positive integer, got ${tile}`);
  let total = 0;
  const tx = Math.max(1, Math.ceil(g.width / tile)), ty = Math.max(1, Math.ceil(g.height / tile));
  const n = g.count;
  const box = new Int32Array(4 * n);
  const counts = new Uint32Array(tx * ty + 1);
  const rect = (xx: number, yy: number): [number, number, number, number] => [
    xx * tile, xx === tx - 1 ? FAR : (xx + 1) * tile, yy * tile, yy === ty - 1 ? FAR : (yy + 1) * tile];
  // two passes (count, fill) over the same tests keep the memory at exactly the list sizes
  for (let pass = 0; pass < 2; pass++) {
    const fill = pass === 1 ? counts.slice(0, tx * ty) : null;
    const ids = pass === 1 ? new Uint32Array(counts[tx * ty]) : null;
    for (let i = 0; i < n; i++) {
      const a = q[3 * i], b = q[3 * i + 1], c = q[3 * i + 2];
      const mx = g.means[2 * i], my = g.means[2 * i + 1];
      if (pass === 0) {
        box[4 * i] = 1; box[4 * i + 1] = 0;
        const det = a * c - b * b;
        if (!(det > 0) || !(a > 0)) continue;
        // the ellipse's half extents, padded a little
        const rx = Math.sqrt(2 * REACH * c / det) * 1.0001 + 1e-3, ry = Math.sqrt(2 * REACH * a / det) * 1.0001 + 1e-3;
        if (!(Number.isFinite(rx) && Number.isFinite(ry) && Number.isFinite(mx) && Number.isFinite(my))) continue;
        const x0 = Math.max(0, Math.floor((mx - rx) / tile)), x1 = Math.min(tx - 1, Math.floor((mx + rx) / tile));
        const y0 = Math.max(0, Math.floor((my - ry) / tile)), y1 = Math.min(ty - 1, Math.floor((my + ry) / tile));
        if (x0 > x1 || y0 > y1) continue;
        box[4 * i] = x0; box[4 * i + 1] = x1; box[4 * i + 2] = y0; box[4 * i + 3] = y1;
      }
      const x0 = box[4 * i], x1 = box[4 * i + 1], y0 = box[4 * i + 2], y1 = box[4 * i + 3];
      for (let yy = y0; yy <= y1; yy++) {
        for (let xx = x0; xx <= x1; xx++) {
          const [rx0, rx1, ry0, ry1] = rect(xx, yy);
          if (!reaches(mx, my, a, b, c, rx0, rx1, ry0, ry1)) continue;
          const t = yy * tx + xx;
          if (ids && fill) ids[fill[t]++] = i;
          else if (++total > maxEntries) {
            throw new RangeError(`the image's Gaussians need more than ${maxEntries} tile entries (${n} Gaussians, ${tx}x${ty} tiles)`);
          } else counts[t + 1]++;
        }
      }
    }
    if (pass === 0) {
      for (let t = 0; t < tx * ty; t++) counts[t + 1] += counts[t];
    } else {
      return { tile, tilesX: tx, tilesY: ty, offsets: counts, ids: ids! };
    }
  }
  throw new Error("unreachable");
}

/** The number of Gaussians a level of detail `fraction` (0, 1] uses: max(1, round(fraction N)), halves to even, as `splat render-image --lod`. */
export function lodCount(count: number, fraction: number): number {
  if (!(fraction > 0 && fraction <= 1)) throw new RangeError(`LOD fraction must be in (0, 1], got ${fraction}`);
  if (fraction >= 1) return count;
  const x = fraction * count;
  let r = Math.round(x);
  if (Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0) r -= 1;  // Python rounds halves to even
  return Math.max(1, Math.min(count, r));
}

/** What a `.gsi` needs before upload, computed once (in a worker, off the page's thread): conics and the tile index. */
export interface PreparedImage {
  conics: Float32Array;
  index: TileIndex;
}

/** {@link conics} and {@link buildTiles} of `g` (`tile`: the tile side, default {@link tileSize}). */
export function prepareImage(g: Gaussians2D, tile?: number): PreparedImage {
  const q = conics(g);
  return { conics: q, index: buildTiles(g, q, tile) };
}
