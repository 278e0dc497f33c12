/** The one error a decoder throws for bad input: names the file (when known) and the fault. */
export class FormatError extends Error {
  constructor(message: string, readonly file?: string) {
    super(file ? `${file}: ${message}` : message);
    this.name = "FormatError";
  }
}
