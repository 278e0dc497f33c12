/** The Web Worker entry (dist/stream-worker.mjs): `new Worker(url, {type: "module"})`. */
import { serveDecoder, type DecoderPort } from "./worker.js";

serveDecoder(globalThis as unknown as DecoderPort);
