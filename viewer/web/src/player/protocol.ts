/** Messages between the page and the decoding worker (worker.ts). */
import type { Gaussians2D } from "../formats/gsi.js";
import type { PreparedImage } from "../image/tiles.js";
import type { M3Model } from "../formats/m3.js";
import type { SplatArrays } from "../formats/types.js";

/** Page -> worker: fetch `url` (resolved against the page) and decode it. */
export interface LoadRequest {
  id: number;
  url: string;
  /** File name used for messages and for formats told apart by extension only. */
  name: string;
}

/** How the page should hand the file to the renderer. */
export type Decoded =
  /** A format Spark reads itself (PLY, SPZ v1-3, SOG, .splat, .ksplat): the raw bytes. */
  | { kind: "spark"; fileType: SparkFileType; bytes: Uint8Array }
  /** A format our decoders read: flat arrays in the PLY frame. */
  | { kind: "arrays"; arrays: SplatArrays }
  /** A `.gsi` image: its 2D Gaussians in file (level-of-detail) order, with their tile index. */
  | { kind: "image"; image: Gaussians2D; prepared: PreparedImage }
  /** A `.m3` feature memory: its scene (embedded or referenced) and the memory (memory.ts). */
  | { kind: "memory"; arrays: SplatArrays; memory: MemoryPayload };

/** What the page's similarity worker needs of a decoded `.m3` (formats/m3.ts M3Memory, less the scene). */
export interface MemoryPayload {
  count: number;
  queryTotal: number;
  /** [N*Q_total] dequantised queries, Gaussian-major */
  queries: Float32Array;
  models: M3Model[];
  /** the referenced scene's path (relative to the .m3), or null when embedded */
  sceneRef: string | null;
}

/** The subset of Spark's SplatFileType values the player passes on. */
export type SparkFileType = "ply" | "spz" | "splat" | "ksplat" | "pcsogszip" | "pcsogs";

export interface FormatInfo {
  /** Human name, e.g. "SPZ v4", "PLY", "SOG". */
  format: string;
  /** Total bytes of the file. */
  fileBytes: number;
  /** Bytes fetched over the network for it. */
  bytesFetched: number;
  /** Time spent decoding in the worker, ms (0 when Spark decodes). */
  decodeMs: number;
  /** Time spent fetching, ms. */
  fetchMs: number;
}

export type WorkerReply =
  | { id: number; type: "progress"; bytesFetched: number; total: number | null }
  | { id: number; type: "done"; decoded: Decoded; info: FormatInfo }
  | { id: number; type: "error"; message: string };

/** The worker name (Worker options `name`) that makes splat-worker.js the `.gsv` frame decoder. */
export const STREAM_WORKER_NAME = "splat-stream";
/** The worker name that makes splat-worker.js the `.m3` similarity worker (memory_worker.ts). */
export const MEMORY_WORKER_NAME = "splat-memory";
