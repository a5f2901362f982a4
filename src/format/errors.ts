import { RamsnapError } from "../errors.ts";

/** The file is not what it should be. The message names the file, the byte offset and what was expected. */
export class FormatError extends RamsnapError {
  override name = "FormatError";
  readonly exitCode = 1;
  constructor(
    readonly file: string,
    readonly offset: number,
    readonly detail: string,
  ) {
    super(`${file}: at offset ${offset} (0x${offset.toString(16)}): ${detail}`);
  }
}

/** A pack (docs/pack-format.md) is not what it should be; the message names the pack, the offset or the extent. */
export class PackError extends RamsnapError {
  override name = "PackError";
  readonly exitCode = 1;
}
