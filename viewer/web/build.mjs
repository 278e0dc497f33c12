// Builds the web bundles with esbuild (pinned in package-lock.json).
//   node build.mjs            every bundle
// Outputs:
//   dist/formats.mjs          the decoding library as one ES module (Node and workers)
//   dist/stream.mjs           the .gsv streaming engine (HTTP source, segment cache, player core)
//   dist/stream-worker.mjs    its Web Worker entry (decodes segments, posts frames back)
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, join } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));

/** Options every bundle shares: deterministic output (no timestamps, fixed target). */
const common = {
  bundle: true,
  format: "esm",
  target: "es2022",
  legalComments: "none",
  logLevel: "warning",
  absWorkingDir: here,
};

await build({
  ...common,
  entryPoints: [join(here, "src/formats/index.ts")],
  outfile: join(here, "dist/formats.mjs"),
  platform: "neutral",
});

await build({
  ...common,
  entryPoints: [join(here, "src/stream/index.ts")],
  outfile: join(here, "dist/stream.mjs"),
  platform: "neutral",
});

await build({
  ...common,
  entryPoints: [join(here, "src/stream/worker_entry.ts")],
  outfile: join(here, "dist/stream-worker.mjs"),
  platform: "neutral",
});
