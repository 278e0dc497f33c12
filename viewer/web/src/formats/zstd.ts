/**
 * Bounded zstd decompression (fzstd). A frame's own size fields are not trusted: the caller
 * states the exact size it expects (from its stream or header, itself capped by the file
 * size), the output is collected into a buffer of that size as it streams, and anything
 * else (more or fewer bytes, a corrupt frame, trailing data) is a FormatError.
 */
import { Decompress } from "fzstd";
import { FormatError } from "./errors.js";

/** Largest window accepted above the expected size (a writer that knows the size declares it). */
export const MAX_EXTRA_WINDOW = 1 << 20;

/**
 * The frame header's window size (RFC 8878, section 3.1.1.1): what the decompressor allocates
 * for history. FormatError for what is not a plain zstd frame (skippable frames, dictionaries,
 * reserved bits) or when a declared content size differs from `expected`.
 */
function checkFrameHeader(d: Uint8Array, expected: number, what: string): number {
  if (d.length < 6 || d[0] !== 0x28 || d[1] !== 0xb5 || d[2] !== 0x2f || d[3] !== 0xfd) {
    throw new FormatError(`${what}: not a zstd frame`);
  }
  const fhd = d[4];
  const fcsFlag = fhd >> 6;
  const single = (fhd >> 5) & 1;
  if (fhd & 8) throw new FormatError(`${what}: corrupt zstd frame header (reserved bit set)`);
  const dictBytes = [0, 1, 2, 4][fhd & 3];
  let p = 5;
  let window = 0;
  if (!single) {
    const wd = d[p++];
    const base = 2 ** (10 + (wd >> 3));
    window = base + (base / 8) * (wd & 7);
  }
  let dict = 0;
  for (let k = 0; k < dictBytes; k++) dict += (d[p + k] ?? 0) * 2 ** (8 * k);
  p += dictBytes;
  if (dict !== 0) throw new FormatError(`${what}: zstd frame needs a dictionary`);
  const fcsBytes = fcsFlag === 0 ? single : [0, 2, 4, 8][fcsFlag];
  if (p + fcsBytes > d.length) throw new FormatError(`${what}: truncated zstd frame header`);
  if (fcsBytes) {
    let fcs = 0;
    for (let k = 0; k < fcsBytes; k++) fcs += d[p + k] * 2 ** (8 * k);
    if (fcsBytes === 2) fcs += 256;
    if (fcs !== expected) throw new FormatError(`${what}: zstd frame declares ${fcs} bytes, expected ${expected}`);
    if (single) window = fcs;
  }
  return window;
}

/**
 * Decompress one zstd frame that must produce exactly `size` bytes (`size` comes from the
 * caller, already bounded). `what` names the stream in messages.
 */
export function zstdDecompressExact(frame: Uint8Array, size: number, what = "zstd data"): Uint8Array {
  const window = checkFrameHeader(frame, size, what);
  if (window > Math.max(size, MAX_EXTRA_WINDOW)) {
    throw new FormatError(`${what}: zstd window of ${window} bytes is larger than the ${size} bytes declared`);
  }
  const out = new Uint8Array(size);
  let got = 0;
  let over = false;
  const dec = new Decompress((chunk: Uint8Array) => {
    if (got + chunk.length > size) {
      over = true;
      throw new FormatError(`${what}: decompressed to more than the ${size} bytes declared`);
    }
    out.set(chunk, got);
    got += chunk.length;
  });
  try {
    dec.push(frame, true);
  } catch (e) {
    if (e instanceof FormatError) throw e;
    if (over) throw new FormatError(`${what}: decompressed to more than the ${size} bytes declared`);
    const msg = e instanceof Error ? e.message : String(e);
    throw new FormatError(`${what}: corrupt zstd data (${msg})`);
  }
  if (got !== size) throw new FormatError(`${what}: decompressed to ${got} bytes, expected ${size}`);
  return out;
}
