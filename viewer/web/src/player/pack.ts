/** SplatArrays (our decoders' output) into Spark's PackedSplats, SH included. */
import { defines, PackedSplats, utils } from "@sparkjsdev/spark";
import type { SplatArrays } from "../formats/types.js";

const SH_C0 = 0.28209479177387814;
/** Rest coefficients of each SH band (degree 1, 2, 3) within the K per channel. */
const BANDS: Array<[number, number]> = [[0, 3], [3, 8], [8, 15]];

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

/** Pack `a` (PLY frame, raw INRIA parameters) for Spark. */
export function packSplats(a: SplatArrays): PackedSplats {
  const n = a.count;
  const { maxSplats } = utils.getTextureSize(Math.max(n, 1));
  const packed = new Uint32Array(4 * maxSplats);
  for (let i = 0; i < n; i++) {
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
  const extra: Record<string, unknown> = {};
  const encoding: Record<string, number> = {};
  const encoders = [utils.encodeSh1Rgb, utils.encodeSh2Rgb, utils.encodeSh3Rgb];
  const words = [2, 4, 4];
  for (let b = 0; b < a.shDegree; b++) {
    const [lo, hi] = BANDS[b];
    const max = bandMax(a, K, lo, hi);
    const key = `sh${b + 1}Max`;
    encoding[key] = max;
    const arr = new Uint32Array(words[b] * maxSplats);
    const tmp = new Float32Array((hi - lo) * 3);
    for (let i = 0; i < n; i++) {
      tmp.set(a.shRest.subarray((i * K + lo) * 3, (i * K + hi) * 3));
      encoders[b](arr, i, tmp, { [key]: max });
    }
    extra[`sh${b + 1}`] = arr;
  }
  // the SH ranges must reach the shader: SplatMesh replaces a PackedSplats' encoding with its
  // own option, so the caller passes `packed.splatEncoding` on (view.ts)
  return new PackedSplats({ packedArray: packed, numSplats: n, extra, splatEncoding: { ...defines.DEFAULT_SPLAT_ENCODING, ...encoding } });
}
