/**
 * Context-modelled streams (docs/formats/entropy.md, "Context-modelled streams"): values
 * below 2^bits, binarised MSB first, every binary decision coded with an adaptive probability
 * (integer updates) by a binary rANS coder. The caller supplies one context per value,
 * rebuilt from data it decoded before.
 */
import { readVarint } from "./bytes.js";
import { FormatError } from "./errors.js";
import { checkEndStatus } from "./rans.js";

export const CTX_MAGIC = 0xc1;
export const MAX_BITS = 16;
export const MAX_PREV_BITS = 4;
export const MAX_EXT_CONTEXTS = 4096;
/** Bound on contexts x models per context (the decoder's model memory). */
export const MAX_MODELS = 1 << 22;
/** Tree-binarised high bits; each lower bit has one model per position. */
export const TREE_BITS = 10;
const RANS_L = 1 << 23;
const PMIN = 16;
const PMAX = 4096 - 16;

/** The validated header of a context-modelled stream. */
export interface CtxHeader {
  bits: number;
  prevBits: number;
  /** 0: values, 1: differences modulo 2^bits. */
  mode: number;
  rate: number;
  nContexts: number;
  count: number;
  /** Offset of the payload. */
  payload: number;
}

function nModels(bits: number, nExt: number, prevBits: number): number {
  const tb = Math.min(bits, TREE_BITS);
  return nExt * 2 ** prevBits * (2 ** tb + bits - tb);
}

/** Parse and validate a context-modelled stream's header. */
export function readCtxHeader(d: Uint8Array): CtxHeader {
  if (d.length < 7) throw new FormatError("truncated context-modelled stream");
  if (d[0] !== CTX_MAGIC) throw new FormatError(`not a context-modelled stream (first byte 0x${d[0].toString(16)})`);
  const bits = d[1], prevBits = d[2], mode = d[3], rate = d[4];
  if (bits < 1 || bits > MAX_BITS) throw new FormatError(`context-modelled stream: bits ${bits} out of range 1..${MAX_BITS}`);
  if (prevBits > Math.min(bits, MAX_PREV_BITS)) {
    throw new FormatError(`context-modelled stream: previous-value context bits ${prevBits} out of range`);
  }
  if (mode > 1) throw new FormatError(`context-modelled stream: unknown mode ${mode}`);
  if (rate < 1) throw new FormatError("context-modelled stream: adaptation limit must be >= 1");
  const [nContexts, p1] = readVarint(d, 5, "context-modelled stream");
  const [count, payload] = readVarint(d, p1, "context-modelled stream");
  if (nContexts < 1 || nContexts > MAX_EXT_CONTEXTS) {
    throw new FormatError(`context-modelled stream: ${nContexts} contexts, allowed 1..${MAX_EXT_CONTEXTS}`);
  }
  if (nModels(bits, nContexts, prevBits) > MAX_MODELS) throw new FormatError("context-modelled stream: too many models");
  return { bits, prevBits, mode, rate, nContexts, count, payload };
}

/**
 * Decode a context-modelled stream of `n` values of `bits` bits into `out` [n] (a new
 * Int32Array when omitted). `contexts` [n] (each below `nContexts`) are the caller's contexts;
 * the stream must declare `nContexts` of them, or 1 (then they are ignored and may be null).
 */
export function decodeCtx(d: Uint8Array, n: number, bits: number, contexts: Int32Array | null, nContexts: number,
  out?: Int32Array): Int32Array {
  const h = readCtxHeader(d);
  if (h.count !== n) throw new FormatError(`context-modelled stream holds ${h.count} values, expected ${n}`);
  if (h.bits !== bits) throw new FormatError(`context-modelled stream has ${h.bits}-bit values, expected ${bits}`);
  if (h.nContexts !== 1 && h.nContexts !== nContexts) {
    throw new FormatError(`context-modelled stream declares ${h.nContexts} contexts, expected ${nContexts} (or 1)`);
  }
  let ext: Int32Array | null = null;
  if (h.nContexts !== 1) {
    if (contexts === null || contexts.length < n) throw new FormatError("context-modelled stream needs one context per value");
    for (let i = 0; i < n; i++) {
      const c = contexts[i];
      if (c < 0 || c >= h.nContexts) throw new FormatError(`context index out of range [0, ${h.nContexts})`);
    }
    ext = contexts;
  }
  const res = out ?? new Int32Array(n);
  const recip = new Int32Array(256);
  for (let k = 0; k < 256; k++) recip[k] = Math.floor(65536 / (Math.min(k, h.rate) + 2));
  const status = ctxKernel(d, h.payload, n, ext, bits, h.prevBits, h.mode, nModels(bits, h.nContexts, h.prevBits), recip, res);
  checkEndStatus(status, "context-modelled stream", ": wrong contexts or data");
  return res;
}

function ctxKernel(d: Uint8Array, start: number, n: number, ext: Int32Array | null, bits: number, prevBits: number,
  mode: number, models: number, rc: Int32Array, out: Int32Array): number {
  const size = d.length;
  if (size - start < 4) return 1;
  let x = ((d[start] << 24) | (d[start + 1] << 16) | (d[start + 2] << 8) | d[start + 3]) >>> 0;
  let pos = start + 4;
  const tb = bits < TREE_BITS ? bits : TREE_BITS;
  const low = bits - tb;
  const perCtx = (1 << tb) + low;
  // per model: probability of a 1 (scale 2^12) in the low 16 bits, observation count above
  const model = new Int32Array(models).fill(2048);
  const mask = (1 << bits) - 1;
  const shift = bits - prevBits;
  const top = 1 << tb;
  let prev = 0;
  for (let i = 0; i < n; i++) {
    let ctx = ext === null ? 0 : ext[i];
    if (prevBits > 0) ctx = (ctx << prevBits) | (prev >>> shift);
    const base = ctx * perCtx;
    let node = 1;
    for (let t = 0; t < tb; t++) {
      const m = base + node;
      const st = model[m];
      const p1 = st & 0xffff;
      const p0 = 4096 - p1;
      const slot = x & 4095;
      let bit: number;
      if (slot >= p0) {
        bit = 1;
        x = p1 * (x >>> 12) + slot - p0;
      } else {
        bit = 0;
        x = p0 * (x >>> 12) + slot;
      }
      while (x < RANS_L) {
        if (pos >= size) return 1;
        x = (x << 8) | d[pos++];
      }
      const k = st >>> 16;
      let q = p1 + ((((bit << 12) - p1) * rc[k]) >> 16);
      q = q < PMIN ? PMIN : q > PMAX ? PMAX : q;
      model[m] = q | ((k < 255 ? k + 1 : 255) << 16);
      node = 2 * node + bit;
    }
    let s = node - top;
    const lb = base + top;
    for (let b = low - 1; b >= 0; b--) {
      const m = lb + b;
      const st = model[m];
      const p1 = st & 0xffff;
      const p0 = 4096 - p1;
      const slot = x & 4095;
      let bit: number;
      if (slot >= p0) {
        bit = 1;
        x = p1 * (x >>> 12) + slot - p0;
      } else {
        bit = 0;
        x = p0 * (x >>> 12) + slot;
      }
      while (x < RANS_L) {
        if (pos >= size) return 1;
        x = (x << 8) | d[pos++];
      }
      const k = st >>> 16;
      let q = p1 + ((((bit << 12) - p1) * rc[k]) >> 16);
      q = q < PMIN ? PMIN : q > PMAX ? PMAX : q;
      model[m] = q | ((k < 255 ? k + 1 : 255) << 16);
      s = (s << 1) | bit;
    }
    prev = mode === 0 ? s : (s + prev) & mask;
    out[i] = prev;
  }
  if (x !== RANS_L) return 2;
  if (pos !== size) return 3;
  return 0;
}

/** Context bucket of quantised q in [0, 2^bits): clamp(floor(q * k / 2^bits), 0, k - 1). */
export function bucket(q: number, bits: number, k: number): number {
  const b = Math.floor((q * k) / 2 ** bits);
  return b < 0 ? 0 : b > k - 1 ? k - 1 : b;
}
