// Errors from driving a live QEMU. Each message is one line a user can act on: it says what is wrong with
// this QEMU or this file and, where there is one, the way out. QEMU's own text is quoted, never replaced.

import { RamsnapError } from "../errors.ts";

/** Base class: something about the QEMU being driven (not a bug in ramsnap). */
export class QemuDriveError extends RamsnapError {
  override name = "QemuDriveError";
  readonly exitCode: number = 1;
}

/** The QEMU is older than the features asked for. */
export class QemuTooOldError extends QemuDriveError {
  override name = "QemuTooOldError";
}

/** The QEMU is in a state that does not allow this: a migration running, a guest already saved, ... */
export class QemuStateError extends QemuDriveError {
  override name = "QemuStateError";
}

/** The file does not fit the destination QEMU (incomplete, not mapped-ram, other machine type or RAM). */
export class QemuFileMismatchError extends QemuDriveError {
  override name = "QemuFileMismatchError";
}

/** QEMU started the migration and it failed; `qemuText` is QEMU's error-desc. */
export class MigrationFailedError extends QemuDriveError {
  override name = "MigrationFailedError";
  constructor(
    message: string,
    readonly qemuText: string,
  ) {
    super(message);
  }
}

/** --verify found the written file wanting. */
export class VerifyError extends QemuDriveError {
  override name = "VerifyError";
}
