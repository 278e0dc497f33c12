/**
 * The uniform quantizer every codec shares (docs/formats/lgs.md, "Uniform quantizer"):
 * an integer q in [0, 2^bits - 1] decodes to lo + q * step, step = (hi - lo) / (2^bits - 1)
 * (1 when hi == lo), computed in float64 and rounded to float32.
 */
import { FormatError } from "./errors.js";
import { getInt, getNumbers, isObject } from "./header.js";

/** Largest quantizer bound accepted: decoded values stay finite in float32. */
export const MAX_BOUND = 1e30;

export interface UniformQuant {
  lo: Float64Array;
  hi: Float64Array;
  bits: number;
  /** 2^bits - 1 */
  levels: number;
  /** per channel, float64 */
  step: Float64Array;
}

/** step = (hi - lo) / levels where hi > lo, else 1 (float64). */
export function uniformStep(lo: Float64Array, hi: Float64Array, bits: number): Float64Array {
  const levels = 2 ** bits - 1;
  const step = new Float64Array(lo.length);
  for (let c = 0; c < lo.length; c++) {
    const ext = hi[c] - lo[c];
    step[c] = ext > 0 ? ext / levels : 1.0;
  }
  return step;
}

/** A quantizer `{lo: [C], hi: [C], bits}` from a header (bits in [1, maxBits], finite bounds, hi >= lo). */
export function quantFromJson(d: unknown, channels: number, what: string, maxBits = 16): UniformQuant {
  if (!isObject(d)) throw new FormatError(`quantizer for ${what} in the header is malformed`);
  const lo = getNumbers(d, "lo", channels, MAX_BOUND, `quantizer for ${what}`);
  const hi = getNumbers(d, "hi", channels, MAX_BOUND, `quantizer for ${what}`);
  const bits = getInt(d, "bits", 1, maxBits, `quantizer for ${what}`);
  for (let c = 0; c < channels; c++) {
    if (hi[c] < lo[c]) throw new FormatError(`quantizer for ${what} has hi < lo`);
  }
  return { lo, hi, bits, levels: 2 ** bits - 1, step: uniformStep(lo, hi, bits) };
}
