/**
 * The uniform quantizer every codec shares (docs/formats/lgs.md, "Uniform quantizer"):
 * L steps (`bits` b: L = 2^b - 1; `.lgs` version 4 may give `levels` L directly); an integer
 * q in [0, L] decodes to lo + q * step, step = (hi - lo) / L (1 when hi == lo), computed in
 * float64 and rounded to float32.
 */
import { FormatError } from "./errors.js";
import { getInt, getNumbers, isObject } from "./header.js";

/** Largest quantizer bound accepted: decoded values stay finite in float32. */
export const MAX_BOUND = 1e30;
/** Most steps a `levels` quantizer may have (16 bits). */
export const MAX_LEVELS = 65535;

export interface UniformQuant {
  lo: Float64Array;
  hi: Float64Array;
  /** bit length of `levels` (the bits of a whole-bit quantizer) */
  bits: number;
  /** L: the number of steps (2^bits - 1 for whole bits) */
  levels: number;
  /** L + 1: the number of values (the span of the context buckets) */
  span: number;
  /** per channel, float64 */
  step: Float64Array;
}

/** step = (hi - lo) / levels where hi > lo, else 1 (float64). */
export function uniformStep(lo: Float64Array, hi: Float64Array, levels: number): Float64Array {
  const step = new Float64Array(lo.length);
  for (let c = 0; c < lo.length; c++) {
    const ext = hi[c] - lo[c];
    step[c] = ext > 0 ? ext / levels : 1.0;
  }
  return step;
}

/** Bit length of a positive integer (floor(log2 v) + 1). */
export function bitLength(v: number): number {
  return v <= 0 ? 0 : Math.floor(Math.log2(v)) + 1;
}

/** The steps of a header object with exactly one of `bits` (1..maxBits) and, when `allowLevels`,
 * `levels` (1..maxLevels). */
export function stepsFromJson(d: unknown, what: string, maxBits: number, allowLevels: boolean, maxLevels: number): number {
  if (!isObject(d)) throw new FormatError(`${what} in the header is malformed`);
  const hasBits = "bits" in d, hasLevels = "levels" in d;
  if (hasLevels && !allowLevels) throw new FormatError(`${what} in the header is malformed (levels needs .lgs version 4)`);
  if (hasBits && hasLevels) throw new FormatError(`${what} in the header gives both bits and levels`);
  if (hasLevels) return getInt(d, "levels", 1, maxLevels, what);
  return 2 ** getInt(d, "bits", 1, maxBits, what) - 1;
}

/** A quantizer `{lo: [C], hi: [C], bits}` (or, with `allowLevels`, `{lo, hi, levels}`) from a header
 * (bits in [1, maxBits], levels in [1, maxLevels], finite bounds, hi >= lo). */
export function quantFromJson(d: unknown, channels: number, what: string, maxBits = 16, allowLevels = false,
  maxLevels = MAX_LEVELS): UniformQuant {
  if (!isObject(d)) throw new FormatError(`quantizer for ${what} in the header is malformed`);
  const lo = getNumbers(d, "lo", channels, MAX_BOUND, `quantizer for ${what}`);
  const hi = getNumbers(d, "hi", channels, MAX_BOUND, `quantizer for ${what}`);
  const levels = stepsFromJson(d, `quantizer for ${what}`, maxBits, allowLevels, maxLevels);
  for (let c = 0; c < channels; c++) {
    if (hi[c] < lo[c]) throw new FormatError(`quantizer for ${what} has hi < lo`);
  }
  return { lo, hi, bits: bitLength(levels), levels, span: levels + 1, step: uniformStep(lo, hi, levels) };
}
