/**
 * SplatArrays as an INRIA binary little-endian PLY (the layout `splat.io.ply` writes: x y z,
 * nx ny nz (zero), f_dc_0..2, f_rest_* channel-major, opacity, scale_0..2, rot_0..3, all
 * float32), byte-identical with the Python writer for the same arrays.
 */
import type { SplatArrays } from "./types.js";

/** The PLY header for `s`. */
export function plyHeader(s: SplatArrays): string {
  const K = s.shRest.length / Math.max(s.count, 1) / 3;
  const props = ["x", "y", "z", "nx", "ny", "nz", "f_dc_0", "f_dc_1", "f_dc_2"];
  for (let i = 0; i < 3 * K; i++) props.push(`f_rest_${i}`);
  props.push("opacity", "scale_0", "scale_1", "scale_2", "rot_0", "rot_1", "rot_2", "rot_3");
  const lines = ["ply", "format binary_little_endian 1.0", "comment written by splatkit", `element vertex ${s.count}`];
  for (const p of props) lines.push(`property float ${p}`);
  lines.push("end_header");
  return lines.join("\n") + "\n";
}

/** The whole PLY file as bytes (header + one float32 row per Gaussian). */
export function encodePly(s: SplatArrays): Uint8Array {
  const n = s.count;
  const K = (s.shDegree + 1) * (s.shDegree + 1) - 1;
  const head = new TextEncoder().encode(plyHeader(s));
  const row = 17 + 3 * K;
  const out = new Uint8Array(head.length + 4 * row * n);
  out.set(head);
  const f = new Float32Array(row * n);
  for (let i = 0; i < n; i++) {
    const o = i * row;
    f[o] = s.means[3 * i];
    f[o + 1] = s.means[3 * i + 1];
    f[o + 2] = s.means[3 * i + 2];
    f[o + 6] = s.shDc[3 * i];
    f[o + 7] = s.shDc[3 * i + 1];
    f[o + 8] = s.shDc[3 * i + 2];
    for (let c = 0; c < 3; c++) for (let k = 0; k < K; k++) f[o + 9 + c * K + k] = s.shRest[(i * K + k) * 3 + c];
    const t = o + 9 + 3 * K;
    f[t] = s.opacityLogits[i];
    f[t + 1] = s.logScales[3 * i];
    f[t + 2] = s.logScales[3 * i + 1];
    f[t + 3] = s.logScales[3 * i + 2];
    for (let j = 0; j < 4; j++) f[t + 4 + j] = s.quats[4 * i + j];
  }
  // little-endian float32 rows (every platform Node and browsers run on is little-endian)
  out.set(new Uint8Array(f.buffer), head.length);
  return out;
}
