/**
 * Frame decoders for the stream player: in this thread, or in a Web Worker.
 *
 * Both decode frame f of segment s from the segment's verified bytes and keep the last few
 * parsed segments, so consecutive frames cost one step each. `WorkerDecoder` talks to a worker
 * that runs `serveDecoder` (worker.ts, bundled as dist/stream-worker.mjs): the segment's bytes
 * go over once (copied: the cache keeps its own), frames come back with their buffers
 * transferred, not copied.
 */
import { FormatError } from "../formats/errors.js";
import { decodeGsvSegment, type GsvSegment } from "../formats/gsv.js";
import type { SplatArrays } from "../formats/types.js";
import type { SparkWords } from "../player/spark_words.js";

export interface DecodedFrame {
  splats: SplatArrays;
  /** decode time of this frame in ms (segment parse included for a segment's first use) */
  ms: number;
  /** the frame already in Spark's packed layout (player/spark_words.ts), when the decoder was asked for it */
  words?: SparkWords;
}

export interface FrameDecoder {
  readonly kind: "thread" | "worker";
  /** Frame f (within the segment) of segment s, whose verified bytes are `bytes`. A bad segment throws FormatError. */
  frame(s: number, bytes: Uint8Array, f: number, shDegree: number): Promise<DecodedFrame>;
  close(): void;
}

/** Parsed segments kept by a decoder (the playing one, the next, one spare). */
export const KEEP_SEGMENTS = 3;

const now = (): number => (globalThis.performance ? performance.now() : Date.now());

/** A small LRU of parsed segments by index. */
export class SegmentLru {
  private map = new Map<number, GsvSegment>();
  constructor(private readonly cap = KEEP_SEGMENTS) {}
  get(s: number): GsvSegment | undefined {
    const v = this.map.get(s);
    if (v) { this.map.delete(s); this.map.set(s, v); }
    return v;
  }
  set(s: number, seg: GsvSegment): void {
    this.map.delete(s);
    this.map.set(s, seg);
    while (this.map.size > this.cap) this.map.delete(this.map.keys().next().value as number);
  }
  delete(s: number): void {
    this.map.delete(s);
  }
  clear(): void {
    this.map.clear();
  }
}

/** Decode frame f of segment s with `lru` holding parsed segments; throws FormatError for bad bytes. */
export function decodeFrame(lru: SegmentLru, s: number, bytes: Uint8Array | undefined, f: number, shDegree: number): SplatArrays {
  let seg = lru.get(s);
  if (!seg) {
    if (!bytes) throw new Error(`segment ${s} is not loaded`);
    seg = decodeGsvSegment(bytes, { shDegree });
    lru.set(s, seg);
  }
  if (!Number.isInteger(f) || f < 0 || f >= seg.frames) {
    throw new FormatError(`segment ${s} holds ${seg.frames} frames, frame ${f} asked for`);
  }
  try {
    return seg.frame(f);
  } catch (e) {
    lru.delete(s);
    throw e;
  }
}

/** Decodes on the calling thread (Node, or pages without workers). */
export class ThreadDecoder implements FrameDecoder {
  readonly kind = "thread" as const;
  private lru = new SegmentLru();
  async frame(s: number, bytes: Uint8Array, f: number, shDegree: number): Promise<DecodedFrame> {
    const t = now();
    const splats = decodeFrame(this.lru, s, bytes, f, shDegree);
    return { splats, ms: now() - t };
  }
  close(): void {
    this.lru.clear();
  }
}

/** What a worker (browser Worker, or an adapter over Node's worker_threads) must offer. */
export interface WorkerLike {
  postMessage(message: unknown, transfer?: Transferable[]): void;
  addEventListener(type: "message" | "error", listener: (ev: { data?: unknown; message?: string }) => void): void;
  terminate?(): void;
}

/** Messages to the worker. */
export interface DecodeRequest {
  id: number;
  segment: number;
  frame: number;
  shDegree: number;
  /** the segment's bytes, sent when the worker may not hold it parsed */
  bytes?: Uint8Array;
  /** also pack the frame into Spark's layout (DecodedFrame.words) */
  words?: boolean;
}

/** Messages from the worker. */
export type DecodeReply =
  | { id: number; ok: true; ms: number; splats: SplatArrays; words?: SparkWords }
  | { id: number; ok: false; message: string; format: boolean; missing?: boolean };

/** `bytes` alone in its buffer (postMessage clones a view's whole buffer, e.g. a whole file). */
function ownBytes(bytes: Uint8Array): Uint8Array {
  return bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength ? bytes : bytes.slice();
}

/** Decodes in a worker running `serveDecoder`. */
export class WorkerDecoder implements FrameDecoder {
  readonly kind = "worker" as const;
  private nextId = 1;
  private waiting = new Map<number, { resolve: (r: DecodedFrame) => void; reject: (e: unknown) => void; req: DecodeRequest; bytes: Uint8Array }>();
  /** segments the worker holds parsed, mirrored (the worker keeps the same LRU in the same order) */
  private held = new SegmentLru();
  private closed = false;
  private failure: string | null = null;

  /** `words`: have the worker also pack each frame into Spark's layout (the web player's page). */
  constructor(private readonly worker: WorkerLike, private readonly options: { words?: boolean } = {}) {
    worker.addEventListener("message", (ev) => this.onReply(ev.data as DecodeReply));
    // a worker that dies (failed to load, out of memory) fails every pending and later frame
    worker.addEventListener("error", (ev) => this.die(`decoder worker failed: ${ev.message ?? "unknown error"}`));
  }

  private die(message: string): void {
    if (this.closed) return;
    this.closed = true;
    this.failure = message;
    for (const w of this.waiting.values()) w.reject(new Error(message));
    this.waiting.clear();
  }

  frame(s: number, bytes: Uint8Array, f: number, shDegree: number): Promise<DecodedFrame> {
    if (this.closed) return Promise.reject(new Error(this.failure ?? "decoder closed"));
    const send = !this.held.get(s);
    if (send) this.held.set(s, {} as GsvSegment);
    return new Promise((resolve, reject) => {
      const req: DecodeRequest = { id: this.nextId++, segment: s, frame: f, shDegree, bytes: send ? ownBytes(bytes) : undefined };
      if (this.options.words) req.words = true;
      this.waiting.set(req.id, { resolve, reject, req, bytes });
      this.worker.postMessage(req);
    });
  }

  private onReply(r: DecodeReply): void {
    const w = this.waiting.get(r.id);
    if (!w) return;
    this.waiting.delete(r.id);
    if (r.ok) {
      w.resolve(r.words ? { splats: r.splats, ms: r.ms, words: r.words } : { splats: r.splats, ms: r.ms });
      return;
    }
    if (r.missing && !w.req.bytes) {
      // the worker dropped it (an earlier failure): send the bytes again
      this.held.set(w.req.segment, {} as GsvSegment);
      const req = { ...w.req, id: this.nextId++, bytes: ownBytes(w.bytes) };
      this.waiting.set(req.id, { ...w, req });
      this.worker.postMessage(req);
      return;
    }
    this.held.delete(w.req.segment);
    w.reject(r.format ? new FormatError(r.message) : new Error(r.message));
  }

  close(): void {
    this.closed = true;
    for (const w of this.waiting.values()) w.reject(new Error("decoder closed"));
    this.waiting.clear();
    this.worker.terminate?.();
  }
}

/**
 * Several decoders, segment s on decoder s mod n (each a worker with its own parsed segments):
 * a segment's first frame costs its whole parse (keyframe and skin binding, tens of times a
 * frame's decode), and with two workers that parse runs beside the frames of the segment
 * playing, not after them. Frames still come back in the order asked for (one promise each).
 */
export class SegmentRoutedDecoder implements FrameDecoder {
  readonly kind: "thread" | "worker";
  constructor(private readonly decoders: FrameDecoder[]) {
    if (!decoders.length) throw new Error("SegmentRoutedDecoder needs at least one decoder");
    this.kind = decoders[0].kind;
  }
  frame(s: number, bytes: Uint8Array, f: number, shDegree: number): Promise<DecodedFrame> {
    return this.decoders[s % this.decoders.length].frame(s, bytes, f, shDegree);
  }
  close(): void {
    for (const d of this.decoders) d.close();
  }
}
