/** The one error a decoder throws for bad input: names the file (when known) and the fault. */
export class FormatError extends Error {
  /** The fault alone, without the file name. */
  readonly reason: string;
  constructor(message: string, readonly file?: string) {
    super(file ? `${file}: ${message}` : message);
    this.name = "FormatError";
    this.reason = message;
  }
}

/**
 * Runs `fn`; a FormatError it throws without a file name is re-thrown naming `file`.
 * Decoders' entry points wrap their work in this, so inner code need not carry the name.
 */
export function naming<T>(file: string | undefined, fn: () => T): T {
  try {
    return fn();
  } catch (e) {
    if (e instanceof FormatError && file !== undefined && e.file === undefined) throw new FormatError(e.reason, file);
    throw e;
  }
}
