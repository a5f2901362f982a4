// The output file of a save or rewrite. With a path, everything is written to a temporary file beside
// the target and renamed over it only once complete and on disk: a crash or kill -9 at any moment leaves
// either the previous file or nothing at the target name, never a partial one. With a descriptor handed
// over by a caller there is no name to rename; the file is valid only once its EOF is written.
import { existsSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { OptionError } from "../errors.ts";
import { refuseIfMappedPrivately } from "./mapped-by.ts";
import { MainFile } from "./main-file.ts";

export class OutputFile {
  #done = false;
  private constructor(
    readonly main: MainFile,
    /** Names the output in messages: the target path, or "fd N". */
    readonly name: string,
    /** Where bytes go now: the temporary file (path mode) or undefined (descriptor mode). */
    readonly writePath: string | undefined,
    readonly target: string | undefined,
    readonly offset: number,
  ) {}

  static open(target: { path?: string; fd?: number }, offset: number): OutputFile {
    if (target.path === undefined) {
      const main = MainFile.fromFd(target.fd!);
      // Written in place: not while a lazily restored guest maps it.
      refuseIfMappedPrivately(main.fd, `fd ${target.fd}`);
      const out = new OutputFile(main, `fd ${target.fd}`, undefined, undefined, offset);
      // Like QEMU since 9.1: keep what precedes the stream, drop everything after it.
      libc.ftruncate(main.fd, offset, out.name);
      return out;
    }
    const path = target.path;
    // Checked first: otherwise the whole file is written, and only the final rename fails (EISDIR).
    if (statSync(path, { throwIfNoEntry: false })?.isDirectory()) throw new OptionError(`${path} is a directory; give a file name`);
    const tmp = join(dirname(path), `.${basename(path)}.ramsnap-${process.pid}-${Math.random().toString(36).slice(2, 8)}.tmp`);
    const main = MainFile.openWrite(tmp, libc.O_CREAT | libc.O_EXCL, path);
    const out = new OutputFile(main, path, tmp, path, offset);
    try {
      if (offset > 0 && existsSync(path)) out.#copyPrefix(path);
      libc.ftruncate(main.fd, offset, tmp);
    } catch (e) {
      out.abandon();
      out.close();
      throw e;
    }
    return out;
  }

  /** The bytes before the stream belong to someone else (QEMU's offset=): carry them into the new file. */
  #copyPrefix(path: string): void {
    const old = MainFile.openRead(path);
    try {
      const STEP = 1 << 20;
      for (let at = 0; at < Math.min(this.offset, old.size); at += STEP) {
        this.main.writeAt(at, old.readAt(at, Math.min(STEP, this.offset - at)));
      }
    } finally {
      old.close();
    }
  }

  /** Makes the finished file durable and visible under its name. Call after the EOF is written. */
  commit(): void {
    libc.fsync(this.main.fd, this.name);
    if (this.writePath !== undefined && this.target !== undefined) {
      libc.rename(this.writePath, this.target);
      libc.fsyncDir(dirname(this.target));
    }
    this.#done = true;
  }

  /** Undoes a failed write: the temporary file goes, the target keeps whatever it held before. */
  abandon(): void {
    if (this.#done || this.writePath === undefined) return;
    this.#done = true;
    try {
      libc.unlink(this.writePath);
    } catch {
      // The original error matters more than a failed clean-up; the temporary file has no EOF anyway.
    }
  }

  close(): void {
    this.main.close();
  }
}
