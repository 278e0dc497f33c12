/**
 * Channel streams (docs/formats/lgs.md, section 5.1; also used by .gsv): C records, each
 * prefixed by its byte length, one per channel of `rows` integers. A record is a mode byte
 * and: 0 an integer stream of the values, 1 an integer stream of differences (the first
 * against 0), 2 a zigzag varint `lo` and a context-modelled stream of `value - lo` whose
 * caller contexts come from the channels decoded before it.
 */
import { readVarint, unzigzag } from "./bytes.js";
import { decodeCtx, readCtxHeader } from "./context.js";
import { decodeIntsRaw, type RawInts } from "./entropy.js";
import { unpackArrays } from "./entropy.js";
import { FormatError } from "./errors.js";

export const DIRECT = 0, DELTA = 1, CONTEXT = 2;

/** One decoded channel: Int32Array when the allowed range fits 32 bits, else Float64Array (exact). */
export type IntArray = Int32Array | Float64Array;

/** Caller contexts for channel `c` given the channels decoded before it: one per row, each below `count`. */
export type ContextFn = (c: number, earlier: IntArray[]) => { ctx: Int32Array; count: number };

export interface ChannelOptions {
  /** Every value must lie in [lo, hi] (defaults 0 and no upper bound). */
  lo?: number;
  hi?: number | null;
  /** The stream's name in messages. */
  what?: string;
  /** Caller contexts of mode-2 records (none: the coder's own previous-value context only). */
  context?: ContextFn | null;
  /** Accept mode-2 records (files of a version that has them). */
  allowContext?: boolean;
}

/** Decode `channels` channels of `n` rows each; every value is checked against [lo, hi]. */
export function decodeChannels(data: Uint8Array, n: number, channels: number, opts: ChannelOptions = {}): IntArray[] {
  const lo = opts.lo ?? 0;
  const hi = opts.hi ?? null;
  const what = opts.what ?? "stream";
  const int32 = lo >= -2147483648 && hi !== null && hi <= 2147483647;
  const vmax = hi === null ? Number.MAX_SAFE_INTEGER : hi;
  const records = unpackArrays(data, channels);
  const out: IntArray[] = [];
  for (let c = 0; c < channels; c++) {
    const rec = records[c];
    const mode = rec.length ? rec[0] : -1;
    if (!(mode === DIRECT || mode === DELTA || (mode === CONTEXT && opts.allowContext))) {
      throw new FormatError(`${what}: channel ${c} has an unknown prediction mode`);
    }
    const v: IntArray = int32 ? new Int32Array(n) : new Float64Array(n);
    if (mode === CONTEXT) {
      const [z, pos] = readVarint(rec, 1, what);
      const base = unzigzag(z);
      const body = rec.subarray(pos);
      const h = readCtxHeader(body);
      let ctx: Int32Array | null = null;
      let count = 1;
      if (h.nContexts !== 1 && opts.context) ({ ctx, count } = opts.context(c, out));
      try {
        const s = decodeCtx(body, n, h.bits, ctx, count);
        for (let i = 0; i < n; i++) {
          const x = s[i] + base;
          if (x < lo || x > vmax) throw new FormatError(`values outside [${lo}, ${hi}]`);
          v[i] = x;
        }
      } catch (e) {
        if (e instanceof FormatError) throw new FormatError(`${what}: channel ${c}: ${e.reason}`);
        throw e;
      }
    } else {
      const r = decodeIntsRaw(rec.subarray(1), n);
      if (r.n !== n) throw new FormatError(`${what}: channel ${c} holds ${r.n} values, expected ${n}`);
      if (!fill(r, mode === DELTA, lo, vmax, v)) throw new FormatError(`${what}: values outside [${lo}, ${hi}]`);
    }
    out.push(v);
  }
  return out;
}

/** Values (or running sums of differences) of `r` into `v`; false when one leaves [lo, hi]. */
function fill(r: RawInts, delta: boolean, lo: number, hi: number, v: IntArray): boolean {
  const n = r.n, src = r.lo, hiw = r.hi;
  let acc = 0;
  if (hiw === null) {
    for (let i = 0; i < n; i++) {
      const u = src[i];
      const x = r.signed ? (u >>> 1) ^ -(u & 1) : u;
      acc = delta ? acc + x : x;
      if (acc < lo || acc > hi) return false;
      v[i] = acc;
    }
    return true;
  }
  for (let i = 0; i < n; i++) {
    // |value| >= 2^32 is outside every range a channel allows only when hi < 2^32; do it exactly
    const h = hiw[i], u = src[i];
    if (h >= 0x200000) return false;
    let x: number;
    if (!r.signed) x = h * 4294967296 + u;
    else {
      const half = h * 2147483648 + (u >>> 1);
      x = u & 1 ? -half - 1 : half;
    }
    acc = delta ? acc + x : x;
    if (acc < lo || acc > hi) return false;
    v[i] = acc;
  }
  return true;
}
