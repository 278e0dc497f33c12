/**
 * Parity of the worker's packer (src/player/spark_words.ts) with Spark's own encoders
 * (utils.setPackedSplat, utils.encodeSh1Rgb) on random Gaussians. Prints one JSON line.
 * Half-float centres may differ by one unit where the runtime lacks Float16Array (Spark then
 * truncates, we round to nearest); every other field must be identical.
 */
import { utils } from "@sparkjsdev/spark";
import type { SplatArrays } from "../src/formats/types.js";
import { FramePacker, packFrame, packSh1, packWords } from "../src/player/spark_words.js";

const n = Number((globalThis as { process?: { argv: string[] } }).process?.argv[2] ?? 20000);
let seed = 12345;
const rnd = () => ((seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 4294967296);
const gauss = () => Math.sqrt(-2 * Math.log(rnd() + 1e-12)) * Math.cos(2 * Math.PI * rnd());
const fill = (len: number, f: () => number) => Float32Array.from({ length: len }, f);
const a: SplatArrays = {
  count: n, shDegree: 1,
  means: fill(3 * n, () => gauss() * 3), quats: fill(4 * n, gauss), logScales: fill(3 * n, () => gauss() - 4),
  opacityLogits: fill(n, () => gauss() * 3), shDc: fill(3 * n, gauss), shRest: fill(9 * n, () => gauss() * 0.3),
};
a.logScales[0] = -40; // a scale that encodes as zero
const C0 = 0.28209479177387814;
const ref = new Uint32Array(4 * n);
for (let i = 0; i < n; i++) {
  utils.setPackedSplat(ref, i, a.means[3 * i], a.means[3 * i + 1], a.means[3 * i + 2],
    Math.exp(a.logScales[3 * i]), Math.exp(a.logScales[3 * i + 1]), Math.exp(a.logScales[3 * i + 2]),
    a.quats[4 * i + 1], a.quats[4 * i + 2], a.quats[4 * i + 3], a.quats[4 * i],
    1 / (1 + Math.exp(-a.opacityLogits[i])), 0.5 + C0 * a.shDc[3 * i], 0.5 + C0 * a.shDc[3 * i + 1], 0.5 + C0 * a.shDc[3 * i + 2]);
}
const ours = packWords(a);
const halves = (w: number) => [w & 0xffff, w >>> 16];
let exactOther = 0, halfOff = 0, halfMax = 0;
for (let i = 0; i < n; i++) {
  const r = ref.subarray(4 * i, 4 * i + 4), o = ours.subarray(4 * i, 4 * i + 4);
  // word 0: rgba; word 1: x, y halves; word 2: z half | u | v; word 3: scales | angle
  const same = r[0] === o[0] && r[3] === o[3] && (r[2] >>> 16) === (o[2] >>> 16);
  if (same) exactOther++;
  const hr = [...halves(r[1]), r[2] & 0xffff], ho = [...halves(o[1]), o[2] & 0xffff];
  for (let k = 0; k < 3; k++) {
    const d = Math.abs(hr[k] - ho[k]);
    if (d) halfOff++;
    halfMax = Math.max(halfMax, d);
  }
}
const sh = packSh1(a)!;
const refSh = new Uint32Array(2 * n);
const tmp = new Float32Array(9);
for (let i = 0; i < n; i++) {
  tmp.set(a.shRest.subarray(9 * i, 9 * i + 9));
  utils.encodeSh1Rgb(refSh, i, tmp, { sh1Max: sh.max });
}
let shSame = 0;
for (let j = 0; j < 2 * n; j++) if (refSh[j] === sh.words[j]) shSame++;
// FramePacker over a clip-like sequence: frames that move (new centres and rotations, the same
// colour, opacity, scale and SH arrays, as a tracked segment hands out), then copy-on-write
// changes of each shared array, then fresh arrays: every frame must equal a fresh packFrame.
const packer = new FramePacker();
let frame: SplatArrays = a;
let packerFrames = 0, packerSame = 0;
const same = (x: Uint32Array | undefined, y: Uint32Array | undefined) => !!x && !!y && x.length === y.length && x.every((v, j) => v === y[j]);
const steps: Array<(f: SplatArrays) => SplatArrays> = [
  (f) => f,
  (f) => ({ ...f, means: f.means.map((v) => v + 0.01), quats: f.quats.map((v, j) => (j % 4 ? v * 0.9 : v)) }),
  (f) => ({ ...f, means: f.means.map((v) => v - 0.02) }),
  (f) => ({ ...f, shDc: f.shDc.map((v, j) => (j % 7 ? v : v + 0.5)) }),
  (f) => ({ ...f, opacityLogits: f.opacityLogits.map((v, j) => (j % 5 ? v : -v)) }),
  (f) => ({ ...f, logScales: f.logScales.map((v, j) => (j % 3 ? v : v + 0.3)) }),
  (f) => ({ ...f, shRest: f.shRest.map((v, j) => (j % 4 ? v : v * 2)) }),
  (f) => ({ ...f, means: f.means.slice() }),
  (f) => ({ ...f, shDc: f.shDc.slice(), opacityLogits: f.opacityLogits.slice(), logScales: f.logScales.slice(), shRest: f.shRest.slice() }),
];
for (const step of steps) {
  frame = step(frame);
  const got = packer.pack(frame), want = packFrame(frame);
  packerFrames++;
  if (same(got.splats, want.splats) && same(got.sh1, want.sh1) && got.sh1Max === want.sh1Max) packerSame++;
}
console.log(JSON.stringify({ n, exactOther, halfOff, halfMax, shSame, shWords: 2 * n, float16: typeof (globalThis as any).Float16Array, packerFrames, packerSame }));
