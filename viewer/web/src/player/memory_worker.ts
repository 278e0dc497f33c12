/**
 * The `.m3` similarity worker (splat-worker.js started with the name "splat-memory"): it holds
 * a memory's queries, banks and projections, decodes every Gaussian's feature per model once
 * (the memory attention of docs/formats/m3.md, then unit length), and answers queries with the
 * cosine similarity of every Gaussian to a vector, off the page's thread.
 *
 * Messages (page -> worker):
 *   {type: "init", memory}                              the decoded memory (buffers transferred)
 *   {id, type: "features", model}                       decode a model's features now (warm-up)
 *   {id, type: "query", model, gaussian?, vector?}      similarity to Gaussian i's own feature or to a vector
 * Replies: {id, type: "features", model, ms} | {id, type: "query", model, scores, vector, ms} | {id, type: "error", message}.
 */
import { cosineScores, gaussianFeatures, m3Model, type M3Memory } from "../formats/m3.js";
import type { MemoryPayload } from "./protocol.js";

export type MemoryRequest =
  | { type: "init"; memory: MemoryPayload }
  | { id: number; type: "features"; model: string }
  | { id: number; type: "query"; model: string; gaussian?: number; vector?: number[] };

export type MemoryReply =
  | { id: number; type: "features"; model: string; ms: number }
  | { id: number; type: "query"; model: string; scores: Float32Array; vector: Float32Array; ms: number }
  | { id: number; type: "error"; message: string };

interface Port {
  onmessage: ((ev: MessageEvent<MemoryRequest>) => void) | null;
  postMessage(msg: MemoryReply, transfer?: Transferable[]): void;
}

/** Each row of `f` [n*dim] scaled to unit length in float64, stored float32 (zero rows stay 0, norms clamped at 1e-12). */
export function unitRows(f: Float32Array, dim: number): Float32Array {
  const n = Math.floor(f.length / dim);
  for (let i = 0; i < n; i++) {
    let s = 0;
    for (let d = 0; d < dim; d++) s += f[i * dim + d] * f[i * dim + d];
    const inv = 1 / Math.max(Math.sqrt(s), 1e-12);
    for (let d = 0; d < dim; d++) f[i * dim + d] *= inv;
  }
  return f;
}

/** Serve similarity queries on `port` (the worker's global scope). */
export function serveMemory(port: Port): void {
  let memory: M3Memory | null = null;
  /** unit features [N*D] per model name */
  const features = new Map<string, Float32Array>();
  const featuresOf = (name: string): Float32Array => {
    let f = features.get(name);
    if (!f) {
      const m = m3Model(memory!, name);
      f = unitRows(gaussianFeatures(memory!, m.name), m.dim);
      features.set(name, f);
    }
    return f;
  };
  port.onmessage = (ev) => {
    const req = ev.data;
    if (req.type === "init") {
      const p = req.memory;
      memory = { ...p, scene: null, sceneRef: null, shDegree: 0, meta: {} };
      features.clear();
      return;
    }
    try {
      if (!memory) throw new Error("no memory loaded");
      const t0 = performance.now();
      const m = m3Model(memory, req.model);
      const f = featuresOf(m.name);
      if (req.type === "features") {
        port.postMessage({ id: req.id, type: "features", model: m.name, ms: performance.now() - t0 });
        return;
      }
      let vector: Float32Array;
      if (req.gaussian !== undefined) {
        const i = req.gaussian;
        if (!Number.isInteger(i) || i < 0 || i >= memory.count) throw new RangeError(`Gaussian ${i} is not in 0..${memory.count - 1}`);
        vector = f.slice(i * m.dim, (i + 1) * m.dim);
      } else {
        const v = req.vector ?? [];
        if (v.length !== m.dim) throw new RangeError(`the query vector has ${v.length} dims, model '${m.name}' has ${m.dim}`);
        if (!v.every((x) => typeof x === "number" && Number.isFinite(x))) throw new RangeError("the query vector holds a value that is not a finite number");
        vector = Float32Array.from(v);
      }
      const scores = cosineScores(f, m.dim, vector);
      port.postMessage({ id: req.id, type: "query", model: m.name, scores, vector, ms: performance.now() - t0 }, [scores.buffer]);
    } catch (e) {
      port.postMessage({ id: req.id, type: "error", message: (e as Error)?.message ?? String(e) });
    }
  };
}
