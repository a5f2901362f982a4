// Which QEMU can do what we ask. Checked from the QMP greeting before anything is changed in QEMU, because an
// old QEMU's own errors ("Parameter 'direct-io' is unexpected", "Invalid parameter 'mapped-ram'") do not say
// that an upgrade is the fix.
import type { QmpVersion } from "./qmp.ts";
import { QemuTooOldError } from "./errors.ts";

export interface Release {
  major: number;
  minor: number;
}

/** The mapped-ram capability (fixed page offsets in a file: migration). */
export const MAPPED_RAM_SINCE: Release = { major: 9, minor: 0 };
/** The direct-io parameter, fdsets matched on O_DIRECT, and migrate-incoming's exit-on-error. */
export const DIRECT_IO_SINCE: Release = { major: 9, minor: 1 };
export const EXIT_ON_ERROR_SINCE: Release = DIRECT_IO_SINCE;

export function atLeast(v: QmpVersion, r: Release): boolean {
  return v.major > r.major || (v.major === r.major && v.minor >= r.minor);
}

export const versionText = (v: QmpVersion): string => `${v.major}.${v.minor}.${v.micro}`;

/** Throws QemuTooOldError naming the version found, the version needed, and what to do. */
export function checkQemuVersion(v: QmpVersion, wants: { directIo: boolean }): void {
  if (![v.major, v.minor, v.micro].every((n) => Number.isSafeInteger(n) && n >= 0)) {
    throw new QemuTooOldError(`QEMU reported a version ramsnap cannot read (${JSON.stringify(v)})`);
  }
  if (!atLeast(v, MAPPED_RAM_SINCE)) {
    throw new QemuTooOldError(
      `QEMU ${versionText(v)} is too old: mapped-ram files (saving and loading) need QEMU ${MAPPED_RAM_SINCE.major}.${MAPPED_RAM_SINCE.minor} or newer`,
    );
  }
  if (wants.directIo && !atLeast(v, DIRECT_IO_SINCE)) {
    throw new QemuTooOldError(
      `QEMU ${versionText(v)} is too old for --direct-io (it needs QEMU ${DIRECT_IO_SINCE.major}.${DIRECT_IO_SINCE.minor} or newer): run without --direct-io, or upgrade QEMU`,
    );
  }
}

/**
 * x-ignore-shared together with mapped-ram (QEMU writes device state and unshared blocks, and leaves the
 * shared file-backed blocks' bitmaps empty). QEMU 10.0.2 fails such a save ("Unable to write to file: Bad
 * address", writing a bitmap it never allocated); 11.1.3 completes it. Releases in between were not tried,
 * so this is the first one seen to work. test/qemu-versions.test.ts checks it on both QEMUs CI runs.
 */
export const IGNORE_SHARED_WITH_MAPPED_RAM_SINCE: Release = { major: 11, minor: 1 };
