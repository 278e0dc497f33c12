/**
 * The segment cache and read-ahead scheduler of a `.gsv` stream.
 *
 * Holds segments' verified bytes (compressed: a few hundred KiB each) within a memory budget.
 * Read-ahead fetches, one at a time, the segments from the playhead up to `bufferSeconds`
 * ahead (wrapping to the start when looping); a segment asked for with `get` (a seek) is
 * fetched at once. When the budget is full the segment farthest from the playhead (counted
 * forward, through the loop point when looping) is dropped first, and read-ahead stops where
 * it would only drop something nearer. A segment whose bytes fail their length or CRC check,
 * or that the decoder refuses (`markBad`), becomes a gap: it is never fetched again.
 */
import { FormatError } from "../formats/errors.js";
import type { GsvReader } from "../formats/gsv.js";

export type SegmentStatus = "absent" | "loading" | "ready" | "bad";

export interface CacheOptions {
  /** seconds of video to hold ahead of the playhead (default 3) */
  bufferSeconds?: number;
  /** bytes of segments to keep (default 256 MiB) */
  memoryBytes?: number;
}

export interface CacheEvents {
  /** a segment became a gap */
  gap?(segment: number, message: string): void;
  /** a read-ahead fetch failed (not a format fault: the network) */
  error?(error: unknown): void;
  /** a segment arrived */
  loaded?(segment: number, bytes: number): void;
}

interface Slot {
  status: SegmentStatus;
  bytes?: Uint8Array;
  pending?: Promise<Uint8Array>;
  error?: FormatError;
}

export class SegmentCache {
  readonly bufferSeconds: number;
  readonly memoryBytes: number;
  /** bytes of segments held */
  memoryUsed = 0;
  /** read ahead of the playhead (false: fetch only what `get` asks for) */
  readAhead = false;
  /** count the loop point as continuous (read-ahead wraps, distances wrap) */
  loop = false;
  private playhead = 0;
  private slots: Slot[];
  private aheadInFlight = false;
  private halted = false;
  private closed = false;

  constructor(readonly reader: GsvReader, opts: CacheOptions = {}, private readonly events: CacheEvents = {}) {
    this.bufferSeconds = Math.max(0, opts.bufferSeconds ?? 3);
    this.memoryBytes = Math.max(0, opts.memoryBytes ?? 256 * 2 ** 20);
    this.slots = reader.segments.map(() => ({ status: "absent" as SegmentStatus }));
  }

  status(s: number): SegmentStatus {
    return this.slots[s].status;
  }

  /** The FormatError that made segment s a gap. */
  fault(s: number): FormatError | undefined {
    return this.slots[s].error;
  }

  /** Segment indices that are gaps. */
  get gaps(): number[] {
    return this.slots.flatMap((sl, i) => (sl.status === "bad" ? [i] : []));
  }

  /** Move the playhead (a frame index) and resume read-ahead from there. */
  setPlayhead(frame: number): void {
    this.playhead = Math.min(Math.max(0, frame), Math.max(0, this.reader.header.frames - 1));
    this.halted = false;
    this.pump();
  }

  /** Seconds of contiguous playable video (held segments and gaps) from `frame` on. */
  bufferedSeconds(frame: number): number {
    const h = this.reader.header;
    if (frame >= h.frames || h.frames === 0) return 0;
    let s = this.reader.segmentOf(frame);
    let end = frame;
    while (s < this.slots.length && (this.slots[s].status === "ready" || this.slots[s].status === "bad")) {
      const e = this.reader.segments[s];
      end = e.first + e.frames;
      s++;
    }
    return (end - frame) / h.fps;
  }

  /** Segment s's verified bytes: held, in flight, or fetched now. A gap throws its FormatError. */
  get(s: number): Promise<Uint8Array> {
    const sl = this.slots[s];
    if (!sl) return Promise.reject(new RangeError(`segment ${s} outside 0..${this.slots.length - 1}`));
    if (sl.status === "ready") return Promise.resolve(sl.bytes!);
    if (sl.status === "bad") return Promise.reject(sl.error);
    if (sl.status === "loading") return sl.pending!;
    return this.load(s);
  }

  /** Make segment s a gap (e.g. the decoder refused it); its bytes are dropped. */
  markBad(s: number, error: FormatError): void {
    const sl = this.slots[s];
    if (sl.status === "bad") return;
    if (sl.bytes) this.memoryUsed -= sl.bytes.length;
    this.slots[s] = { status: "bad", error };
    this.events.gap?.(s, error.message);
  }

  close(): void {
    this.closed = true;
    for (const sl of this.slots) if (sl.status === "ready") sl.bytes = undefined;
    this.memoryUsed = 0;
  }

  /** Frames from the playhead forward to segment s's first frame (0: the playhead's own segment). */
  private distance(s: number): number {
    const e = this.reader.segments[s];
    const F = this.reader.header.frames;
    const p = this.playhead;
    if (p >= e.first && p < e.first + e.frames) return 0;
    if (e.first > p) return e.first - p;
    return this.loop ? F - p + e.first : 2 * F + (p - e.first);
  }

  private load(s: number): Promise<Uint8Array> {
    const sl = this.slots[s];
    sl.status = "loading";
    const p = this.reader.segmentBytes(s).then(
      (bytes) => {
        if (this.closed) return bytes;
        this.slots[s] = { status: "ready", bytes };
        this.memoryUsed += bytes.length;
        this.evict(s);
        this.events.loaded?.(s, bytes.length);
        return bytes;
      },
      (err: unknown) => {
        if (err instanceof FormatError) {
          this.slots[s] = { status: "bad", error: err };
          this.events.gap?.(s, err.message);
        } else {
          this.slots[s] = { status: "absent" };
        }
        throw err;
      });
    sl.pending = p;
    return p;
  }

  /** Drop the farthest segments until the budget holds (never the playhead's or `keep`). */
  private evict(keep: number): void {
    while (this.memoryUsed > this.memoryBytes) {
      let worst = -1, wd = -1;
      for (let i = 0; i < this.slots.length; i++) {
        if (this.slots[i].status !== "ready" || i === keep) continue;
        const d = this.distance(i);
        if (d > 0 && d > wd) { worst = i; wd = d; }
      }
      if (worst < 0) break;
      this.memoryUsed -= this.slots[worst].bytes!.length;
      this.slots[worst] = { status: "absent" };
    }
  }

  /** The next segment read-ahead should fetch, or -1. */
  private nextAhead(): number {
    const h = this.reader.header;
    if (h.frames === 0) return -1;
    const horizon = Math.max(1, Math.ceil(this.bufferSeconds * h.fps));
    const K = this.slots.length;
    let s = this.reader.segmentOf(this.playhead);
    for (let n = 0; n < K; n++, s++) {
      if (s >= K) {
        if (!this.loop) return -1;
        s = 0;
      }
      const d = this.distance(s);
      if (d > horizon) return -1;
      const sl = this.slots[s];
      if (sl.status !== "absent") continue;
      // fetch only what the budget can hold without dropping anything nearer
      let freeable = 0;
      for (let i = 0; i < K; i++) if (this.slots[i].status === "ready" && this.distance(i) > d) freeable += this.slots[i].bytes!.length;
      if (this.memoryUsed - freeable + this.reader.segments[s].length > this.memoryBytes && d > 0) return -1;
      return s;
    }
    return -1;
  }

  private pump(): void {
    if (!this.readAhead || this.aheadInFlight || this.halted || this.closed) return;
    const s = this.nextAhead();
    if (s < 0) return;
    this.aheadInFlight = true;
    this.load(s).then(
      () => { this.aheadInFlight = false; this.pump(); },
      (err: unknown) => {
        this.aheadInFlight = false;
        if (err instanceof FormatError) this.pump();
        else if (!this.closed) {
          this.halted = true; // a network fault: wait for the next playhead move
          this.events.error?.(err);
        }
      });
  }
}
