/** The Web Worker entry (dist/stream-worker.mjs): `new Worker(url, {type: "module"})`. */
import { serveDecoder } from "./worker.js";
import type { WorkerLike } from "./decoder.js";

serveDecoder(globalThis as unknown as WorkerLike);
