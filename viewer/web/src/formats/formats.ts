/**
 * Which of our formats a file is: its 4-byte magic first, then its extension. Each decoder
 * registers one entry; the Node CLI (cli/decode.mjs) and the player dispatch on `name`.
 */

export interface FormatEntry {
  /** Short name the CLI and the dumpers use: "lgs", "gsv", ... */
  name: string;
  /** The container magic, 4 ASCII characters. */
  magic: string;
  /** Lower-case extensions with the dot. */
  extensions: string[];
  /** What the file holds, for messages and `--help`. */
  description: string;
}

export const FORMATS: FormatEntry[] = [
  { name: "lgs", magic: "LGS1", extensions: [".lgs"], description: "compressed Gaussian scene" },
];

/**
 * The entry for a file from its first bytes (at least 4) and, failing that, its name's
 * extension; null when neither matches.
 */
export function detectFormat(head: Uint8Array, fileName = ""): FormatEntry | null {
  if (head.length >= 4) {
    const magic = String.fromCharCode(head[0], head[1], head[2], head[3]);
    const byMagic = FORMATS.find((f) => f.magic === magic);
    if (byMagic) return byMagic;
  }
  const lower = fileName.toLowerCase();
  return FORMATS.find((f) => f.extensions.some((e) => lower.endsWith(e))) ?? null;
}
