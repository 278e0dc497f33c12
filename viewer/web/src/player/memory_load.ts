/**
 * Opening a `.m3` feature memory in the decoding worker: its scene is embedded, or a file the
 * `.m3` references (docs/formats/m3.md, "Scene references"). A reference is followed only
 * when it is a relative path that stays inside the `.m3`'s folder (as a URL: same origin,
 * under the folder's path), and the fetched bytes must match the SHA-256 the `.m3` names
 * before anything decodes them. The player reads referenced `.lgs` and SPZ v4 scenes (our
 * decoders give the exact arrays the similarity, picking and export need).
 */
import { FormatError, naming } from "../formats/errors.js";
import { decodeLgs } from "../formats/lgs.js";
import { decodeM3, type M3Memory } from "../formats/m3.js";
import { readIndex } from "../formats/container.js";
import { sha256Hex } from "../formats/sha256.js";
import { decodeSpzV4 } from "../formats/spz.js";
import type { SplatArrays } from "../formats/types.js";
import type { MemoryPayload } from "./protocol.js";
import { sniff } from "./sniff.js";

/** The URL of the scene `ref` names, relative to the `.m3` at `m3Url`; FormatError unless it
 * stays inside the `.m3`'s folder. */
export function sceneRefUrl(ref: string, m3Url: string, file: string): string {
  const bad = (why: string): never => {
    throw new FormatError(`scene reference ${JSON.stringify(ref.slice(0, 80))} ${why}`, file);
  };
  if (!ref || /[\0\\?#]/.test(ref) || ref.startsWith("/") || /^[a-z][a-z0-9+.-]*:/i.test(ref)) {
    bad("must be a relative path inside the file's folder");
  }
  if (ref.split("/").some((s) => s === "..")) bad("leads outside the file's folder");
  const base = new URL(m3Url);
  const folder = base.pathname.slice(0, base.pathname.lastIndexOf("/") + 1);
  const url = new URL(ref, base);
  if (url.origin !== base.origin || !url.pathname.startsWith(folder) || url.pathname === folder) {
    bad("leads outside the file's folder");
  }
  return url.href;
}

/** The `.m3`'s scene reference from its header ({ref, sha256}), or null when it embeds its scene. */
function readSceneRef(bytes: Uint8Array, file: string): { ref: string; sha256: string } | null {
  const h = naming(file, () => readIndex(bytes, { magic: "GSM3", what: ".m3 file", whole: false })).header as Record<string, unknown>;
  const s = h.scene;
  if (s === "embedded" || !s || typeof s !== "object" || Array.isArray(s)) return null;
  const o = s as Record<string, unknown>;
  if (typeof o.ref !== "string") return null; // decodeM3 names the fault
  if (typeof o.sha256 !== "string" || !/^[0-9a-f]{64}$/i.test(o.sha256)) {
    throw new FormatError(".m3 scene reference has no SHA-256 (64 hex digits are required)", file);
  }
  return { ref: o.ref, sha256: o.sha256.toLowerCase() };
}

/** Decode a referenced scene's bytes (`.lgs` or SPZ v4). */
function decodeScene(bytes: Uint8Array, name: string): SplatArrays {
  const kind = sniff(bytes, name);
  if (kind.reader === "lgs") return decodeLgs(bytes, { file: name });
  if (kind.reader === "spz4") return decodeSpzV4(bytes, name);
  throw new FormatError(`a ${kind.format} scene: the player reads referenced .lgs and SPZ v4 scenes (embed the scene or reference one of those)`, name);
}

export interface LoadedMemory {
  scene: SplatArrays;
  memory: MemoryPayload;
  /** Bytes fetched for the referenced scene (0 when embedded). */
  sceneBytes: number;
}

/**
 * Decode the `.m3` `bytes` fetched from `url`; `fetchBytes(url, name)` fetches a referenced
 * scene. Returns the scene to draw and what the similarity worker needs.
 */
export async function loadMemory(bytes: Uint8Array, url: string, name: string,
                                 fetchBytes: (url: string, name: string) => Promise<Uint8Array>): Promise<LoadedMemory> {
  const ref = readSceneRef(bytes, name);
  let scene: SplatArrays | undefined;
  let sceneBytes = 0;
  if (ref) {
    const sceneUrl = sceneRefUrl(ref.ref, url, name);
    const data = await fetchBytes(sceneUrl, ref.ref);
    sceneBytes = data.length;
    if ((await sha256Hex(data)) !== ref.sha256) {
      throw new FormatError(`referenced scene ${ref.ref} has changed (SHA-256 mismatch)`, name);
    }
    scene = decodeScene(data, ref.ref);
  }
  const mem: M3Memory = decodeM3(bytes, { file: name, scene });
  return {
    scene: mem.scene!,
    sceneBytes,
    memory: { count: mem.count, queryTotal: mem.queryTotal, queries: mem.queries, models: mem.models, sceneRef: mem.sceneRef?.ref ?? null },
  };
}
