/**
 * `.gsv` volumetric video (docs/formats/gsv.md), versions 1 and 2.
 *
 *   const video = await openGsv(rangeReader, { file: "clip.gsv", size });  // header + segment table
 *   const seg = await video.segment(0);       // fetches and verifies only that segment's bytes
 *   const frame = seg.frame(3);               // SplatArrays; sequential frames are cheapest
 *
 * A segment decodes from its own byte range alone (`decodeGsvSegment(bytes)`). Arrays a
 * frame returns for colours, SH, opacities and scales are shared with later frames until those
 * change them (copy on write): treat them as read-only. Centres and rotations are the caller's.
 */
import { FormatError, naming } from "./errors.js";
import { indexBytesNeeded, readChunk, readIndex, unpackContainer, type Container, type ContainerIndex } from "./container.js";
import { decodeInts, unpackArrays } from "./entropy.js";
import { decodeChannels } from "./channels.js";
import { getFloat, getInt, type JsonObject } from "./header.js";
import { decodeLgs } from "./lgs.js";
import { quantFromJson, type UniformQuant } from "./quant.js";
import { valueCap } from "./limits.js";
import type { SplatArrays } from "./types.js";
import { JointSet, jointPose, restPose, skin, unitQuatsF32, type Binding, type JointPose } from "./gsvmotion.js";

export const GSV_MAGIC = "GSV1";
export const GSV_VERSION = 2;
export const SEGMENT_MAGIC = "GSVS";
export const SEGMENT_VERSION = 2;
const SH_C0 = 0.28209479177387814;
const SH_REST = [0, 3, 8, 15];
const CODINGS = ["tracked", "resorted", "independent"];
const BIG = 2 ** 40;

/** Reads bytes [start, end) of a file (end exclusive); may return fewer bytes at the end of the file. */
export type RangeReader = (start: number, end: number) => Promise<Uint8Array>;

/** A RangeReader over bytes already in memory. */
export function bytesReader(data: Uint8Array): RangeReader {
  return async (start, end) => data.subarray(Math.min(start, data.length), Math.min(end, data.length));
}

export interface GsvHeader {
  version: number;
  fps: number;
  frames: number;
  /** largest Gaussian count of any frame */
  gaussians: number;
  shDegree: number;
  gop: number;
  tracked: boolean;
  /** "tracked", "resorted" or "independent" (version 1: from `tracked`) */
  coding: string;
  boundsMin: [number, number, number];
  boundsMax: [number, number, number];
  /** the encoder's settings (informational) */
  settings: unknown;
}

export interface GsvSegmentEntry {
  index: number;
  /** first frame and frame count */
  first: number;
  frames: number;
  mode: "tracked" | "intra";
  /** byte range [offset, offset + length) in the file, and the table's CRC-32 of it */
  offset: number;
  length: number;
  crc: number;
}

export interface GsvOptions {
  /** file name for error messages */
  file?: string;
  /** the file's size in bytes when known: segments past the end are reported at open (unless partial) */
  size?: number;
  /** open a truncated file: only segments past its end fail (needs size) */
  partial?: boolean;
  /** bytes of the first read (default 65,536); a smaller first read costs a second one when the header or table is bigger */
  headBytes?: number;
}

function rename(e: unknown, prefix: string, file?: string): never {
  if (e instanceof FormatError) throw new FormatError(`${prefix}: ${e.reason}`, file);
  throw e;
}

/** Random access to a `.gsv` clip through a RangeReader. */
export class GsvReader {
  private cache: { index: number; seg: GsvSegment } | null = null;
  private constructor(private readonly read: RangeReader, private readonly index: ContainerIndex,
                      readonly header: GsvHeader, readonly segments: GsvSegmentEntry[], readonly file?: string) {}

  /** Read and verify the prefix, JSON header and segment table (one range read, more only for a large header). */
  static async open(read: RangeReader, opts: GsvOptions = {}): Promise<GsvReader> {
    const file = opts.file;
    const hb = opts.headBytes ?? 65536;
    let requested = Number.isFinite(hb) ? Math.max(16, Math.floor(hb)) : 65536;
    let head = await read(0, requested);
    // fetch until the prefix, header and table are all in (a large header or table needs more)
    for (;;) {
      const need = naming(file, () => indexBytesNeeded(head));
      if (need <= head.length || head.length < requested) break; // complete, or the file ends here
      requested = need;
      head = await read(0, requested);
    }
    const idx = naming(file, () => readIndex(head, { magic: GSV_MAGIC, maxVersion: GSV_VERSION, what: ".gsv file", whole: false }));
    let header: GsvHeader, segs: SegmentList;
    naming(file, () => {
      [header, segs] = parseHeader(idx.header, idx.version);
      const K = idx.tags.length;
      if (segs.length !== K) throw new FormatError(`.gsv file has ${K} segment chunks, header lists ${segs.length}`);
    });
    const entries: GsvSegmentEntry[] = segs!.map((sg, s) => {
      if (idx.tags[s] !== "SEGM") throw new FormatError(`.gsv chunk ${s} has tag ${JSON.stringify(idx.tags[s])}, expected "SEGM"`, file);
      const cap = valueCap(idx.lengths[s]);
      if (sg.frames > cap) throw new FormatError(`segment ${s}'s frame count ${sg.frames} exceeds the limit of ${cap} for this file`, file);
      return { index: s, ...sg, offset: idx.starts[s], length: idx.lengths[s], crc: idx.crcs[s] };
    });
    const end = idx.starts[idx.tags.length];
    if (opts.size !== undefined) {
      if (end < opts.size) throw new FormatError(`.gsv file has ${opts.size - end} trailing bytes after the last chunk`, file);
      if (end > opts.size && !opts.partial) {
        const bad = entries.find((e) => e.offset + e.length > opts.size!)!;
        throw new FormatError(`truncated .gsv file: chunk ${bad.index} ('SEGM') ends at byte ${bad.offset + bad.length}, file has ${opts.size}`, file);
      }
    }
    return new GsvReader(read, idx, header!, entries, file);
  }

  /** Index of the segment holding `frame`. */
  segmentOf(frame: number): number {
    if (!Number.isInteger(frame) || frame < 0 || frame >= this.header.frames) {
      throw new RangeError(`frame ${frame} outside 0..${this.header.frames - 1}`);
    }
    let lo = 0, hi = this.segments.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (this.segments[mid].first <= frame) lo = mid;
      else hi = mid - 1;
    }
    return lo;
  }

  /** Fetch segment s's byte range and check its length and CRC-32. */
  async segmentBytes(s: number): Promise<Uint8Array> {
    const e = this.segments[s];
    if (!e) throw new RangeError(`segment ${s} outside 0..${this.segments.length - 1}`);
    const data = await this.read(e.offset, e.offset + e.length);
    if (data.length > e.length) {
      throw new RangeError(`the range reader returned ${data.length} bytes for segment ${s}'s ${e.length} (does the server honour range requests?)`);
    }
    try {
      return readChunk(data, this.index, s, ".gsv file", e.offset);
    } catch (err) {
      rename(err, `segment ${s} (frames ${e.first}..)`, this.file);
    }
  }

  /** Fetch, verify and parse segment s (the last one is cached). */
  async segment(s: number): Promise<GsvSegment> {
    if (this.cache && this.cache.index === s) return this.cache.seg;
    const data = await this.segmentBytes(s);
    const e = this.segments[s];
    let seg: GsvSegment;
    try {
      seg = decodeGsvSegment(data, { shDegree: this.header.shDegree });
    } catch (err) {
      rename(err, `segment ${s} (frames ${e.first}..)`, this.file);
    }
    if (seg!.frames !== e.frames) {
      throw new FormatError(`segment ${s} holds ${seg!.frames} frames, header says ${e.frames}`, this.file);
    }
    this.cache = { index: s, seg: seg! };
    return seg!;
  }

  /** Decode frame i of the clip. */
  async frame(i: number): Promise<SplatArrays> {
    const s = this.segmentOf(i);
    const seg = await this.segment(s);
    try {
      return seg.frame(i - this.segments[s].first);
    } catch (err) {
      rename(err, `frame ${i} (segment ${s})`, this.file);
    }
  }
}

/** Open a `.gsv` clip: header and segment table (see GsvReader). */
export function openGsv(read: RangeReader, opts: GsvOptions = {}): Promise<GsvReader> {
  return GsvReader.open(read, opts);
}

type SegmentList = { first: number; frames: number; mode: "tracked" | "intra" }[];

function parseHeader(h: JsonObject, version: number): [GsvHeader, SegmentList] {
  const w = ".gsv header";
  const segsRaw = h.segments;
  if (!Array.isArray(segsRaw) || !segsRaw.every((s) => s && typeof s === "object" && !Array.isArray(s))) {
    throw new FormatError(".gsv segment list is malformed");
  }
  const segs = (segsRaw as JsonObject[]).map((s) => {
    const mode = s.mode;
    if (mode !== "tracked" && mode !== "intra") throw new FormatError(".gsv segment mode must be \"tracked\" or \"intra\"");
    return { first: getInt(s, "first", 0, BIG, ".gsv segment"), frames: getInt(s, "frames", 1, BIG, ".gsv segment"), mode: mode as "tracked" | "intra" };
  });
  const bounds = (key: string): [number, number, number] => {
    const b = h[key];
    if (!Array.isArray(b) || b.length !== 3 || !b.every((x) => typeof x === "number" && Math.abs(x) <= 1e30)) {
      throw new FormatError(`${w} field '${key}' must be 3 finite numbers`);
    }
    return [b[0] as number, b[1] as number, b[2] as number];
  };
  if (typeof h.tracked !== "boolean") throw new FormatError(`${w} field 'tracked' is missing or has the wrong type`);
  let coding: string;
  if ("coding" in h) {
    if (typeof h.coding !== "string" || !CODINGS.includes(h.coding)) {
      throw new FormatError(`.gsv header has an unknown coding ${JSON.stringify(String(h.coding).slice(0, 40))}`);
    }
    coding = h.coding;
  } else {
    coding = h.tracked ? "tracked" : "independent";
  }
  const header: GsvHeader = {
    version,
    fps: getFloat(h, "fps", 1e-6, 1e6, w),
    frames: getInt(h, "frames", 0, BIG, w),
    gaussians: getInt(h, "gaussians", 0, BIG, w),
    shDegree: getInt(h, "sh_degree", 0, 3, w),
    gop: getInt(h, "gop", 1, BIG, w),
    tracked: h.tracked as boolean,
    coding,
    boundsMin: bounds("bounds_min"),
    boundsMax: bounds("bounds_max"),
    settings: h.settings ?? null,
  };
  let expect = 0;
  for (const s of segs) {
    if (s.first !== expect) throw new FormatError(".gsv segment list is inconsistent");
    expect += s.frames;
  }
  if (expect !== header.frames) {
    throw new FormatError(`.gsv header is inconsistent: segments hold ${expect} frames, header says ${header.frames}`);
  }
  return [header, segs];
}

/** A parsed segment: decode any of its frames (sequential access is cheapest). */
export interface GsvSegment {
  mode: "tracked" | "intra";
  frames: number;
  /** frame f (0-based within the segment) */
  frame(f: number): SplatArrays;
  /** tracked segments: the skin binding of the last decoded frame's Gaussians (k joints each, section 3.3) */
  binding?(): Binding;
}

export interface SegmentOptions {
  /** the clip's SH degree, when known: the segment must agree */
  shDegree?: number;
}

/** Parse one segment from its own bytes (the SEGM chunk payload). */
export function decodeGsvSegment(data: Uint8Array, opts: SegmentOptions = {}): GsvSegment {
  const box = unpackContainer(data, { magic: SEGMENT_MAGIC, maxVersion: SEGMENT_VERSION, what: "segment" });
  const h = box.header;
  const mode = h.mode;
  if (mode !== "tracked" && mode !== "intra") throw new FormatError(`unknown segment mode ${JSON.stringify(String(mode).slice(0, 40))}`);
  const frames = getInt(h, "frames", 1, valueCap(data.length), "segment header");
  if (mode === "intra") {
    const keys = box.all("KEYF");
    if (keys.length !== frames) throw new FormatError(`intra segment has ${keys.length} frames, header says ${frames}`);
    return new IntraSegment(keys, opts.shDegree);
  }
  return new TrackedSegment(box, h, frames, data.length, opts.shDegree);
}

class IntraSegment implements GsvSegment {
  readonly mode = "intra";
  readonly frames: number;
  constructor(private keys: Uint8Array[], private shDegree?: number) {
    this.frames = keys.length;
  }
  frame(f: number): SplatArrays {
    if (!Number.isInteger(f) || f < 0 || f >= this.frames) throw new RangeError(`frame ${f} outside the segment's ${this.frames} frames`);
    const s = decodeLgs(this.keys[f]);
    if (this.shDegree !== undefined && s.shDegree !== this.shDegree) {
      throw new FormatError(`frame holds SH degree ${s.shDegree}, the clip ${this.shDegree}`);
    }
    return s;
  }
}

const f32 = Math.fround;

function deq(qz: UniformQuant, c: number, v: number): number {
  return f32(qz.lo[c] + v * qz.step[c]);
}

/** Sparse per-frame updates: counts [F-1], indices [M] (absolute), values [M*channels]. */
interface Sparse {
  start: Float64Array; // [F] prefix sums of counts: frame g's updates are [start[g-1], start[g])
  idx: Float64Array;
  vals: Float64Array | null;
}

function unpackSparse(data: Uint8Array, frames: number, n: number, channels: number, lo: number[], hi: number[],
                      what: string): Sparse {
  const parts = unpackArrays(data, channels ? 3 : 2);
  const counts = decodeInts(parts[0], frames);
  if (counts.length !== frames) throw new FormatError(`${what}: malformed update counts`);
  const start = new Float64Array(frames + 1);
  for (let g = 0; g < frames; g++) {
    const c = counts[g];
    if (!(c >= 0 && c <= n)) throw new FormatError(`${what}: malformed update counts`);
    start[g + 1] = start[g] + c;
  }
  const m = start[frames];
  const cap = valueCap(data.length);
  if (m * Math.max(channels, 1) > cap) {
    throw new FormatError(`${what}: update value count ${m * Math.max(channels, 1)} exceeds the limit of ${cap} for this file`);
  }
  const gaps = decodeInts(parts[1], m);
  if (gaps.length !== m) throw new FormatError(`${what}: ${gaps.length} indices, expected ${m}`);
  const idx = new Float64Array(m);
  for (let g = 0; g < frames; g++) {
    let acc = 0;
    for (let i = start[g]; i < start[g + 1]; i++) {
      const d = gaps[i];
      if (i === start[g] ? d < 0 : d <= 0) throw new FormatError(`${what}: indices not ascending`);
      acc = i === start[g] ? d : acc + d;
      if (acc >= n) throw new FormatError(`${what}: index outside 0..${n - 1}`);
      idx[i] = acc;
    }
  }
  let vals: Float64Array | null = null;
  if (channels) {
    const v = decodeChannels(parts[2], m, channels, { lo: Math.min(...lo), hi: Math.max(...hi), what });
    vals = new Float64Array(m * channels);
    for (let c = 0; c < channels; c++) {
      const col = v[c];
      for (let i = 0; i < m; i++) {
        const x = col[i];
        if (x < lo[c] || x > hi[c]) throw new FormatError(`${what}: values outside [${lo[c]}, ${hi[c]}]`);
        vals[i * channels + c] = x;
      }
    }
  }
  return { start, idx, vals };
}

const EMPTY: Sparse = { start: new Float64Array(1), idx: new Float64Array(0), vals: null };

/** Per-Gaussian state of a tracked segment (section 3.5). */
interface State {
  frame: number;
  x0: Float32Array;
  q0: Float32Array;
  bind: Binding;
  offset: Float32Array;
  shDc: Float32Array;
  shRest: Float32Array;
  opacityLogits: Float32Array;
  logScales: Float32Array;
  /** arrays handed out by frame() (copied before the next change) */
  shared: Set<Float32Array>;
}

class TrackedSegment implements GsvSegment {
  readonly mode = "tracked";
  private key: SplatArrays;
  private keyQuats: Float32Array;
  private keyBind: Binding;
  private joints: JointSet;
  private centres: Float32Array;
  private J: number;
  private k: number;
  private length: number;
  private rotStep: number;
  private transStep: number;
  private posStep: number;
  private v: Float64Array; // [F*J*6]
  private pos: Sparse;
  private col: Sparse;
  private ops: Sparse;
  private shu: Sparse = EMPTY;
  private kill: Sparse = EMPTY;
  private born: (SplatArrays | null)[] | null = null;
  private cq: UniformQuant;
  private oq: UniformQuant;
  private sq: UniformQuant;
  private codebook: Float32Array | null = null; // [C*3K]
  private kRest: number;
  private st!: State;

  constructor(box: Container, h: JsonObject, readonly frames: number, nbytes: number,
              shDegree?: number) {
    const w = "segment header";
    const n = getInt(h, "count", 0, BIG, w);
    const J = getInt(h, "joints", 1, Math.max(n, 1), w);
    const k = getInt(h, "k", 1, 64, w);
    this.length = getFloat(h, "length", -1e30, 1e30, w);
    this.rotStep = getFloat(h, "rot_step", -1e30, 1e30, w);
    this.transStep = getFloat(h, "trans_step", -1e30, 1e30, w);
    this.posStep = getFloat(h, "pos_step", -1e30, 1e30, w);
    const pred = h.transform_prediction;
    if (pred !== "delta" && pred !== "linear") throw new FormatError("segment header field 'transform_prediction' must be \"delta\" or \"linear\"");
    const corr = "correspondence" in h ? h.correspondence : "fixed";
    if (corr !== "fixed" && corr !== "encoder") throw new FormatError("segment header is malformed (correspondence)");
    this.cq = quantFromJson(h.colour, 3, "colour");
    this.oq = quantFromJson(h.opacity, 1, "opacity");
    this.sq = quantFromJson(h.log_scales, 3, "log-scales");
    const ncb = getInt(h, "sh_codebook", 0, BIG, w);
    const key = decodeLgs(box.get("KEYF"));
    if (key.count !== n) throw new FormatError("segment keyframe does not match its header");
    if ("sh_degree" in h && h.sh_degree !== key.shDegree) throw new FormatError("segment keyframe does not match its header (SH degree)");
    if (shDegree !== undefined && key.shDegree !== shDegree) throw new FormatError(`segment holds SH degree ${key.shDegree}, the clip ${shDegree}`);
    const F = frames;
    const cap = valueCap(nbytes);
    if (F * J * 6 > cap) throw new FormatError(`joint transform count ${F * J * 6} exceeds the limit of ${cap} for this file`);
    this.key = key;
    this.J = J;
    this.k = k;
    // joints
    const jgap = decodeInts(box.get("JIDX"), J);
    if (jgap.length !== J) throw new FormatError("joint index stream is malformed");
    const centres = new Float32Array(3 * J);
    let acc = 0;
    for (let j = 0; j < J; j++) {
      const g = jgap[j];
      if (j === 0 ? g < 0 : g <= 0) throw new FormatError("joint index stream is malformed");
      acc += g;
      if (acc >= n) throw new FormatError("joint index outside the keyframe");
      centres.set(key.means.subarray(3 * acc, 3 * acc + 3), 3 * j);
    }
    this.centres = centres;
    // births (before the index bounds of the updates, which they raise)
    let bound = n;
    if (corr === "encoder") {
      const births = decodeInts(box.get("BORN"), F);
      const blobs = box.all("BRTH");
      let nz = 0;
      for (let i = 0; i < births.length; i++) if (Number(births[i]) > 0) nz++;
      if (births.length !== F - 1 || Array.from(births, Number).some((b) => b < 0) || nz !== blobs.length) {
        throw new FormatError("birth counts do not match the birth chunks");
      }
      this.born = new Array(F).fill(null);
      let b = 0;
      for (let f = 1; f < F; f++) {
        const cnt = Number(births[f - 1]);
        if (cnt === 0) continue;
        const sc = decodeLgs(blobs[b++]);
        if (sc.count !== cnt || sc.shDegree !== key.shDegree) {
          throw new FormatError(`frame ${f}: birth chunk holds ${sc.count} Gaussians, counts say ${cnt}`);
        }
        this.born[f] = sc;
        bound += cnt;
      }
      this.kill = unpackSparse(box.get("KILL"), F - 1, bound, 0, [], [], "deaths");
    }
    this.kRest = SH_REST[key.shDegree];
    const cbCount = ncb * Math.max(3 * this.kRest, 1);
    if (cbCount > cap) throw new FormatError(`SH codebook value count ${cbCount} exceeds the limit of ${cap} for this file`);
    if (ncb && this.kRest) {
      const cbq = quantFromJson(h.sh_codebook_quant, 3 * this.kRest, "SH codebook");
      const C3 = 3 * this.kRest;
      const cbi = decodeChannels(box.get("SHCB"), ncb, C3, { lo: 0, hi: cbq.levels, what: "SH codebook" });
      this.codebook = new Float32Array(ncb * C3);
      for (let c = 0; c < C3; c++) for (let e = 0; e < ncb; e++) this.codebook[e * C3 + c] = deq(cbq, c, cbi[c][e]);
      this.shu = unpackSparse(box.get("SHUP"), F - 1, bound, 1, [0], [ncb - 1], "SH updates");
    }
    this.v = decodeTransforms(box.get("JTRF"), F, J, pred);
    const big = 2 ** 40;
    this.pos = unpackSparse(box.get("POSU"), F - 1, bound, 3, [-big, -big, -big], [big, big, big], "position updates");
    const cl = this.cq.levels;
    this.col = unpackSparse(box.get("COLU"), F - 1, bound, 3, [0, 0, 0], [cl, cl, cl], "colour updates");
    const ol = this.oq.levels, sl = this.sq.levels;
    this.ops = unpackSparse(box.get("OPSU"), F - 1, bound, 4, [0, 0, 0, 0], [ol, sl, sl, sl], "opacity/scale updates");
    if (corr === "encoder") this.checkSizes(n);
    // binding of the keyframe
    this.joints = new JointSet(centres);
    this.keyQuats = unitQuatsF32(key.quats);
    this.keyBind = this.joints.bind(key.means, k, this.length);
    this.reset();
  }

  /** Every index of every frame lies inside that frame's Gaussian count. */
  private checkSizes(n: number): void {
    let size = n;
    for (let f = 1; f < this.frames; f++) {
      const ks = this.kill.start;
      for (let i = ks[f - 1]; i < ks[f]; i++) {
        if (this.kill.idx[i] >= size) throw new FormatError(`frame ${f}: death index ${this.kill.idx[i]} outside 0..${size - 1}`);
      }
      size -= ks[f] - ks[f - 1];
      const b = this.born?.[f];
      if (b) size += b.count;
      for (const [name, u] of [["pos", this.pos], ["col", this.col], ["shu", this.shu], ["ops", this.ops]] as const) {
        if (u === EMPTY) continue;
        for (let i = u.start[f - 1]; i < u.start[f]; i++) {
          if (u.idx[i] >= size) throw new FormatError(`frame ${f}: ${name} update index ${u.idx[i]} outside 0..${size - 1}`);
        }
      }
    }
  }

  private reset(): void {
    const key = this.key;
    this.st = {
      frame: 0, x0: key.means, q0: this.keyQuats, bind: this.keyBind, offset: new Float32Array(key.means.length),
      shDc: key.shDc, shRest: key.shRest, opacityLogits: key.opacityLogits, logScales: key.logScales,
      shared: new Set([key.shDc, key.shRest, key.opacityLogits, key.logScales]),
    };
  }

  private pose(f: number): JointPose {
    const p = jointPose(this.v.subarray(f * this.J * 6, (f + 1) * this.J * 6), this.J, this.rotStep, this.transStep);
    if (!p.q.every(Number.isFinite) || !p.t.every(Number.isFinite)) {
      throw new FormatError(`frame ${f}: joint transforms decode to non-finite values`);
    }
    return p;
  }

  /** A private copy of an appearance array before changing it, when a frame handed it out. */
  private own(name: "shDc" | "shRest" | "opacityLogits" | "logScales"): Float32Array {
    const st = this.st;
    if (st.shared.has(st[name])) st[name] = st[name].slice();
    return st[name];
  }

  private apply(f: number): void {
    const st = this.st;
    // 1. deaths
    const ks = this.kill.start;
    if (ks.length > f && ks[f] > ks[f - 1]) {
      const N = st.x0.length / 3;
      const keep = new Uint8Array(N).fill(1);
      for (let i = ks[f - 1]; i < ks[f]; i++) keep[this.kill.idx[i]] = 0;
      const k = st.bind.k;
      const sel = (a: Float32Array | Int32Array, w: number) => {
        const out = new (a.constructor as Float32ArrayConstructor | Int32ArrayConstructor)((N - (ks[f] - ks[f - 1])) * w);
        let o = 0;
        for (let i = 0; i < N; i++) if (keep[i]) { for (let c = 0; c < w; c++) out[o++] = a[i * w + c]; }
        return out;
      };
      const K3 = 3 * this.kRest;
      st.x0 = sel(st.x0, 3) as Float32Array;
      st.q0 = sel(st.q0, 4) as Float32Array;
      st.bind = { k, idx: sel(st.bind.idx, k) as Int32Array, w: sel(st.bind.w, k) as Float32Array };
      st.offset = sel(st.offset, 3) as Float32Array;
      st.shDc = sel(st.shDc, 3) as Float32Array;
      st.shRest = sel(st.shRest, K3) as Float32Array;
      st.opacityLogits = sel(st.opacityLogits, 1) as Float32Array;
      st.logScales = sel(st.logScales, 3) as Float32Array;
    }
    // 2. births
    const born = this.born?.[f];
    if (born) {
      const { x0, q0 } = restPose(born.means, unitQuatsF32(born.quats), this.centres, this.pose(f));
      const b = this.joints.bind(x0, this.k, this.length);
      const cat = <T extends Float32Array | Int32Array>(a: T, c: T): T => {
        const out = new (a.constructor as { new(n: number): T })(a.length + c.length);
        out.set(a);
        out.set(c, a.length);
        return out;
      };
      st.x0 = cat(st.x0, x0);
      st.q0 = cat(st.q0, q0);
      st.bind = { k: st.bind.k, idx: cat(st.bind.idx, b.idx), w: cat(st.bind.w, b.w) };
      st.offset = cat(st.offset, new Float32Array(x0.length));
      st.shDc = cat(st.shDc, born.shDc);
      st.shRest = cat(st.shRest, born.shRest);
      st.opacityLogits = cat(st.opacityLogits, born.opacityLogits);
      st.logScales = cat(st.logScales, born.logScales);
    }
    // 3. updates
    const g = f - 1;
    let u = this.pos;
    if (u.start[g + 1] > u.start[g]) {
      if (st.shared.has(st.offset)) st.offset = st.offset.slice();
      for (let i = u.start[g]; i < u.start[g + 1]; i++) {
        const j = u.idx[i];
        for (let c = 0; c < 3; c++) {
          const o = (st.offset[3 * j + c] = st.offset[3 * j + c] + f32(u.vals![3 * i + c] * this.posStep));
          if (!Number.isFinite(o)) throw new FormatError(`frame ${f}: position corrections decode to non-finite values`);
        }
      }
    }
    u = this.col;
    if (u.start[g + 1] > u.start[g]) {
      const dc = this.own("shDc");
      for (let i = u.start[g]; i < u.start[g + 1]; i++) {
        const j = u.idx[i];
        for (let c = 0; c < 3; c++) dc[3 * j + c] = (deq(this.cq, c, u.vals![3 * i + c]) - 0.5) / SH_C0;
      }
    }
    u = this.shu;
    if (this.codebook && u.start[g + 1] > u.start[g]) {
      const rest = this.own("shRest");
      const K3 = 3 * this.kRest;
      for (let i = u.start[g]; i < u.start[g + 1]; i++) {
        const e = u.vals![i];
        rest.set(this.codebook.subarray(e * K3, (e + 1) * K3), u.idx[i] * K3);
      }
    }
    u = this.ops;
    if (u.start[g + 1] > u.start[g]) {
      const op = this.own("opacityLogits"), ls = this.own("logScales");
      for (let i = u.start[g]; i < u.start[g + 1]; i++) {
        const j = u.idx[i];
        let p = deq(this.oq, 0, u.vals![4 * i]);
        p = Math.min(Math.max(p, 1e-6), 1 - 1e-6);
        op[j] = Math.log(p) - Math.log1p(-p);
        for (let c = 0; c < 3; c++) ls[3 * j + c] = deq(this.sq, c, u.vals![4 * i + 1 + c]);
      }
    }
    st.frame = f;
  }

  binding(): Binding {
    return this.st.bind;
  }

  frame(f: number): SplatArrays {
    if (!Number.isInteger(f) || f < 0 || f >= this.frames) throw new RangeError(`frame ${f} outside the segment's ${this.frames} frames`);
    if (f < this.st.frame) this.reset();
    for (let g = this.st.frame + 1; g <= f; g++) this.apply(g);
    const st = this.st;
    const N = st.x0.length / 3;
    let means: Float32Array, quats: Float32Array;
    if (f === 0) {
      means = st.x0.slice(); // the rest pose stays the decoder's own
      quats = st.q0.slice();
    } else {
      means = new Float32Array(3 * N);
      quats = new Float32Array(4 * N);
      skin(this.pose(f), this.centres, st.bind, st.x0, st.q0, st.offset, means, quats);
    }
    for (const a of [st.shDc, st.shRest, st.opacityLogits, st.logScales]) st.shared.add(a);
    return {
      count: N, shDegree: this.key.shDegree, means, quats, logScales: st.logScales, opacityLogits: st.opacityLogits,
      shDc: st.shDc, shRest: st.shRest,
    };
  }
}

/** Joint transform integers v [F*J*6] from the JTRF residuals (frame 0 is all zeros). */
function decodeTransforms(data: Uint8Array, F: number, J: number, mode: "delta" | "linear"): Float64Array {
  const v = new Float64Array(F * J * 6);
  if (F <= 1) return v;
  const r = decodeChannels(data, (F - 1) * J, 6, { lo: -(2 ** 40), hi: 2 ** 40, what: "joint transforms" });
  const row = J * 6;
  for (let f = 1; f < F; f++) {
    for (let i = 0; i < row; i++) {
      const e = r[i % 6][(f - 1) * J + Math.floor(i / 6)];
      v[f * row + i] = mode === "linear" && f >= 2 ? e + 2 * v[(f - 1) * row + i] - v[(f - 2) * row + i] : e + v[(f - 1) * row + i];
    }
  }
  return v;
}
