/**
 * Safe JSON headers: strict parsing with bounded numbers and nesting, and typed field getters
 * (the rules of docs/formats/container.md, as `splat/header.py` applies them).
 */
import { FormatError } from "./errors.js";

/** Deepest nesting of arrays/objects a header may use. */
export const MAX_DEPTH = 32;
/** Longest integer literal accepted (covers every u64). */
export const MAX_INT_DIGITS = 20;
/** Longest number literal accepted. */
const MAX_NUMBER_CHARS = 64;

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

const UTF8 = new TextDecoder("utf-8", { fatal: true });

/** True for a JSON object (not null, not an array). */
export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/**
 * A JSON object from UTF-8 bytes, or FormatError naming `what` and the fault: invalid UTF-8
 * or JSON, NaN/Infinity, a number that overflows a float64, an integer of more than 20
 * digits, nesting deeper than 32 levels, a NUL character in a string or key, not an object.
 */
export function parseJsonHeader(raw: Uint8Array, what = "header"): JsonObject {
  let text: string;
  try {
    text = UTF8.decode(raw);
  } catch {
    throw new FormatError(`${what} is not valid JSON (not UTF-8)`);
  }
  scanLiterals(text, what);
  let obj: unknown;
  try {
    obj = JSON.parse(text);
  } catch {
    throw new FormatError(`${what} is not valid JSON`);
  }
  if (!isObject(obj)) throw new FormatError(`${what} must hold a JSON object`);
  checkTree(obj, what);
  return obj;
}

/** Nesting depth and number literal lengths, checked on the text (before JSON.parse). */
function scanLiterals(s: string, what: string): void {
  let depth = 0;
  const n = s.length;
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 34) { // a string: skip it, escapes included
      for (i++; i < n; i++) {
        const d = s.charCodeAt(i);
        if (d === 92) i++;
        else if (d === 34) break;
      }
    } else if (c === 91 || c === 123) {
      if (++depth > MAX_DEPTH) throw new FormatError(`${what} holds nesting deeper than ${MAX_DEPTH} levels`);
    } else if (c === 93 || c === 125) {
      depth--;
    } else if (c === 45 || (c >= 48 && c <= 57)) {
      let j = i;
      let isInt = true;
      let digits = 0;
      for (; j < n; j++) {
        const d = s.charCodeAt(j);
        if (d >= 48 && d <= 57) digits++;
        else if (d === 46 || d === 101 || d === 69) isInt = false;
        else if (d !== 45 && d !== 43) break;
      }
      if (j - i > MAX_NUMBER_CHARS) throw new FormatError(`${what} holds a number literal of ${j - i} characters`);
      if (isInt && digits > MAX_INT_DIGITS) throw new FormatError(`${what} holds an integer of ${digits} digits`);
      i = j - 1;
    }
  }
}

/** Non-finite numbers (an overflowing literal parses to Infinity) and NUL characters. */
function checkTree(root: Json, what: string): void {
  const stack: Json[] = [root];
  while (stack.length) {
    const o = stack.pop() as Json;
    if (typeof o === "number") {
      if (!Number.isFinite(o)) throw new FormatError(`${what} holds a non-finite number`);
    } else if (typeof o === "string") {
      if (o.includes("\0")) throw new FormatError(`${what} holds a NUL character in a string`);
    } else if (Array.isArray(o)) {
      for (const v of o) stack.push(v);
    } else if (o !== null && typeof o === "object") {
      for (const k of Object.keys(o)) {
        if (k.includes("\0")) throw new FormatError(`${what} holds a NUL character in a key`);
        stack.push(o[k]);
      }
    }
  }
}

function short(v: unknown): string {
  let r: string;
  try {
    r = v === undefined ? "missing" : JSON.stringify(v);
  } catch {
    r = String(v);
  }
  return r.length <= 40 ? r : r.slice(0, 37) + "...";
}

/** `h[key]` as an integer in [lo, hi] (`dflt` when absent and given). */
export function getInt(h: unknown, key: string, lo: number, hi: number, what = "header", dflt?: number): number {
  let v = isObject(h) ? h[key] : undefined;
  if (v === undefined && dflt !== undefined) v = dflt;
  if (typeof v !== "number" || !Number.isInteger(v) || v < lo || v > hi) {
    throw new FormatError(`${what} field '${key}' = ${short(v)} is not an integer in [${lo}, ${hi}]`);
  }
  return v;
}

/** `h[key]` as a finite number in [lo, hi] (`dflt` when absent and given). */
export function getFloat(h: unknown, key: string, lo: number, hi: number, what = "header", dflt?: number): number {
  let v = isObject(h) ? h[key] : undefined;
  if (v === undefined && dflt !== undefined) v = dflt;
  if (typeof v !== "number" || !Number.isFinite(v) || v < lo || v > hi) {
    throw new FormatError(`${what} field '${key}' = ${short(v)} is not a number in [${lo}, ${hi}]`);
  }
  return v;
}

/** `h[key]` when it is a JSON object. */
export function getObject(h: unknown, key: string, what = "header"): JsonObject {
  const v = isObject(h) ? h[key] : undefined;
  if (!isObject(v)) throw new FormatError(`${what} field '${key}' is missing or is not an object`);
  return v;
}

/** `h[key]` when it is an array. */
export function getArray(h: unknown, key: string, what = "header"): Json[] {
  const v = isObject(h) ? h[key] : undefined;
  if (!Array.isArray(v)) throw new FormatError(`${what} field '${key}' is missing or is not an array`);
  return v;
}

/** `h[key]` when it is a string (`dflt` when absent and given). */
export function getString(h: unknown, key: string, what = "header", dflt?: string): string {
  let v = isObject(h) ? h[key] : undefined;
  if (v === undefined && dflt !== undefined) v = dflt;
  if (typeof v !== "string") throw new FormatError(`${what} field '${key}' is missing or is not a string`);
  return v;
}

/** An array of exactly `count` finite numbers with |v| <= `bound` (a quantizer's lo or hi). */
export function getNumbers(h: unknown, key: string, count: number, bound: number, what = "header"): Float64Array {
  const v = isObject(h) ? h[key] : undefined;
  if (!Array.isArray(v) || v.length !== count) {
    throw new FormatError(`${what} field '${key}' must list ${count} numbers`);
  }
  const out = new Float64Array(count);
  for (let i = 0; i < count; i++) {
    const x = v[i];
    if (typeof x !== "number" || !Number.isFinite(x) || Math.abs(x) > bound) {
      throw new FormatError(`${what} field '${key}' holds ${short(x)}, not a finite number within +-${bound}`);
    }
    out[i] = x;
  }
  return out;
}
