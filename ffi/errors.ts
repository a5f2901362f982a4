// Typed errors raised by the libc layer. Everything above ffi/ sees libc failures only through these.

const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM", 2: "ENOENT", 3: "ESRCH", 4: "EINTR", 5: "EIO", 6: "ENXIO", 7: "E2BIG", 9: "EBADF",
  11: "EAGAIN", 12: "ENOMEM", 13: "EACCES", 14: "EFAULT", 16: "EBUSY", 17: "EEXIST", 18: "EXDEV",
  19: "ENODEV", 20: "ENOTDIR", 21: "EISDIR", 22: "EINVAL", 23: "ENFILE", 24: "EMFILE", 26: "ETXTBSY",
  27: "EFBIG", 28: "ENOSPC", 29: "ESPIPE", 30: "EROFS", 32: "EPIPE", 36: "ENAMETOOLONG", 38: "ENOSYS",
  39: "ENOTEMPTY", 40: "ELOOP", 61: "ENODATA", 75: "EOVERFLOW", 88: "ENOTSOCK", 95: "EOPNOTSUPP",
  98: "EADDRINUSE", 104: "ECONNRESET", 110: "ETIMEDOUT", 111: "ECONNREFUSED", 122: "EDQUOT",
};

export function errnoName(errno: number): string {
  return ERRNO_NAMES[errno] ?? `errno ${errno}`;
}

/** Base of the libc layer's errors: a system call failed or was refused an argument (CLI exit status 1). */
export class LibcError extends Error {}

/** A libc call returned failure. `code` is the errno name (ENOSPC, EINVAL, ...). */
export class SysError extends LibcError {
  override name = "SysError";
  readonly code: string;
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly path: string | undefined,
    detail: string,
  ) {
    const code = errnoName(errno);
    super(`${call}${path ? ` ${path}` : ""}: ${code} (${detail})`);
    this.code = code;
  }
}

/** An argument was refused before it reached libc (NaN offset, misaligned pointer, ...). */
export class ArgumentError extends LibcError {
  override name = "ArgumentError";
  constructor(
    readonly call: string,
    message: string,
  ) {
    super(`${call}: ${message}`);
  }
}

/** A positional read or write moved fewer bytes than asked and cannot continue (end of file, full device). */
export class ShortIoError extends LibcError {
  override name = "ShortIoError";
  constructor(
    readonly call: string,
    readonly path: string | undefined,
    readonly offset: number,
    readonly expected: number,
    readonly got: number,
  ) {
    super(`${call}${path ? ` ${path}` : ""}: only ${got} of ${expected} bytes at offset ${offset}`);
  }
}
