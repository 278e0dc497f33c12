/** Bounded little-endian byte reading and LEB128 varints: every read checks the bytes exist. */
import { FormatError } from "./errors.js";

/** 2^32 as a number (the high word's weight in a u64). */
export const TWO32 = 4294967296;

/**
 * A cursor over a byte array that never reads past its end: a short read is a
 * `FormatError` ("truncated <what>").
 */
export class ByteReader {
  pos: number;
  constructor(readonly data: Uint8Array, start = 0, readonly what = "data") {
    this.pos = start;
  }

  /** Bytes left after the cursor. */
  get remaining(): number {
    return this.data.length - this.pos;
  }

  private need(k: number): void {
    if (k > this.data.length - this.pos) {
      throw new FormatError(`truncated ${this.what}: needs ${k} more bytes at offset ${this.pos}, has ${this.data.length - this.pos}`);
    }
  }

  u8(): number {
    this.need(1);
    return this.data[this.pos++];
  }

  u16(): number {
    this.need(2);
    const d = this.data, p = this.pos;
    this.pos += 2;
    return d[p] | (d[p + 1] << 8);
  }

  u32(): number {
    this.need(4);
    const v = readU32(this.data, this.pos);
    this.pos += 4;
    return v;
  }

  /** A u64 as a number; FormatError when it exceeds 2^53 (no exact double). */
  u64(): number {
    this.need(8);
    const v = readU64(this.data, this.pos, this.what);
    this.pos += 8;
    return v;
  }

  /** Unsigned LEB128 (at most 2^53 - 1, ten bytes). */
  varint(): number {
    const [v, p] = readVarint(this.data, this.pos, this.what);
    this.pos = p;
    return v;
  }

  /** A view (not a copy) of the next `k` bytes. */
  bytes(k: number): Uint8Array {
    this.need(k);
    const out = this.data.subarray(this.pos, this.pos + k);
    this.pos += k;
    return out;
  }

  /** A view of every byte left. */
  rest(): Uint8Array {
    const out = this.data.subarray(this.pos);
    this.pos = this.data.length;
    return out;
  }
}

/** u32 little-endian at `p` (the caller checked the bytes exist). */
export function readU32(d: Uint8Array, p: number): number {
  return (d[p] | (d[p + 1] << 8) | (d[p + 2] << 16) | (d[p + 3] << 24)) >>> 0;
}

/** u64 little-endian at `p` as a number; FormatError above 2^53 - 1. */
export function readU64(d: Uint8Array, p: number, what = "data"): number {
  const lo = readU32(d, p);
  const hi = readU32(d, p + 4);
  if (hi >= 0x200000) throw new FormatError(`${what}: a 64-bit field (${hi} * 2^32 + ${lo}) is implausibly large`);
  return hi * TWO32 + lo;
}

/**
 * Unsigned LEB128 at `pos`: [value, next position]. FormatError when the bytes run out or
 * the value needs more than 53 bits (no count or length in our formats comes near that).
 */
export function readVarint(d: Uint8Array, pos: number, what = "data"): [number, number] {
  let x = 0;
  let mul = 1;
  for (;;) {
    if (pos >= d.length) throw new FormatError(`truncated varint in ${what}`);
    const b = d[pos++];
    x += (b & 0x7f) * mul;
    if (!(b & 0x80)) {
      if (x > Number.MAX_SAFE_INTEGER) throw new FormatError(`varint too large in ${what}`);
      return [x, pos];
    }
    mul *= 128;
    if (mul > 2 ** 63) throw new FormatError(`varint too long in ${what}`);
  }
}

/** Zigzag-decode a non-negative integer (number, exact below 2^53): 0, 1, 2, 3 -> 0, -1, 1, -2. */
export function unzigzag(u: number): number {
  return u % 2 === 0 ? u / 2 : -(u + 1) / 2;
}
