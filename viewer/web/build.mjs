// Builds the web bundles with esbuild (pinned in package-lock.json).
//   node build.mjs            every bundle
// Outputs:
//   dist/formats.mjs          the decoding library as one ES module (Node and workers)
//   dist/image-test.js        the .gsi renderer's test and demo page (test/image.html)
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

// dist/image-test.js: the .gsi renderer's test and demo page (test/image.html beside it)
await build({
  ...common,
  entryPoints: [join(here, "test/image-test.ts")],
  outfile: join(here, "dist/image-test.js"),
  platform: "browser",
});
