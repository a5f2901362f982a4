// How a case went: the outcome of each operation (ok or the class of its error), whether an error is one
// of the clean kinds a reader may fail with, and the failures a case reports.
import { ArgumentError, ShortIoError, SysError } from "../../ffi/libc.ts";
import { ChannelError, IntegrityError, OptionError, RefusedError } from "../../src/errors.ts";
import { FormatError } from "../../src/format/errors.ts";

export type Op = "inspect" | "verify" | "restore";

/** The error classes a reader may fail with. */
const CLEAN: [string, new (...a: any[]) => Error][] = [
  ["FormatError", FormatError],
  ["OptionError", OptionError],
  ["RefusedError", RefusedError],
  ["IntegrityError", IntegrityError],
  ["ChannelError", ChannelError],
  ["SysError", SysError],
  ["ShortIoError", ShortIoError],
];

/**
 * errnos a user can act on: the disk is full or failing, memory or descriptors ran out, a permission or
 * a missing file. Anything else from the kernel while reading a damaged file (EINVAL, EFAULT, EBADF,
 * EOVERFLOW, ...) means an offset, length or address taken from the file reached a system call unchecked:
 * the parser should have refused the file with a FormatError naming what is wrong.
 */
export const ACTIONABLE_ERRNOS = new Set(["ENOSPC", "EDQUOT", "EIO", "ENOMEM", "EMFILE", "ENFILE", "EACCES", "EPERM", "EROFS", "ENOENT", "EFBIG"]);

/**
 * Names an outcome: "ok", a clean error class, or null for an unclean error. A ChannelError is clean only
 * when it wraps an actionable errno, a short read or a channel that stopped: anything else is an error a
 * Worker threw that the pool passed on (a TypeError in a channel looks like a ChannelError from outside).
 * A SysError is clean only with an actionable errno.
 */
export function classify(e: unknown): { cls: string; clean: boolean; message: string } {
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  if (e instanceof ArgumentError) return { cls: "ArgumentError", clean: false, message };
  for (const [name, C] of CLEAN) {
    if (!(e instanceof C)) continue;
    if (e instanceof ChannelError) {
      const ok = (e.code !== undefined && ACTIONABLE_ERRNOS.has(e.code)) || /only \d+ of \d+ bytes at offset \d+/.test(e.message) || /channel \d+ stopped unexpectedly/.test(e.message);
      return { cls: name, clean: ok, message };
    }
    if (e instanceof SysError) return { cls: name, clean: ACTIONABLE_ERRNOS.has(e.code), message };
    return { cls: name, clean: true, message };
  }
  return { cls: e instanceof Error ? e.constructor.name : typeof e, clean: false, message };
}

export interface CaseFailure {
  case: number;
  seed: string;
  kind: "unclean-error" | "slow" | "hang" | "crash" | "wrote-outside" | "input-changed" | "target" | "inconsistent" | "baseline" | "restore-mismatch" | "leak";
  op?: Op;
  detail: string;
  steps: string[];
}

export interface CaseResult {
  case: number;
  seed: string;
  outcome: Record<Op, string>;
  ms: number;
  failures: CaseFailure[];
}


/** An unclean error as a failure's detail: its message and the top of its stack. */
export function uncleanDetail(e: unknown): string {
  return `${classify(e).message}${e instanceof Error && e.stack ? `\n${e.stack.split("\n").slice(1, 6).join("\n")}` : ""}`;
}
