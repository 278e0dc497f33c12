/**
 * SplatArrays (PLY frame, raw INRIA parameters) into the four 32-bit words per Gaussian of
 * Spark's PackedSplats, with Spark's default encoding (colour 0..1, ln scale -12..9), without
 * importing Spark: the `.gsv` decoding worker packs each video frame here, off the page's
 * thread, and the page copies the words into the mesh's array (pack.ts `packInto`).
 *
 * Layout of Gaussian i (words 4i..4i+3), as Spark's shaders read it:
 *   0: r, g, b, opacity (8 bits each, 0..1)
 *   1: centre x, y (half floats)
 *   2: centre z (half float), rotation axis u, v (8 bits each, octahedral)
 *   3: ln scale x, y, z (8 bits each: 0 = zero, 1..255 over [-12, 9]), rotation angle (8 bits, 0..pi)
 * SH bands are not packed here (the page encodes them when a clip has any).
 */
import type { SplatArrays } from "../formats/types.js";

const SH_C0 = 0.28209479177387814;
const LN_SCALE_MIN = -12;
const LN_SCALE_MAX = 9;
/** ln scales below this are a zero scale (code 0). */
const LN_SCALE_ZERO = -30;
const SCALE_STEP = 254 / (LN_SCALE_MAX - LN_SCALE_MIN);

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);
const F16 = (globalThis as { Float16Array?: new (n: number) => ArrayLike<number> & { [i: number]: number } }).Float16Array;
const f16 = F16 ? new F16(1) : null;
const u16 = f16 ? new Uint16Array((f16 as unknown as { buffer: ArrayBuffer }).buffer) : null;

/** IEEE half-float bits of the float32 whose bits are `b` (round to nearest even; overflow to infinity). */
function halfOfBits(b: number): number {
  const sign = (b >>> 16) & 0x8000;
  const e = (b >>> 23) & 0xff;
  const m = b & 0x7fffff;
  if (e === 0xff) return sign | (m ? 0x7e00 : 0x7c00);
  const he = e - 112; // rebias 127 -> 15
  if (he >= 31) return sign | 0x7c00;
  if (he <= 0) {
    if (he < -10) return sign;
    const mm = m | 0x800000;
    const shift = 14 - he;
    let h = mm >>> shift;
    const rem = mm & ((1 << shift) - 1), halfway = 1 << (shift - 1);
    if (rem > halfway || (rem === halfway && (h & 1))) h++;
    return sign | h;
  }
  let h = (he << 10) | (m >>> 13);
  const rem = m & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && (h & 1))) h++; // a carry into the exponent is correct
  return sign | h;
}

/** IEEE half-float bits of `v` (round to nearest; overflow to infinity). */
export function halfBits(v: number): number {
  if (f16 && u16) {
    f16[0] = v;
    return u16[0];
  }
  f32[0] = v;
  return halfOfBits(u32[0]);
}

function byte(v: number): number {
  const r = Math.round(v * 255);
  return r < 0 ? 0 : r > 255 ? 255 : r;
}

function scaleCode(ln: number): number {
  if (!(ln >= LN_SCALE_ZERO)) return 0;
  const r = Math.round((ln - LN_SCALE_MIN) * SCALE_STEP) + 1;
  return r < 1 ? 1 : r > 255 ? 255 : r;
}

/** Word 0 of each Gaussian (r, g, b, opacity bytes) into `out` (one per Gaussian). */
function colourWords(a: SplatArrays, out: Uint32Array): Uint32Array {
  const { opacityLogits, shDc } = a;
  for (let i = 0; i < a.count; i++) {
    const i3 = 3 * i;
    const alpha = 1 / (1 + Math.exp(-opacityLogits[i]));
    out[i] = (byte(0.5 + SH_C0 * shDc[i3]) | (byte(0.5 + SH_C0 * shDc[i3 + 1]) << 8)
      | (byte(0.5 + SH_C0 * shDc[i3 + 2]) << 16) | (byte(alpha) << 24)) >>> 0;
  }
  return out;
}

/** The scale bytes of word 3 (bits 0..23) of each Gaussian into `out` (one per Gaussian). */
function scaleWords(a: SplatArrays, out: Uint32Array): Uint32Array {
  const ls = a.logScales;
  for (let i = 0; i < a.count; i++) {
    out[i] = scaleCode(ls[3 * i]) | (scaleCode(ls[3 * i + 1]) << 8) | (scaleCode(ls[3 * i + 2]) << 16);
  }
  return out;
}

/** The four words of each Gaussian into `out`, from `a`'s centres and rotations and the
 * Gaussians' colour words and scale words (colourWords, scaleWords). */
function placeWords(a: SplatArrays, colour: Uint32Array, scale: Uint32Array, out: Uint32Array): Uint32Array {
  const { means, quats } = a;
  // the centres' float32 bits, read in place (a centre is already a float32: its half is
  // the rounding of these bits, the same as Float16Array's)
  const mb = new Uint32Array(means.buffer, means.byteOffset, means.length);
  for (let i = 0; i < a.count; i++) {
    const i3 = 3 * i, i4 = 4 * i;
    out[i4] = colour[i];
    out[i4 + 1] = (halfOfBits(mb[i3]) | (halfOfBits(mb[i3 + 1]) << 16)) >>> 0;
    // rotation: ours is (w, x, y, z); unit, w >= 0, as an angle about an axis (octahedral u, v)
    let w = quats[i4], x = quats[i4 + 1], y = quats[i4 + 2], z = quats[i4 + 3];
    const n = Math.sqrt(w * w + x * x + y * y + z * z) || 1;
    const s = w < 0 ? -1 / n : 1 / n;
    w *= s; x *= s; y *= s; z *= s;
    const angle = Math.round(2 * Math.acos(Math.min(1, w)) * (255 / Math.PI));
    const xyz = Math.sqrt(x * x + y * y + z * z);
    if (xyz < 1e-6) { x = 1; y = 0; z = 0; } else { x /= xyz; y /= xyz; z /= xyz; }
    const l1 = Math.abs(x) + Math.abs(y) + Math.abs(z);
    let px = x / l1, py = y / l1;
    if (z < 0) {
      const fx = (1 - Math.abs(py)) * (px >= 0 ? 1 : -1);
      py = (1 - Math.abs(px)) * (py >= 0 ? 1 : -1);
      px = fx;
    }
    const u = Math.round((px * 0.5 + 0.5) * 255), v = Math.round((py * 0.5 + 0.5) * 255);
    out[i4 + 2] = (halfOfBits(mb[i3 + 2]) | (u << 16) | (v << 24)) >>> 0;
    out[i4 + 3] = (scale[i] | (angle << 24)) >>> 0;
  }
  return out;
}

/** The words of `a`'s Gaussians (4 per Gaussian, `a.count` of them) in a new array, or in `out`. */
export function packWords(a: SplatArrays, out = new Uint32Array(4 * a.count)): Uint32Array {
  return placeWords(a, colourWords(a, new Uint32Array(a.count)), scaleWords(a, new Uint32Array(a.count)), out);
}

/** A frame in Spark's layout: the Gaussians' words and, for SH degree 1, the sh1 words and range. */
export interface SparkWords {
  splats: Uint32Array;
  sh1?: Uint32Array;
  sh1Max?: number;
}

/** Degree-1 SH of `a` as Spark's sh1 words (2 per Gaussian: 9 signed 7-bit values, scaled by the
 * largest |coefficient|, value k at bits 7k..7k+6 coefficient-major); null for other degrees. */
export function packSh1(a: SplatArrays): { words: Uint32Array; max: number } | null {
  if (a.shDegree !== 1) return null;
  const n = a.count, sh = a.shRest; // K = 3 rest coefficients x 3 channels per Gaussian
  let max = 1e-6;
  for (let j = 0; j < 9 * n; j++) {
    const v = Math.abs(sh[j]);
    if (v > max) max = v;
  }
  const scale = 63 / max;
  const out = new Uint32Array(2 * n);
  for (let i = 0; i < n; i++) {
    let lo = 0, hi = 0;
    for (let k = 0; k < 9; k++) {
      let q = Math.round(sh[9 * i + k] * scale);
      q = (q < -63 ? -63 : q > 63 ? 63 : q) & 127;
      const bit = 7 * k;
      if (bit < 32) {
        lo |= q << bit;
        if (bit + 7 > 32) hi |= q >>> (32 - bit);
      } else hi |= q << (bit - 32);
    }
    out[2 * i] = lo >>> 0;
    out[2 * i + 1] = hi >>> 0;
  }
  return { words: out, max };
}

/** `a` in Spark's layout (its Gaussians, and its SH when of degree 1). */
export function packFrame(a: SplatArrays): SparkWords {
  return new FramePacker().pack(a);
}

/** One cached part of the packing: its result while the source arrays are the same objects. */
interface Kept<T> {
  from: readonly Float32Array[];
  value: T;
}

function keptFor<T>(k: Kept<T> | null, from: readonly Float32Array[]): T | null {
  return k && k.from.length === from.length && k.from.every((x, j) => x === from[j] && x.length > 0) ? k.value : null;
}

/**
 * Packs the successive frames of a clip (the `.gsv` worker keeps one per stream). A tracked
 * segment hands out the same colour, opacity, scale and SH arrays frame after frame until
 * one changes (copy on write, formats/gsv.ts), so the parts of the words made from them are
 * kept while those arrays are the same objects, and a frame that only moves costs its
 * centres and rotations. The arrays must not be written in place after packing (the
 * decoders' contract: shared arrays are read-only). The result equals `packFrame(a)`.
 */
export class FramePacker {
  private colour: Kept<Uint32Array> | null = null;
  private scale: Kept<Uint32Array> | null = null;
  private sh1: Kept<{ words: Uint32Array; max: number } | null> | null = null;

  pack(a: SplatArrays): SparkWords {
    const n = a.count;
    const byColour = [a.shDc, a.opacityLogits], byScale = [a.logScales], bySh = [a.shRest];
    let colour = keptFor(this.colour, byColour);
    if (!colour || colour.length !== n) {
      colour = colourWords(a, new Uint32Array(n));
      this.colour = { from: byColour, value: colour };
    }
    let scale = keptFor(this.scale, byScale);
    if (!scale || scale.length !== n) {
      scale = scaleWords(a, new Uint32Array(n));
      this.scale = { from: byScale, value: scale };
    }
    const splats = placeWords(a, colour, scale, new Uint32Array(4 * n));
    if (a.shDegree !== 1) return { splats };
    let sh1 = keptFor(this.sh1, bySh);
    if (!sh1 || sh1.words.length !== 2 * n) {
      sh1 = packSh1(a);
      this.sh1 = { from: bySh, value: sh1 };
    }
    // a copy: the frame's arrays are transferred away, the kept ones stay here
    return sh1 ? { splats, sh1: sh1.words.slice(), sh1Max: sh1.max } : { splats };
  }
}
