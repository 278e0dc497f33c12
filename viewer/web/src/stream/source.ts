/**
 * An HTTP byte source over `fetch`: `Range: bytes=a-b` requests, or, when the host ignores
 * Range (answers 200), one progressive download of the whole file that serves every later
 * range from the bytes received so far and never fetches again.
 *
 *   const src = new HttpSource("clip.gsv");
 *   const head = await src.read(0, 4096);     // a RangeReader: bytes [start, end), fewer at the end
 *   src.bytesFetched; src.size; src.mode;     // "range" | "progressive" once the first answer came
 *   src.abort();                              // cancels every request; pending reads reject
 *
 * The bytes of reads that start at 0 (the file's head: prefix, JSON header, segment table) are
 * kept, so a later read overlapping the head fetches only the part after it.
 */

/** A fetch failure or a reply that breaks the HTTP contract: one line naming the URL. */
export class FetchError extends Error {
  /** The fault alone, without the URL. */
  readonly reason: string;
  constructor(reason: string, readonly url: string, readonly status?: number) {
    super(`${url}: ${reason}`);
    this.name = "FetchError";
    this.reason = reason;
  }
}

export type FetchFn = (url: string, init?: RequestInit) => Promise<Response>;

export interface HttpSourceOptions {
  /** the fetch to use (default: the global one) */
  fetch?: FetchFn;
  /** extra request headers */
  headers?: Record<string, string>;
  /** an outside signal that aborts the source too */
  signal?: AbortSignal;
  /** reads starting at 0 up to this many bytes are kept as the file's head (default 1 MiB) */
  headCap?: number;
}

/** How the host answered: with ranges (206) or the whole file (200). */
export type SourceMode = "range" | "progressive";

const HEAD_CAP = 1 << 20;

/** Parse `Content-Range: bytes a-b/total` (total may be `*`). */
function parseContentRange(v: string | null): { start: number; end: number; total?: number } | null {
  if (!v) return null;
  const m = /^\s*bytes\s+(\d+)-(\d+)\/(\d+|\*)\s*$/i.exec(v);
  if (!m) return null;
  const start = Number(m[1]), end = Number(m[2]) + 1;
  const total = m[3] === "*" ? undefined : Number(m[3]);
  if (!(end > start) || (total !== undefined && end > total)) return null;
  return { start, end, total };
}

function lengthHeader(r: Response): number | undefined {
  const v = r.headers.get("content-length");
  if (v === null || !/^\s*\d+\s*$/.test(v)) return undefined;
  const n = Number(v);
  return Number.isSafeInteger(n) ? n : undefined;
}

/** The whole file arriving in order from one 200 response. */
class Progressive {
  buf: Uint8Array;
  received = 0;
  done = false;
  error: unknown = null;
  private waiters: (() => void)[] = [];
  constructor(readonly total: number | undefined) {
    this.buf = new Uint8Array(total ?? 1 << 16);
  }
  push(chunk: Uint8Array): void {
    const need = this.received + chunk.length;
    if (need > this.buf.length) {
      const grown = new Uint8Array(Math.max(need, this.buf.length * 2));
      grown.set(this.buf.subarray(0, this.received));
      this.buf = grown;
    }
    this.buf.set(chunk, this.received);
    this.received = need;
    this.wake();
  }
  finish(error: unknown = null): void {
    this.done = true;
    this.error = error;
    this.wake();
  }
  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
  /** Resolves once `end` bytes are in or the download ended. */
  async until(end: number): Promise<void> {
    while (this.received < end && !this.done) await new Promise<void>((r) => this.waiters.push(r));
  }
}

/** A RangeReader over HTTP (see the module comment). */
export class HttpSource {
  /** body bytes received from the network so far */
  bytesFetched = 0;
  /** HTTP requests sent */
  requests = 0;
  /** the file's size once a reply said it */
  size: number | undefined;
  /** "range" or "progressive" once the first reply came */
  mode: SourceMode | undefined;
  private readonly ctrl = new AbortController();
  private readonly fetchFn: FetchFn;
  private head = new Uint8Array(0);
  private progressive: Progressive | null = null;
  private first: Promise<void> | null = null;
  private closed = false;

  constructor(readonly url: string, private readonly opts: HttpSourceOptions = {}) {
    const f = opts.fetch ?? (globalThis as { fetch?: FetchFn }).fetch;
    if (!f) throw new Error("no fetch available: pass options.fetch");
    this.fetchFn = f.bind(globalThis);
    opts.signal?.addEventListener("abort", () => this.abort(), { once: true });
  }

  /** The RangeReader: bytes [start, end) of the file (fewer at its end). */
  readonly read = async (start: number, end: number): Promise<Uint8Array> => {
    if (!(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start >= 0 && end >= start)) {
      throw new RangeError(`bad byte range [${start}, ${end})`);
    }
    if (this.closed) throw this.abortError();
    if (this.first === null) {
      // the first request learns whether the host honours Range; later ones wait for its answer
      let done!: () => void;
      this.first = new Promise<void>((r) => (done = r));
      try {
        return await this.fetchRange(start, end, start === 0);
      } finally {
        done();
      }
    }
    await this.first;
    if (this.size !== undefined) end = Math.min(end, this.size);
    if (end <= start) return new Uint8Array(0);
    if (this.progressive) return this.fromProgressive(start, end);
    // served from the head where it covers the range
    if (end <= this.head.length) return this.head.slice(start, end);
    if (start < this.head.length) {
      const head = this.head;
      const tail = await this.fetchRange(head.length, end, true);
      const out = new Uint8Array(head.length - start + tail.length);
      out.set(head.subarray(start));
      out.set(tail, head.length - start);
      return out;
    }
    return this.fetchRange(start, end);
  };

  /** Cancel every request; pending and later reads reject with an AbortError. */
  abort(): void {
    if (this.closed) return;
    this.closed = true;
    this.ctrl.abort();
  }

  get aborted(): boolean {
    return this.closed;
  }

  private abortError(): Error {
    const e = new Error(`${this.url}: aborted`);
    e.name = "AbortError";
    return e;
  }

  private async fromProgressive(start: number, end: number): Promise<Uint8Array> {
    const p = this.progressive!;
    await p.until(end);
    if (this.closed) throw this.abortError();
    if (p.received < end) {
      if (p.error) throw p.error;
      if (p.total !== undefined) throw new FetchError(`short read: the download ended at byte ${p.received} of ${p.total}`, this.url);
      end = p.received; // the file ends here
    }
    // a view, not a copy: a grown buffer leaves the old one alive for the views into it
    return p.buf.subarray(Math.min(start, end), end);
  }

  private async send(start: number, end: number): Promise<Response> {
    const headers: Record<string, string> = { ...(this.opts.headers ?? {}), Range: `bytes=${start}-${end - 1}` };
    this.requests++;
    try {
      return await this.fetchFn(this.url, { headers, signal: this.ctrl.signal });
    } catch (e) {
      if (this.closed) throw this.abortError();
      throw new FetchError(`request failed: ${e instanceof Error ? e.message : String(e)}`, this.url);
    }
  }

  /** Fetch [start, end); `keep`: the bytes extend the kept head (they start where it ends). */
  private async fetchRange(start: number, end: number, keep = false): Promise<Uint8Array> {
    if (end <= start) return new Uint8Array(0);
    const r = await this.send(start, end);
    if (r.status === 416) {
      // the range starts at or past the end of the file
      const cr = /\/(\d+)\s*$/.exec(r.headers.get("content-range") ?? "");
      if (cr) this.size = Number(cr[1]);
      this.mode ??= "range";
      await r.body?.cancel().catch(() => undefined);
      if (this.size !== undefined && start >= this.size) return new Uint8Array(0);
      throw new FetchError(`HTTP 416 for bytes ${start}-${end - 1}`, this.url, 416);
    }
    if (r.status === 200) {
      if (this.mode === "range") {
        await r.body?.cancel().catch(() => undefined);
        throw new FetchError(`the host answered a range request with the whole file (HTTP 200) after honouring ranges`, this.url, 200);
      }
      this.mode = "progressive";
      this.startProgressive(r);
      return this.fromProgressive(start, end);
    }
    if (r.status !== 206) {
      await r.body?.cancel().catch(() => undefined);
      throw new FetchError(`HTTP ${r.status}${r.statusText ? " " + r.statusText : ""}`, this.url, r.status);
    }
    this.mode = "range";
    const raw = r.headers.get("content-range");
    if (raw === null) {
      // a cross-origin reply hides Content-Range unless the host exposes it: trust the 206 and
      // take a body shorter than asked for as the end of the file
      const body = await this.readBody(r, end - start);
      if (body.length < end - start) this.size = start + body.length;
      if (keep && start === this.head.length && end <= (this.opts.headCap ?? HEAD_CAP)) this.extendHead(body);
      return body;
    }
    const cr = parseContentRange(raw);
    if (!cr || cr.start !== start || cr.end > end) {
      await r.body?.cancel().catch(() => undefined);
      throw new FetchError(`bad Content-Range ${JSON.stringify(r.headers.get("content-range"))} for bytes ${start}-${end - 1}`, this.url, 206);
    }
    if (cr.total !== undefined) this.size = cr.total;
    const want = cr.end - start;
    if (cr.end < end && (cr.total === undefined || cr.end < cr.total)) {
      await r.body?.cancel().catch(() => undefined);
      throw new FetchError(`short range: bytes ${start}-${cr.end - 1} of the ${start}-${end - 1} asked for`, this.url, 206);
    }
    const body = await this.readBody(r, want);
    if (body.length !== want) {
      throw new FetchError(`short read: ${body.length} of ${want} bytes at offset ${start}`, this.url, 206);
    }
    if (keep && start === this.head.length && start + want <= (this.opts.headCap ?? HEAD_CAP)) this.extendHead(body);
    return body;
  }

  /** Append bytes that follow the kept head. */
  private extendHead(body: Uint8Array): void {
    const h = new Uint8Array(this.head.length + body.length);
    h.set(this.head);
    h.set(body, this.head.length);
    this.head = h;
  }

  /** A reply's body, at most `limit` bytes (a longer one is an error), counted as it arrives. */
  private async readBody(r: Response, limit: number): Promise<Uint8Array> {
    const out = new Uint8Array(limit);
    let n = 0;
    if (!r.body) return out.subarray(0, 0);
    const reader = r.body.getReader();
    try {
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        this.bytesFetched += value.length;
        if (n + value.length > limit) {
          await reader.cancel().catch(() => undefined);
          throw new FetchError(`the reply holds more than the ${limit} bytes asked for`, this.url, r.status);
        }
        out.set(value, n);
        n += value.length;
      }
    } catch (e) {
      if (this.closed) throw this.abortError();
      if (e instanceof FetchError) throw e;
      throw new FetchError(`short read: the reply ended after ${n} of ${limit} bytes (${e instanceof Error ? e.message : String(e)})`, this.url);
    }
    return out.subarray(0, n);
  }

  private startProgressive(r: Response): void {
    const total = lengthHeader(r);
    if (total !== undefined) this.size = total;
    const p = (this.progressive = new Progressive(total));
    const body = r.body;
    if (!body) {
      p.finish();
      return;
    }
    const reader = body.getReader();
    void (async () => {
      try {
        for (;;) {
          const { done, value } = await reader.read();
          if (done) break;
          this.bytesFetched += value.length;
          if (total !== undefined && p.received + value.length > total) {
            throw new FetchError(`the download holds more than its Content-Length of ${total} bytes`, this.url, 200);
          }
          p.push(value);
        }
        if (total === undefined) this.size = p.received;
        p.finish(total !== undefined && p.received < total
          ? new FetchError(`short read: the download ended at byte ${p.received} of ${total}`, this.url, 200) : null);
      } catch (e) {
        p.finish(this.closed ? this.abortError()
          : e instanceof FetchError ? e
          : new FetchError(`short read: the download ended at byte ${p.received}${total !== undefined ? ` of ${total}` : ""} (${e instanceof Error ? e.message : String(e)})`, this.url));
      }
    })();
  }

  /** Bytes of the progressive download received so far (null when ranges are used). */
  get progressiveReceived(): number | null {
    return this.progressive ? this.progressive.received : null;
  }
}
