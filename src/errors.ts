// Errors that mean "the user asked for something that cannot work", as opposed to a broken file
// (FormatError) or a failing system call (SysError). The CLI prints their message as one line.

/** A wrong, missing or conflicting option; nothing was done. */
export class OptionError extends Error {
  override name = "OptionError";
}

/** The operation was stopped by the user (Ctrl-C) or by a caller's AbortSignal. */
export class CancelledError extends Error {
  override name = "CancelledError";
  constructor(message = "cancelled") {
    super(message);
  }
}

/** The data does not match its integrity manifest (FILE.sums). */
export class IntegrityError extends Error {
  override name = "IntegrityError";
}
