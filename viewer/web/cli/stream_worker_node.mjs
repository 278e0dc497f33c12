// The stream decoder worker under Node's worker_threads (the browser uses dist/stream-worker.mjs):
// serveDecoder over parentPort. Started by nodeWorkerDecoder() in stream_play.mjs.
import { parentPort } from "node:worker_threads";
import { serveDecoder } from "../dist/stream.mjs";

serveDecoder({
  postMessage: (m, transfer) => parentPort.postMessage(m, transfer),
  addEventListener: (_type, fn) => parentPort.on("message", (data) => fn({ data })),
});
