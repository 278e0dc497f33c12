// Builds the web bundles with esbuild (pinned in package-lock.json).
//   node build.mjs            every bundle
//   node build.mjs --out DIR  the player into DIR instead of dist/client (`make client`: ../client,
//                             the shipped copy; the reproducibility test: a temporary folder)
// Outputs:
//   dist/formats.mjs          the decoding library as one ES module (Node and workers)
//   dist/stream.mjs           the .gsv streaming engine (HTTP source, segment cache, player core)
//   dist/stream-worker.mjs    its Web Worker entry (decodes segments, posts frames back)
//   dist/client/splat-player.js  the web player (<splat-player>, three.js + Spark), one ES module
//   dist/client/splat-worker.js  its decoding worker (fetches and decodes off the main thread)
// The player files are shipped as Python package data (viewer/client/), so a pip install
// without Node has a working viewer; they are minified and byte-reproducible from the lockfile.
//   dist/image-test.js        the .gsi renderer's test and demo page (test/image.html)
import { build } from "esbuild";
import { fileURLToPath } from "node:url";
import { dirname, join, resolve } from "node:path";

const here = dirname(fileURLToPath(import.meta.url));
const outIndex = process.argv.indexOf("--out");
const clientDir = outIndex > 0 ? resolve(process.argv[outIndex + 1]) : join(here, "dist/client");

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

/** The player and its worker, for browsers; minified, no source maps (deterministic bytes). */
const browser = { ...common, platform: "browser", minify: true, charset: "utf8" };
await build({
  ...browser,
  entryPoints: [join(here, "src/player/index.ts")],
  outfile: join(clientDir, "splat-player.js"),
});
await build({
  ...browser,
  entryPoints: [join(here, "src/player/worker.ts")],
  outfile: join(clientDir, "splat-worker.js"),
});

// dist/image-test.js: the .gsi renderer's test and demo page (test/image.html beside it)
await build({
  ...common,
  entryPoints: [join(here, "test/image-test.ts")],
  outfile: join(here, "dist/image-test.js"),
  platform: "browser",
});
