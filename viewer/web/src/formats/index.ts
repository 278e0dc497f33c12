/**
 * splatkit's decoders: ES modules with no DOM, for Web Workers and Node (docs/web.md).
 *
 * Shared layers (docs/formats/container.md, docs/formats/entropy.md):
 *   unpackContainer / readIndex / readChunk / indexBytesNeeded   the chunked container
 *   decodeInts / decodeIntsRaw / decodeBytes / unpackArrays      integer and byte streams
 *   decodeCtx / readCtxHeader / bucket                           context-modelled streams
 *   decodeChannels                                               channel streams (.lgs, .gsv)
 *   parseJsonHeader / getInt / getFloat / ...                    checked JSON header fields
 *   gaussianCap / valueCap / requireAtMost                       allocation caps
 * Every decoder throws only FormatError for bad input.
 */
export { FormatError, naming } from "./errors.js";
export type { SplatArrays } from "./types.js";
export { ByteReader, readVarint, readU32, readU64, unzigzag } from "./bytes.js";
export { crc32 } from "./crc32.js";
export {
  parseJsonHeader, isObject, getInt, getFloat, getObject, getArray, getString, getNumbers,
  MAX_DEPTH, MAX_INT_DIGITS, type Json, type JsonObject,
} from "./header.js";
export {
  GAUSSIANS_PER_BYTE, GAUSSIAN_SLACK, VALUES_PER_BYTE, VALUE_SLACK, MAX_PIXELS,
  gaussianCap, valueCap, requireAtMost, checkPixels,
} from "./limits.js";
export {
  readIndex, readChunk, unpackContainer, indexBytesNeeded, Container, MAX_HEADER, MAX_CHUNKS,
  type ContainerIndex, type ContainerOptions, type Chunk,
} from "./container.js";
export { zstdDecompressExact } from "./zstd.js";
export { ransTables, ransDecode, checkEndStatus, type RansTables } from "./rans.js";
export {
  decodeInts, decodeIntsRaw, rawValue, decodeBytes, unpackArrays, RAW, ZSTD, RANS, RANS_EG,
  MAX_RANS_ALPHABET, type RawInts,
} from "./entropy.js";
export { decodeCtx, readCtxHeader, bucket, CTX_MAGIC, type CtxHeader } from "./context.js";
export { decodeChannels, DIRECT, DELTA, CONTEXT, type IntArray, type ContextFn, type ChannelOptions } from "./channels.js";
export { decodeLgs, lgsInfo, LGS_MAGIC, LGS_VERSION, type LgsOptions } from "./lgs.js";
export { quantFromJson, uniformStep, MAX_BOUND, type UniformQuant } from "./quant.js";
export { FORMATS, detectFormat, type FormatEntry } from "./formats.js";
export { encodePly, encodeFloatPly, plyHeader, type PlyExtra } from "./ply.js";
// .gsi images and .m3 feature memory (docs/web.md)
export { decodeGsi, treeDepth, GSI_MAGIC, GSI_VERSION, type Gaussians2D, type GsiOptions } from "./gsi.js";
export {
  decodeM3, memoryAttention, gaussianFeatures, cosineScores, m3Model, halfToFloat, M3_MAGIC, M3_VERSION,
  type M3Memory, type M3Model, type M3Options,
} from "./m3.js";
// .gsv volumetric video
export {
  openGsv, GsvReader, decodeGsvSegment, bytesReader, GSV_MAGIC, GSV_VERSION, SEGMENT_MAGIC, SEGMENT_VERSION,
  type RangeReader, type GsvHeader, type GsvSegmentEntry, type GsvOptions, type GsvSegment, type SegmentOptions,
} from "./gsv.js";
export { JointSet, jointTable, MAX_JOINTS, type Binding } from "./gsvmotion.js";
export { decodeSpzV4, isSpzV4 } from "./spz.js";
export { sha256, sha256Hex } from "./sha256.js";
