// The output file of a save or rewrite. With a path, everything is written to a temporary file beside
// the target and renamed over it only once complete and on disk: a crash or kill -9 at any moment leaves
// either the previous file or nothing at the target name, never a partial one. With a descriptor handed
// over by a caller there is no name to rename; the file is valid only once its EOF is written.
import { existsSync, readdirSync, statSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { OptionError } from "../errors.ts";
import { refuseIfMappedPrivately } from "./mapped-by.ts";
import { MainFile } from "./main-file.ts";

/** The temporary name a save of `target` is written under: `.NAME.ramsnap-PID-RANDOM.tmp` beside it. */
export function temporaryBeside(target: string): string {
  return join(dirname(target), `.${basename(target)}.ramsnap-${process.pid}-${Math.random().toString(36).slice(2, 8)}.tmp`);
}

const TEMPORARY = /^\.(.+)\.ramsnap-(\d+)-[a-z0-9]+\.tmp$/;

/** Whether process `pid` exists (one of another user's counts: signalling it is refused, not impossible). */
export const processAlive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM"; // someone else's process: alive
  }
};

/** ramsnap's temporary files in `dir` whose writer is gone (killed: kill -9, a power loss, an OOM kill). */
export function staleTemporaries(dir: string, target?: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  return names
    .filter((n) => {
      const m = TEMPORARY.exec(n);
      return m !== null && (target === undefined || m[1] === basename(target)) && !processAlive(Number(m[2]));
    })
    .map((n) => join(dir, n));
}

/** Removes what an earlier, killed save of `target` left beside it; returns what it removed. */
export function removeStaleTemporaries(target: string): string[] {
  const stale = staleTemporaries(dirname(target), target);
  for (const p of stale) libc.unlink(p);
  return stale;
}

/** Makes a file written under a temporary name durable and visible under its own: fsync, rename, fsync of the folder. */
export function renameDurably(temporary: string, target: string): void {
  const fd = libc.open(temporary, libc.O_RDONLY);
  try {
    libc.fsync(fd, temporary);
  } finally {
    libc.close(fd, temporary);
  }
  libc.rename(temporary, target);
  libc.fsyncDir(dirname(target));
}

export class OutputFile {
  #done = false;
  /** Temporary files of earlier, killed saves of the same target, removed when this one began. */
  staleRemoved: string[] = [];
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
    const stale = removeStaleTemporaries(path);
    const tmp = temporaryBeside(path);
    const main = MainFile.openWrite(tmp, libc.O_CREAT | libc.O_EXCL, path);
    const out = new OutputFile(main, path, tmp, path, offset);
    out.staleRemoved = stale;
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
