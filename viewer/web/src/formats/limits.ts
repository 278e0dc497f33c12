/**
 * Caps on what a decoder may allocate, checked before allocating (the same numbers as the
 * Python readers' `splat/limits.py`). A count a header declares is bounded by what the file's
 * size makes plausible; callers raise a cap for a legitimate file (`maxGaussians` options).
 */
import { FormatError } from "./errors.js";

/** Real scenes cost 8-60 bytes per Gaussian; 16 Gaussians per byte is a 100x margin. */
export const GAUSSIANS_PER_BYTE = 16;
/** ... plus this many, so that tiny files of degenerate (constant) data still decode. */
export const GAUSSIAN_SLACK = 1 << 16;
/** Decoded integer values per compressed byte (entropy streams, whole files) ... */
export const VALUES_PER_BYTE = 256;
/** ... plus this many (4M values). */
export const VALUE_SLACK = 1 << 22;
/** Default cap on one rendered image (64 Mpx). */
export const MAX_PIXELS = 1 << 26;

/** The most Gaussians a file of `nbytes` bytes may declare (`override` replaces it). */
export function gaussianCap(nbytes: number, override?: number): number {
  return override !== undefined ? override : GAUSSIANS_PER_BYTE * nbytes + GAUSSIAN_SLACK;
}

/** The most decoded values a file of `nbytes` bytes may declare in total. */
export function valueCap(nbytes: number, override?: number): number {
  return override !== undefined ? override : VALUES_PER_BYTE * nbytes + VALUE_SLACK;
}

/** `count` when `0 <= count <= cap`, else FormatError naming `what` (and how to raise the cap). */
export function requireAtMost(count: number, cap: number, what: string, hint = ""): number {
  if (count < 0) throw new FormatError(`negative ${what} (${count})`);
  if (count > cap) {
    const extra = hint ? ` (raise the cap with ${hint})` : "";
    throw new FormatError(`${what} ${count.toLocaleString("en-US")} exceeds the limit of ${cap.toLocaleString("en-US")} for this file${extra}`);
  }
  return count;
}

/** FormatError when a `width` x `height` image is over `maxPixels` (default MAX_PIXELS). */
export function checkPixels(width: number, height: number, maxPixels = MAX_PIXELS, what = "image"): void {
  if (width < 1 || height < 1) throw new FormatError(`${what} size ${width}x${height} is empty`);
  if (width * height > maxPixels) {
    throw new FormatError(`${what} of ${width}x${height} = ${width * height} pixels exceeds the limit of ${maxPixels} (raise it with maxPixels / --max-pixels)`);
  }
}
