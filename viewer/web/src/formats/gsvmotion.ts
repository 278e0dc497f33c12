/**
 * The `.gsv` motion model (docs/formats/gsv.md sections 3.3-3.5): skin binding, joint
 * transforms and linear-blend skinning. Binding decisions (which joints) are made in float32
 * exactly as the spec states; per-frame blending accumulates in float64 and stores float32.
 */
import { FormatError } from "./errors.js";

const f32 = Math.fround;
/** Relative bound on float32 rounding of a distance or expanded-form value (a few ulps, with margin). */
const PREFILTER = 4e-6;

/** Most joints a segment may bind (tables of J x m candidates). */
export const MAX_JOINTS = 65536;
/** Most joints at one position (joints are distinct samples of the keyframe; a hostile pile of
 * coincident joints would make every search scan all of them). */
export const MAX_COINCIDENT = 16;
/** Grid-search work allowed per bound point (at least 2^24 in all): far above real layouts, whose
 * points are mostly placed by the table walk; a layout of coincident joints would cost N x J. */
const GRID_WORK_PER_POINT = 512;

/** Unit quaternions in float32: q / max(sqrt(((w^2 + x^2) + y^2) + z^2), 1e-12), every step rounded to float32. */
export function unitQuatsF32(q: Float32Array): Float32Array {
  const out = new Float32Array(q.length);
  for (let i = 0; i < q.length; i += 4) {
    const a = q[i], b = q[i + 1], c = q[i + 2], d = q[i + 3];
    let s = f32(a * a);
    s = f32(s + f32(b * b));
    s = f32(s + f32(c * c));
    s = f32(s + f32(d * d));
    const n = Math.max(f32(Math.sqrt(s)), f32(1e-12));
    out[i] = a / n;
    out[i + 1] = b / n;
    out[i + 2] = c / n;
    out[i + 3] = d / n;
  }
  return out;
}

/** Squared distance in float32, summed x, y, z in order. */
function d2f32(ax: number, ay: number, az: number, bx: number, by: number, bz: number): number {
  const e0 = f32(ax - bx), e1 = f32(ay - by), e2 = f32(az - bz);
  return f32(f32(f32(e0 * e0) + f32(e1 * e1)) + f32(e2 * e2));
}

/** Keep the bd.length smallest distances (ascending, bi their joints): insert d of joint j; ties keep the earlier. */
function insertNearest(bd: Float64Array, bi: Int32Array, d: number, j: number): void {
  let a = bd.length - 1;
  if (!(d < bd[a])) return;
  while (a > 0 && d < bd[a - 1]) {
    bd[a] = bd[a - 1];
    bi[a] = bi[a - 1];
    a--;
  }
  bd[a] = d;
  bi[a] = j;
}

/**
 * The nearest-joint criterion |c_j|^2 - 2 x.c_j of section 3.3 in float32 (jn[j] = |c_j|^2), or
 * Infinity when float64 already shows it exceeds `bound` (only a joint that may win is evaluated exactly).
 */
function expanded(c: Float32Array, jn: Float32Array, j: number, x: number, y: number, z: number, bound: number): number {
  const cx = c[3 * j], cy = c[3 * j + 1], cz = c[3 * j + 2];
  const d64 = x * cx + y * cy + z * cz;
  if (jn[j] - 2 * d64 - PREFILTER * (jn[j] + 2 * Math.abs(d64)) > bound) return Infinity;
  const dot = f32(f32(f32(x * cx) + f32(y * cy)) + f32(z * cz));
  return f32(jn[j] - f32(2 * dot));
}

/** insertNearest ordering by (distance, index): the same result as inserting in ascending index order. */
function insertNearestLex(bd: Float64Array, bi: Int32Array, d: number, j: number): void {
  let a = bd.length - 1;
  if (!(d < bd[a] || (d === bd[a] && j < bi[a]))) return;
  while (a > 0 && (d < bd[a - 1] || (d === bd[a - 1] && j < bi[a - 1]))) {
    bd[a] = bd[a - 1];
    bi[a] = bi[a - 1];
    a--;
  }
  bd[a] = d;
  bi[a] = j;
}

/**
 * For each joint, the m joints nearest to it (itself included; float32 squared distance, ties to
 * the lower index), listed in ascending joint index: [J*m]. The grid search of `JointSet.table`
 * gives the same table; this is its brute-force reference (J^2 distances).
 */
export function jointTable(c: Float32Array, m: number): Int32Array {
  const J = c.length / 3;
  const out = new Int32Array(J * m);
  const bd = new Float64Array(m), bi = new Int32Array(m);
  for (let i = 0; i < J; i++) {
    bd.fill(Infinity);
    bi.fill(-1);
    const x = c[3 * i], y = c[3 * i + 1], z = c[3 * i + 2];
    for (let j = 0; j < J; j++) {
      const ex = x - c[3 * j], ey = y - c[3 * j + 1], ez = z - c[3 * j + 2];
      const d64 = ex * ex + ey * ey + ez * ez;
      if (d64 * (1 - PREFILTER) > bd[m - 1]) continue;
      insertNearest(bd, bi, d2f32(x, y, z, c[3 * j], c[3 * j + 1], c[3 * j + 2]), j);
    }
    const row = Array.from(bi).sort((p, q) => p - q);
    for (let a = 0; a < m; a++) out[i * m + a] = row[a];
  }
  return out;
}

/**
 * A uniform grid over the joints for the nearest-joint search (an acceleration only: the
 * result is the argmin over all joints of |c_j|^2 - 2 x.c_j in float32, first on ties).
 */
export class JointGrid {
  readonly lo: Float64Array;
  readonly h: number;
  readonly dims: Int32Array;
  readonly start: Int32Array;
  readonly items: Int32Array;
  /** candidates evaluated so far (a work budget for hostile layouts) */
  evaluations = 0;
  constructor(readonly c: Float32Array) {
    const J = c.length / 3;
    const lo = new Float64Array(3), hi = new Float64Array(3);
    lo.fill(Infinity);
    hi.fill(-Infinity);
    for (let j = 0; j < J; j++) {
      for (let a = 0; a < 3; a++) {
        lo[a] = Math.min(lo[a], c[3 * j + a]);
        hi[a] = Math.max(hi[a], c[3 * j + a]);
      }
    }
    const ext = [0, 1, 2].map((a) => Math.max(hi[a] - lo[a], 0));
    const span = Math.max(...ext) > 0 ? Math.max(...ext) : 1;
    const vol = ext.reduce((p, e) => p * Math.max(e, span / 64), 1);
    this.h = Math.max((2 * vol / J) ** (1 / 3), span / 256);
    this.lo = lo;
    this.dims = Int32Array.from(ext.map((e) => Math.floor(e / this.h) + 1));
    const [dx, dy, dz] = this.dims;
    const cells = dx * dy * dz;
    const cell = new Int32Array(J);
    this.start = new Int32Array(cells + 1);
    for (let j = 0; j < J; j++) {
      cell[j] = this.cellOf(c[3 * j], c[3 * j + 1], c[3 * j + 2]);
      this.start[cell[j] + 1]++;
    }
    for (let i = 0; i < cells; i++) this.start[i + 1] += this.start[i];
    const fill = this.start.slice(0, cells);
    this.items = new Int32Array(J);
    for (let j = 0; j < J; j++) this.items[fill[cell[j]]++] = j;
  }
  private axis(v: number, a: number): number {
    const i = Math.floor((v - this.lo[a]) / this.h);
    return Math.min(Math.max(i, 0), this.dims[a] - 1);
  }
  cellOf(x: number, y: number, z: number): number {
    return (this.axis(x, 0) * this.dims[1] + this.axis(y, 1)) * this.dims[2] + this.axis(z, 2);
  }
  /**
   * The bd.length joints nearest to (x, y, z) by float32 squared distance, ties to the lower
   * index, into bd (ascending) and bi: shells of cells until no unseen joint can be nearer.
   */
  kNearest(x: number, y: number, z: number, bd: Float64Array, bi: Int32Array): void {
    const { c, dims, h, start, items } = this;
    const m = bd.length;
    bd.fill(Infinity);
    bi.fill(-1);
    const cx = this.axis(x, 0), cy = this.axis(y, 1), cz = this.axis(z, 2);
    const maxs = Math.max(dims[0], dims[1], dims[2]);
    for (let s = 0; s <= maxs; s++) {
      for (let ix = Math.max(cx - s, 0); ix <= Math.min(cx + s, dims[0] - 1); ix++) {
        for (let iy = Math.max(cy - s, 0); iy <= Math.min(cy + s, dims[1] - 1); iy++) {
          const edge = Math.abs(ix - cx) === s || Math.abs(iy - cy) === s;
          const zhi = Math.min(cz + s, dims[2] - 1);
          for (let iz = edge ? Math.max(cz - s, 0) : cz - s; iz <= zhi; iz += edge ? 1 : Math.max(2 * s, 1)) {
            if (iz < 0) continue;
            const cell = (ix * dims[1] + iy) * dims[2] + iz;
            this.evaluations += start[cell + 1] - start[cell];
            for (let p = start[cell]; p < start[cell + 1]; p++) {
              const j = items[p];
              const ex = x - c[3 * j], ey = y - c[3 * j + 1], ez = z - c[3 * j + 2];
              if ((ex * ex + ey * ey + ez * ez) * (1 - PREFILTER) > bd[m - 1]) continue;
              insertNearestLex(bd, bi, d2f32(x, y, z, c[3 * j], c[3 * j + 1], c[3 * j + 2]), j);
            }
          }
        }
      }
      if (bi[m - 1] >= 0 && s * h > Math.sqrt(bd[m - 1]) * 1.001 + 1e-6 * h) break;
    }
  }

  /** argmin_j of jn[j] - 2 x.c_j (float32), lowest j on ties. */
  nearest(x: number, y: number, z: number, jn: Float32Array): number {
    const { c, dims, h, start, items } = this;
    const cx = this.axis(x, 0), cy = this.axis(y, 1), cz = this.axis(z, 2);
    let best = -1, bval = 0, bd = Infinity;
    const maxs = Math.max(dims[0], dims[1], dims[2]);
    for (let s = 0; s <= maxs; s++) {
      for (let ix = Math.max(cx - s, 0); ix <= Math.min(cx + s, dims[0] - 1); ix++) {
        for (let iy = Math.max(cy - s, 0); iy <= Math.min(cy + s, dims[1] - 1); iy++) {
          const edge = Math.abs(ix - cx) === s || Math.abs(iy - cy) === s;
          const zlo = Math.max(cz - s, 0), zhi = Math.min(cz + s, dims[2] - 1);
          // inside the shell's x/y extent only its two z faces are new
          const zstep = edge ? 1 : Math.max(2 * s, 1);
          for (let iz = edge ? zlo : cz - s; iz <= zhi; iz += zstep) {
            if (iz < zlo) continue;
            const cell = (ix * dims[1] + iy) * dims[2] + iz;
            this.evaluations += start[cell + 1] - start[cell];
            for (let p = start[cell]; p < start[cell + 1]; p++) {
              const j = items[p];
              const v = expanded(c, jn, j, x, y, z, best < 0 ? Infinity : bval);
              if (best < 0 || v < bval || (v === bval && j < best)) {
                best = j;
                bval = v;
                bd = d2f32(x, y, z, c[3 * j], c[3 * j + 1], c[3 * j + 2]);
              }
            }
          }
        }
      }
      // joints not yet seen are at least s*h away (margin: the argmin uses the expanded form)
      if (best >= 0 && s * h > Math.sqrt(bd) * 1.001 + 1e-6 * h) break;
    }
    return best;
  }
}

/** A skin binding: for each point, k joint indices [N*k] and normalised weights [N*k] (float32). */
export interface Binding {
  k: number;
  idx: Int32Array;
  w: Float32Array;
}

/** Joints of a binding problem: centres [J*3] with their candidate table and grid (built once). */
export class JointSet {
  readonly J: number;
  readonly jn: Float32Array;
  private tables = new Map<number, Int32Array>();
  private radii = new Map<number, Float64Array>();
  readonly grid: JointGrid;
  constructor(readonly c: Float32Array) {
    this.J = c.length / 3;
    if (this.J > MAX_JOINTS) throw new FormatError(`${this.J} joints exceed this decoder's limit of ${MAX_JOINTS}`);
    const seen = new Map<string, number>();
    for (let j = 0; j < this.J; j++) {
      const key = `${c[3 * j]},${c[3 * j + 1]},${c[3 * j + 2]}`;
      const n = (seen.get(key) ?? 0) + 1;
      if (n > MAX_COINCIDENT) throw new FormatError(`more than ${MAX_COINCIDENT} joints share one position`);
      seen.set(key, n);
    }
    this.jn = new Float32Array(this.J);
    for (let j = 0; j < this.J; j++) {
      const a = c[3 * j], b = c[3 * j + 1], d = c[3 * j + 2];
      this.jn[j] = f32(f32(f32(a * a) + f32(b * b)) + f32(d * d));
    }
    this.grid = new JointGrid(c);
  }
  /** jointTable(c, m) by the grid: each joint's m nearest (FormatError for a hostile, degenerate layout). */
  table(m: number): Int32Array {
    let t = this.tables.get(m);
    if (!t) {
      const J = this.J, c = this.c;
      t = new Int32Array(J * m);
      const bd = new Float64Array(m), bi = new Int32Array(m);
      const budget = this.grid.evaluations + 2 ** 22 + 32 * m * J; // real layouts: 3-10 m per joint
      for (let i = 0; i < J; i++) {
        this.grid.kNearest(c[3 * i], c[3 * i + 1], c[3 * i + 2], bd, bi);
        if (this.grid.evaluations > budget) {
          throw new FormatError("the segment's joints are too crowded to bind (a hostile layout: the search would cost N x J)");
        }
        const row = Array.from(bi).sort((p, q) => p - q);
        for (let a = 0; a < m; a++) t[i * m + a] = row[a];
      }
      this.tables.set(m, t);
    }
    return t;
  }
  /** Per joint, the distance to the farthest joint of its m-candidate table (Infinity when m = J). */
  radius(m: number): Float64Array {
    let r = this.radii.get(m);
    if (!r) {
      const t = this.table(m), c = this.c;
      r = new Float64Array(this.J);
      for (let b = 0; b < this.J; b++) {
        let mx = 0;
        for (let a = 0; a < m; a++) {
          const j = t[b * m + a];
          const ex = c[3 * b] - c[3 * j], ey = c[3 * b + 1] - c[3 * j + 1], ez = c[3 * b + 2] - c[3 * j + 2];
          mx = Math.max(mx, Math.sqrt(ex * ex + ey * ey + ez * ez));
        }
        r[b] = m >= this.J ? Infinity : mx;
      }
      this.radii.set(m, r);
    }
    return r;
  }

  /**
   * The nearest joint (the argmin of section 3.3) by a walk over candidate tables from `guess`,
   * or -1 when the walk cannot prove its answer (then the grid search decides). Proof: b is the
   * float32 argmin over its own table, and every joint outside the table is farther from the
   * point than b by more than the float32 error of the compared values.
   */
  nearestByTable(px: number, py: number, pz: number, guess: number, table: Int32Array, m: number,
                 rad: Float64Array): number {
    const c = this.c, jn = this.jn;
    let b = guess;
    for (let it = 0; it < 32; it++) {
      let best = -1, bval = 0;
      for (let a = 0; a < m; a++) {
        const j = table[b * m + a];
        const v = expanded(c, jn, j, px, py, pz, best < 0 ? Infinity : bval);
        if (best < 0 || v < bval || (v === bval && j < best)) {
          best = j;
          bval = v;
        }
      }
      if (best !== b) {
        b = best;
        continue;
      }
      const R = rad[b];
      if (R === Infinity) return b;
      const ex = px - c[3 * b], ey = py - c[3 * b + 1], ez = pz - c[3 * b + 2];
      const r = Math.sqrt(ex * ex + ey * ey + ez * ez);
      const dot = Math.abs(px * c[3 * b] + py * c[3 * b + 1] + pz * c[3 * b + 2]);
      const err = 8 * PREFILTER * (jn[b] + 2 * dot) + 1e-30;
      const gap = R - r; // the least distance from the point to a joint outside b's table
      return gap > r * 1.001 && gap * gap - r * r > err ? b : -1;
    }
    return -1;
  }

  /**
   * The k nearest joints of each point x [N*3] (section 3.3): the nearest joint n_i, then the k of
   * its m = min(J, 2k + 8) candidates with the smallest float32 squared distance (stable).
   * Returns indices [N*k] and squared distances [N*k].
   */
  knn(x: Float32Array, kWant: number): { k: number; idx: Int32Array; d2: Float32Array } {
    const J = this.J, N = x.length / 3;
    const k = Math.min(kWant, J);
    const m = Math.min(J, 2 * k + 8);
    const table = this.table(m);
    const idx = new Int32Array(N * k), d2 = new Float32Array(N * k);
    const c = this.c;
    const bd = new Float64Array(k), bi = new Int32Array(k);
    const rad = this.radius(m);
    const budget = this.grid.evaluations + Math.max(2 ** 24, GRID_WORK_PER_POINT * N);
    let guess = 0;
    for (let i = 0; i < N; i++) {
      const px = x[3 * i], py = x[3 * i + 1], pz = x[3 * i + 2];
      let near = this.nearestByTable(px, py, pz, guess, table, m, rad);
      if (near < 0) {
        near = this.grid.nearest(px, py, pz, this.jn);
        if (this.grid.evaluations > budget) {
          throw new FormatError("the segment's joints are too crowded to bind (a hostile layout: the search would cost N x J)");
        }
      }
      guess = near; // neighbours in storage (Morton) order share their nearest joint
      bd.fill(Infinity);
      bi.fill(-1);
      for (let a = 0; a < m; a++) {
        const j = table[near * m + a];
        const ex = px - c[3 * j], ey = py - c[3 * j + 1], ez = pz - c[3 * j + 2];
        if ((ex * ex + ey * ey + ez * ez) * (1 - PREFILTER) > bd[k - 1]) continue;
        insertNearest(bd, bi, d2f32(px, py, pz, c[3 * j], c[3 * j + 1], c[3 * j + 2]), j);
      }
      for (let b = 0; b < k; b++) {
        idx[i * k + b] = bi[b];
        d2[i * k + b] = bd[b];
      }
    }
    return { k, idx, d2 };
  }
  /** Skin binding of points x [N*3] with kernel length l: weights exp(-(d2 - d2_0)/l^2), normalised (float32). */
  bind(x: Float32Array, kWant: number, length: number): Binding {
    const { k, idx, d2 } = this.knn(x, kWant);
    const N = x.length / 3;
    const l2 = f32(Math.max(length * length, 1e-30));
    const w = new Float32Array(N * k);
    for (let i = 0; i < N; i++) {
      const d0 = d2[i * k];
      let s = 0;
      for (let b = 0; b < k; b++) {
        const e = f32(Math.exp(f32(-f32(d2[i * k + b] - d0) / l2)));
        w[i * k + b] = e;
        s = f32(s + e);
      }
      for (let b = 0; b < k; b++) w[i * k + b] = w[i * k + b] / s;
    }
    return { k, idx, w };
  }
}

/** Rotation vectors [J*3] (radians) -> unit quaternions [J*4] (float32 steps, series near 0). */
export function rotvecToQuat(v: Float32Array): Float32Array {
  const J = v.length / 3;
  const q = new Float32Array(J * 4);
  for (let j = 0; j < J; j++) {
    const a = v[3 * j], b = v[3 * j + 1], c = v[3 * j + 2];
    const ang = f32(Math.sqrt(f32(f32(f32(a * a) + f32(b * b)) + f32(c * c))));
    const half = f32(0.5 * ang);
    const k = ang > 1e-6 ? f32(f32(Math.sin(half)) / Math.max(ang, 1e-12)) : f32(0.5 - f32(f32(ang * ang) / 48));
    q[4 * j] = Math.cos(half);
    q[4 * j + 1] = f32(a * k);
    q[4 * j + 2] = f32(b * k);
    q[4 * j + 3] = f32(c * k);
  }
  return q;
}

/** Rotation matrices [J*9] (row-major) of quaternions [J*4], normalised first (float32 steps). */
export function quatToMatrix(q: Float32Array): Float32Array {
  const u = unitQuatsF32(q);
  const J = q.length / 4;
  const R = new Float32Array(J * 9);
  for (let j = 0; j < J; j++) {
    const w = u[4 * j], x = u[4 * j + 1], y = u[4 * j + 2], z = u[4 * j + 3];
    const xx = f32(x * x), yy = f32(y * y), zz = f32(z * z);
    const xy = f32(x * y), xz = f32(x * z), yz = f32(y * z), wx = f32(w * x), wy = f32(w * y), wz = f32(w * z);
    const o = 9 * j;
    R[o] = 1 - 2 * f32(yy + zz);
    R[o + 1] = 2 * f32(xy - wz);
    R[o + 2] = 2 * f32(xz + wy);
    R[o + 3] = 2 * f32(xy + wz);
    R[o + 4] = 1 - 2 * f32(xx + zz);
    R[o + 5] = 2 * f32(yz - wx);
    R[o + 6] = 2 * f32(xz - wy);
    R[o + 7] = 2 * f32(yz + wx);
    R[o + 8] = 1 - 2 * f32(xx + yy);
  }
  return R;
}

/** Hamilton product a (x) b of wxyz quaternions, each term rounded to float32 as the spec's reference does. */
export function quatMul(a: ArrayLike<number>, ao: number, b: ArrayLike<number>, bo: number, out: Float32Array, oo: number): void {
  const aw = a[ao], ax = a[ao + 1], ay = a[ao + 2], az = a[ao + 3];
  const bw = b[bo], bx = b[bo + 1], by = b[bo + 2], bz = b[bo + 3];
  out[oo] = f32(f32(f32(f32(aw * bw) - f32(ax * bx)) - f32(ay * by)) - f32(az * bz));
  out[oo + 1] = f32(f32(f32(f32(aw * bx) + f32(ax * bw)) + f32(ay * bz)) - f32(az * by));
  out[oo + 2] = f32(f32(f32(f32(aw * by) - f32(ax * bz)) + f32(ay * bw)) + f32(az * bx));
  out[oo + 3] = f32(f32(f32(f32(aw * bz) + f32(ax * by)) - f32(ay * bx)) + f32(az * bw));
}

/** One frame's dequantized joint transforms. */
export interface JointPose {
  /** [J*4] joint quaternions */
  q: Float32Array;
  /** [J*9] rotation matrices */
  R: Float32Array;
  /** [J*3] translations */
  t: Float32Array;
}

/** Joint transforms of a frame from its integers v [J*6] (r_x, r_y, r_z, t_x, t_y, t_z). */
export function jointPose(v: ArrayLike<number>, J: number, rotStep: number, transStep: number): JointPose {
  const rv = new Float32Array(3 * J), t = new Float32Array(3 * J);
  for (let j = 0; j < J; j++) {
    for (let a = 0; a < 3; a++) {
      rv[3 * j + a] = v[6 * j + a] * rotStep;
      t[3 * j + a] = v[6 * j + 3 + a] * transStep;
    }
  }
  const q = rotvecToQuat(rv);
  return { q, R: quatToMatrix(q), t };
}

/**
 * Skinned centres and rotations of a frame: x = sum_k w (R_j (x0 - c_j) + c_j + t_j) + o and
 * q = normalise(sum_k w s Q_j) (x) q0. Writes means [N*3] and quats [N*4].
 */
export function skin(pose: JointPose, centres: Float32Array, b: Binding, x0: Float32Array, q0: Float32Array,
                     offset: Float32Array, means: Float32Array, quats: Float32Array): void {
  const J = centres.length / 3;
  const N = x0.length / 3;
  const { R, t, q } = pose;
  // per joint: [R | u] with u = c + t - R c
  const M = new Float64Array(J * 12);
  for (let j = 0; j < J; j++) {
    const cx = centres[3 * j], cy = centres[3 * j + 1], cz = centres[3 * j + 2];
    const r = 9 * j, o = 12 * j;
    for (let a = 0; a < 9; a++) M[o + a] = R[r + a];
    for (let a = 0; a < 3; a++) {
      const rc = R[r + 3 * a] * cx + R[r + 3 * a + 1] * cy + R[r + 3 * a + 2] * cz;
      M[o + 9 + a] = centres[3 * j + a] + t[3 * j + a] - rc;
    }
  }
  const k = b.k, idx = b.idx, w = b.w;
  for (let i = 0; i < N; i++) {
    let a0 = 0, a1 = 0, a2 = 0, a3 = 0, a4 = 0, a5 = 0, a6 = 0, a7 = 0, a8 = 0, a9 = 0, a10 = 0, a11 = 0;
    let qw = 0, qx = 0, qy = 0, qz = 0;
    const base = i * k;
    const j0 = 4 * idx[base];
    const pw = q[j0], px = q[j0 + 1], py = q[j0 + 2], pz = q[j0 + 3];
    for (let s = 0; s < k; s++) {
      const ws = w[base + s];
      const j = idx[base + s];
      const o = 12 * j;
      a0 += ws * M[o]; a1 += ws * M[o + 1]; a2 += ws * M[o + 2];
      a3 += ws * M[o + 3]; a4 += ws * M[o + 4]; a5 += ws * M[o + 5];
      a6 += ws * M[o + 6]; a7 += ws * M[o + 7]; a8 += ws * M[o + 8];
      a9 += ws * M[o + 9]; a10 += ws * M[o + 10]; a11 += ws * M[o + 11];
      const jq = 4 * j;
      const jw = q[jq], jx = q[jq + 1], jy = q[jq + 2], jz = q[jq + 3];
      // hemisphere of joint j against the nearest joint's (sign 1 when the dot is 0)
      const sw = jw * pw + jx * px + jy * py + jz * pz < 0 ? -ws : ws;
      qw += sw * jw; qx += sw * jx; qy += sw * jy; qz += sw * jz;
    }
    const i3 = 3 * i;
    const x = x0[i3], y = x0[i3 + 1], z = x0[i3 + 2];
    means[i3] = a0 * x + a1 * y + a2 * z + a9 + offset[i3];
    means[i3 + 1] = a3 * x + a4 * y + a5 * z + a10 + offset[i3 + 1];
    means[i3 + 2] = a6 * x + a7 * y + a8 * z + a11 + offset[i3 + 2];
    const inv = 1 / Math.max(Math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz), 1e-12);
    const aw = qw * inv, ax = qx * inv, ay = qy * inv, az = qz * inv;
    const i4 = 4 * i;
    const bw = q0[i4], bx = q0[i4 + 1], by = q0[i4 + 2], bz = q0[i4 + 3];
    quats[i4] = aw * bw - ax * bx - ay * by - az * bz;
    quats[i4 + 1] = aw * bx + ax * bw + ay * bz - az * by;
    quats[i4 + 2] = aw * by - ax * bz + ay * bw + az * bx;
    quats[i4 + 3] = aw * bz + ax * by - ay * bx + az * bw;
  }
}

/**
 * Rest pose of Gaussians born at a frame (section 3.5 step 2): centres x [M*3] and unit
 * quaternions qu [M*4] at the frame's pose; the nearest moved joint's inverse transform.
 */
export function restPose(x: Float32Array, qu: Float32Array, centres: Float32Array, pose: JointPose
                         ): { x0: Float32Array; q0: Float32Array } {
  const J = centres.length / 3, M = x.length / 3;
  const moved = new Float32Array(3 * J);
  for (let a = 0; a < 3 * J; a++) moved[a] = centres[a] + pose.t[a];
  if (!moved.every(Number.isFinite)) throw new FormatError("moved joint centres are not finite");
  const { idx } = new JointSet(moved).knn(x, 1);
  const x0 = new Float32Array(3 * M), q0 = new Float32Array(4 * M);
  const qi = new Float32Array(4);
  for (let i = 0; i < M; i++) {
    const j = idx[i];
    qi[0] = pose.q[4 * j];
    qi[1] = -pose.q[4 * j + 1];
    qi[2] = -pose.q[4 * j + 2];
    qi[3] = -pose.q[4 * j + 3];
    const Rm = quatToMatrix(qi);
    const e0 = f32(x[3 * i] - moved[3 * j]), e1 = f32(x[3 * i + 1] - moved[3 * j + 1]), e2 = f32(x[3 * i + 2] - moved[3 * j + 2]);
    for (let a = 0; a < 3; a++) {
      const r = f32(f32(f32(Rm[3 * a] * e0) + f32(Rm[3 * a + 1] * e1)) + f32(Rm[3 * a + 2] * e2));
      x0[3 * i + a] = r + centres[3 * j + a];
    }
    quatMul(qi, 0, qu, 4 * i, q0, 4 * i);
  }
  return { x0, q0: unitQuatsF32(q0) };
}
