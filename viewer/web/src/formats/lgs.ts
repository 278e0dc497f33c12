/**
 * `.lgs` scene decoder, versions 1-4 (docs/formats/lgs.md): container LGS1, Morton-coded
 * positions, channel streams (plain, delta, context-modelled), precision classes (bits dropped,
 * or any grid factor from version 4), quantizers with any number of steps (version 4),
 * smallest-three rotations, colour transform, SH rest through a codebook plus direct rows.
 * Output: `SplatArrays`, Gaussians in the file's (Morton) order, bit-identical with the
 * Python reader `read_lgs`.
 */
import { decodeChannels, type ChannelOptions, type ContextFn, type IntArray } from "./channels.js";
import { unpackContainer, type Container } from "./container.js";
import { decodeIntsRaw } from "./entropy.js";
import { FormatError, naming } from "./errors.js";
import { getInt, getObject, isObject, type JsonObject } from "./header.js";
import { gaussianCap, requireAtMost } from "./limits.js";
import { bitLength, MAX_LEVELS, quantFromJson, stepsFromJson, type UniformQuant } from "./quant.js";
import type { SplatArrays } from "./types.js";

export const LGS_MAGIC = "LGS1";
/** Newest version this reader knows. */
export const LGS_VERSION = 4;
/** Most Gaussians one file may hold. */
export const LGS_MAX_COUNT = 1 << 28;
/** Most bits a precision class may drop. */
export const MAX_DROP = 8;
/** Position grid bits per axis (3 x 21 = 63-bit Morton codes). */
export const MAX_POSITION_BITS = 21;
/** Coarsest grid factor of a version-4 precision class. */
export const MAX_FACTOR = 256;

const INV_SQRT2 = 1.0 / Math.sqrt(2.0);
const ANISO_EDGES = [0.1, 0.3, 0.7, 1.5, 3.0].map(Math.fround);

export interface LgsOptions {
  /** File name for messages. */
  file?: string;
  /** Replaces the cap on the Gaussian count (16 per file byte + 65,536). */
  maxGaussians?: number;
}

/** Decode `.lgs` bytes to flat float32 arrays (FormatError naming `opts.file` for bad input). */
export function decodeLgs(data: Uint8Array, opts: LgsOptions = {}): SplatArrays {
  return naming(opts.file, () => {
    const box = unpackContainer(data, { magic: LGS_MAGIC, maxVersion: LGS_VERSION, what: ".lgs file" });
    const cap = Math.min(LGS_MAX_COUNT, gaussianCap(data.length, opts.maxGaussians));
    return decodeBox(box, cap);
  });
}

/** The Gaussian count and SH degree from a `.lgs` file's header (index only, no payload decoded). */
export function lgsInfo(box: Container): { count: number; shDegree: number } {
  return { count: getInt(box.header, "count", 0, LGS_MAX_COUNT), shDegree: getInt(box.header, "sh_degree", 0, 3) };
}

function decodeBox(box: Container, cap: number): SplatArrays {
  const h = box.header;
  const version = box.version;
  const n = getInt(h, "count", 0, LGS_MAX_COUNT);
  requireAtMost(n, cap, "Gaussian count", "maxGaussians");
  const deg = getInt(h, "sh_degree", 0, 3);
  const v4 = version >= 4;
  const gq = quantFromJson(h["positions"], 3, "positions", MAX_POSITION_BITS, v4, 2 ** MAX_POSITION_BITS - 1);
  const oq = quantFromJson(h["opacity"], 1, "opacity", 16, v4);
  const sq = quantFromJson(h["log_scales"], 3, "log-scales", 16, v4);
  const cq = quantFromJson(h["sh_dc"], 3, "SH DC", 16, v4);
  const rlevels = stepsFromJson(getObject(h, "rotation"), "rotation", 16, v4, MAX_LEVELS);
  const rspan = rlevels + 1;
  const allowContext = version >= 2;
  const chans = (tag: string, rows: number, channels: number, o: ChannelOptions) =>
    decodeChannels(box.get(tag), rows, channels, { ...o, allowContext });

  const [cls, table] = precision(h, n, version, chans, Math.min(sq.bits, bitLength(rlevels), cq.bits),
    Math.min(sq.levels, rlevels, cq.levels));
  const nc = table.length;
  const factors = cls === null ? null : factorsPerGaussian(cls, table);
  const opq = chans("OPAC", n, 1, { hi: oq.levels, what: "opacity" })[0];
  const ob = buckets(opq, oq.span, 4);

  // scales: contexts ob, then ob*8 + bucket(previous scale channel)
  const scal = chans("SCAL", n, 3, {
    hi: sq.levels, what: "scales",
    context: withClass((c, earlier) => (c === 0 ? { ctx: ob, count: 4 } : { ctx: combine(ob, 8, buckets(earlier[c - 1], sq.span, 8)), count: 32 }), cls, nc),
  });
  const logScales = refineDequantize(scal, factors, sq, n);
  const aniso = anisotropy(logScales, n);
  const ridx = chans("ROTI", n, 1, { hi: 3, what: "rotation index", context: () => ({ ctx: aniso, count: 6 }) })[0];
  const rbase = combine(aniso, 4, ridx);
  const rvals = chans("ROTV", n, 3, {
    hi: rlevels, what: "rotation",
    context: withClass((c, earlier) => (c === 0 ? { ctx: rbase, count: 24 } : { ctx: combine(rbase, 4, buckets(earlier[c - 1], rspan, 4)), count: 96 }), cls, nc),
  });
  const quats = rotations(ridx, rvals, factors, rlevels, n);

  const shDc = colour(h, chans, n, ob, cq, cls, nc, factors);
  const opacityLogits = logits(opq, oq, n);
  const means = positions(box.get("POSN"), n, gq);
  const shRest = shRestRows(h, chans, n, deg, v4);
  return { count: n, shDegree: deg, means, quats, logScales, opacityLogits, shDc, shRest };
}

type Chans = (tag: string, rows: number, channels: number, o: ChannelOptions) => IntArray[];

/** (class per Gaussian or null, grid factor per class) from the header and PCLS. `maxDrop`: the fewest
 * bits of scales, rotations and colour; `finestLevels`: their fewest steps. */
function precision(h: JsonObject, n: number, version: number, chans: Chans, maxDrop: number,
  finestLevels: number): [IntArray | null, number[]] {
  const p = h["precision"];
  if (p === undefined || p === null) return [null, [1]];
  if (version < 2) throw new FormatError("precision classes need .lgs version 2");
  if (!isObject(p)) throw new FormatError("header field 'precision' is malformed");
  const top = Math.min(MAX_DROP, maxDrop - 1);
  if ("factors" in p) {
    if (version < 4) throw new FormatError("precision.factors needs .lgs version 4");
    const f = p["factors"];
    const fTop = Math.min(MAX_FACTOR, finestLevels);
    if (!Array.isArray(f) || f.length < 2 || f.length > MAX_DROP + 1
      || !f.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 1 && x <= fTop)) {
      throw new FormatError(`precision.factors must list 2..${MAX_DROP + 1} integers in [1, ${fTop}]`);
    }
    const cls = chans("PCLS", n, 1, { hi: f.length - 1, what: "precision classes" })[0];
    return [cls, f as number[]];
  }
  if ("drops" in p) {
    if (version < 3) throw new FormatError("precision.drops needs .lgs version 3");
    const d = p["drops"];
    if (!Array.isArray(d) || d.length < 2 || d.length > MAX_DROP + 1
      || !d.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= top)) {
      throw new FormatError(`precision.drops must list 2..${MAX_DROP + 1} integers in [0, ${top}]`);
    }
    const cls = chans("PCLS", n, 1, { hi: d.length - 1, what: "precision classes" })[0];
    return [cls, (d as number[]).map((x) => 2 ** x)];
  }
  const drop = getInt(p, "drop", 1, top, "precision");
  const low = getInt(p, "low_count", 1, n, "precision");
  const cls = chans("PCLS", n, 1, { hi: 1, what: "precision classes" })[0];
  let sum = 0;
  for (let i = 0; i < n; i++) sum += cls[i];
  if (sum !== low) throw new FormatError(`precision classes hold ${sum} low-precision Gaussians, the header says ${low}`);
  return [cls, [1, 2 ** drop]];
}

function factorsPerGaussian(cls: IntArray, table: number[]): Int32Array {
  const out = new Int32Array(cls.length);
  for (let i = 0; i < cls.length; i++) out[i] = table[cls[i]];
  return out;
}

/** bucket(q, S, k) = clamp(floor(q k / S), 0, k - 1) per row, S the span (L + 1) of the values
 * (q below 2^17, k <= 8: int32 maths; a shift when S is a power of two). */
function buckets(q: IntArray, span: number, k: number): Int32Array {
  const out = new Int32Array(q.length);
  const top = k - 1;
  const shift = (span & (span - 1)) === 0 ? bitLength(span) - 1 : -1;
  for (let i = 0; i < q.length; i++) {
    const b = shift >= 0 ? (q[i] * k) >> shift : Math.floor((q[i] * k) / span);
    out[i] = b < 0 ? 0 : b > top ? top : b;
  }
  return out;
}

/** a * k + b per row. */
function combine(a: Int32Array, k: number, b: IntArray): Int32Array {
  const out = new Int32Array(a.length);
  for (let i = 0; i < a.length; i++) out[i] = a[i] * k + b[i];
  return out;
}

/** With C precision classes a context becomes C * context + class (C times the count). */
function withClass(fn: ContextFn, cls: IntArray | null, nc: number): ContextFn {
  if (cls === null) return fn;
  return (c, earlier) => {
    const { ctx, count } = fn(c, earlier);
    return { ctx: combine(ctx, nc, cls), count: count * nc };
  };
}

/** float32 lo + min(s * f, levels) * step per value (float64 inside; s itself where f = 1), channels interleaved. */
function refineDequantize(ch: IntArray[], factors: Int32Array | null, q: UniformQuant, n: number): Float32Array {
  const C = ch.length;
  const out = new Float32Array(n * C);
  for (let c = 0; c < C; c++) {
    const s = ch[c], lo = q.lo[c], step = q.step[c], levels = q.levels;
    if (factors === null) {
      for (let i = 0; i < n; i++) out[i * C + c] = lo + s[i] * step;
    } else {
      for (let i = 0; i < n; i++) {
        const f = factors[i];
        let v = s[i];
        if (f > 1) {
          v *= f; // stored values are below 2^16 and f <= 256
          if (v > levels) v = levels;
        }
        out[i * C + c] = lo + v * step;
      }
    }
  }
  return out;
}

/** Anisotropy class 0..5: thresholds (float32) at or below max - min of the row's log-scales (float32). */
function anisotropy(ls: Float32Array, n: number): Int32Array {
  const out = new Int32Array(n);
  const e0 = ANISO_EDGES[0], e1 = ANISO_EDGES[1], e2 = ANISO_EDGES[2], e3 = ANISO_EDGES[3], e4 = ANISO_EDGES[4];
  for (let i = 0; i < n; i++) {
    const a = ls[3 * i], b = ls[3 * i + 1], c = ls[3 * i + 2];
    let hi = a, lo = a;
    if (b > hi) hi = b;
    if (b < lo) lo = b;
    if (c > hi) hi = c;
    if (c < lo) lo = c;
    const r = Math.fround(hi - lo);
    out[i] = (e0 <= r ? 1 : 0) + (e1 <= r ? 1 : 0) + (e2 <= r ? 1 : 0) + (e3 <= r ? 1 : 0) + (e4 <= r ? 1 : 0);
  }
  return out;
}

/** Smallest-three rotations to unit wxyz quaternions (float64 steps, float32 out). */
function rotations(ridx: IntArray, v: IntArray[], factors: Int32Array | null, levels: number, n: number): Float32Array {
  const out = new Float32Array(4 * n);
  const v0 = v[0], v1 = v[1], v2 = v[2];
  const q = new Float64Array(4);
  for (let i = 0; i < n; i++) {
    let a = v0[i], b = v1[i], c = v2[i];
    if (factors !== null && factors[i] > 1) {
      const f = factors[i];
      a = Math.min(a * f, levels);
      b = Math.min(b * f, levels);
      c = Math.min(c * f, levels);
    }
    const r0 = (a / levels * 2.0 - 1.0) * INV_SQRT2;
    const r1 = (b / levels * 2.0 - 1.0) * INV_SQRT2;
    const r2 = (c / levels * 2.0 - 1.0) * INV_SQRT2;
    const ss = r0 * r0 + r1 * r1 + r2 * r2;
    const big = Math.sqrt(Math.min(Math.max(1.0 - ss, 0.0), 1.0));
    const k = ridx[i];
    // the left-out component at index k, the other three in increasing index order
    q[0] = k === 0 ? big : r0;
    q[1] = k === 1 ? big : k === 0 ? r0 : r1;
    q[2] = k === 2 ? big : k === 3 ? r2 : r1;
    q[3] = k === 3 ? big : r2;
    const nn = q[0] * q[0] + q[1] * q[1] + q[2] * q[2] + q[3] * q[3];
    const d = Math.max(Math.sqrt(nn), 1e-12);
    out[4 * i] = q[0] / d;
    out[4 * i + 1] = q[1] / d;
    out[4 * i + 2] = q[2] / d;
    out[4 * i + 3] = q[3] / d;
  }
  return out;
}

/** SH DC: COLR channels (optionally g, r-g, b-g), range-checked, refined, dequantized. */
function colour(h: JsonObject, chans: Chans, n: number, ob: Int32Array, cq: UniformQuant, cls: IntArray | null, nc: number,
  factors: Int32Array | null): Float32Array {
  const sd = h["sh_dc"] as JsonObject;
  const mode = sd["transform"] ?? "none";
  if (mode !== "none" && mode !== "g,r-g,b-g") throw new FormatError(`unknown colour transform ${JSON.stringify(mode).slice(0, 40)}`);
  const L = cq.levels;
  const t = chans("COLR", n, 3, {
    lo: -L, hi: L, what: "SH DC",
    context: withClass((c, earlier) => {
      if (c === 0) return { ctx: ob, count: 4 };
      const c0 = buckets(earlier[0], cq.span, 8);
      if (c === 1) return { ctx: c0, count: 8 };
      const t1 = earlier[1];
      const shifted = new Int32Array(n);
      const half = cq.span;
      for (let i = 0; i < n; i++) shifted[i] = t1[i] + half;
      return { ctx: combine(c0, 4, buckets(shifted, 2 * cq.span, 4)), count: 32 };
    }, cls, nc),
  });
  let rgb = t;
  if (mode !== "none") {
    const r = new Int32Array(n), g = new Int32Array(n), b = new Int32Array(n);
    const t0 = t[0], t1 = t[1], t2 = t[2];
    for (let i = 0; i < n; i++) {
      r[i] = t1[i] + t0[i];
      g[i] = t0[i];
      b[i] = t2[i] + t0[i];
    }
    rgb = [r, g, b];
  }
  for (const ch of rgb) {
    for (let i = 0; i < n; i++) {
      if (ch[i] < 0 || ch[i] > L) throw new FormatError("SH DC stream decodes outside the quantizer's range");
    }
  }
  return refineDequantize(rgb, factors, cq, n);
}

/** Opacity logits: p = float32 dequantized opacity, clamped to [1e-6, 1 - 1e-6], log(p) - log1p(-p). */
function logits(opq: IntArray, oq: UniformQuant, n: number): Float32Array {
  const out = new Float32Array(n);
  const lo = oq.lo[0], step = oq.step[0];
  for (let i = 0; i < n; i++) {
    let p = Math.fround(lo + opq[i] * step);
    p = p < 1e-6 ? 1e-6 : p > 1.0 - 1e-6 ? 1.0 - 1e-6 : p;
    out[i] = Math.log(p) - Math.log1p(-p);
  }
  return out;
}

/** Every third bit of x from bit 0 (bits 0, 3, ..., 30) packed into 11 bits. */
function compact3(x: number): number {
  const top = (x >>> 30) & 1;
  x &= 0x09249249;
  x = (x | (x >>> 2)) & 0x030c30c3;
  x = (x | (x >>> 4)) & 0x0300f00f;
  x = (x | (x >>> 8)) & 0xff0000ff;
  x = (x | (x >>> 16)) & 0x000003ff;
  return x | (top << 10);
}

/** POSN: non-negative gaps, running sums = sorted 63-bit Morton codes, grid indices dequantized. */
function positions(data: Uint8Array, n: number, g: UniformQuant): Float32Array {
  const r = decodeIntsRaw(data, n);
  if (r.n !== n) throw new FormatError(`position stream holds ${r.n} values, expected ${n}`);
  const lo = r.lo, hi = r.hi;
  const out = new Float32Array(3 * n);
  const lx = g.lo[0], ly = g.lo[1], lz = g.lo[2], sx = g.step[0], sy = g.step[1], sz = g.step[2];
  let sumLo = 0, sumHi = 0;
  const gl_ = g.levels, wholeGrid = (g.span & (g.span - 1)) === 0;
  for (let i = 0; i < n; i++) {
    let gl = lo[i], gh = hi === null ? 0 : hi[i];
    if (r.signed) {
      if (gl & 1) throw new FormatError("position stream holds negative gaps");
      gl = ((gl >>> 1) | ((gh & 1) << 31)) >>> 0;
      gh = gh >>> 1;
    } else if (gh >= 0x80000000) {
      throw new FormatError("position stream holds negative gaps");
    }
    sumLo += gl;
    sumHi += gh;
    if (sumLo >= 4294967296) {
      sumLo -= 4294967296;
      sumHi += 1;
    }
    if (sumHi >= 0x80000000) throw new FormatError("position codes exceed the grid declared in the header");
    const cl = sumLo, ch = sumHi;
    const x = compact3(cl) + compact3(ch >>> 1) * 2048;
    const y = compact3(cl >>> 1) + compact3(ch >>> 2) * 2048;
    const z = compact3(cl >>> 2) + compact3(ch) * 1024;
    if (!wholeGrid && (x > gl_ || y > gl_ || z > gl_)) {
      throw new FormatError("position codes exceed the grid declared in the header");
    }
    out[3 * i] = lx + x * sx;
    out[3 * i + 1] = ly + y * sy;
    out[3 * i + 2] = lz + z * sz;
  }
  const bits3 = 3 * g.bits;
  if (n && (bits3 <= 32 ? sumHi !== 0 || sumLo >= 2 ** bits3 : sumHi >= 2 ** (bits3 - 32))) {
    throw new FormatError("position codes exceed the grid declared in the header");
  }
  return out;
}

/** SH rest [N * D], D = 3K: codebook rows by SHIX index, or the next SHDR row where the index is C. */
function shRestRows(h: JsonObject, chans: Chans, n: number, deg: number, v4: boolean): Float32Array {
  const K = (deg + 1) * (deg + 1) - 1;
  if (K === 0) return new Float32Array(0);
  const D = 3 * K;
  const s = getObject(h, "sh_rest");
  const kcb = getInt(s, "codebook_size", 0, n, "sh_rest");
  const ndir = getInt(s, "direct_count", 0, n, "sh_rest");
  const cbq = quantFromJson(s["codebook"], D, "SH codebook", 16, v4);
  const drq = quantFromJson(s["direct"], D, "SH direct", 16, v4);
  const labels = chans("SHIX", n, 1, { hi: kcb, what: "SH indices" })[0];
  const shContext = (span: number): ContextFn => (c, earlier) =>
    c % 3 === 0 ? { ctx: new Int32Array(earlier.length ? earlier[0].length : 0), count: 1 }
      : { ctx: buckets(earlier[c - (c % 3)], span, 8), count: 8 };
  const cb = chans("SHCB", kcb, D, { hi: cbq.levels, what: "SH codebook", context: shContext(cbq.span) });
  const dr = chans("SHDR", ndir, D, { hi: drq.levels, what: "SH direct", context: shContext(drq.span) });
  let direct = 0;
  for (let i = 0; i < n; i++) if (labels[i] === kcb) direct++;
  if (direct !== ndir) throw new FormatError(`${direct} Gaussians are marked direct but ${ndir} direct SH rows are stored`);
  const table = refineDequantize(cb, null, cbq, kcb);
  const rows = refineDequantize(dr, null, drq, ndir);
  const out = new Float32Array(n * D);
  let j = 0;
  for (let i = 0; i < n; i++) {
    const l = labels[i];
    const src = l === kcb ? rows : table;
    const from = (l === kcb ? j++ : l) * D;
    const to = i * D;
    for (let k = 0; k < D; k++) out[to + k] = src[from + k];
  }
  return out;
}
