// Descriptors handed over by a management program (--fd, --direct-fd), checked by their open flags.
import * as libc from "../../ffi/libc.ts";
import { OptionError } from "../errors.ts";
import type { Access } from "../options.ts";

/**
 * Like QEMU's fdset rule, the main descriptor must not have O_DIRECT (its writes are unaligned) and the
 * direct one must; they must be distinct file objects, not dup()s, since a dup shares the O_DIRECT flag.
 */
export function checkDescriptors(mainFd: number, directFd: number | undefined, access: Access): void {
  if ((openFlags(mainFd, "--fd", access) & libc.O_DIRECT) !== 0) {
    throw new OptionError(`--fd ${mainFd} has O_DIRECT; the main stream needs a descriptor without it (pass the O_DIRECT one as --direct-fd)`);
  }
  if (directFd === undefined) return;
  if (directFd === mainFd) throw new OptionError("--fd and --direct-fd must be two different descriptors");
  if ((openFlags(directFd, "--direct-fd", access) & libc.O_DIRECT) === 0) {
    throw new OptionError(`--direct-fd ${directFd} was opened without O_DIRECT`);
  }
}

function openFlags(fd: number, opt: string, access: Access): number {
  let flags: number;
  try {
    flags = libc.getFlags(fd);
  } catch (e) {
    throw new OptionError(`${opt} ${fd} is not an open descriptor (${(e as libc.SysError).code})`);
  }
  const acc = flags & libc.O_ACCMODE;
  const ok = access === "write" ? acc === libc.O_WRONLY || acc === libc.O_RDWR : acc === libc.O_RDONLY || acc === libc.O_RDWR;
  if (!ok) throw new OptionError(`${opt} ${fd} is not open for ${access === "write" ? "writing" : "reading"}`);
  // With O_APPEND, Linux's pwrite ignores its offset and appends: every record would land at the end.
  if (access === "write" && (flags & libc.O_APPEND) !== 0) {
    throw new OptionError(`${opt} ${fd} was opened for appending (O_APPEND, a shell's >>), which makes every write land at the end of the file; open it without (e.g. ${fd}<>FILE)`);
  }
  return flags;
}
