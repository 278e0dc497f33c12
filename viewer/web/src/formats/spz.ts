/**
 * SPZ version 4 (`NGSP` + zstd streams), the version Spark 2.2 cannot read, into SplatArrays.
 *
 * Layout (little-endian; docs/formats/README.md, "SPZ"): a 32-byte header
 *   magic u32 "NGSP", version u32 (= 4), count u32, shDegree u8 (0-4), fractionalBits u8,
 *   flags u8, streamCount u8, tocOffset u32, 12 reserved bytes;
 * optional extension records up to tocOffset; a table of contents of `streamCount`
 * (compressedSize u64, uncompressedSize u64) pairs; then the streams, each one zstd frame,
 * back to back up to the end of the file. The streams are, in order and skipping empty
 * ones: positions (3 x signed 24-bit fixed point), alphas (u8 sigmoid), colours (u8 of
 * dc*0.15*255+127.5), scales (u8 of (log s + 10) * 16), rotations (u32 smallest-three),
 * SH (u8 of x*128+128, coefficient-major with RGB inner).
 *
 * SPZ stores RUB (y up, z back); the arrays come out in the PLY frame (y down, z forward),
 * like the toolkit's Python reader: y and z of positions, quaternion y/z and the SH
 * coefficients odd in y or z are negated (a 180 degree turn about x).
 */
import { FormatError, naming } from "./errors.js";
import type { SplatArrays } from "./types.js";
import { zstdDecompressExact } from "./zstd.js";

const MAGIC = 0x5053474e; // "NGSP"
const HEADER = 32;
const COLOR_SCALE = 0.15;
const SQRT1_2 = Math.SQRT1_2;
/** Rest coefficients per channel for SH degree 0..4. */
const SH_DIM = [0, 3, 8, 15, 24];
/** Sign flips of the 15 degree-1..3 coefficients for RDF <-> RUB (INRIA/gsplat order). */
const FLIP_SH = [-1, -1, 1, -1, 1, 1, -1, 1, -1, 1, -1, -1, 1, -1, 1];
/** Decompressed bytes a reader accepts per file byte (plus a slack), as the Python readers. */
const MAX_EXPANSION = 64;
const EXPANSION_SLACK = 16 << 20;

/** True when `bytes` start like an SPZ v4 file (plain `NGSP` magic; v1-3 are gzip streams). */
export function isSpzV4(bytes: Uint8Array): boolean {
  return bytes.length >= 8 && bytes[0] === 0x4e && bytes[1] === 0x47 && bytes[2] === 0x53 && bytes[3] === 0x50;
}

/** Byte sizes of the six attribute streams of a v4 file, in file order. */
function streamSizes(n: number, degree: number): number[] {
  return [9 * n, n, 3 * n, 3 * n, 4 * n, 3 * n * SH_DIM[degree]];
}

/** Decode an SPZ v4 file. Throws FormatError (naming `file`) for anything malformed. */
export function decodeSpzV4(bytes: Uint8Array, file?: string): SplatArrays {
  if (bytes.length < HEADER) throw new FormatError(`truncated SPZ header (${bytes.length} of ${HEADER} bytes)`, file);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  if (dv.getUint32(0, true) !== MAGIC) throw new FormatError("not an SPZ v4 file ('NGSP' magic missing)", file);
  const version = dv.getUint32(4, true);
  const n = dv.getUint32(8, true);
  const degree = bytes[12];
  const fbits = bytes[13];
  const nstreams = bytes[15];
  const toc = dv.getUint32(16, true);
  if (version !== 4) throw new FormatError(`unsupported SPZ version ${version} in an NGSP (zstd) header (expected 4)`, file);
  if (degree > 4) throw new FormatError(`unsupported SH degree ${degree} (SPZ allows 0-4)`, file);
  if (fbits > 23) throw new FormatError(`${fbits} fractional bits do not fit a 24-bit position`, file);
  const sizes = streamSizes(n, degree);
  const total = sizes.reduce((a, b) => a + b, 0);
  const limit = MAX_EXPANSION * bytes.length + EXPANSION_SLACK;
  if (total > limit) {
    throw new FormatError(`declared ${n.toLocaleString("en")} Gaussians need ${total.toLocaleString("en")} bytes, more than this file can hold`, file);
  }
  const present = sizes.filter((s) => s > 0);
  if (nstreams !== present.length) {
    throw new FormatError(`header declares ${nstreams} streams, expected ${present.length} for ${n.toLocaleString("en")} Gaussians of SH degree ${degree}`, file);
  }
  if (toc < HEADER) throw new FormatError(`TOC offset ${toc} points inside the ${HEADER}-byte header`, file);
  const start = toc + 16 * nstreams;
  if (start > bytes.length) throw new FormatError(`truncated: TOC ends at byte ${start.toLocaleString("en")}, file has ${bytes.length.toLocaleString("en")}`, file);
  const entries: Array<[number, number]> = [];
  let end = start;
  for (let i = 0; i < nstreams; i++) {
    const c = dv.getBigUint64(toc + 16 * i, true);
    const u = dv.getBigUint64(toc + 16 * i + 8, true);
    if (c > BigInt(bytes.length) || u > BigInt(limit)) {
      throw new FormatError(`stream ${i}: sizes ${c} / ${u} in the TOC exceed the file`, file);
    }
    entries.push([Number(c), Number(u)]);
    end += Number(c);
  }
  if (end !== bytes.length) {
    const what = end > bytes.length ? "truncated" : "trailing bytes";
    throw new FormatError(`${what}: the TOC accounts for ${end.toLocaleString("en")} bytes, the file has ${bytes.length.toLocaleString("en")}`, file);
  }
  const streams: Uint8Array[] = [];
  let off = start;
  let k = 0;
  for (const want of sizes) {
    if (want === 0) {
      streams.push(new Uint8Array(0));
      continue;
    }
    const [csize, usize] = entries[k];
    if (usize !== want) {
      throw new FormatError(`stream ${k}: TOC says ${usize.toLocaleString("en")} bytes uncompressed, expected ${want.toLocaleString("en")}`, file);
    }
    const frame = bytes.subarray(off, off + csize);
    streams.push(naming(file, () => zstdDecompressExact(frame, want, `stream ${k}`)));
    off += csize;
    k++;
  }
  return unpack(streams, n, degree, fbits);
}

/** Dequantise the six attribute streams (PLY frame out). */
function unpack(streams: Uint8Array[], n: number, degree: number, fbits: number): SplatArrays {
  const [pos, alpha, color, scale, rot, sh] = streams;
  const dim = SH_DIM[degree];
  const keep = Math.min(dim, 15); // degree 4's band is dropped (the renderer draws up to degree 3)
  const outDegree = Math.min(degree, 3);
  const means = new Float32Array(3 * n);
  const quats = new Float32Array(4 * n);
  const logScales = new Float32Array(3 * n);
  const opacityLogits = new Float32Array(n);
  const shDc = new Float32Array(3 * n);
  const shRest = new Float32Array(3 * keep * n);
  const inv = 1 / 2 ** fbits;
  const axisSign = [1, -1, -1];
  for (let i = 0; i < n; i++) {
    for (let a = 0; a < 3; a++) {
      const o = 9 * i + 3 * a;
      let v = pos[o] | (pos[o + 1] << 8) | (pos[o + 2] << 16);
      if (v & 0x800000) v -= 1 << 24;
      means[3 * i + a] = axisSign[a] * v * inv;
      shDc[3 * i + a] = (color[3 * i + a] / 255 - 0.5) / COLOR_SCALE;
      logScales[3 * i + a] = scale[3 * i + a] / 16 - 10;
    }
    const p = Math.min(Math.max(alpha[i] / 255, 1e-6), 1 - 1e-6);
    opacityLogits[i] = Math.log(p) - Math.log1p(-p);
    // smallest three: top 2 bits = index of the largest xyzw component; three 10-bit values
    // (sign bit 9, magnitude 0-8) for the others, the highest-indexed in the lowest bits
    const word = (rot[4 * i] | (rot[4 * i + 1] << 8) | (rot[4 * i + 2] << 16) | (rot[4 * i + 3] << 24)) >>> 0;
    const largest = word >>> 30;
    const xyzw = [0, 0, 0, 0];
    let sumSq = 0;
    let shift = 0;
    for (let c = 3; c >= 0; c--) {
      if (c === largest) continue;
      const bits = (word >>> shift) & 0x3ff;
      shift += 10;
      const mag = (bits & 0x1ff) * (SQRT1_2 / 511);
      const v = bits & 0x200 ? -mag : mag;
      xyzw[c] = v;
      sumSq += v * v;
    }
    xyzw[largest] = Math.sqrt(Math.max(0, 1 - sumSq));
    // wxyz out, turned RUB -> RDF: y and z negated
    quats[4 * i] = xyzw[3];
    quats[4 * i + 1] = xyzw[0];
    quats[4 * i + 2] = -xyzw[1];
    quats[4 * i + 3] = -xyzw[2];
    for (let j = 0; j < keep; j++) {
      const s = FLIP_SH[j];
      for (let c = 0; c < 3; c++) {
        shRest[(i * keep + j) * 3 + c] = (s * (sh[(i * dim + j) * 3 + c] - 128)) / 128;
      }
    }
  }
  return { count: n, shDegree: outDegree, means, quats, logScales, opacityLogits, shDc, shRest };
}
