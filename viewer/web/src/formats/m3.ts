/**
 * `.m3` feature memory (docs/formats/m3.md): per-Gaussian queries, per-model banks and
 * projections, and the memory attention that turns a query into a feature.
 *
 *   const mem = decodeM3(bytes, { file });          // queries, models, embedded scene (or its reference)
 *   const f = gaussianFeatures(mem, "clip");         // [N*D] float32, each Gaussian's own feature
 *   const s = cosineScores(f, mem.models[0].dim, v); // [N] cosine similarity to a vector v [D]
 */
import { FormatError, naming } from "./errors.js";
import { unpackContainer } from "./container.js";
import { decodeBytes, decodeInts } from "./entropy.js";
import { gaussianCap, valueCap } from "./limits.js";
import type { SplatArrays } from "./types.js";

/** Largest |q P| a query may reach (the spec's bound: its float32 norm must not overflow). */
const MAX_KEY = 1e18;

export const M3_MAGIC = "GSM3";
export const M3_VERSION = 1;
const SH_REST = [0, 3, 8, 15];

/** One foundation model's part of a memory. */
export interface M3Model {
  name: string;
  /** first channel of this model's slice of the query vector */
  offset: number;
  /** Q: channels of its slice */
  queryDim: number;
  /** D: feature dimension */
  dim: number;
  /** K: bank entries */
  bankSize: number;
  temperature: number;
  learnable: boolean;
  /** [height, width] of the source images and of the feature maps */
  imageSize: [number, number];
  featureSize: [number, number];
  /** [K*D] raw bank vectors (float16 in the file), row-major */
  bank: Float32Array;
  /** [Q*D] projection P, row-major */
  projection: Float32Array;
}

export interface M3Memory {
  /** N Gaussians */
  count: number;
  /** Q_total channels per Gaussian over all models */
  queryTotal: number;
  /** [N*Q_total] dequantised queries, Gaussian-major: queries[n*Q_total + c] */
  queries: Float32Array;
  models: M3Model[];
  /** the embedded geometry, or null when the file references its scene (see sceneRef) */
  scene: SplatArrays | null;
  /** { ref, sha256 } when the geometry lives in another file (path relative to the .m3) */
  sceneRef: { ref: string; sha256: string } | null;
  shDegree: number;
  meta: Record<string, unknown>;
}

export interface M3Options {
  file?: string;
  /** the referenced scene, when the file does not embed one (its count must equal n) */
  scene?: SplatArrays;
  /** raise the Gaussian cap (default 16 per file byte + 65,536; then also caps the codes at maxGaussians x Q_total) */
  maxGaussians?: number;
}

/** IEEE half -> float (exact). */
export function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const m = h & 0x3ff;
  if (e === 0) return s * m * 2 ** -24;
  if (e === 31) return m ? NaN : s * Infinity;
  return s * (1 + m / 1024) * 2 ** (e - 15);
}

export function decodeM3(data: Uint8Array, opts: M3Options = {}): M3Memory {
  return naming(opts.file, () => decodeM3Bytes(data, opts));
}

function decodeM3Bytes(data: Uint8Array, opts: M3Options): M3Memory {
  const file = opts.file;
  const err = (msg: string): never => {
    throw new FormatError(msg, file);
  };
  const c = unpackContainer(data, { magic: M3_MAGIC, maxVersion: M3_VERSION, what: ".m3 file" });
  const h = c.header as Record<string, unknown>;
  const int = (o: Record<string, unknown>, key: string, lo: number, hi: number, what: string, dflt?: number): number => {
    const v = key in o ? o[key] : dflt;
    if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
      err(`${what} field '${key}' is not an integer in [${lo}, ${hi}]`);
    }
    return v as number;
  };
  const n = int(h, "n", 0, 2 ** 40, ".m3 header");
  const cap = opts.maxGaussians ?? gaussianCap(data.length);
  if (n > cap) err(`Gaussian count ${n} exceeds the limit of ${cap} for this file (raise maxGaussians)`);
  const qt = int(h, "query_total", 1, 2 ** 20, ".m3 header");
  const bits = int(h, "query_bits", 2, 16, ".m3 header");
  const codeCap = opts.maxGaussians === undefined ? valueCap(data.length) : opts.maxGaussians * qt;
  if (n * qt > codeCap) err(`query code count ${n * qt} exceeds the limit of ${codeCap} for this file (raise maxGaussians)`);
  const floats = (key: string): Float32Array => {
    const v = h[key];
    if (!Array.isArray(v) || v.length !== qt || !v.every((x) => typeof x === "number" && Math.abs(x) <= 1e30)) {
      err(`.m3 header field '${key}' must list ${qt} finite numbers`);
    }
    return Float32Array.from(v as number[]);
  };
  const lo = floats("query_lo"), step = floats("query_step");
  const modelsH = h.models;
  if (!Array.isArray(modelsH)) err(".m3 header field 'models' is missing or has the wrong type");
  const codes = decodeInts(c.get("QRYS"), n * qt);
  if (codes.length !== n * qt) err(`QRYS chunk holds ${codes.length} codes, expected ${n} x ${qt} of ${bits} bits`);
  const levels = 2 ** bits;
  const queries = new Float32Array(n * qt);
  const f32 = Math.fround;
  for (let ch = 0; ch < qt; ch++) {
    const l = lo[ch], s = step[ch];
    for (let i = 0; i < n; i++) {
      const code = codes[ch * n + i];
      if (!(code >= 0 && code < levels)) err(`QRYS chunk holds ${n * qt} codes, expected ${n} x ${qt} of ${bits} bits (a code is out of range)`);
      // float32 arithmetic: the product and the sum each round to float32
      const v = f32(l + f32(code * s));
      if (!Number.isFinite(v)) err(".m3 query ranges decode to NaN/Inf");
      queries[i * qt + ch] = v;
    }
  }
  const banks = c.all("BANK"), projs = c.all("PROJ");
  const mh = modelsH as unknown[];
  if (banks.length !== mh.length || projs.length !== mh.length || mh.length === 0) {
    err(`.m3 file lists ${mh.length} models but holds ${banks.length} banks and ${projs.length} projections`);
  }
  const models: M3Model[] = [];
  let used = 0;
  mh.forEach((m, i) => {
    if (!m || typeof m !== "object" || Array.isArray(m)) err(".m3 model entry is not an object");
    const o = m as Record<string, unknown>;
    if (typeof o.name !== "string") err(".m3 model field 'name' is missing or has the wrong type");
    const name = o.name as string;
    const [off, qd, dim, k] = ["offset", "query_dim", "dim", "bank_size"].map((f) => int(o, f, 0, 2 ** 40, ".m3 model"));
    if (off !== used || qd < 1 || off + qd > qt || dim < 1 || k < 1) {
      err(`.m3 model '${name.slice(0, 40)}' has an inconsistent query slice or sizes`);
    }
    used += qd;
    const b = banks[i], p = projs[i];
    if (b.length !== 2 * k * dim || p.length !== 4 * qd * dim) {
      err(`.m3 model '${name.slice(0, 40)}': bank/projection chunk sizes do not match [${k},${dim}] / [${qd},${dim}]`);
    }
    const bank = new Float32Array(k * dim);
    const bv = new DataView(b.buffer, b.byteOffset, b.byteLength);
    for (let j = 0; j < k * dim; j++) bank[j] = halfToFloat(bv.getUint16(2 * j, true));
    const projection = new Float32Array(qd * dim);
    const pv = new DataView(p.buffer, p.byteOffset, p.byteLength);
    for (let j = 0; j < qd * dim; j++) projection[j] = pv.getFloat32(4 * j, true);
    if (!bank.every(Number.isFinite) || !projection.every(Number.isFinite)) {
      err(`.m3 model '${name.slice(0, 40)}': bank or projection holds NaN/Inf`);
    }
    // the keys q P must stay finite (and so must their float32 norms): bound |q P| by the
    // queries' per-channel maxima, in float64, as the spec says
    const qmax = new Float64Array(qd);
    for (let i = 0; i < n; i++) {
      for (let ch = 0; ch < qd; ch++) qmax[ch] = Math.max(qmax[ch], Math.abs(queries[i * qt + off + ch]));
    }
    for (let d = 0; d < dim; d++) {
      let s = 0;
      for (let ch = 0; ch < qd; ch++) s += qmax[ch] * Math.abs(projection[ch * dim + d]);
      if (s > MAX_KEY) err(`.m3 model '${name.slice(0, 40)}': projection values too large (the features would overflow to NaN/Inf)`);
    }
    const t = "temperature" in o ? o.temperature : 0.05;
    if (typeof t !== "number" || !Number.isFinite(t) || t < 1e-9 || t > 1e9) {
      err(`.m3 model field 'temperature' is not a number in [1e-09, 1e+09]`);
    }
    const sizes = ["image_size", "feature_size"].map((key) => (key in o ? o[key] : [0, 0]));
    if (!sizes.every((v) => Array.isArray(v) && v.length === 2
        && v.every((x) => typeof x === "number" && Number.isInteger(x) && x >= 0 && x <= 2 ** 20))) {
      err(`.m3 model '${name.slice(0, 40)}': image_size/feature_size must be two integers`);
    }
    models.push({
      name, offset: off, queryDim: qd, dim, bankSize: k, temperature: t as number,
      learnable: "learnable" in o ? truthy(o.learnable) : true,
      imageSize: (sizes[0] as number[]).slice(0, 2) as [number, number],
      featureSize: (sizes[1] as number[]).slice(0, 2) as [number, number],
      bank, projection,
    });
  });
  if (used !== qt) err(`.m3 models use ${used} query channels, the file holds ${qt}`);
  let scene: SplatArrays | null = null;
  let sceneRef: M3Memory["sceneRef"] = null;
  let shDegree: number;
  if (h.scene === "embedded") {
    shDegree = int(h, "sh_degree", 0, 3, ".m3 header");
    scene = geomScene(c.get("GEOM"), n, shDegree, err);
  } else {
    const s = h.scene as Record<string, unknown> | null;
    if (!s || typeof s !== "object" || Array.isArray(s) || typeof s.ref !== "string") {
      err(`.m3 header 'scene' must be "embedded" or {"ref": path, "sha256": hex}`);
    }
    if (typeof s!.sha256 !== "string" || !/^[0-9a-fA-F]{64}$/.test(s!.sha256)) {
      err(".m3 scene reference has no SHA-256 (64 hex digits are required)");
    }
    sceneRef = { ref: s!.ref as string, sha256: s!.sha256 as string };
    if (!opts.scene) err(`.m3 file references its scene (${sceneRef.ref}); pass the decoded scene as options.scene`);
    scene = opts.scene!;
    shDegree = scene.shDegree;
  }
  if (scene.count !== n) err(`the scene has ${scene.count} Gaussians, the .m3 file has queries for ${n}`);
  const meta = h.meta && typeof h.meta === "object" && !Array.isArray(h.meta) ? h.meta as Record<string, unknown> : {};
  return { count: n, queryTotal: qt, queries, models, scene, sceneRef, shDegree, meta };
}

function truthy(v: unknown): boolean {
  if (Array.isArray(v)) return v.length > 0;
  if (v && typeof v === "object") return Object.keys(v).length > 0;
  return Boolean(v);
}

function geomScene(chunk: Uint8Array, n: number, deg: number, err: (m: string) => never): SplatArrays {
  const k = SH_REST[deg];
  const widths = [3, 4, 3, 1, 3, 3 * k];
  const expect = 4 * n * widths.reduce((a, b) => a + b, 0);
  const raw = decodeBytes(chunk, expect);
  if (raw.length !== expect) err(`GEOM chunk holds ${raw.length} bytes, ${n} Gaussians of SH degree ${deg} need ${expect}`);
  const dv = new DataView(raw.buffer, raw.byteOffset, raw.byteLength);
  let pos = 0;
  const arrays = widths.map((w) => {
    const a = new Float32Array(n * w);
    for (let j = 0; j < a.length; j++) {
      a[j] = dv.getFloat32(pos, true);
      pos += 4;
      if (!Number.isFinite(a[j])) err("GEOM chunk holds NaN/Inf values");
    }
    return a;
  });
  return {
    count: n, shDegree: deg, means: arrays[0], quats: arrays[1], logScales: arrays[2], opacityLogits: arrays[3],
    shDc: arrays[4], shRest: arrays[5],
  };
}

/** The model named `name` (the first when omitted); FormatError-free: throws RangeError when absent. */
export function m3Model(mem: M3Memory, name?: string): M3Model {
  if (name === undefined) return mem.models[0];
  const m = mem.models.find((x) => x.name === name);
  if (!m) throw new RangeError(`this memory has no model '${name}' (models: ${mem.models.map((x) => x.name).join(", ")})`);
  return m;
}

/**
 * The memory attention of the spec for `count` queries of one model (`queries[i*stride + offset + c]`):
 * key = q P, s_k = cos(key, B_k), w = softmax(s / temperature), feature = sum_k w_k B_k.
 * A zero key or bank row has unit vector 0 (norms clamped at 1e-12). Computed in float64,
 * stored as float32: [count*D].
 */
export function memoryAttention(model: M3Model, queries: Float32Array, count: number, stride = model.queryDim,
                                offset = 0): Float32Array {
  const { queryDim: Q, dim: D, bankSize: K, bank, projection: P } = model;
  const unitBank = new Float64Array(K * D);
  for (let kk = 0; kk < K; kk++) {
    let s = 0;
    for (let d = 0; d < D; d++) s += bank[kk * D + d] ** 2;
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let d = 0; d < D; d++) unitBank[kk * D + d] = bank[kk * D + d] * inv;
  }
  const invT = 1 / model.temperature;
  const out = new Float32Array(count * D);
  const key = new Float64Array(D), sc = new Float64Array(K), acc = new Float64Array(D);
  for (let i = 0; i < count; i++) {
    key.fill(0);
    const base = i * stride + offset;
    for (let c = 0; c < Q; c++) {
      const qv = queries[base + c];
      if (qv === 0) continue;
      for (let d = 0; d < D; d++) key[d] += qv * P[c * D + d];
    }
    let nn = 0;
    for (let d = 0; d < D; d++) nn += key[d] * key[d];
    const inv = 1 / Math.max(Math.sqrt(nn), 1e-12);
    let mx = -Infinity;
    for (let kk = 0; kk < K; kk++) {
      let s = 0;
      for (let d = 0; d < D; d++) s += key[d] * unitBank[kk * D + d];
      sc[kk] = s * inv * invT;
      if (sc[kk] > mx) mx = sc[kk];
    }
    let z = 0;
    for (let kk = 0; kk < K; kk++) {
      sc[kk] = Math.exp(sc[kk] - mx);
      z += sc[kk];
    }
    acc.fill(0);
    for (let kk = 0; kk < K; kk++) {
      const w = sc[kk] / z;
      for (let d = 0; d < D; d++) acc[d] += w * bank[kk * D + d];
    }
    for (let d = 0; d < D; d++) out[i * D + d] = acc[d];
  }
  return out;
}

/** Each Gaussian's own feature [N*D] for model `name` (its query slice through the memory attention). */
export function gaussianFeatures(mem: M3Memory, name?: string): Float32Array {
  const m = m3Model(mem, name);
  return memoryAttention(m, mem.queries, mem.count, mem.queryTotal, m.offset);
}

/** Cosine similarity [N] of each row of `features` [N*dim] to `vector` [dim], in [-1, 1] (zero rows give 0). */
export function cosineScores(features: Float32Array, dim: number, vector: ArrayLike<number>): Float32Array {
  if (vector.length !== dim) throw new RangeError(`query vector has ${vector.length} dims, the features have ${dim}`);
  let vn = 0;
  for (let d = 0; d < dim; d++) vn += vector[d] * vector[d];
  const vi = 1 / Math.max(Math.sqrt(vn), 1e-12);
  const n = Math.floor(features.length / dim);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    let dot = 0, fn = 0;
    for (let d = 0; d < dim; d++) {
      const f = features[i * dim + d];
      dot += f * vector[d];
      fn += f * f;
    }
    out[i] = (dot * vi) / Math.max(Math.sqrt(fn), 1e-12);
  }
  return out;
}
