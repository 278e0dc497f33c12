#!/usr/bin/env node
// Decode one of our files (or one frame of a video) to an INRIA binary PLY with the
// TypeScript decoders (../dist/formats.mjs; build it with `make web`).
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, renameSync, statSync, chmodSync, unlinkSync, writeSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import * as F from "../dist/formats.mjs";

const USAGE = `usage: node viewer/web/cli/decode.mjs IN OUT.ply [--frame N] [--max-gaussians N] [--force]

Decodes IN with splatkit's TypeScript decoders and writes an INRIA binary PLY.
Formats (detected from the magic bytes, then the extension):
${F.FORMATS.map((f) => `  ${f.extensions.join(" ")}  ${f.description}`).join("\n")}

options:
  --frame N           frame N (0-based) of a video file
  --max-gaussians N   raise the cap on the Gaussian count (default 16 per file byte + 65,536)
  --force             overwrite OUT if it exists
  -h, --help          this text

examples:
  node viewer/web/cli/decode.mjs scene.lgs scene.ply
  node viewer/web/cli/decode.mjs clip.gsv frame12.ply --frame 12 --force
  splat eval scene.lgs scene.ply      # compare with the Python decoder

exit status: 0 done, 2 bad input or usage (one line on stderr).`;

/** Per format: (bytes, options) -> SplatArrays. A new format's decoder adds its case here. */
const DECODERS = {
  lgs: (bytes, o) => {
    if (o.frame !== undefined) throw new UsageError("--frame applies to video files only");
    return F.decodeLgs(bytes, { file: o.file, maxGaussians: o.maxGaussians });
  },
};

class UsageError extends Error {}

function fail(message) {
  process.stderr.write(`decode.mjs: error: ${message}\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const pos = [];
  const o = { force: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const intArg = (name) => {
      const v = argv[++i];
      if (v === undefined || !/^\d+$/.test(v)) throw new UsageError(`${name} needs a non-negative integer`);
      return Number(v);
    };
    if (a === "-h" || a === "--help") { process.stdout.write(USAGE + "\n"); process.exit(0); }
    else if (a === "--force") o.force = true;
    else if (a === "--frame") o.frame = intArg(a);
    else if (a === "--max-gaussians") o.maxGaussians = intArg(a);
    else if (a.startsWith("-") && a !== "-") throw new UsageError(`unknown option ${a}`);
    else pos.push(a);
  }
  if (pos.length !== 2) throw new UsageError(`expected IN and OUT.ply\n${USAGE.split("\n")[0]}`);
  return { input: pos[0], output: pos[1], ...o };
}

/** Write `bytes` to `path` atomically: a temporary file beside it, fsync, chmod, rename. */
function writeAtomic(path, bytes) {
  let mode;
  try { mode = statSync(path).mode & 0o777; } catch { mode = 0o666 & ~process.umask(); }
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.part`);
  const fd = openSync(tmp, "wx", 0o600);
  try {
    let off = 0;
    while (off < bytes.length) off += writeSync(fd, bytes, off, Math.min(bytes.length - off, 1 << 26));
    fsyncSync(fd);
    closeSync(fd);
    chmodSync(tmp, mode);
    renameSync(tmp, path);
  } catch (e) {
    try { closeSync(fd); } catch { /* closed already */ }
    try { unlinkSync(tmp); } catch { /* gone already */ }
    throw e;
  }
}

function main() {
  let o;
  try { o = parseArgs(process.argv.slice(2)); } catch (e) { fail(e.message); }
  if (existsSync(o.output) && !o.force) fail(`${o.output} exists (pass --force to overwrite)`);
  let bytes;
  try {
    bytes = new Uint8Array(readFileSync(o.input));
  } catch (e) {
    fail(`cannot read ${o.input}: ${e.code === "EISDIR" ? "is a folder" : e.code === "ENOENT" ? "no such file" : e.message}`);
  }
  const fmt = F.detectFormat(bytes, o.input);
  if (!fmt) fail(`${o.input}: not a file this decoder knows (${F.FORMATS.map((f) => f.extensions.join("/")).join(", ")})`);
  const decoder = DECODERS[fmt.name];
  if (!decoder) fail(`${o.input}: ${fmt.description} files are not supported by this command yet`);
  let scene;
  try {
    scene = decoder(bytes, { ...o, file: o.input });
  } catch (e) {
    if (e instanceof F.FormatError || e instanceof UsageError) fail(e.message);
    throw e;
  }
  try {
    writeAtomic(o.output, F.encodePly(scene));
  } catch (e) {
    fail(`cannot write ${o.output}: ${e.code ?? e.message}`);
  }
  process.stdout.write(`${o.input} -> ${o.output}: ${scene.count} Gaussians, SH degree ${scene.shDegree}\n`);
}

main();
