#!/usr/bin/env node
// Decode one of our files (or one frame of a video) to an INRIA binary PLY with the
// TypeScript decoders (../dist/formats.mjs; build it with `make web`).
import { closeSync, existsSync, fsyncSync, openSync, readFileSync, realpathSync, renameSync, statSync, chmodSync, unlinkSync, writeSync } from "node:fs";
import { createHash } from "node:crypto";
import { basename, dirname, isAbsolute, join, relative, resolve } from "node:path";
import * as F from "../dist/formats.mjs";

const USAGE = `usage: node viewer/web/cli/decode.mjs IN OUT.ply [--frame N] [--max-gaussians N] [--force]

Decodes IN with splatkit's TypeScript decoders and writes an INRIA binary PLY.
Formats (detected from the magic bytes, then the extension):
${F.FORMATS.map((f) => `  ${f.extensions.join(" ")}  ${f.description}`).join("\n")}

options:
  --frame N           frame N (0-based) of a video file (default 0)
  --max-gaussians N   raise the cap on the Gaussian count (default 16 per file byte + 65,536)
  --force             overwrite OUT if it exists
  -h, --help          this text

examples:
  node viewer/web/cli/decode.mjs scene.lgs scene.ply
  node viewer/web/cli/decode.mjs clip.gsv frame12.ply --frame 12 --force
  node viewer/web/cli/decode.mjs memory.m3 memory.ply      # the scene with f_emb_* queries
  node viewer/web/cli/decode.mjs photo.gsi photo.ply       # 2D Gaussians (layout: docs/web.md)
  splat eval scene.lgs scene.ply      # compare with the Python decoder

exit status: 0 done, 2 bad input or usage (one line on stderr).`;

/** Per format: (bytes, options) -> {ply: bytes to write, summary: one line}. A new format adds its case here. */
const DECODERS = {
  lgs: (bytes, o) => {
    noFrame(o);
    return scenePly(F.decodeLgs(bytes, { file: o.file, maxGaussians: o.maxGaussians }));
  },
  gsv: async (bytes, o) => {
    const video = await F.openGsv(F.bytesReader(bytes), { file: o.file, size: bytes.length });
    const f = o.frame ?? 0;
    if (f >= video.header.frames) throw new UsageError(`--frame ${f}: ${o.file} has ${video.header.frames} frames (0..${video.header.frames - 1})`);
    const out = scenePly(await video.frame(f));
    return { ...out, summary: `frame ${f} of ${video.header.frames}: ${out.summary}` };
  },
  gsi: (bytes, o) => {
    noFrame(o);
    const g = F.decodeGsi(bytes, { file: o.file, maxGaussians: o.maxGaussians });
    const C = g.channels;
    const props = ["x", "y", "scale_0", "scale_1", "rot", ...Array.from({ length: C }, (_, c) => `color_${c}`)];
    const rows = new Float32Array(g.count * props.length);
    for (let i = 0; i < g.count; i++) {
      const r = rows.subarray(i * props.length);
      r[0] = g.means[2 * i]; r[1] = g.means[2 * i + 1];
      r[2] = g.scales[2 * i]; r[3] = g.scales[2 * i + 1];
      r[4] = g.rotations[i];
      for (let c = 0; c < C; c++) r[5 + c] = g.colors[i * C + c];
    }
    const comments = [`gsi width ${g.width}`, `gsi height ${g.height}`, `gsi mode ${g.mode}`, `gsi k ${g.k}`,
      `gsi layers ${g.layers.join(",")}`];
    return { ply: F.encodeFloatPly("gaussian2d", g.count, props, rows, comments),
      summary: `${g.count} 2D Gaussians, ${g.width}x${g.height}, ${C} channels` };
  },
  m3: (bytes, o) => {
    noFrame(o);
    const mem = F.decodeM3(bytes, { file: o.file, maxGaussians: o.maxGaussians, scene: referencedScene(bytes, o) });
    const names = Array.from({ length: mem.queryTotal }, (_, c) => `f_emb_${c}`);
    const out = scenePly(mem.scene, { names, values: mem.queries });
    return { ...out, summary: `${out.summary}, ${mem.queryTotal} query channels (${mem.models.map((m) => m.name).join(", ")})` };
  },
};

function noFrame(o) {
  if (o.frame !== undefined) throw new UsageError("--frame applies to video files only");
}

function scenePly(scene, extra) {
  return { ply: F.encodePly(scene, extra), summary: `${scene.count} Gaussians, SH degree ${scene.shDegree}` };
}

/**
 * The scene a `.m3` file references, or undefined when it embeds one. Same rules as the Python
 * reader (docs/formats/m3.md, "Scene references"): a relative path that resolves, symlinks
 * followed, inside the .m3's folder; a regular file; a 64-hex-digit SHA-256 that matches,
 * checked before decoding. This decoder reads referenced `.lgs` scenes only.
 */
function referencedScene(bytes, o) {
  const h = F.readIndex(bytes, { magic: "GSM3", what: ".m3 file", whole: false }).header;
  const ref = h.scene;
  if (ref === "embedded" || !ref || typeof ref !== "object" || typeof ref.ref !== "string") return undefined;
  const name = ref.ref;
  if (!name || name.includes("\0") || isAbsolute(name)) {
    throw new F.FormatError(`scene reference must be a relative path inside the file's folder`, o.file);
  }
  if (typeof ref.sha256 !== "string" || !/^[0-9a-f]{64}$/i.test(ref.sha256)) {
    throw new F.FormatError(`scene reference has no SHA-256 (64 hex digits are required)`, o.file);
  }
  const root = realpathSync(dirname(resolve(o.file)));
  let path;
  try {
    path = realpathSync(resolve(root, name));
  } catch {
    throw new F.FormatError(`referenced scene ${name} not found`, o.file);
  }
  const rel = relative(root, path);
  if (rel === "" || rel.startsWith("..") || isAbsolute(rel)) {
    throw new F.FormatError(`scene reference ${name} leads outside the file's folder`, o.file);
  }
  if (!statSync(path).isFile()) throw new F.FormatError(`referenced scene ${name} is not a regular file`, o.file);
  const data = new Uint8Array(readFileSync(path));
  if (createHash("sha256").update(data).digest("hex") !== ref.sha256.toLowerCase()) {
    throw new F.FormatError(`referenced scene ${name} has changed (SHA-256 mismatch)`, o.file);
  }
  if (F.detectFormat(data, path)?.name !== "lgs") {
    throw new UsageError(`${o.file}: its scene ${name} is not a .lgs file; this decoder reads referenced .lgs scenes only`);
  }
  return F.decodeLgs(data, { file: path });
}

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

async function main() {
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
  let result;
  try {
    result = await decoder(bytes, { ...o, file: o.input });
  } catch (e) {
    if (e instanceof F.FormatError || e instanceof UsageError) fail(e.message);
    throw e;
  }
  try {
    writeAtomic(o.output, result.ply);
  } catch (e) {
    fail(`cannot write ${o.output}: ${e.code ?? e.message}`);
  }
  process.stdout.write(`${o.input} -> ${o.output}: ${result.summary}\n`);
}

await main();
