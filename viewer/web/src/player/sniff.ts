/** Tell the file formats apart from their first bytes (and the name where bytes cannot). */
import { detectFormat } from "../formats/formats.js";
import { isSpzV4 } from "../formats/spz.js";
import type { SparkFileType } from "./protocol.js";

export type Sniffed =
  | { reader: "spark"; fileType: SparkFileType; format: string }
  | { reader: "spz4"; format: string }
  | { reader: "lgs"; format: string }
  | { reader: "gsi"; format: string }
  | { reader: "m3"; format: string }
  | { reader: "unknown"; format: string };

const ascii = (b: Uint8Array, n: number) => String.fromCharCode(...b.subarray(0, n));

/** The reader for a file: magic bytes first, then the extension of `name`. */
export function sniff(bytes: Uint8Array, name: string): Sniffed {
  const lower = name.toLowerCase().replace(/[?#].*$/, "");
  if (isSpzV4(bytes)) return { reader: "spz4", format: "SPZ v4" };
  const ours = detectFormat(bytes, lower);
  if (ours?.name === "lgs") return { reader: "lgs", format: ".lgs" };
  if (ours?.name === "gsi") return { reader: "gsi", format: ".gsi" };
  if (ours?.name === "m3") return { reader: "m3", format: ".m3 feature memory" };
  if (ours?.name === "gsv") return { reader: "unknown", format: ".gsv" };
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) return { reader: "spark", fileType: "spz", format: "SPZ (gzip)" };
  if (bytes.length >= 4 && ascii(bytes, 4) === "ply\n") return { reader: "spark", fileType: "ply", format: lower.endsWith(".compressed.ply") ? "compressed PLY" : "PLY" };
  if (bytes.length >= 4 && bytes[0] === 0x50 && bytes[1] === 0x4b && bytes[2] === 0x03 && bytes[3] === 0x04) return { reader: "spark", fileType: "pcsogszip", format: "SOG" };
  if (lower.endsWith(".ksplat")) return { reader: "spark", fileType: "ksplat", format: "ksplat" };
  if (lower.endsWith(".splat")) return { reader: "spark", fileType: "splat", format: ".splat" };
  return { reader: "unknown", format: "unknown" };
}
