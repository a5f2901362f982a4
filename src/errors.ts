// The one error family of ramsnap. Every error raised on purpose is a RamsnapError whose type carries the
// exit status the CLI uses, so the CLI needs no list of classes: wrong arguments exit 2, facts about
// files, file systems and QEMU exit 1, a cancelled operation 130. The libc layer keeps its own classes
// (ffi/errors.ts, all LibcError: exit 1); anything else reaching the CLI is a bug in ramsnap.

export abstract class RamsnapError extends Error {
  /** The CLI's exit status for this kind of error. */
  abstract readonly exitCode: number;
}

/** A wrong, missing or conflicting argument; nothing was done. */
export class OptionError extends RamsnapError {
  override name = "OptionError";
  readonly exitCode = 2;
}

/**
 * The files, the file system or the QEMU at hand do not allow what was asked: a classic stream where
 * mapped-ram is needed, too little free space, a malformed manifest. The arguments were fine.
 */
export class RefusedError extends RamsnapError {
  override name = "RefusedError";
  readonly exitCode = 1;
}

/**
 * The object store refused or could not serve a request: no such bucket or object, wrong keys, an endpoint
 * that does not answer. The message names the object (s3://BUCKET/KEY) and, where it helps, the endpoint.
 */
export class StorageError extends RamsnapError {
  override name = "StorageError";
  readonly exitCode = 1;
  constructor(
    message: string,
    /** The store's error code (NoSuchBucket, SignatureDoesNotMatch, ConnectionRefused ...), when there is one. */
    readonly code?: string,
  ) {
    super(message);
  }
}

/**
 * The operation was stopped by the user (Ctrl-C) or by a caller's AbortSignal. The exit status follows the
 * shell's 128 + signal rule: 130 for SIGINT (the default), 143 for SIGTERM, so a service manager can tell
 * a stop it asked for from a user's Ctrl-C.
 */
export class CancelledError extends RamsnapError {
  override name = "CancelledError";
  readonly exitCode: number;
  constructor(message = "cancelled", exitCode = 130) {
    super(message);
    this.exitCode = exitCode;
  }
}

/** The data does not match its integrity manifest (FILE.sums). */
export class IntegrityError extends RamsnapError {
  override name = "IntegrityError";
  readonly exitCode = 1;
}

/** A channel (Worker) reported a failed job; the message names the call, the file and the errno. */
export class ChannelError extends RamsnapError {
  override name = "ChannelError";
  readonly exitCode = 1;
  constructor(
    message: string,
    readonly code?: string,
  ) {
    super(message);
  }
}

export function throwIfAborted(signal: AbortSignal | undefined): void {
  if (signal?.aborted) throw new CancelledError();
}
