/**
 * The `.gsv` player core: a frame clock over the segment cache and a frame decoder. No DOM:
 * a page renders the `frame` events; Node drives it in tests and benchmarks.
 *
 *   const player = new GsvPlayer("clip.gsv", { autoplay: true, decoder });
 *   player.on("frame", ({ index, time, splats }) => draw(splats));
 *   await player.ready;                   // header + segment table
 *   player.pause(); await player.seek(2.5); player.speed = 2; player.loop = true; player.play();
 *   player.stats();                       // decode ms/frame, buffer seconds, bytes fetched, bitrates
 *   player.close();
 */
import { FormatError } from "../formats/errors.js";
import { openGsv, type GsvHeader, type GsvReader, type GsvSegmentEntry, type RangeReader } from "../formats/gsv.js";
import type { SplatArrays } from "../formats/types.js";
import { SegmentCache } from "./cache.js";
import type { SparkWords } from "../player/spark_words.js";
import { ThreadDecoder, type DecodedFrame, type FrameDecoder } from "./decoder.js";
import { HttpSource } from "./source.js";

/** Where the bytes come from: `HttpSource`, or any RangeReader with optional counters. */
export interface ByteSource {
  read: RangeReader;
  /** bytes received so far */
  bytesFetched?: number;
  /** the file's size, when known */
  size?: number;
  abort?(): void;
}

export interface PlayerOptions {
  /** start playing once the header is in (default true, as a muted video) */
  autoplay?: boolean;
  /** start again at the end (default false) */
  loop?: boolean;
  /** playback rate (default 1) */
  speed?: number;
  /** "auto" (default): read ahead and show the first frame even when not playing; "metadata": header only until play or seek */
  preload?: "auto" | "metadata";
  /** seconds held ahead of the playhead (default 3) */
  bufferSeconds?: number;
  /** bytes of compressed segments kept (default 256 MiB) */
  memoryBytes?: number;
  /** the frame decoder (default: a ThreadDecoder; pages pass a WorkerDecoder) */
  decoder?: FrameDecoder;
  /** frames decoded ahead of the one presented (default 8 with a worker, which then hides a segment's
   * load behind playback; 1 in this thread); each holds one decoded frame in memory */
  decodeAhead?: number;
  /** false: deliver every frame as soon as it is decoded, without waiting for its time (tests, export) */
  realtime?: boolean;
  /** the first read for the header (default 4096 bytes; a bigger header or table costs one more read) */
  headBytes?: number;
  /** name for messages (default: the URL) */
  file?: string;
}

export interface FrameEvent {
  /** frame index in the clip */
  index: number;
  /** its presentation time, seconds */
  time: number;
  segment: number;
  splats: SplatArrays;
  /** its decode time, ms */
  decodeMs: number;
  /** the frame in Spark's packed layout, when the decoder packs (WorkerDecoder's `words`) */
  words?: SparkWords;
}

export interface GapEvent {
  segment: number;
  /** first frame and frame count of the gap */
  first: number;
  frames: number;
  message: string;
}

export interface PlayerStats {
  /** frames delivered */
  frames: number;
  /** mean decode time per frame over the last 30, ms */
  decodeMs: number;
  /** frames delivered per second over the last second of playback */
  deliveredFps: number;
  /** seconds of video held ahead of the playhead */
  bufferSeconds: number;
  /** bytes received from the network */
  bytesFetched: number;
  /** bytes of segments held in memory */
  memoryBytes: number;
  /** received bits per second of wall time since open, Mbit/s */
  wireMbps: number;
  /** the clip's own bitrate: its bytes over its duration, Mbit/s */
  fileMbps: number;
  /** times playback waited for bytes */
  stalls: number;
  /** segments that are gaps */
  gaps: number[];
}

export interface PlayerEvents {
  ready: GsvHeader;
  frame: FrameEvent;
  gap: GapEvent;
  /** waiting for bytes (buffer underrun) */
  waiting: { index: number };
  playing: { index: number };
  pause: { index: number };
  seeked: { index: number };
  ended: { index: number };
  /** a fault that stops playback (network, HTTP, a bad header): one line */
  error: { message: string; error: unknown };
  /** a segment arrived */
  progress: { segment: number; bytes: number };
}

type Listener<T> = (ev: T) => void;

const now = (): number => (globalThis.performance ? performance.now() : Date.now());
const LATE_MS = 250;

/** Plays a `.gsv` stream: see the module comment. */
export class GsvPlayer {
  /** resolves with the header once it is in; rejects with the opening error */
  readonly ready: Promise<GsvHeader>;
  readonly source: ByteSource;
  readonly decoder: FrameDecoder;
  readonly file: string;
  header: GsvHeader | null = null;
  segments: GsvSegmentEntry[] = [];
  loop: boolean;
  realtime: boolean;
  private _speed: number;
  private reader: GsvReader | null = null;
  private cache: SegmentCache | null = null;
  private listeners = new Map<keyof PlayerEvents, Set<Listener<never>>>();
  private playing = false;
  private closed = false;
  /** next frame to present, and the one last presented */
  private next = 0;
  private current = -1;
  /** bumped by seek/pause/close: work started under an older generation is dropped */
  private gen = 0;
  private showOnce = false;
  private anchorWall = 0;
  private anchorFrame = 0;
  private wake: (() => void) | null = null;
  private seekWaiters: ((index: number) => void)[] = [];
  /** decodes already asked for, of the frames after the one being presented, in order */
  private queue: { gen: number; f: number; p: Promise<DecodedFrame> }[] = [];
  private readonly decodeAhead: number;
  private opened = now();
  private decodeTimes: number[] = [];
  private deliveredAt: number[] = [];
  private delivered = 0;
  private stalls = 0;
  private readonly preload: "auto" | "metadata";

  constructor(src: string | ByteSource, private readonly opts: PlayerOptions = {}) {
    this.source = typeof src === "string" ? new HttpSource(src) : src;
    this.file = opts.file ?? (typeof src === "string" ? src : (src as { url?: string }).url ?? "clip.gsv");
    this.decoder = opts.decoder ?? new ThreadDecoder();
    this.loop = opts.loop ?? false;
    this.realtime = opts.realtime ?? true;
    this._speed = opts.speed ?? 1;
    this.preload = opts.preload ?? "auto";
    this.decodeAhead = Math.max(0, Math.floor(opts.decodeAhead ?? (this.decoder.kind === "worker" ? 8 : 1)));
    this.ready = this.open();
    this.ready.catch(() => undefined);
    void this.run();
  }

  /** Subscribe to an event; returns the unsubscribe function. */
  on<K extends keyof PlayerEvents>(type: K, fn: Listener<PlayerEvents[K]>): () => void {
    let set = this.listeners.get(type);
    if (!set) this.listeners.set(type, (set = new Set()));
    set.add(fn as Listener<never>);
    return () => set!.delete(fn as Listener<never>);
  }

  private emit<K extends keyof PlayerEvents>(type: K, ev: PlayerEvents[K]): void {
    for (const fn of this.listeners.get(type) ?? []) {
      try {
        (fn as Listener<PlayerEvents[K]>)(ev);
      } catch (e) {
        setTimeout(() => { throw e; }); // reported as uncaught, as EventTarget does; playback goes on
      }
    }
  }

  get duration(): number {
    return this.header ? this.header.frames / this.header.fps : 0;
  }

  /** Seconds: the presented frame's time. */
  get currentTime(): number {
    return this.header && this.current >= 0 ? this.current / this.header.fps : 0;
  }

  /** The presented frame's index (-1 before the first). */
  get currentFrame(): number {
    return this.current;
  }

  get paused(): boolean {
    return !this.playing;
  }

  get speed(): number {
    return this._speed;
  }

  set speed(v: number) {
    if (!(v > 0 && Number.isFinite(v))) throw new RangeError(`speed must be a positive number, got ${v}`);
    this._speed = v;
    this.reanchor(this.next);
  }

  get bytesFetched(): number {
    return this.source.bytesFetched ?? 0;
  }

  /** Start or resume playback (at the start again after the end of a clip that does not loop). */
  play(): void {
    if (this.closed || this.playing) return;
    this.playing = true;
    if (this.header && this.next >= this.header.frames) this.next = 0;
    this.reanchor(this.next);
    if (this.cache) {
      this.cache.readAhead = true;
      this.cache.setPlayhead(this.next);
    }
    this.emit("playing", { index: this.next });
    this.poke();
  }

  pause(): void {
    if (!this.playing) return;
    this.playing = false;
    this.gen++;
    this.emit("pause", { index: this.current });
    this.poke();
  }

  /** Go to time t (seconds; clamped to the clip); resolves with the frame index once it is presented (or skipped as a gap). */
  async seek(t: number): Promise<number> {
    const h = await this.ready;
    if (!Number.isFinite(t)) throw new RangeError(`seek time must be finite, got ${t}`);
    return this.seekFrame(Math.floor(Math.min(Math.max(0, t), this.duration) * h.fps + 1e-9));
  }

  /** Go to frame i (clamped); resolves with the index presented. */
  async seekFrame(i: number): Promise<number> {
    const h = await this.ready;
    if (!Number.isFinite(i)) throw new RangeError(`seek frame must be finite, got ${i}`);
    if (h.frames === 0 || this.closed) return -1;
    const f = Math.min(Math.max(0, Math.floor(i)), h.frames - 1);
    this.gen++;
    this.next = f;
    this.reanchor(f);
    this.showOnce = true;
    this.cache!.setPlayhead(f);
    const done = new Promise<number>((r) => this.seekWaiters.push(r));
    this.poke();
    return done;
  }

  stats(): PlayerStats {
    const t = now();
    const recent = this.deliveredAt.filter((x) => t - x <= 1000);
    const dt = this.decodeTimes.length ? this.decodeTimes.reduce((a, b) => a + b, 0) / this.decodeTimes.length : 0;
    const fileBytes = this.segments.reduce((a, e) => a + e.length, 0);
    return {
      frames: this.delivered,
      decodeMs: dt,
      deliveredFps: recent.length,
      bufferSeconds: this.cache ? this.cache.bufferedSeconds(Math.max(0, this.next)) : 0,
      bytesFetched: this.bytesFetched,
      memoryBytes: this.cache?.memoryUsed ?? 0,
      wireMbps: (this.bytesFetched * 8) / Math.max(1e-3, (t - this.opened) / 1000) / 1e6,
      fileMbps: this.duration > 0 ? (fileBytes * 8) / this.duration / 1e6 : 0,
      stalls: this.stalls,
      gaps: this.cache?.gaps ?? [],
    };
  }

  /** Stop everything: requests are aborted, the decoder is closed, no more events. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.playing = false;
    this.gen++;
    this.source.abort?.();
    this.cache?.close();
    this.decoder.close();
    this.poke();
    this.listeners.clear();
  }

  private async open(): Promise<GsvHeader> {
    const head = this.opts.headBytes ?? 4096;
    try {
      await this.source.read(0, head); // learns the size (HttpSource keeps these bytes)
      const reader = await openGsv(this.source.read, { file: this.file, size: this.source.size, headBytes: head });
      this.reader = reader;
      this.header = reader.header;
      this.segments = reader.segments;
      this.cache = new SegmentCache(reader, { bufferSeconds: this.opts.bufferSeconds, memoryBytes: this.opts.memoryBytes }, {
        gap: (s, message) => {
          const e = reader.segments[s];
          this.emit("gap", { segment: s, first: e.first, frames: e.frames, message });
        },
        error: (error) => this.fail(error),
        loaded: (segment, bytes) => this.emit("progress", { segment, bytes }),
      });
      this.cache.loop = this.loop;
      this.cache.readAhead = this.preload === "auto";
      this.cache.setPlayhead(0);
    } catch (e) {
      this.fail(e);
      throw e;
    }
    this.emit("ready", this.header);
    if (this.opts.autoplay ?? true) this.play();
    else if (this.preload === "auto" && this.header.frames > 0 && !this.showOnce) {
      this.showOnce = true;
      this.poke();
    }
    return this.header;
  }

  private fail(error: unknown): void {
    if (this.closed) return;
    const aborted = error instanceof Error && error.name === "AbortError";
    if (aborted) return;
    this.playing = false;
    this.emit("error", { message: error instanceof Error ? error.message : String(error), error });
  }

  private reanchor(frame: number): void {
    this.anchorWall = now();
    this.anchorFrame = frame;
  }

  private poke(): void {
    const w = this.wake;
    this.wake = null;
    w?.();
  }

  /** Wait for a poke, or `ms` (Infinity: only a poke). */
  private sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      this.wake = () => { if (timer !== undefined) clearTimeout(timer); resolve(); };
      if (Number.isFinite(ms)) timer = setTimeout(() => { this.wake = null; resolve(); }, Math.max(0, ms));
    });
  }

  private async run(): Promise<void> {
    try {
      await this.ready;
    } catch {
      return;
    }
    const h = this.header!;
    while (!this.closed) {
      if (!this.playing && !this.showOnce) {
        await this.sleep(Infinity);
        continue;
      }
      if (h.frames === 0) {
        this.playing = false;
        this.showOnce = false;
        this.emit("ended", { index: -1 });
        continue;
      }
      if (this.next >= h.frames) {
        if (this.loop && this.playing) {
          this.next = 0;
          this.reanchor(0);
        } else {
          this.playing = false;
          this.emit("ended", { index: this.current });
          continue;
        }
      }
      try {
        await this.step(h);
      } catch (e) {
        // not a fault of the file or the network (those are handled in step): a bug; stop cleanly
        this.showOnce = false;
        this.fail(e);
        this.settleSeek(this.next);
      }
    }
  }

  /** Present frame `this.next` (or skip its gap); returns when done or superseded. */
  private async step(h: GsvHeader): Promise<void> {
    const gen = this.gen;
    const f = this.next;
    const reader = this.reader!, cache = this.cache!;
    const s = reader.segmentOf(f);
    const e = reader.segments[s];
    cache.loop = this.loop;
    cache.setPlayhead(f);
    const skipGap = (): void => {
      this.next = e.first + e.frames;
      this.reanchor(this.next);
      this.settleSeek(f);
    };
    if (cache.status(s) === "bad") return skipGap();
    let stalled = false;
    let got: DecodedFrame;
    try {
      let p: Promise<DecodedFrame>;
      const q = this.queue[0];
      if (q && q.gen === gen && q.f === f) {
        this.queue.shift();
        p = q.p;
      } else {
        this.queue = [];
        if (cache.status(s) !== "ready") {
          stalled = true;
          this.stalls++;
          this.emit("waiting", { index: f });
        }
        const bytes = await cache.get(s);
        if (gen !== this.gen) return;
        p = this.decoder.frame(s, bytes, f - e.first, h.shDegree);
      }
      got = await p;
    } catch (err) {
      this.queue = [];
      if (err instanceof FormatError) {
        const fe = err.file ? err : new FormatError(`segment ${s} (frames ${e.first}..): ${err.reason}`, this.file);
        cache.markBad(s, fe);
        return gen === this.gen ? skipGap() : undefined;
      }
      if (gen !== this.gen) return;
      if (this.playing || this.showOnce) this.fail(err);
      this.showOnce = false;
      this.settleSeek(f);
      return;
    }
    if (gen !== this.gen) return;
    // start the next frames' decodes while this one waits for its time
    if (this.playing) {
      let g = this.queue.length ? this.queue[this.queue.length - 1].f : f;
      while (this.queue.length < this.decodeAhead) {
        g = g + 1 < h.frames ? g + 1 : (this.loop ? 0 : -1);
        if (g < 0 || g === f) break;
        const gs = reader.segmentOf(g);
        if (cache.status(gs) !== "ready") break;
        const bytes = await cache.get(gs);
        if (gen !== this.gen) return;
        const p = this.decoder.frame(gs, bytes, g - reader.segments[gs].first, h.shDegree);
        p.catch(() => undefined);
        this.queue.push({ gen, f: g, p });
      }
    }
    if (this.playing && this.realtime && !this.showOnce) {
      if (stalled) this.reanchor(f);
      const due = this.anchorWall + ((f - this.anchorFrame) * 1000) / (h.fps * this._speed);
      const wait = due - now();
      if (wait < -LATE_MS) this.reanchor(f); // fell behind: slip the clock instead of racing
      else if (wait > 0) {
        await this.sleep(wait);
        if (gen !== this.gen) return;
      }
    }
    this.present(f, s, got);
  }

  private present(f: number, s: number, got: DecodedFrame): void {
    this.current = f;
    this.next = f + 1;
    this.delivered++;
    const t = now();
    this.deliveredAt.push(t);
    while (this.deliveredAt.length && t - this.deliveredAt[0] > 1000) this.deliveredAt.shift();
    this.decodeTimes.push(got.ms);
    if (this.decodeTimes.length > 30) this.decodeTimes.shift();
    if (this.showOnce) this.reanchor(f + 1);
    this.emit("frame", { index: f, time: f / this.header!.fps, segment: s, splats: got.splats, decodeMs: got.ms, words: got.words });
    this.settleSeek(f);
  }

  private settleSeek(f: number): void {
    if (!this.showOnce && this.seekWaiters.length === 0) return;
    this.showOnce = false;
    const w = this.seekWaiters;
    this.seekWaiters = [];
    for (const r of w) r(f);
    if (w.length) this.emit("seeked", { index: f });
  }
}
