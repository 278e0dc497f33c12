/**
 * The chunked container every splatkit codec writes (docs/formats/container.md):
 * magic, version, JSON header, CRC-checked chunk table, payloads back to back.
 *
 * `readIndex` parses and verifies the prefix (header and table) without touching payloads,
 * so a reader holding only the first bytes of a file (an HTTP range) can locate any chunk;
 * `readChunk` verifies one payload; `unpackContainer` verifies a whole file.
 */
import { readU32, readU64 } from "./bytes.js";
import { crc32 } from "./crc32.js";
import { FormatError } from "./errors.js";
import { parseJsonHeader, type JsonObject } from "./header.js";

/** Largest JSON header accepted (64 MiB). */
export const MAX_HEADER = 64 << 20;
/** Most chunks a table may hold. */
export const MAX_CHUNKS = 1 << 20;
/** Bytes of the fixed prefix: magic, version, reserved, header length. */
export const PREFIX_BYTES = 12;
/** Bytes of one table entry: tag, u64 length, u32 CRC. */
export const ENTRY_BYTES = 16;

/** The parsed, verified prefix of a container: enough to locate any chunk. */
export interface ContainerIndex {
  magic: string;
  version: number;
  header: JsonObject;
  /** Per chunk: 4-character ASCII tag, payload length, CRC-32. */
  tags: string[];
  lengths: number[];
  crcs: number[];
  /** starts[i] = byte offset of chunk i; starts[K] = the file size the table implies. */
  starts: number[];
  /** Offset of the first payload byte (= starts[0]). */
  payloadStart: number;
}

/** Options of `readIndex` / `unpackContainer`. */
export interface ContainerOptions {
  /** The codec's 4-byte ASCII magic, e.g. "LGS1". */
  magic: string;
  /** Reject versions above this. */
  maxVersion?: number;
  /** What the file is, for messages (".lgs file"). */
  what?: string;
  /** `data` is the whole file: every chunk must end inside it (default true). */
  whole?: boolean;
}

function magicString(d: Uint8Array): string {
  return String.fromCharCode(d[0], d[1], d[2], d[3]);
}

/**
 * How many leading bytes `readIndex` needs, judging from the `prefix` fetched so far: 12 for
 * the fixed prefix, then 20 + header length, then the whole table. Fetch until the answer is
 * at most `prefix.length`. Throws FormatError for an implausible header length or table.
 */
export function indexBytesNeeded(prefix: Uint8Array): number {
  if (prefix.length < PREFIX_BYTES) return PREFIX_BYTES;
  const hlen = readU32(prefix, 8);
  if (hlen > MAX_HEADER) throw new FormatError(`header length ${hlen} is implausible`);
  const tablePos = PREFIX_BYTES + hlen + 4;
  if (prefix.length < tablePos + 4) return tablePos + 4;
  const count = readU32(prefix, tablePos);
  if (count > MAX_CHUNKS) throw new FormatError(`chunk table of ${count} entries is implausible`);
  return tablePos + 4 + count * ENTRY_BYTES + 4;
}

/** Parse and verify the header and chunk table (not the payloads). */
export function readIndex(data: Uint8Array, opts: ContainerOptions): ContainerIndex {
  const what = opts.what ?? "container";
  const whole = opts.whole ?? true;
  const size = data.length;
  if (size < PREFIX_BYTES) {
    throw new FormatError(`truncated ${what}: ${size} bytes is shorter than the ${PREFIX_BYTES}-byte prefix`);
  }
  const magic = magicString(data);
  if (magic !== opts.magic) {
    throw new FormatError(`not a ${what}: magic ${JSON.stringify(magic)}, expected ${JSON.stringify(opts.magic)}`);
  }
  const version = data[4] | (data[5] << 8);
  if (opts.maxVersion !== undefined && version > opts.maxVersion) {
    throw new FormatError(`${what} version ${version} is newer than this reader supports (<= ${opts.maxVersion})`);
  }
  const hlen = readU32(data, 8);
  if (hlen > MAX_HEADER) throw new FormatError(`header length ${hlen} is implausible`);
  const end = PREFIX_BYTES + hlen;
  if (size < end + 8) throw new FormatError(`truncated ${what}: header needs ${end + 8} bytes, file has ${size}`);
  if (crc32(data.subarray(0, end)) !== readU32(data, end)) {
    throw new FormatError(`${what} header checksum mismatch (corrupt file)`);
  }
  const header = parseJsonHeader(data.subarray(PREFIX_BYTES, end), `${what} header`);
  const pos = end + 4;
  const count = readU32(data, pos);
  // the table must fit the bytes present: this caps the count by the file size
  if (count > MAX_CHUNKS || size < pos + 4 + count * ENTRY_BYTES + 4) {
    throw new FormatError(`truncated or corrupt ${what}: chunk table of ${count} entries does not fit`);
  }
  const tend = pos + 4 + count * ENTRY_BYTES;
  if (crc32(data.subarray(pos, tend)) !== readU32(data, tend)) {
    throw new FormatError(`${what} chunk table checksum mismatch (corrupt file)`);
  }
  const tags: string[] = new Array(count);
  const lengths: number[] = new Array(count);
  const crcs: number[] = new Array(count);
  const starts: number[] = new Array(count + 1);
  const payloadStart = tend + 4;
  starts[0] = payloadStart;
  for (let i = 0; i < count; i++) {
    const e = pos + 4 + i * ENTRY_BYTES;
    for (let k = 0; k < 4; k++) {
      if (data[e + k] > 127) throw new FormatError(`chunk ${i} has a non-ASCII tag`);
    }
    tags[i] = magicString(data.subarray(e, e + 4));
    lengths[i] = readU64(data, e + 4, `${what} chunk table`);
    crcs[i] = readU32(data, e + 12);
    starts[i + 1] = starts[i] + lengths[i];
    if (starts[i + 1] > Number.MAX_SAFE_INTEGER) throw new FormatError(`${what}: chunk ${i} ends implausibly far`);
  }
  if (whole && starts[count] > size) {
    let bad = 0;
    while (starts[bad + 1] <= size) bad++;
    throw new FormatError(`truncated ${what}: chunk ${bad} ('${tags[bad]}') ends at byte ${starts[bad + 1]}, file has ${size}`);
  }
  return { magic, version, header, tags, lengths, crcs, starts, payloadStart };
}

/**
 * Chunk `i`'s payload (a view into `data`), CRC verified. `data` holds the file from byte
 * `offset` on (0: the whole file; a range reader passes the chunk's own bytes and its start).
 */
export function readChunk(data: Uint8Array, index: ContainerIndex, i: number, what = "container", offset = 0): Uint8Array {
  if (!(i >= 0 && i < index.tags.length)) throw new RangeError(`chunk ${i} does not exist`);
  const start = index.starts[i] - offset;
  const stop = start + index.lengths[i];
  if (start < 0 || stop > data.length) {
    throw new FormatError(`truncated ${what}: chunk ${i} ('${index.tags[i]}') ends at byte ${index.starts[i + 1]}, have ${data.length + offset}`);
  }
  const payload = data.subarray(start, stop);
  if (crc32(payload) !== index.crcs[i]) {
    throw new FormatError(`${what} chunk ${i} ('${index.tags[i]}') checksum mismatch (corrupt data)`);
  }
  return payload;
}

/** One chunk: its tag and payload. */
export interface Chunk {
  tag: string;
  data: Uint8Array;
}

/** A whole verified container. */
export class Container {
  constructor(readonly index: ContainerIndex, readonly chunks: Chunk[]) {}
  get magic(): string { return this.index.magic; }
  get version(): number { return this.index.version; }
  get header(): JsonObject { return this.index.header; }

  /** The first chunk with this tag (FormatError when absent). */
  get(tag: string): Uint8Array {
    for (const c of this.chunks) if (c.tag === tag) return c.data;
    throw new FormatError(`missing chunk '${tag}'`);
  }

  /** Every chunk with this tag, in order. */
  all(tag: string): Uint8Array[] {
    return this.chunks.filter((c) => c.tag === tag).map((c) => c.data);
  }

  has(tag: string): boolean {
    return this.chunks.some((c) => c.tag === tag);
  }
}

/** Parse and verify a whole container: both CRCs, every payload CRC, no trailing bytes. */
export function unpackContainer(data: Uint8Array, opts: ContainerOptions): Container {
  const what = opts.what ?? "container";
  const index = readIndex(data, { ...opts, whole: true });
  const total = index.starts[index.tags.length];
  if (total !== data.length) throw new FormatError(`${what} has ${data.length - total} trailing bytes after the last chunk`);
  const chunks = index.tags.map((tag, i) => ({ tag, data: readChunk(data, index, i, what) }));
  return new Container(index, chunks);
}
