/**
 * The decoding side of `WorkerDecoder`: answers each DecodeRequest with the frame, its buffers
 * transferred. Arrays a tracked segment shares with its later frames (colours, SH, opacities,
 * scales: copy on write) are copied first; centres, rotations and intra frames are fresh and
 * go over without a copy.
 *
 *   // worker entry (dist/stream-worker.mjs): serveDecoder(self)
 *   // Node: serveDecoder(adapter over worker_threads' parentPort)
 */
import { FormatError } from "../formats/errors.js";
import type { SplatArrays } from "../formats/types.js";
import { FramePacker } from "../player/spark_words.js";
import { decodeFrame, SegmentLru, type DecodeReply, type DecodeRequest } from "./decoder.js";

const now = (): number => (globalThis.performance ? performance.now() : Date.now());

/** An array that owns its whole buffer: `a` itself when fresh, else a copy. */
function owned(a: Float32Array, fresh: boolean): Float32Array {
  return fresh && a.byteOffset === 0 && a.byteLength === a.buffer.byteLength ? a : a.slice();
}

/** The worker's side of the channel: a DedicatedWorkerGlobalScope, or an adapter over worker_threads. */
export interface DecoderPort {
  postMessage(message: unknown, transfer: Transferable[]): void;
  addEventListener(type: "message", listener: (ev: { data: unknown }) => void): void;
}

/** Serve decode requests arriving on `port` until the worker ends. */
export function serveDecoder(port: DecoderPort): void {
  const lru = new SegmentLru();
  const packer = new FramePacker(); // keeps what a tracked segment's frames share
  port.addEventListener("message", (ev) => {
    const req = ev.data as DecodeRequest;
    let reply: DecodeReply;
    const transfer: ArrayBuffer[] = [];
    try {
      const t = now();
      if (req.bytes) lru.delete(req.segment); // new bytes: parse afresh
      const f = decodeFrame(lru, req.segment, req.bytes, req.frame, req.shDegree);
      const tracked = lru.get(req.segment)?.mode === "tracked";
      const splats: SplatArrays = {
        count: f.count, shDegree: f.shDegree, means: owned(f.means, true), quats: owned(f.quats, true),
        logScales: owned(f.logScales, !tracked), opacityLogits: owned(f.opacityLogits, !tracked),
        shDc: owned(f.shDc, !tracked), shRest: owned(f.shRest, !tracked),
      };
      for (const a of [splats.means, splats.quats, splats.logScales, splats.opacityLogits, splats.shDc, splats.shRest]) {
        if (!transfer.includes(a.buffer as ArrayBuffer)) transfer.push(a.buffer as ArrayBuffer);
      }
      const ms = now() - t; // the decode (the packing below is not counted)
      // Spark's layout, packed here rather than on the page's (rendering) thread, from the
      // decoder's own arrays (the same objects while a tracked segment does not change them)
      const words = req.words ? packer.pack(f) : undefined;
      reply = { id: req.id, ok: true, ms, splats };
      if (words) {
        reply.words = words;
        transfer.push(words.splats.buffer as ArrayBuffer);
        if (words.sh1) transfer.push(words.sh1.buffer as ArrayBuffer);
      }
    } catch (e) {
      const missing = e instanceof Error && !(e instanceof FormatError) && /is not loaded/.test(e.message);
      lru.delete(req.segment);
      reply = { id: req.id, ok: false, message: e instanceof Error ? e.message : String(e), format: e instanceof FormatError, missing };
    }
    port.postMessage(reply, transfer);
  });
}
