// The decoders the harness (dump.mjs) and the benchmark (bench.mjs) run, by kind. A dumper maps
// (file bytes, options) to {name: TypedArray | number | string | boolean}; a new format's
// decoder plugs in by adding an entry here (see docs/web.md).
import * as F from "../dist/formats.mjs";

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
};

