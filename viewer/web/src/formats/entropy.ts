/**
 * Integer streams (docs/formats/entropy.md): method byte (RAW, ZSTD, RANS, RANS_EG), count,
 * sign flag, body. Plus zstd byte streams and varint-length-prefixed stream lists.
 *
 * A stream's own count bounds nothing (a one-symbol rANS model codes any count in 4 bytes),
 * so every decoder takes the most values the caller can use (`maxCount`) and rejects a larger
 * count before allocating.
 */
import { readVarint, TWO32 } from "./bytes.js";
import { FormatError } from "./errors.js";
import { ransDecode, ransTables, type RansTables } from "./rans.js";
import { zstdDecompressExact } from "./zstd.js";

export const RAW = 0, ZSTD = 1, RANS = 2, RANS_EG = 3;
/** Largest alphabet of a RANS model; RANS_EG models have at most 65 buckets (0..64). */
export const MAX_RANS_ALPHABET = 4096;
export const MAX_EG_BUCKETS = 65;

/**
 * A decoded stream before its sign is applied: the unsigned values u as two 32-bit halves
 * (`hi` null when every value is below 2^32) and whether they were zigzag-mapped.
 */
export interface RawInts {
  n: number;
  signed: boolean;
  lo: Uint32Array;
  hi: Uint32Array | null;
}

/** A model: k varint, raw_len varint, zlen varint, zstd frame of k varint frequencies. */
function readModel(d: Uint8Array, pos: number, limit: number): [RansTables, number] {
  let k: number, rawLen: number, zlen: number;
  [k, pos] = readVarint(d, pos, "entropy stream");
  [rawLen, pos] = readVarint(d, pos, "entropy stream");
  [zlen, pos] = readVarint(d, pos, "entropy stream");
  if (k === 0 || k > limit || rawLen > 10 * k || pos + zlen > d.length) throw new FormatError("corrupt rANS model header");
  const body = zstdDecompressExact(d.subarray(pos, pos + zlen), rawLen, "rANS model");
  pos += zlen;
  const f = new Array<number>(k);
  let p = 0;
  for (let s = 0; s < k; s++) [f[s], p] = readVarint(body, p, "rANS model");
  if (p !== body.length) throw new FormatError("rANS model has trailing bytes");
  return [ransTables(f), pos];
}

/** MSB-first `k` bits (0..32) at bit `c` of `d` (padded with 4 spare bytes). */
function readBits(d: Uint8Array, c: number, k: number): number {
  if (k === 0) return 0;
  if (k > 25) return readBits(d, c, 16) * (1 << (k - 16)) + readBits(d, c + 16, k - 16);
  const i = c >>> 3;
  const w = ((d[i] << 24) | (d[i + 1] << 16) | (d[i + 2] << 8) | d[i + 3]) >>> 0;
  return ((w << (c & 7)) >>> 0) >>> (32 - k);
}

/** Decode a stream to its unsigned values (see RawInts); `maxCount` bounds its count. */
export function decodeIntsRaw(d: Uint8Array, maxCount: number): RawInts {
  if (d.length < 3) throw new FormatError("truncated entropy stream");
  const method = d[0];
  let [n, pos] = readVarint(d, 1, "entropy stream");
  if (n > maxCount) throw new FormatError(`entropy stream declares ${n} values, more than the ${maxCount} expected`);
  if (method === RAW && n > d.length) {
    throw new FormatError(`entropy stream declares ${n} values, its ${d.length} bytes cannot hold them`);
  }
  if (pos >= d.length) throw new FormatError("truncated entropy stream");
  const sflag = d[pos++];
  if (sflag > 1) throw new FormatError("corrupt entropy stream (sign flag)");
  const signed = sflag === 1;
  if (method === RAW || method === ZSTD) {
    let body: Uint8Array;
    if (method === ZSTD) {
      let rawLen: number;
      [rawLen, pos] = readVarint(d, pos, "entropy stream");
      if (rawLen > 9 * n + 1) throw new FormatError("corrupt entropy stream (declared size)");
      body = zstdDecompressExact(d.subarray(pos), rawLen, "entropy stream");
    } else {
      body = d.subarray(pos);
    }
    if (body.length === 0) throw new FormatError("truncated entropy stream");
    const w = body[0];
    if (w !== 1 && w !== 2 && w !== 4 && w !== 8) throw new FormatError("corrupt entropy stream (width)");
    if (body.length - 1 !== n * w) throw new FormatError(`entropy stream holds ${body.length - 1} bytes, expected ${n * w}`);
    const lo = new Uint32Array(n);
    let hi: Uint32Array | null = null;
    if (w === 1) {
      lo.set(body.subarray(1));
    } else if (w === 2) {
      for (let i = 0, p = 1; i < n; i++, p += 2) lo[i] = body[p] | (body[p + 1] << 8);
    } else if (w === 4) {
      for (let i = 0, p = 1; i < n; i++, p += 4) lo[i] = body[p] | (body[p + 1] << 8) | (body[p + 2] << 16) | (body[p + 3] << 24);
    } else {
      hi = new Uint32Array(n);
      for (let i = 0, p = 1; i < n; i++, p += 8) {
        lo[i] = body[p] | (body[p + 1] << 8) | (body[p + 2] << 16) | (body[p + 3] << 24);
        hi[i] = body[p + 4] | (body[p + 5] << 8) | (body[p + 6] << 16) | (body[p + 7] << 24);
      }
    }
    return { n, signed, lo, hi };
  }
  if (method === RANS) {
    let t: RansTables;
    [t, pos] = readModel(d, pos, MAX_RANS_ALPHABET);
    const sym = new Uint16Array(n);
    ransDecode(d.subarray(pos), n, t, sym);
    const lo = new Uint32Array(n);
    lo.set(sym);
    return { n, signed, lo, hi: null };
  }
  if (method === RANS_EG) {
    let t: RansTables, clen: number;
    [t, pos] = readModel(d, pos, MAX_EG_BUCKETS);
    [clen, pos] = readVarint(d, pos, "entropy stream");
    if (pos + clen > d.length) throw new FormatError("truncated entropy stream (rANS payload)");
    const b = new Uint16Array(n);
    ransDecode(d.subarray(pos, pos + clen), n, t, b);
    pos += clen;
    const k = t.freq.length;
    const counts = new Float64Array(k);
    let maxB = 0;
    for (let i = 0; i < n; i++) {
      const bi = b[i];
      counts[bi]++;
      if (bi > maxB) maxB = bi;
    }
    const cursor = new Float64Array(k); // next bit of each bucket's tail
    let nbytes = 0;
    for (let bk = 2; bk < k; bk++) {
      cursor[bk] = 8 * nbytes;
      nbytes += Math.ceil((counts[bk] * (bk - 1)) / 8);
    }
    if (nbytes > d.length - pos) throw new FormatError("truncated bit-packed data in entropy stream");
    if (pos + nbytes !== d.length) throw new FormatError("entropy stream has trailing bytes");
    const bitsData = new Uint8Array(nbytes + 8);
    bitsData.set(d.subarray(pos, pos + nbytes));
    const lo = new Uint32Array(n);
    const hi = maxB > 32 ? new Uint32Array(n) : null;
    for (let i = 0; i < n; i++) {
      const bk = b[i];
      if (bk < 2) {
        lo[i] = bk;
      } else if (bk <= 32) {
        const c = cursor[bk];
        lo[i] = (2 ** (bk - 1)) + readBits(bitsData, c, bk - 1);
        cursor[bk] = c + bk - 1;
      } else {
        const c = cursor[bk];
        const hb = bk - 33; // tail bits above the low 32
        (hi as Uint32Array)[i] = (2 ** hb) + readBits(bitsData, c, hb);
        lo[i] = readBits(bitsData, c + hb, 32);
        cursor[bk] = c + bk - 1;
      }
    }
    return { n, signed, lo, hi };
  }
  throw new FormatError(`unknown entropy coding method ${method}`);
}

/** The value of element `i` of a RawInts as an exact number, or NaN when |v| > 2^53. */
export function rawValue(r: RawInts, i: number): number {
  const lo = r.lo[i];
  const hi = r.hi === null ? 0 : r.hi[i];
  if (!r.signed) return hi >= 0x200000 ? NaN : hi * TWO32 + lo;
  if (hi >= 0x400000) return NaN;
  const half = hi * 2147483648 + (lo >>> 1);
  return lo & 1 ? -half - 1 : half;
}

/**
 * Decode an integer stream to exact numbers (`maxCount` bounds its count). FormatError when a
 * value's magnitude exceeds 2^53 (use `decodeIntsRaw` for full 64-bit values).
 */
export function decodeInts(d: Uint8Array, maxCount: number): Float64Array {
  const r = decodeIntsRaw(d, maxCount);
  const out = new Float64Array(r.n);
  const lo = r.lo;
  if (r.hi === null && !r.signed) {
    out.set(lo);
  } else if (r.hi === null) {
    for (let i = 0; i < r.n; i++) out[i] = (lo[i] >>> 1) ^ -(lo[i] & 1);
  } else {
    for (let i = 0; i < r.n; i++) {
      const v = rawValue(r, i);
      if (v !== v) throw new FormatError("entropy stream holds a value beyond 2^53");
      out[i] = v;
    }
  }
  return out;
}

/** Opaque zstd byte payload: size varint (at most `maxSize`), then one frame of exactly that size. */
export function decodeBytes(d: Uint8Array, maxSize: number): Uint8Array {
  const [n, pos] = readVarint(d, 0, "byte stream");
  if (n > maxSize) throw new FormatError("byte stream larger than allowed");
  return zstdDecompressExact(d.subarray(pos), n, "byte stream");
}

/** `count` streams, each prefixed by its byte length (varint), filling `d` exactly (views). */
export function unpackArrays(d: Uint8Array, count: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let pos = 0;
  for (let i = 0; i < count; i++) {
    let n: number;
    [n, pos] = readVarint(d, pos, "stream list");
    if (pos + n > d.length) throw new FormatError("truncated stream list");
    out.push(d.subarray(pos, pos + n));
    pos += n;
  }
  if (pos !== d.length) throw new FormatError("stream list has trailing bytes");
  return out;
}
