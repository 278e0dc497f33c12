/**
 * The byte-wise rANS decoder of docs/formats/entropy.md ("rANS payload"): one 32-bit state,
 * L = 2^23, M = 2^16, frequencies summing to 2^16 read from the stream.
 */
import { FormatError } from "./errors.js";

/** Frequency precision: M = 2^16. */
export const SCALE_BITS = 16;
export const SCALE = 1 << SCALE_BITS;
/** Lower bound of the normalised state. */
export const RANS_L = 1 << 23;

/** Decoding tables of a model: frequencies, cumulative starts, symbol per slot. */
export interface RansTables {
  freq: Uint32Array;
  cum: Uint32Array;
  /** [2^16] the symbol whose slot range holds each slot. */
  lookup: Uint16Array;
}

/** Tables from frequencies (FormatError unless they are non-negative and sum to 2^16). */
export function ransTables(freqs: ArrayLike<number>): RansTables {
  const k = freqs.length;
  if (k === 0 || k > SCALE) throw new FormatError(`rANS model of ${k} symbols`);
  const freq = new Uint32Array(k);
  const cum = new Uint32Array(k);
  let total = 0;
  for (let s = 0; s < k; s++) {
    const f = freqs[s];
    if (!(f >= 0) || f > SCALE) throw new FormatError(`rANS frequency table must sum to ${SCALE}`);
    cum[s] = total;
    freq[s] = f;
    total += f;
  }
  if (total !== SCALE) throw new FormatError(`rANS frequency table must sum to ${SCALE}`);
  const lookup = new Uint16Array(SCALE);
  for (let s = 0; s < k; s++) lookup.fill(s, cum[s], cum[s] + freq[s]);
  return { freq, cum, lookup };
}

/** Turns a decode kernel's end status into a FormatError: 1 ran out, 2 final state, 3 left over. */
export function checkEndStatus(status: number, what: string, corruptHint = ""): void {
  if (status === 1) throw new FormatError(`truncated ${what}`);
  if (status === 2) throw new FormatError(`corrupt ${what} (final state check failed${corruptHint})`);
  if (status === 3) throw new FormatError(`${what} has trailing bytes`);
}

/**
 * Decode `n` symbols from a whole rANS payload into `out` [n]; FormatError when the payload
 * runs out, the final state is not L, or bytes are left over.
 */
export function ransDecode(payload: Uint8Array, n: number, t: RansTables, out: Uint16Array, what = "rANS stream"): void {
  checkEndStatus(ransKernel(payload, n, t.freq, t.cum, t.lookup, out), what);
}

function ransKernel(d: Uint8Array, n: number, freq: Uint32Array, cum: Uint32Array, lookup: Uint16Array, out: Uint16Array): number {
  const size = d.length;
  if (size < 4) return 1;
  // x < 2^32 always: f * (x >> 16) + slot - c < 2^16 * 2^16
  let x = ((d[0] << 24) | (d[1] << 16) | (d[2] << 8) | d[3]) >>> 0;
  let pos = 4;
  for (let i = 0; i < n; i++) {
    const slot = x & 0xffff;
    const s = lookup[slot];
    out[i] = s;
    x = freq[s] * (x >>> 16) + slot - cum[s];
    while (x < RANS_L) {
      if (pos >= size) return 1;
      x = (x << 8) | d[pos++];
    }
  }
  if (x !== RANS_L) return 2;
  if (pos !== size) return 3;
  return 0;
}
