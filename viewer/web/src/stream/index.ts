/**
 * splatkit's `.gsv` streaming engine, DOM-free (docs/web.md, "Streaming video"):
 *   HttpSource      Range requests over fetch, or one progressive download when the host ignores Range
 *   SegmentCache    read-ahead of the playhead within a memory budget; bad segments become gaps
 *   GsvPlayer       play / pause / seek / speed / loop, frames as events
 *   ThreadDecoder / WorkerDecoder + serveDecoder   decode here or in a Web Worker
 */
export { HttpSource, FetchError, type HttpSourceOptions, type FetchFn, type SourceMode } from "./source.js";
export { SegmentCache, type SegmentStatus, type CacheOptions, type CacheEvents } from "./cache.js";
export {
  ThreadDecoder, WorkerDecoder, SegmentRoutedDecoder, SegmentLru, decodeFrame, KEEP_SEGMENTS,
  type FrameDecoder, type DecodedFrame, type WorkerLike, type DecodeRequest, type DecodeReply,
} from "./decoder.js";
export { serveDecoder, type DecoderPort } from "./worker.js";
export {
  GsvPlayer, type ByteSource, type PlayerOptions, type PlayerEvents, type PlayerStats, type FrameEvent, type GapEvent,
} from "./player.js";
export { FormatError } from "../formats/errors.js";
export { bytesReader, type GsvHeader, type GsvSegmentEntry, type RangeReader } from "../formats/gsv.js";
export type { SplatArrays } from "../formats/types.js";
