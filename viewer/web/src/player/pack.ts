/**
 * SplatArrays (our decoders' output) into Spark's PackedSplats, SH included: a new
 * PackedSplats (`packSplats`), or the frames of a video written over the arrays of one that
 * is already on the GPU (`packInto`: no allocation, one pass from the decoded arrays).
 */
import { defines, PackedSplats, utils } from "@sparkjsdev/spark";
import type { SplatArrays } from "../formats/types.js";
import type { SparkWords } from "./spark_words.js";

const SH_C0 = 0.28209479177387814;
/** Rest coefficients of each SH band (degree 1, 2, 3) within the K per channel. */
const BANDS: Array<[number, number]> = [[0, 3], [3, 8], [8, 15]];
/** Uint32 words per Gaussian of Spark's sh1, sh2, sh3 arrays. */
const SH_WORDS = [2, 4, 4];
const SH_ENCODERS = [utils.encodeSh1Rgb, utils.encodeSh2Rgb, utils.encodeSh3Rgb];

/** Largest |coefficient| of a band over every Gaussian and channel (>= 1e-6). */
function bandMax(a: SplatArrays, K: number, lo: number, hi: number): number {
  let m = 1e-6;
  for (let i = 0; i < a.count; i++) {
    for (let j = (i * K + lo) * 3, e = (i * K + hi) * 3; j < e; j++) {
      const v = Math.abs(a.shRest[j]);
      if (v > m) m = v;
    }
  }
  return m;
}

/** Write `a`'s Gaussians into `packed` (4 words each; copied from `words` when the decoder
 * packed them already, spark_words.ts) and its SH bands into `extra.sh1..3`;
 * returns the SH ranges (`sh1Max`...) the encoding must carry. */
function writeArrays(a: SplatArrays, packed: Uint32Array, extra: Record<string, unknown>, shDegree: number, words?: SparkWords): Record<string, number> {
  const n = a.count;
  if (words && words.splats.length === 4 * n) packed.set(words.splats);
  else for (let i = 0; i < n; i++) {
    const o = 1 / (1 + Math.exp(-a.opacityLogits[i]));
    utils.setPackedSplat(
      packed, i,
      a.means[3 * i], a.means[3 * i + 1], a.means[3 * i + 2],
      Math.exp(a.logScales[3 * i]), Math.exp(a.logScales[3 * i + 1]), Math.exp(a.logScales[3 * i + 2]),
      // Spark takes quaternions as (x, y, z, w); ours are (w, x, y, z)
      a.quats[4 * i + 1], a.quats[4 * i + 2], a.quats[4 * i + 3], a.quats[4 * i],
      o,
      0.5 + SH_C0 * a.shDc[3 * i], 0.5 + SH_C0 * a.shDc[3 * i + 1], 0.5 + SH_C0 * a.shDc[3 * i + 2],
    );
  }
  const K = (a.shDegree + 1) ** 2 - 1;
  const encoding: Record<string, number> = {};
  for (let b = 0; b < Math.min(shDegree, a.shDegree); b++) {
    const arr = extra[`sh${b + 1}`] as Uint32Array;
    if (b === 0 && words?.sh1 && words.sh1Max !== undefined && words.sh1.length === 2 * n) {
      arr.set(words.sh1);
      encoding.sh1Max = words.sh1Max;
      continue;
    }
    arr.fill(0, 0, SH_WORDS[b] * n); // Spark's encoders OR their bits in
    const [lo, hi] = BANDS[b];
    const max = bandMax(a, K, lo, hi);
    const key = `sh${b + 1}Max`;
    encoding[key] = max;
    const tmp = new Float32Array((hi - lo) * 3);
    const opts = { [key]: max };
    for (let i = 0; i < n; i++) {
      tmp.set(a.shRest.subarray((i * K + lo) * 3, (i * K + hi) * 3));
      SH_ENCODERS[b](arr, i, tmp, opts);
    }
  }
  return encoding;
}

/** Pack `a` (PLY frame, raw INRIA parameters) for Spark, with room for `capacity` Gaussians
 * (default: a's count; a video passes its largest frame). */
export function packSplats(a: SplatArrays, capacity = a.count): PackedSplats {
  const { maxSplats } = utils.getTextureSize(Math.max(capacity, a.count, 1));
  const packed = new Uint32Array(4 * maxSplats);
  const extra: Record<string, unknown> = {};
  for (let b = 0; b < a.shDegree; b++) extra[`sh${b + 1}`] = new Uint32Array(SH_WORDS[b] * maxSplats);
  const encoding = writeArrays(a, packed, extra, a.shDegree);
  // the SH ranges must reach the shader: SplatMesh replaces a PackedSplats' encoding with its
  // own option, so the caller passes `packed.splatEncoding` on (view.ts)
  return new PackedSplats({ packedArray: packed, numSplats: a.count, extra, splatEncoding: { ...defines.DEFAULT_SPLAT_ENCODING, ...encoding } });
}

/**
 * Overwrite `target` (made by `packSplats` with enough capacity and the same SH degree) with
 * `a`, in place: the same arrays, the same GPU textures, re-uploaded on the next draw; `words`:
 * `a` already in Spark's layout (the decoding worker's, spark_words.ts), copied over. Returns
 * false when `a` does not fit (more Gaussians or a higher SH degree): make a new one then.
 */
export function packInto(a: SplatArrays, target: PackedSplats, words?: SparkWords): boolean {
  const packed = target.packedArray;
  if (!packed || a.count > target.maxSplats) return false;
  const extra = target.extra as Record<string, unknown>;
  for (let b = 0; b < a.shDegree; b++) {
    const arr = extra[`sh${b + 1}`] as Uint32Array | undefined;
    if (!arr || arr.length < SH_WORDS[b] * a.count) return false;
  }
  const encoding = writeArrays(a, packed, extra, a.shDegree, words);
  target.numSplats = a.count;
  if (target.splatEncoding) Object.assign(target.splatEncoding, encoding);
  target.needsUpdate = true; // re-upload the splat texture
  for (let b = 1; b <= a.shDegree; b++) {
    const tex = extra[`sh${b}Texture`] as { value: { needsUpdate: boolean } } | undefined;
    if (tex) tex.value.needsUpdate = true;
  }
  return true;
}
