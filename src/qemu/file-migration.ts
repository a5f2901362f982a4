// QEMU migrating to or from a file it is handed as an fdset: send the command, follow it to its end, and
// on failure put things back (the fdset, a partial file, the guest's run state, QEMU's settings).
import { CancelledError, throwIfAborted } from "../errors.ts";
import { passFileToQemu, removeQuietly, type MigrationFdset } from "./fdset.ts";
import { MigrationFailedError } from "./errors.ts";
import { applyMigrationSettings, type AppliedSettings } from "./migration-settings.ts";
import { settleMigration, watchMigration, type MigrationProgress, type Outcome } from "./migration-watch.ts";
import { QmpError, type QmpClient, type QmpVersion } from "./qmp.ts";
import { atLeast, EXIT_ON_ERROR_SINCE } from "./version.ts";

export type Completed = Extract<Outcome, { kind: "completed" }> & { fdset: MigrationFdset };

export interface MigrateOptions {
  directIo?: boolean;
  /** What messages call the file when QEMU writes a temporary one in its place. */
  target?: string;
  /** Recorded with the fdset in QEMU (add-fd's opaque): what a later run needs if this one is killed. */
  label?: string;
  /** Where the stream starts in the file (QEMU's file:...,offset=). */
  offset?: number;
  signal?: AbortSignal;
  cancelNow?: AbortSignal;
  onProgress?: (p: MigrationProgress) => void;
}

/**
 * Hands QEMU the file, pauses a running guest, migrates and follows it to the end. On any failure the
 * file goes (once QEMU has stopped writing), the guest runs again and QEMU's settings are put back.
 */
export async function migrateToFile(qmp: QmpClient, o: MigrateOptions, path: string, running: boolean, putBack: () => Promise<void>): Promise<Completed> {
  const at = { fdset: null as MigrationFdset | null, created: false, stopped: false, migrateSent: false };
  try {
    const passed = await passFileToQemu(qmp, path, "write", o.directIo ?? false, o.label);
    at.fdset = passed.fdset;
    at.created = passed.created;
    throwIfAborted(o.signal);
    // Paused first, as libvirt does: one pass over RAM, and the file holds the guest at one instant.
    if (running) {
      await qmp.execute("stop");
      at.stopped = true;
    }
    const startedAt = performance.now();
    at.migrateSent = true; // from here QEMU truncates the file: a failure must not leave what is left of it
    await quoted("migrate", () => qmp.execute("migrate", { uri: passed.fdset.uri }));
    const watched = await watchMigration(qmp, { direction: "save", startedAt, signal: o.signal, cancelNow: o.cancelNow, onProgress: o.onProgress });
    if (watched.kind === "failed") throw saveFailed(path, watched.info["error-desc"], watched.status);
    return { ...watched, fdset: passed.fdset };
  } catch (e) {
    if (at.fdset) {
      // An error mid-watch (a lost reply) may leave QEMU writing: the file goes only once it has stopped.
      if (at.migrateSent) await settleMigration(qmp);
      await at.fdset.remove();
    }
    if (at.created || at.migrateSent) removeQuietly(path);
    if (at.stopped) await qmp.execute("cont").catch(() => {});
    await putBack();
    if (e instanceof CancelledError) {
      const what = o.target ? `${o.target} was not changed` : at.migrateSent || at.created ? `${path} was removed` : `${path} was not touched`;
      throw new CancelledError(`cancelled; ${what}${at.stopped ? ", and the guest runs again" : ""}`);
    }
    throw e;
  }
}

/** Hands QEMU the file and follows its load to the end; on failure the fdset and settings are put back. */
export async function migrateFromFile(qmp: QmpClient, o: MigrateOptions, path: string, version: QmpVersion, putBack: () => Promise<void>): Promise<Completed> {
  let fdset: MigrationFdset | null = null;
  let started = false;
  try {
    ({ fdset } = await passFileToQemu(qmp, path, "read", o.directIo ?? false, o.label));
    throwIfAborted(o.signal);
    const startedAt = performance.now();
    const args: Record<string, unknown> = { uri: o.offset ? `${fdset.uri},offset=${o.offset}` : fdset.uri };
    // Without it a failed load makes QEMU exit, taking its error text along.
    if (atLeast(version, EXIT_ON_ERROR_SINCE)) args["exit-on-error"] = false;
    started = true;
    await quoted("migrate-incoming", () => qmp.execute("migrate-incoming", args));
    const watched = await watchMigration(qmp, { direction: "restore", startedAt, signal: o.signal, cancelNow: o.cancelNow, onProgress: o.onProgress });
    if (watched.kind === "failed") throw loadFailed(path, watched.info["error-desc"]);
    if (watched.late) throw new CancelledError();
    return { ...watched, fdset };
  } catch (e) {
    // QEMU 10.0 cannot cancel an incoming migration: wait (bounded) for the load to end by itself.
    const final = started ? await settleMigration(qmp) : null;
    if (fdset) await fdset.remove();
    await putBack();
    if (e instanceof CancelledError) throw new CancelledError(cancelledLoad(final?.status === "completed", started));
    throw e;
  }
}

function loadFailed(path: string, text: string | undefined): MigrationFailedError {
  const desc = text ?? "QEMU gave no reason (its stderr may say more)";
  return new MigrationFailedError(`QEMU could not load ${path}: ${desc}; the destination now holds a partly loaded guest: quit it and start a new one with -incoming defer`, desc);
}

function cancelledLoad(completed: boolean, started: boolean): string {
  if (completed) return "cancelled too late: QEMU had finished loading the guest";
  if (started) return "cancelled; the destination QEMU holds a partly loaded guest: quit it and start a new one with -incoming defer";
  return "cancelled before QEMU started loading";
}

export async function removeFdset(set: MigrationFdset, warnings: string[]): Promise<boolean> {
  const removed = await set.remove();
  if (!removed) warnings.push(`QEMU still lists fdset ${set.id} after remove-fd`);
  return removed;
}

/** A command QEMU refused becomes an error quoting QEMU. */
async function quoted(command: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (e instanceof QmpError) throw new MigrationFailedError(`QEMU refused ${command}: ${e.desc}`, e.desc);
    throw e;
  }
}

export function saveFailed(path: string, desc: string | undefined, status: string): MigrationFailedError {
  const text = desc ?? `the migration ended '${status}' and QEMU gave no reason`;
  if (/no space left on device|ENOSPC|disk quota exceeded/i.test(text)) {
    return new MigrationFailedError(`${path}: the file system is full (QEMU: ${text}); free some space or save to another file system`, text);
  }
  return new MigrationFailedError(`QEMU's save to ${path} failed: ${text}`, text);
}

export async function restoreSettings(settings: AppliedSettings, warnings: string[]): Promise<void> {
  const complaint = await settings.restore();
  if (complaint && !warnings.some((w) => w.includes(complaint))) warnings.push(`could not put QEMU's migration settings back: ${complaint}`);
}


export interface FdsetReport {
  id: number;
  descriptors: number;
  removed: boolean;
}

/**
 * QEMU loads a small mapped-ram stream that ramsnap prepared (device state and the blocks ramsnap did not
 * place), with mapped-ram set and a single plain descriptor; its settings are put back either way.
 */
export async function loadPreparedStream(qmp: QmpClient, version: QmpVersion, file: string, o: { signal?: AbortSignal; offset?: number }, warnings: string[]): Promise<FdsetReport> {
  const settings = await applyMigrationSettings(qmp, version, { channels: 1, directIo: false, unlimitedBandwidth: false });
  const outcome = await migrateFromFile(qmp, { ...o, label: settings.label }, file, version, async () => restoreSettings(settings, warnings));
  const removed = await removeFdset(outcome.fdset, warnings);
  await restoreSettings(settings, warnings);
  return { id: outcome.fdset.id, descriptors: outcome.fdset.qemuFds.length, removed };
}
