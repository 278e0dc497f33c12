/// <reference lib="webworker" />
/**
 * The decoding worker, in one of two roles chosen by its name:
 * - "splat-decoder": fetches a file (counting bytes), tells its format from its first bytes,
 *   and decodes our formats to flat arrays off the main thread. Formats Spark reads go back
 *   as bytes (Spark decodes them in its own worker).
 * - "splat-stream": the `.gsv` frame decoder of the streaming engine (`serveDecoder`): the
 *   page's GsvPlayer sends segments, frames come back with their buffers transferred.
 */
import { FormatError } from "../formats/errors.js";
import { decodeGsi, type Gaussians2D } from "../formats/gsi.js";
import { decodeLgs } from "../formats/lgs.js";
import { prepareImage, type PreparedImage } from "../image/tiles.js";
import { decodeSpzV4 } from "../formats/spz.js";
import type { SplatArrays } from "../formats/types.js";
import { loadMemory } from "./memory_load.js";
import { serveMemory } from "./memory_worker.js";
import { type Decoded, type LoadRequest, MEMORY_WORKER_NAME, STREAM_WORKER_NAME, type WorkerReply } from "./protocol.js";
import { sniff } from "./sniff.js";
import { serveDecoder, type DecoderPort } from "../stream/worker.js";

declare const self: DedicatedWorkerGlobalScope;

function post(msg: WorkerReply, transfer: Transferable[] = []): void {
  self.postMessage(msg, transfer);
}

/** GET `url` whole, reporting progress; returns the bytes. */
async function fetchAll(id: number, url: string, name: string, before = 0): Promise<Uint8Array> {
  let res: Response;
  try {
    res = await fetch(url);
  } catch (e) {
    throw new FormatError(`cannot fetch (${(e as Error).message})`, name);
  }
  if (!res.ok) throw new FormatError(`HTTP ${res.status} ${res.statusText}`.trim(), name);
  const lenHeader = res.headers.get("content-length");
  const total = lenHeader !== null && /^\d+$/.test(lenHeader) ? Number(lenHeader) : null;
  if (!res.body) return new Uint8Array(await res.arrayBuffer());
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let have = 0;
  let lastReport = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    have += value.length;
    const now = performance.now();
    if (now - lastReport > 100) {
      lastReport = now;
      post({ id, type: "progress", bytesFetched: before + have, total });
    }
  }
  const out = new Uint8Array(have);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  post({ id, type: "progress", bytesFetched: before + have, total });
  return out;
}

function arraysTransfer(a: SplatArrays): Transferable[] {
  return [a.means, a.quats, a.logScales, a.opacityLogits, a.shDc, a.shRest].map((x) => x.buffer as ArrayBuffer);
}

function imageTransfer(g: Gaussians2D, p: PreparedImage): Transferable[] {
  return [g.means, g.scales, g.rotations, g.colors, p.conics, p.index.offsets, p.index.ids].map((x) => x.buffer as ArrayBuffer);
}

async function load(req: LoadRequest): Promise<void> {
  const t0 = performance.now();
  const bytes = await fetchAll(req.id, req.url, req.name);
  const fetchMs = performance.now() - t0;
  if (bytes.length === 0) throw new FormatError("empty file", req.name);
  const kind = sniff(bytes, req.name);
  const info = { format: kind.format, fileBytes: bytes.length, bytesFetched: bytes.length, decodeMs: 0, fetchMs };
  if (kind.reader === "unknown" && kind.format === ".gsv") throw new FormatError("a .gsv video: give its URL a .gsv name so the player streams it", req.name);
  if (kind.reader === "unknown") throw new FormatError("unknown format (not .lgs, .gsi, PLY, SPZ, SOG, .splat or .ksplat)", req.name);
  if (kind.reader === "spark") {
    const decoded: Decoded = { kind: "spark", fileType: kind.fileType, bytes };
    post({ id: req.id, type: "done", decoded, info }, [bytes.buffer as ArrayBuffer]);
    return;
  }
  if (kind.reader === "m3") {
    const t1 = performance.now();
    const m = await loadMemory(bytes, req.url, req.name, (url, name) => fetchAll(req.id, url, name, bytes.length));
    info.bytesFetched += m.sceneBytes;
    info.decodeMs = performance.now() - t1;
    const decoded: Decoded = { kind: "memory", arrays: m.scene, memory: m.memory };
    post({ id: req.id, type: "done", decoded, info }, [...arraysTransfer(m.scene), m.memory.queries.buffer as ArrayBuffer]);
    return;
  }
  const t1 = performance.now();
  if (kind.reader === "gsi") {
    const image = decodeGsi(bytes, { file: req.name });
    let prepared: PreparedImage;
    try {
      prepared = prepareImage(image); // the renderer's tile index, built here rather than on the page
    } catch (e) {
      throw new FormatError((e as Error).message, req.name);
    }
    info.decodeMs = performance.now() - t1;
    post({ id: req.id, type: "done", decoded: { kind: "image", image, prepared }, info }, imageTransfer(image, prepared));
    return;
  }
  const arrays = kind.reader === "lgs" ? decodeLgs(bytes, { file: req.name }) : decodeSpzV4(bytes, req.name);
  info.decodeMs = performance.now() - t1;
  post({ id: req.id, type: "done", decoded: { kind: "arrays", arrays }, info }, arraysTransfer(arrays));
}

if (self.name === STREAM_WORKER_NAME) {
  serveDecoder(self as unknown as DecoderPort);
} else if (self.name === MEMORY_WORKER_NAME) {
  serveMemory(self as unknown as Parameters<typeof serveMemory>[0]);
} else {
  self.onmessage = (ev: MessageEvent<LoadRequest>) => {
    const req = ev.data;
    load(req).catch((e: unknown) => {
      const message = e instanceof FormatError ? e.message : `${req.name}: ${(e as Error)?.message ?? String(e)}`;
      post({ id: req.id, type: "error", message });
    });
  };
}
