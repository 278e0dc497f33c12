// The decoders the harness (dump.mjs) and the benchmark (bench.mjs) run, by kind. A dumper maps
// (file bytes, options) to {name: TypedArray | number | string | boolean}; a new format's
// decoder plugs in by adding an entry here (see docs/web.md).
import { writeFileSync } from "node:fs";
import * as F from "../dist/formats.mjs";

const DTYPES = new Map([
  [Float32Array, "float32"], [Float64Array, "float64"], [Int32Array, "int32"], [Uint32Array, "uint32"],
  [Uint8Array, "uint8"], [Int8Array, "int8"], [Uint16Array, "uint16"], [Int16Array, "int16"],
  [BigInt64Array, "int64"], [BigUint64Array, "uint64"],
]);

/** Write `result` ({name: TypedArray | value}) as PATH (the arrays back to back) and PATH.json (their layout, the values). */
export function writeResult(path, result) {
  const arrays = [];
  const values = {};
  const parts = [];
  let offset = 0;
  for (const [name, v] of Object.entries(result)) {
    const dtype = v && DTYPES.get(v.constructor);
    if (dtype) {
      const bytes = new Uint8Array(v.buffer, v.byteOffset, v.byteLength);
      arrays.push({ name, dtype, offset, length: v.length });
      parts.push(bytes);
      offset += bytes.length;
    } else {
      values[name] = v;
    }
  }
  const blob = new Uint8Array(offset);
  let p = 0;
  for (const part of parts) { blob.set(part, p); p += part.length; }
  writeFileSync(path, blob);
  writeFileSync(path + ".json", JSON.stringify({ arrays, values }));
}

/** SplatArrays as named arrays. */
export const splat = (s) => ({
  count: s.count, shDegree: s.shDegree, means: s.means, quats: s.quats, logScales: s.logScales,
  opacityLogits: s.opacityLogits, shDc: s.shDc, shRest: s.shRest,
});

/** kind -> (bytes, options) -> {name: value}. */
export const dumpers = {
  ints: (b, o) => ({ values: F.decodeInts(b, o.maxCount ?? b.length * 256 + 4096) }),
  intsraw: (b, o) => {
    const r = F.decodeIntsRaw(b, o.maxCount ?? b.length * 256 + 4096);
    return { lo: r.lo, hi: r.hi ?? new Uint32Array(r.n), signed: r.signed };
  },
  bytes: (b, o) => ({ values: F.decodeBytes(b, o.maxSize ?? b.length * 64 + 4096) }),
  ctx: (b, o) => {
    const ctx = o.contexts ? Int32Array.from(o.contexts) : null;
    return { values: F.decodeCtx(b, o.n, o.bits, ctx, o.nContexts ?? 1) };
  },
  // the bounded reader: u8, u16, u32, u64, varint, then 3 bytes, then the rest
  reader: (b) => {
    const r = new F.ByteReader(b, 0, "test data");
    const out = { u8: r.u8(), u16: r.u16(), u32: r.u32(), u64: r.u64(), varint: r.varint() };
    return { ...out, three: r.bytes(3).slice(), rest: r.rest().slice(), remaining: r.remaining };
  },
  // channel streams without caller contexts (the coder's own previous-value context only)
  channels: (b, o) => {
    const ch = F.decodeChannels(b, o.n, o.channels, { lo: o.lo, hi: o.hi, allowContext: o.allowContext ?? true });
    const out = {};
    ch.forEach((c, i) => { out[`c${i}`] = c instanceof Float64Array ? c : Float64Array.from(c); });
    return out;
  },
  container: (b, o) => {
    const box = F.unpackContainer(b, { magic: o.magic, maxVersion: o.maxVersion, what: "container" });
    const out = { version: box.version, header: JSON.stringify(box.header), tags: box.chunks.map((c) => c.tag).join(",") };
    box.chunks.forEach((c, i) => { out[`chunk${i}`] = c.data; });
    return out;
  },
  // range reading: the index from the shortest prefix, then each chunk from its own bytes only
  containerRange: (b, o) => {
    let prefix = b.subarray(0, 0);
    for (let need = F.indexBytesNeeded(prefix); need > prefix.length; need = F.indexBytesNeeded(prefix)) {
      if (need > b.length) throw new F.FormatError(`truncated container: the index needs ${need} bytes`);
      prefix = b.subarray(0, need);
    }
    const idx = F.readIndex(prefix, { magic: o.magic, whole: false });
    const out = { prefixBytes: prefix.length, payloadStart: idx.payloadStart };
    idx.tags.forEach((t, i) => {
      out[`chunk${i}`] = F.readChunk(b.slice(idx.starts[i], idx.starts[i + 1]), idx, i, "container", idx.starts[i]);
    });
    return out;
  },
  lgs: (b, o) => splat(F.decodeLgs(b, { maxGaussians: o.maxGaussians })),
  // .gsv: header values and, for each frame in o.frames (default all), its arrays as "f<i>.<name>" (async)
  // (o.size false: the reader is not told the file size; "reads": every [start, end) the reader asked for)
  gsv: async (b, o) => {
    const reads = [];
    const inner = F.bytesReader(b);
    const read = (start, end) => { reads.push(start, end); return inner(start, end); };
    const r = await F.openGsv(read, { size: o.size === false ? undefined : b.length, partial: o.partial });
    const out = { frames: r.header.frames, segments: r.segments.length, version: r.header.version, coding: r.header.coding };
    for (const i of o.frames ?? [...Array(r.header.frames).keys()]) {
      Object.entries(splat(await r.frame(i))).forEach(([k, v]) => { out[`f${i}.${k}`] = v; });
    }
    out.reads = Float64Array.from(reads);
    return out;
  },
  // .gsv skin-binding kernels: bytes = float32 joints [o.joints*3] then points [*3]; the grid and
  // brute-force joint tables (m = min(J, 2k + 8)) and each point's k nearest joints
  joints: (b, o) => {
    const f = new Float32Array(b.buffer, b.byteOffset, b.byteLength / 4);
    const c = f.slice(0, 3 * o.joints), x = f.slice(3 * o.joints);
    const js = new F.JointSet(c);
    const m = Math.min(o.joints, 2 * o.k + 8);
    const { idx, d2 } = js.knn(x, o.k);
    return { table: js.table(m), tableRef: F.jointTable(c, m), idx, d2 };
  },
  // one .gsv segment from its own bytes (the SEGM payload): frame o.frame
  gsvSegment: (b, o) => {
    const seg = F.decodeGsvSegment(b);
    const out = splat(seg.frame(o.frame ?? 0));
    if (seg.binding) Object.assign(out, { bindIdx: seg.binding().idx, bindW: seg.binding().w });
    return out;
  },
  gsi: (b, o) => {
    const g = F.decodeGsi(b, { maxGaussians: o.maxGaussians, maxPixels: o.maxPixels });
    return {
      means: g.means, scales: g.scales, rotations: g.rotations, colors: g.colors, count: g.count, width: g.width,
      height: g.height, channels: g.channels, mode: g.mode, k: g.k, layers: JSON.stringify(g.layers), version: g.version,
    };
  },
  m3: (b, o) => {
    // o.refCount: the file references its scene; stand in a zero scene of that many Gaussians
    const scene = o.refCount === undefined ? undefined : {
      count: o.refCount, shDegree: 0, means: new Float32Array(3 * o.refCount), quats: new Float32Array(4 * o.refCount),
      logScales: new Float32Array(3 * o.refCount), opacityLogits: new Float32Array(o.refCount),
      shDc: new Float32Array(3 * o.refCount), shRest: new Float32Array(0),
    };
    const m = F.decodeM3(b, { maxGaussians: o.maxGaussians, scene });
    const out = { count: m.count, queryTotal: m.queryTotal, queries: m.queries, models: m.models.length };
    if (m.sceneRef) out.sceneRef = m.sceneRef.ref;
    else Object.entries(splat(m.scene)).forEach(([k, v]) => { out[`scene.${k}`] = v; });
    m.models.forEach((md, i) => {
      Object.assign(out, {
        [`m${i}.name`]: md.name, [`m${i}.offset`]: md.offset, [`m${i}.dim`]: md.dim, [`m${i}.temperature`]: md.temperature,
        [`m${i}.learnable`]: md.learnable, [`m${i}.bank`]: md.bank, [`m${i}.projection`]: md.projection,
      });
      if (o.features) {
        const f = F.gaussianFeatures(m, md.name);
        out[`m${i}.features`] = f;
        if (o.vector) out[`m${i}.scores`] = F.cosineScores(f, md.dim, o.vector.slice(0, md.dim));
      }
    });
    return out;
  },
};

