/**
 * `.gsi` images (docs/formats/gsi.md): quantised, entropy-coded 2D Gaussians, versions 1 and 2.
 *
 *   const img = decodeGsi(bytes, { file: "photo.gsi" });   // -> Gaussians2D in LOD order
 *
 * Dequantisation follows section 4 of the spec: float64 maths, rounded to float32 once.
 */
import { FormatError, naming } from "./errors.js";
import { unpackContainer } from "./container.js";
import { decodeInts, decodeIntsRaw, unpackArrays, type RawInts } from "./entropy.js";
import { decodeCtx, bucket } from "./context.js";
import { gaussianCap } from "./limits.js";

export const GSI_MAGIC = "GSI1";
export const GSI_VERSION = 2;
const MAX_SIDE = 1 << 20;
const MAX_COUNT = 1 << 24;
const MAX_PIXELS = 1 << 26;
const MASKS_PER_BYTE = 360;

/** An image as N 2D Gaussians, in file (level-of-detail) order: any prefix is a coarser image. */
export interface Gaussians2D {
  count: number;
  width: number;
  height: number;
  /** C, 1..16 */
  channels: number;
  /** render rule: "topk" (normalised, k per pixel) or "sum" */
  mode: "topk" | "sum";
  k: number;
  /** sizes of the LOD layers (sum = count); prefixes ending on a layer boundary are the intended levels */
  layers: number[];
  /** [N*2] centres in pixels (x right, y down; pixel (i, j) centred at (i + 0.5, j + 0.5)) */
  means: Float32Array;
  /** [N*2] standard deviations in pixels along the rotated axes */
  scales: Float32Array;
  /** [N] radians: axis 0 points along (cos r, sin r) */
  rotations: Float32Array;
  /** [N*C] colours in image units (0 black, 1 full scale), channel fastest */
  colors: Float32Array;
  /** the header's `meta` object (informative) */
  meta: Record<string, unknown>;
  /** file format version (1 or 2) */
  version: number;
}

export interface GsiOptions {
  /** file name for error messages */
  file?: string;
  /** raise the Gaussian cap (default 16 per file byte + 65,536) */
  maxGaussians?: number;
  /** raise the stored-image pixel cap (default 2^26) */
  maxPixels?: number;
}

interface Quant {
  posStep: number;
  sizeLo: number;
  sizeHi: number;
  sizeBits: number;
  anisoMax: number;
  anisoBits: number;
  colorTransform: "ycocg" | "none";
  colorLo: number[];
  colorHi: number[];
  colorBits: number[];
}

const QUANT_KEYS = ["pos_step", "size_lo", "size_hi", "size_bits", "aniso_max", "aniso_bits", "color_transform",
  "color_lo", "color_hi", "color_bits"];

/** Python's round(): half to even. */
export function roundHalfEven(x: number): number {
  const f = Math.floor(x);
  const d = x - f;
  if (d > 0.5) return f + 1;
  if (d < 0.5) return f;
  return f % 2 === 0 ? f : f + 1;
}

function isInt(v: unknown): v is number {
  return typeof v === "number" && Number.isInteger(v);
}

function isNum(v: unknown): v is number {
  return typeof v === "number" && Number.isFinite(v);
}

function bitLength(v: number): number {
  return v <= 0 ? 0 : 32 - Math.clz32(v);
}

/** Levels of the position quadtree: bit length of max(round(W/step), round(H/step)), at least 1. */
export function treeDepth(width: number, height: number, posStep: number): number {
  const m = Math.max(roundHalfEven(width / posStep), roundHalfEven(height / posStep));
  return Math.max(1, bitLength(m));
}

function step(lo: number, hi: number, bits: number): number {
  return hi - lo > 0 ? (hi - lo) / (2 ** bits - 1) : 1.0;
}

/** Decode a `.gsi` file to its 2D Gaussians (FormatError naming `opts.file` on any fault). */
export function decodeGsi(data: Uint8Array, opts: GsiOptions = {}): Gaussians2D {
  return naming(opts.file, () => decodeGsiBytes(data, opts));
}

function decodeGsiBytes(data: Uint8Array, opts: GsiOptions): Gaussians2D {
  const file = opts.file;
  const bad = (msg: string): never => {
    throw new FormatError(`invalid .gsi file: ${msg}`, file);
  };
  const c = unpackContainer(data, { magic: GSI_MAGIC, maxVersion: GSI_VERSION, what: ".gsi file" });
  const h = c.header as Record<string, unknown>;
  const int = (key: string, lo: number, hi: number): number => {
    const v = h[key];
    if (!isInt(v) || v < lo || v > hi) {
      throw new FormatError(`.gsi header field '${key}' is not an integer in [${lo}, ${hi}]`, file);
    }
    return v;
  };
  const width = int("width", 1, MAX_SIDE);
  const height = int("height", 1, MAX_SIDE);
  const maxPixels = opts.maxPixels ?? MAX_PIXELS;
  if (width * height > maxPixels) {
    throw new FormatError(`stored image of ${width}x${height} pixels exceeds the limit of ${maxPixels} (raise maxPixels)`, file);
  }
  const channels = int("channels", 1, 16);
  const n = int("count", 1, MAX_COUNT);
  const cap = opts.maxGaussians ?? gaussianCap(data.length);
  if (n > cap) throw new FormatError(`Gaussian count ${n} exceeds the limit of ${cap} for this file (raise maxGaussians)`, file);
  const k = int("k", 1, 64);
  const mode = h.mode;
  if (mode !== "topk" && mode !== "sum") bad(`unknown render mode ${JSON.stringify(mode)?.slice(0, 40)}`);
  const layersRaw = h.layers;
  if (!Array.isArray(layersRaw) || layersRaw.length === 0 || layersRaw.length > 64
      || !layersRaw.every((s) => isInt(s) && s > 0) || layersRaw.reduce((a: number, b: number) => a + b, 0) !== n) {
    bad(`layer sizes do not add up to the count ${n}`);
  }
  const layers = (layersRaw as number[]).slice();
  const names = ["sa", "su", "sv", ...Array.from({ length: channels }, (_, i) => `c${i}`)];
  let deltaNames: string[] = [];
  let positions = "delta";
  let treeNodes = 0;
  if (c.version === 1) {
    const d = h.delta;
    if (!Array.isArray(d) || !d.every((x) => typeof x === "string" && names.includes(x))) bad("bad 'delta' list");
    deltaNames = d as string[];
  } else {
    if (h.positions !== "tree" && h.positions !== "delta") bad("unknown position coding");
    positions = h.positions as string;
    treeNodes = int("tree_nodes", 0, 32 * n);
    if ((treeNodes > 0) !== (positions === "tree")) bad("'tree_nodes' does not match the position coding");
  }
  const q = readQuant(h.quant, channels, bad);
  const depth = treeDepth(width, height, q.posStep);

  const payload = c.get("GAUS");
  let qx: Uint32Array, qy: Uint32Array;
  const idx: Record<string, Int32Array> = {};
  try {
    if (c.version === 1) {
      const streams = unpackArrays(payload, 1 + names.length);
      const pos = decodeIntsRaw(streams[0], n);
      const vals = [new Float64Array(0), ...streams.slice(1).map((s) => decodeInts(s, n))];
      if (pos.n !== n || !vals.slice(1).every((v) => v.length === n)) bad("a parameter stream does not hold one value per Gaussian");
      [qx, qy] = codesFromGaps(pos, layers, depth, bad);
      names.forEach((name, i) => {
        const v = vals[i + 1];
        const out = new Int32Array(n);
        const delta = deltaNames.includes(name);
        const lim = 2 ** attrBits(q, name);
        let start = 0;
        for (const s of layers) {
          let acc = 0;
          for (let j = start; j < start + s; j++) {
            const x = v[j];
            acc = delta ? acc + x : x;
            if (!(acc >= 0 && acc < lim)) bad(`parameter '${name}' out of range`);
            out[j] = acc;
          }
          start += s;
        }
        idx[name] = out;
      });
    } else {
      const nPos = positions === "tree" ? 2 : 1;
      const streams = unpackArrays(payload, nPos + names.length);
      if (positions === "delta") {
        const gaps = decodeIntsRaw(streams[0], n);
        if (gaps.n !== n) bad("bad position stream");
        [qx, qy] = codesFromGaps(gaps, layers, depth, bad);
      } else {
        [qx, qy] = treePositions(streams[0], streams[1], layers, depth, treeNodes, n, bad);
      }
      decodeAttributes(streams.slice(nPos), q, names, qx, qy, layers, idx);
    }
  } catch (e) {
    if (e instanceof FormatError && !e.reason.startsWith("invalid .gsi file")) bad(e.reason);
    throw e;
  }
  const nx = roundHalfEven(width / q.posStep);
  const ny = roundHalfEven(height / q.posStep);
  for (let i = 0; i < n; i++) if (qx![i] > nx || qy![i] > ny) bad("a position lies outside the image");
  return dequantize(q, qx!, qy!, idx, n, channels, {
    width, height, mode: mode as "topk" | "sum", k, layers, version: c.version,
    meta: (h.meta && typeof h.meta === "object" && !Array.isArray(h.meta) ? h.meta : {}) as Record<string, unknown>,
  }, bad);
}

function readQuant(qd: unknown, ch: number, bad: (m: string) => never): Quant {
  if (!qd || typeof qd !== "object" || Array.isArray(qd)) bad("missing quantiser");
  const d = qd as Record<string, unknown>;
  const keys = Object.keys(d);
  if (keys.length !== QUANT_KEYS.length || !QUANT_KEYS.every((k) => k in d)) bad("bad quantiser (wrong keys)");
  const ps = d.pos_step;
  if (!isNum(ps) || ps < 2 ** -8 || ps > 64) bad("bad position step");
  if (!isInt(d.size_bits) || d.size_bits < 1 || d.size_bits > 16) bad("bad size bit depth");
  if (!isInt(d.aniso_bits) || d.aniso_bits < 1 || d.aniso_bits > 16) bad("bad anisotropy bit depth");
  const [lo, hi, am] = [d.size_lo, d.size_hi, d.aniso_max];
  if (!isNum(lo) || !isNum(hi) || !isNum(am) || !(lo < hi) || !(am > 0) || !(lo > -30) || !(hi < 30) || !(am < 30)) {
    bad("bad shape range");
  }
  const tr = d.color_transform;
  if ((tr !== "ycocg" && tr !== "none") || (tr === "ycocg" && ch < 3)) bad("bad colour transform");
  for (const key of ["color_lo", "color_hi", "color_bits"]) {
    const l = d[key];
    if (!Array.isArray(l) || l.length !== ch) bad("colour quantiser does not match the channel count");
  }
  const cb = d.color_bits as unknown[];
  if (!cb.every((b) => isInt(b) && b >= 1 && b <= 16)) bad("bad colour bit depth");
  const clo = d.color_lo as unknown[], chi = d.color_hi as unknown[];
  for (let i = 0; i < ch; i++) {
    const a = clo[i], b = chi[i];
    if (!isNum(a) || !isNum(b) || !(a < b)) bad("bad colour range");
  }
  return {
    posStep: ps as number, sizeLo: lo as number, sizeHi: hi as number, sizeBits: d.size_bits as number,
    anisoMax: am as number, anisoBits: d.aniso_bits as number, colorTransform: tr as "ycocg" | "none",
    colorLo: clo as number[], colorHi: chi as number[], colorBits: cb as number[],
  };
}

function attrBits(q: Quant, name: string): number {
  if (name === "sa") return q.sizeBits;
  if (name === "su" || name === "sv") return q.anisoBits;
  return q.colorBits[Number(name.slice(1))];
}

/** De-interleave 2D Morton codes given as (hi, lo) 32-bit halves: x = even bits, y = odd bits. */
function compact(v: number): number {
  // v: 32 bits holding 16 x bits on even positions -> 16-bit value
  v &= 0x55555555;
  v = (v | (v >>> 1)) & 0x33333333;
  v = (v | (v >>> 2)) & 0x0f0f0f0f;
  v = (v | (v >>> 4)) & 0x00ff00ff;
  v = (v | (v >>> 8)) & 0x0000ffff;
  return v >>> 0;
}

function spread(v: number): number {
  // 16-bit value -> its bits on the even positions of 32
  v &= 0xffff;
  v = (v | (v << 8)) & 0x00ff00ff;
  v = (v | (v << 4)) & 0x0f0f0f0f;
  v = (v | (v << 2)) & 0x33333333;
  v = (v | (v << 1)) & 0x55555555;
  return v >>> 0;
}

const TWO32 = 4294967296;

/** Running sums of Morton gaps restarted at each layer (a layer's first value is its code) -> (qx, qy). */
function codesFromGaps(gaps: RawInts, layers: number[], depth: number, bad: (m: string) => never): [Uint32Array, Uint32Array] {
  const n = gaps.n;
  const qx = new Uint32Array(n), qy = new Uint32Array(n);
  // codes lie below 2^(2 depth) <= 2^58: exact as (hi, lo) 32-bit halves
  const limitHi = 2 ** Math.max(0, 2 * depth - 32);
  const limitLo = 2 * depth >= 32 ? 0 : 2 ** (2 * depth);
  const above = (hi: number, lo: number) => (2 * depth >= 32 ? hi >= limitHi : hi > 0 || lo >= limitLo);
  let start = 0;
  for (const s of layers) {
    let hi = 0, lo = 0;
    for (let i = start; i < start + s; i++) {
      let glo = gaps.lo[i], ghi = gaps.hi === null ? 0 : gaps.hi[i];
      if (gaps.signed) {
        if (glo & 1) bad("bad position stream (negative gap)");
        glo = ((glo >>> 1) | ((ghi & 1) << 31)) >>> 0;
        ghi = ghi >>> 1;
      }
      if (above(ghi, glo)) bad("a position lies outside the image");
      lo += glo;
      hi += ghi;
      if (lo >= TWO32) { lo -= TWO32; hi += 1; }
      if (above(hi, lo)) bad("a position lies outside the image");
      qx[i] = (compact(lo) | (compact(hi) << 16)) >>> 0;
      qy[i] = (compact(lo >>> 1) | (compact(hi >>> 1) << 16)) >>> 0;
    }
    start += s;
  }
  return [qx, qy];
}

/** Version-2 quadtree positions: masks (context-modelled, 4 bits) + extra Gaussians per cell. */
function treePositions(maskStream: Uint8Array, extraStream: Uint8Array, layers: number[], depth: number,
                       nodes: number, n: number, bad: (m: string) => never): [Uint32Array, Uint32Array] {
  if (nodes > n * depth || nodes > MASKS_PER_BYTE * maskStream.length + 64) {
    bad(`${nodes} tree nodes cannot be in this file`);
  }
  const masks = decodeCtx(maskStream, nodes, 4, null, 1);
  // nodes as (x, y) prefixes: children in k order keep ascending Morton order
  const leafX: Uint32Array[] = [], leafY: Uint32Array[] = [];
  let pos = 0, total = 0;
  for (const s of layers) {
    let xs = new Uint32Array(1), ys = new Uint32Array(1);
    for (let d = 0; d < depth; d++) {
      const m = xs.length;
      if (pos + m > masks.length) bad("the position tree stream ends early");
      let count = 0;
      for (let j = 0; j < m; j++) {
        const v = masks[pos + j];
        if (v < 1 || v > 15) bad("empty or bad node in the position tree");
        count += (v & 1) + ((v >> 1) & 1) + ((v >> 2) & 1) + ((v >> 3) & 1);
      }
      if (count > s) bad("the position tree has more cells than Gaussians");
      const nx = new Uint32Array(count), ny = new Uint32Array(count);
      let o = 0;
      for (let j = 0; j < m; j++) {
        const v = masks[pos + j];
        for (let b = 0; b < 4; b++) {
          if (v & (1 << b)) {
            nx[o] = xs[j] * 2 + (b & 1);
            ny[o] = ys[j] * 2 + (b >> 1);
            o++;
          }
        }
      }
      pos += m;
      xs = nx;
      ys = ny;
    }
    leafX.push(xs);
    leafY.push(ys);
    total += xs.length;
  }
  if (pos !== masks.length) bad("the position tree stream has trailing values");
  const extra = decodeInts(extraStream, total);
  if (extra.length !== total) bad("bad leaf-count stream");
  const qx = new Uint32Array(n), qy = new Uint32Array(n);
  let e = 0, o = 0;
  layers.forEach((s, l) => {
    const xs = leafX[l], ys = leafY[l];
    let sum = 0;
    for (let j = 0; j < xs.length; j++) {
      const c = extra[e++];
      if (!(c >= 0)) bad("bad leaf-count stream");
      sum += c + 1;
      if (sum > s) bad("the position tree does not hold the layer sizes");
      for (let r = 0; r <= c; r++) {
        qx[o] = xs[j];
        qy[o] = ys[j];
        o++;
      }
    }
    if (sum !== s) bad("the position tree does not hold the layer sizes");
  });
  return [qx, qy];
}

/** Bit length of the Morton gap code(i) - code(i-1), from the (x, y) indices of both. */
function gapBitLength(x1: number, y1: number, x0: number, y0: number): number {
  const lo1 = (spread(x1) | (spread(y1) << 1)) >>> 0, hi1 = (spread(x1 >>> 16) | (spread(y1 >>> 16) << 1)) >>> 0;
  const lo0 = (spread(x0) | (spread(y0) << 1)) >>> 0, hi0 = (spread(x0 >>> 16) | (spread(y0 >>> 16) << 1)) >>> 0;
  let lo = lo1 - lo0, hi = hi1 - hi0;
  if (lo < 0) { lo += TWO32; hi -= 1; }
  if (hi < 0) return 64; // wraps (cannot happen inside a sorted layer)
  return hi > 0 ? 32 + bitLength(hi) : lo === 0 ? 0 : Math.floor(Math.log2(lo)) + 1;
}

/** Version-2 attribute streams with the caller contexts of the spec's table (section 3). */
function decodeAttributes(streams: Uint8Array[], q: Quant, names: string[], qx: Uint32Array, qy: Uint32Array,
                          layers: number[], out: Record<string, Int32Array>): void {
  const n = qx.length;
  const ctx = new Int32Array(n);
  const sizeB = (i: number) => bucket(out.sa[i], q.sizeBits, 8);
  const c0B = (i: number) => bucket(out.c0[i], q.colorBits[0], 8);
  names.forEach((name, si) => {
    let nCtx: number;
    if (name === "sa") {
      nCtx = 64;
      let start = 0;
      layers.forEach((s, l) => {
        const lc = 8 * Math.min(l, 7);
        for (let i = start; i < start + s; i++) {
          const d = i === start ? 7 : Math.min(7, Math.floor(gapBitLength(qx[i], qy[i], qx[i - 1], qy[i - 1]) / 3));
          ctx[i] = lc + d;
        }
        start += s;
      });
    } else if (name === "su" || name === "c0") {
      nCtx = 8;
      for (let i = 0; i < n; i++) ctx[i] = sizeB(i);
    } else if (name === "sv") {
      nCtx = 64;
      const half = 2 ** (q.anisoBits - 1);
      for (let i = 0; i < n; i++) {
        const mag = Math.min(Math.abs(out.su[i] - half), half - 1);
        ctx[i] = 8 * sizeB(i) + bucket(mag, q.anisoBits - 1, 8);
      }
    } else if (name === "c2") {
      nCtx = 64;
      for (let i = 0; i < n; i++) ctx[i] = 8 * c0B(i) + bucket(out.c1[i], q.colorBits[1], 8);
    } else {
      nCtx = 8; // c1, c3..
      for (let i = 0; i < n; i++) ctx[i] = c0B(i);
    }
    out[name] = decodeCtx(streams[si], n, attrBits(q, name), ctx, nCtx);
  });
}

function dequantize(q: Quant, qx: Uint32Array, qy: Uint32Array, idx: Record<string, Int32Array>, n: number,
                    channels: number,
                    rest: Pick<Gaussians2D, "width" | "height" | "mode" | "k" | "layers" | "version" | "meta">,
                    bad: (m: string) => never): Gaussians2D {
  const means = new Float32Array(2 * n), scales = new Float32Array(2 * n), rotations = new Float32Array(n);
  const colors = new Float32Array(channels * n);
  const sStep = step(q.sizeLo, q.sizeHi, q.sizeBits);
  const aStep = step(-q.anisoMax, q.anisoMax, q.anisoBits);
  const sa = idx.sa, su = idx.su, sv = idx.sv;
  for (let i = 0; i < n; i++) {
    means[2 * i] = qx[i] * q.posStep;
    means[2 * i + 1] = qy[i] * q.posStep;
    const a = q.sizeLo + sa[i] * sStep;
    const u = -q.anisoMax + su[i] * aStep;
    const v = -q.anisoMax + sv[i] * aStep;
    const h = Math.sqrt(u * u + v * v);
    rotations[i] = 0.5 * Math.atan2(v, u);
    scales[2 * i] = Math.exp(a + h);
    scales[2 * i + 1] = Math.exp(a - h);
  }
  const coded: Float64Array[] = [];
  for (let c = 0; c < channels; c++) {
    const st = step(q.colorLo[c], q.colorHi[c], q.colorBits[c]);
    const src = idx[`c${c}`], lo = q.colorLo[c];
    const z = new Float64Array(n);
    for (let i = 0; i < n; i++) z[i] = lo + src[i] * st;
    coded.push(z);
  }
  for (let i = 0; i < n; i++) {
    const o = i * channels;
    if (q.colorTransform === "ycocg") {
      const y = coded[0][i], co = coded[1][i], cg = coded[2][i];
      colors[o] = y + co - cg;
      colors[o + 1] = y + cg;
      colors[o + 2] = y - co - cg;
      for (let c = 3; c < channels; c++) colors[o + c] = coded[c][i];
    } else {
      for (let c = 0; c < channels; c++) colors[o + c] = coded[c][i];
    }
  }
  for (const arr of [means, scales, rotations, colors]) {
    for (let i = 0; i < arr.length; i++) if (!Number.isFinite(arr[i])) bad("quantiser ranges decode to NaN/Inf");
  }
  return { count: n, channels, means, scales, rotations, colors, ...rest };
}
