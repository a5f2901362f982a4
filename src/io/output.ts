// The output file of a save or rewrite: opened (or handed over as a descriptor), cut back to the stream's
// start, and on failure put back so that nothing at its name can pass for a finished file.
import { existsSync, unlinkSync } from "node:fs";
import * as libc from "../../ffi/libc.ts";
import { MainFile } from "./main-file.ts";

export class OutputFile {
  private constructor(
    readonly main: MainFile,
    readonly name: string,
    readonly path: string | undefined,
    readonly offset: number,
    /** ramsnap created the file (so a failure removes it rather than cutting it back). */
    readonly created: boolean,
  ) {}

  static open(target: { path?: string; fd?: number }, offset: number): OutputFile {
    const created = target.path !== undefined && !existsSync(target.path);
    const main = target.path !== undefined ? MainFile.openWrite(target.path) : MainFile.fromFd(target.fd!);
    const out = new OutputFile(main, target.path ?? `fd ${target.fd}`, target.path, offset, created);
    // Like QEMU since 9.1: keep what precedes the stream, drop everything after it.
    libc.ftruncate(main.fd, offset, out.name);
    return out;
  }

  /** Undoes a failed write: a file ramsnap created is removed, another is cut back to the stream's start. */
  abandon(): void {
    try {
      if (this.path !== undefined && this.created) unlinkSync(this.path);
      else if (this.path !== undefined) libc.ftruncate(this.main.fd, this.offset, this.name);
    } catch {
      // The original error matters more than a failed clean-up; the file still has no EOF.
    }
  }

  close(): void {
    this.main.close();
  }
}
