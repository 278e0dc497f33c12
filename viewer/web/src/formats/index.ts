/** splatkit's decoders: ES modules with no DOM, for Web Workers and Node. */
export { FormatError } from "./errors.js";
export type { SplatArrays } from "./types.js";
export { decodeSpzV4, isSpzV4 } from "./spz.js";
