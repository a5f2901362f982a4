// Driving a running QEMU through a save to, or a restore from, a mapped-ram file, the way libvirt's
// `virsh save --parallel --bypass-cache` does: check the version and the state, set the migration
// capabilities, hand QEMU the file as an fdset, migrate to file:/dev/fdset/N, follow it, and clean up
// (fdset, settings, a partial file, the guest's run state) whether it worked or not.
import { existsSync } from "node:fs";
import { dirname, resolve } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { spaceBound } from "../format/layout.ts";
import { dirSpace, type DirSpace } from "../io/filesystem.ts";
import { CancelledError, OptionError, throwIfAborted } from "../errors.ts";
import { FormatError } from "../format/errors.ts";
import { inspectFile, type InspectReport } from "../inspect.ts";
import { passFileToQemu, removeQuietly, type MigrationFdset } from "./fdset.ts";
import { MigrationFailedError, QemuDriveError, QemuFileMismatchError, QemuStateError, VerifyError } from "./errors.ts";
import { migrationRunning, queryMachineType, queryMigrate, queryRamBlocks, queryRunState, type RamBlock, type RunState } from "./guest-state.ts";
import { applyMigrationSettings, MAX_QEMU_CHANNELS, type AppliedSettings } from "./migration-settings.ts";
import { settleMigration, watchMigration, type MigrationProgress, type Outcome } from "./migration-watch.ts";
import { QmpClient, QmpError, type QmpVersion } from "./qmp.ts";
import { atLeast, checkQemuVersion, EXIT_ON_ERROR_SINCE, versionText } from "./version.ts";

export type { MigrationProgress } from "./migration-watch.ts";

export const DEFAULT_QEMU_CHANNELS = 4;

interface CommonOptions {
  /** A QMP socket path (connected and closed here), or a client the caller owns and keeps. */
  qmp: string | QmpClient;
  /** The migration file. */
  path: string;
  /** multifd-channels, 1 to 255; default 4. */
  channels?: number;
  /** Channels write/read with O_DIRECT through a second descriptor (QEMU 9.1+). */
  directIo?: boolean;
  /**
   * Stop: before QEMU starts, at once; once it runs, when it has finished (QEMU 10.0 cannot cancel a
   * mapped-ram migration safely, see migration-watch.ts). Then the file is removed and CancelledError thrown.
   */
  signal?: AbortSignal;
  /** Send migrate_cancel at once, accepting that QEMU 10.0.2 may crash (and the guest with it). */
  cancelNow?: AbortSignal;
  onProgress?: (p: MigrationProgress) => void;
  /** How long to wait for QMP replies and the greeting; default 10 s. */
  qmpTimeoutMs?: number;
}

export interface QemuSaveOptions extends CommonOptions {
  /** Resume the guest after the save if it was running before; default: leave it paused. */
  keepRunning?: boolean;
  /** Read the written file back with ramsnap's parser and compare its blocks with the guest's. */
  verify?: boolean;
}

export type QemuRestoreOptions = CommonOptions;

interface CommonResult {
  file: string;
  qmp: string;
  qemuVersion: string;
  channels: number;
  directIo: boolean;
  /** From the migrate command to QEMU reporting it completed. */
  seconds: number;
  fdset: { id: number; descriptors: number; removed: boolean };
  /** The guest's run state afterwards ("paused", "postmigrate", "running", ...). */
  vmState: string;
  /** Problems that did not stop the operation, e.g. QEMU refusing to take back its old settings. */
  warnings: string[];
}

export interface QemuSaveResult extends CommonResult {
  /** Guest RAM covered (all blocks, zero pages included). */
  ramBytes: number;
  /** Bytes QEMU wrote (non-zero pages and the stream's records). */
  writtenBytes: number;
  /** ramBytes / seconds. */
  gibPerSecond: number;
  /** The guest was running when the save began (it is paused for the save, as libvirt does). */
  wasRunning: boolean;
  verified: { complete: true; blocks: { name: string; length: number; present: number }[] } | null;
}

export interface QemuRestoreResult extends CommonResult {
  ramBytes: number;
  /** Bytes of page data in the file (present pages). */
  dataBytes: number;
  gibPerSecond: number;
  machineType: string | null;
}

type Completed = Extract<Outcome, { kind: "completed" }> & { fdset: MigrationFdset };

export async function qemuSave(o: QemuSaveOptions): Promise<QemuSaveResult> {
  const directIo = o.directIo ?? false;
  const channels = checkedChannels(o.channels);
  const path = resolve(o.path);
  return withQmp(o, async (qmp, socket) => {
    const version = qmp.greeting.version.qemu;
    checkQemuVersion(version, { directIo });
    const before = await checkSavable(qmp, socket);
    // RAM blocks do not change while a guest runs: one query serves the space check and --verify.
    const guestBlocks = await queryRamBlocks(qmp);
    checkFreeSpace(path, guestBlocks);
    throwIfAborted(o.signal);
    const warnings: string[] = [];
    const settings = await applyMigrationSettings(qmp, version, { channels, directIo, unlimitedBandwidth: true });
    const outcome = await migrateToFile(qmp, o, path, before.running, async () => restoreSettings(settings, warnings));
    // The file is complete from here on: nothing below removes it.
    const removed = await removeFdset(outcome.fdset, warnings);
    await restoreSettings(settings, warnings);
    if (o.keepRunning && before.running) await qmp.execute("cont");
    const ramBytes = outcome.info.ram?.total ?? 0;
    return {
      ...commonResult(path, socket, version, channels, directIo, outcome, removed),
      ramBytes,
      writtenBytes: outcome.info.ram?.transferred ?? 0,
      gibPerSecond: outcome.seconds > 0 ? ramBytes / 2 ** 30 / outcome.seconds : 0,
      wasRunning: before.running,
      vmState: (await queryRunState(qmp)).status,
      verified: o.verify ? verifySavedFile(path, guestBlocks) : null,
      warnings,
    };
  });
}

export async function qemuRestore(o: QemuRestoreOptions): Promise<QemuRestoreResult> {
  const directIo = o.directIo ?? false;
  const channels = checkedChannels(o.channels);
  const path = resolve(o.path);
  return withQmp(o, async (qmp, socket) => {
    const version = qmp.greeting.version.qemu;
    checkQemuVersion(version, { directIo });
    await checkLoadable(qmp, socket);
    const report = checkFileFits(path, await queryMachineType(qmp), await queryRamBlocks(qmp));
    throwIfAborted(o.signal);
    const warnings: string[] = [];
    const settings = await applyMigrationSettings(qmp, version, { channels, directIo, unlimitedBandwidth: false });
    const outcome = await migrateFromFile(qmp, o, path, version, async () => restoreSettings(settings, warnings));
    const removed = await removeFdset(outcome.fdset, warnings);
    await restoreSettings(settings, warnings);
    const ramBytes = report.blocks.reduce((n, b) => n + b.length, 0);
    return {
      ...commonResult(path, socket, version, channels, directIo, outcome, removed),
      ramBytes,
      dataBytes: report.blocks.reduce((n, b) => n + b.present, 0) * report.pageSize,
      gibPerSecond: outcome.seconds > 0 ? ramBytes / 2 ** 30 / outcome.seconds : 0,
      machineType: report.machineType,
      vmState: (await queryRunState(qmp)).status,
      warnings,
    };
  });
}

// ---- save steps -----------------------------------------------------------------------------------------

/** The guest must exist and not be paused after an earlier migration, and no migration may be running. */
async function checkSavable(qmp: QmpClient, socket: string): Promise<RunState> {
  const before = await queryRunState(qmp);
  if (before.status === "inmigrate") {
    throw new QemuStateError(`QEMU at ${socket} is waiting for an incoming migration (-incoming): it has no guest to save yet; 'ramsnap qemu restore' loads into such a QEMU`);
  }
  if (before.status === "postmigrate") {
    throw new QemuStateError(`the guest at ${socket} is paused after an earlier save or migration, and QEMU will not migrate it again until it runs: resume it with the QMP command cont first`);
  }
  await refuseIfMigrating(qmp, socket);
  return before;
}

/**
 * Hands QEMU the file, pauses a running guest, migrates and follows it to the end. On any failure the
 * file goes (once QEMU has stopped writing), the guest runs again and QEMU's settings are put back.
 */
async function migrateToFile(qmp: QmpClient, o: QemuSaveOptions, path: string, running: boolean, putBack: () => Promise<void>): Promise<Completed> {
  const at = { fdset: null as MigrationFdset | null, created: false, stopped: false, migrateSent: false };
  try {
    const passed = await passFileToQemu(qmp, path, "write", o.directIo ?? false);
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
      throw new CancelledError(`cancelled; ${at.migrateSent || at.created ? `${path} was removed` : `${path} was not touched`}${at.stopped ? ", and the guest runs again" : ""}`);
    }
    throw e;
  }
}

// ---- restore steps --------------------------------------------------------------------------------------

/** The destination must be waiting for an incoming migration it has not started. */
async function checkLoadable(qmp: QmpClient, socket: string): Promise<void> {
  const state = await queryRunState(qmp);
  if (state.status !== "inmigrate") {
    throw new QemuStateError(
      `QEMU at ${socket} is not waiting for an incoming migration (its guest is '${state.status}'): start the destination QEMU with -incoming defer to restore into it`,
    );
  }
  const previous = await queryMigrate(qmp);
  if (migrationRunning(previous)) {
    throw new QemuStateError(`QEMU at ${socket} is already loading an incoming migration (status '${previous.status}')`);
  }
  if (previous.status === "completed" || previous.status === "failed") {
    throw new QemuStateError(`QEMU at ${socket} has already run an incoming migration (status '${previous.status}'): start a new QEMU with -incoming defer`);
  }
}

/** Hands QEMU the file and follows its load to the end; on failure the fdset and settings are put back. */
async function migrateFromFile(qmp: QmpClient, o: QemuRestoreOptions, path: string, version: QmpVersion, putBack: () => Promise<void>): Promise<Completed> {
  let fdset: MigrationFdset | null = null;
  let started = false;
  try {
    ({ fdset } = await passFileToQemu(qmp, path, "read", o.directIo ?? false));
    throwIfAborted(o.signal);
    const startedAt = performance.now();
    const args: Record<string, unknown> = { uri: fdset.uri };
    // Without it a failed load makes QEMU exit, taking its error text along.
    if (atLeast(version, EXIT_ON_ERROR_SINCE)) args["exit-on-error"] = false;
    started = true;
    await quoted("migrate-incoming", () => qmp.execute("migrate-incoming", args));
    const watched = await watchMigration(qmp, { direction: "restore", startedAt, signal: o.signal, cancelNow: o.cancelNow, onProgress: o.onProgress });
    if (watched.kind === "failed") throw loadFailed(path, watched.info["error-desc"]);
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

// ---- both -----------------------------------------------------------------------------------------------

async function removeFdset(set: MigrationFdset, warnings: string[]): Promise<boolean> {
  const removed = await set.remove();
  if (!removed) warnings.push(`QEMU still lists fdset ${set.id} after remove-fd`);
  return removed;
}

function commonResult(path: string, socket: string, version: QmpVersion, channels: number, directIo: boolean, outcome: Completed, removed: boolean) {
  return {
    file: path,
    qmp: socket,
    qemuVersion: versionText(version),
    channels,
    directIo,
    seconds: outcome.seconds,
    fdset: { id: outcome.fdset.id, descriptors: outcome.fdset.qemuFds.length, removed },
  };
}

// ---- pieces ---------------------------------------------------------------------------------------------

async function withQmp<T>(o: CommonOptions, fn: (qmp: QmpClient, socket: string) => Promise<T>): Promise<T> {
  if (typeof o.qmp !== "string") return fn(o.qmp, o.qmp.socketPath);
  const qmp = await QmpClient.connect(o.qmp, { timeoutMs: o.qmpTimeoutMs });
  try {
    return await fn(qmp, o.qmp);
  } finally {
    qmp.close();
  }
}

function checkedChannels(channels = DEFAULT_QEMU_CHANNELS): number {
  if (!Number.isInteger(channels) || channels < 1 || channels > MAX_QEMU_CHANNELS) {
    throw new OptionError(`--channels must be a whole number from 1 to ${MAX_QEMU_CHANNELS} (QEMU's multifd-channels), got ${channels}`);
  }
  return channels;
}

async function refuseIfMigrating(qmp: QmpClient, socket: string): Promise<void> {
  const info = await queryMigrate(qmp);
  if (migrationRunning(info)) {
    throw new QemuStateError(
      `a migration is already running on QEMU at ${socket} (status '${info.status}'): wait for it to end, or stop it with the QMP command migrate_cancel`,
    );
  }
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

function saveFailed(path: string, desc: string | undefined, status: string): MigrationFailedError {
  const text = desc ?? `the migration ended '${status}' and QEMU gave no reason`;
  if (/no space left on device|ENOSPC|disk quota exceeded/i.test(text)) {
    return new MigrationFailedError(`${path}: the file system is full (QEMU: ${text}); free some space or save to another file system`, text);
  }
  return new MigrationFailedError(`QEMU's save to ${path} failed: ${text}`, text);
}

/**
 * Refuses a save that could fill the file system. Not a nicety: when a channel of a multifd mapped-ram save
 * hits ENOSPC, QEMU 10.0.2 tears the migration down while the other channels are mid-write and segfaults
 * (the race described in migration-watch.ts), so a full disk would cost the guest. The bound assumes no
 * zero page (QEMU writes only non-zero ones) plus each block's 1 MiB-aligned header and bitmap.
 */
function checkFreeSpace(path: string, blocks: RamBlock[]): void {
  const dir = dirname(path);
  let stat: DirSpace;
  try {
    stat = dirSpace(dir);
  } catch (e) {
    if (e instanceof libc.SysError && e.code === "ENOENT") throw new QemuDriveError(`${dir} does not exist: cannot save ${path} there`);
    throw e;
  }
  const fs = stat.fs;
  if (stat.totalBytes === 0) return; // no size to run out of (ramfs), or none reported
  let free = stat.freeBytes;
  // The space an existing file holds comes back when QEMU truncates it.
  if (existsSync(path)) free += libc.statx(path).allocated;
  const ram = blocks.reduce((n, b) => n + b.usedLength, 0);
  const needed = spaceBound(ram, blocks.length);
  if (free < needed) {
    throw new QemuDriveError(
      `${path}: not enough free space: ${mib(free)} free on ${fs}, up to ${mib(needed)} needed (the guest's ${mib(ram)} of RAM if no page is zero); ` +
        `ramsnap does not start a save that could fill the disk, because QEMU 10.0 can crash when it does`,
    );
  }
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

async function restoreSettings(settings: AppliedSettings, warnings: string[]): Promise<void> {
  const complaint = await settings.restore();
  if (complaint && !warnings.some((w) => w.includes(complaint))) warnings.push(`could not put QEMU's migration settings back: ${complaint}`);
}

function inspectOrExplain(path: string): InspectReport {
  try {
    return inspectFile(path);
  } catch (e) {
    if (e instanceof FormatError) throw new QemuFileMismatchError(`${path} is not a loadable migration file: ${e.message}`);
    throw e;
  }
}

/** The file must be complete, mapped-ram, of the destination's machine type, and have exactly its RAM blocks' sizes. */
function checkFileFits(path: string, machineType: string, guestBlocks: RamBlock[]): InspectReport {
  const report = inspectOrExplain(path);
  if (!report.complete) throw new QemuFileMismatchError(`${path} is incomplete (no EOF: an interrupted save?)`);
  if (report.ramFormat !== "mapped-ram") {
    throw new QemuFileMismatchError(`${path} is a ${report.ramFormat ?? "RAM-less"} migration stream, not mapped-ram: QEMU loads it with migrate-incoming file:${path} and mapped-ram off`);
  }
  if (report.machineType && report.machineType !== machineType) {
    throw new QemuFileMismatchError(`${path} holds a ${report.machineType} guest, but the destination QEMU is ${machineType}: start it with -machine ${report.machineType}`);
  }
  // QEMU itself loads a block smaller than the guest's without a word (the rest stays zero).
  for (const b of report.blocks) {
    const g = guestBlocks.find((x) => x.name === b.name);
    if (!g) {
      throw new QemuFileMismatchError(
        `${path} has RAM block ${b.name}, which the destination QEMU lacks (it has ${guestBlocks.map((x) => x.name).join(", ")}): start it with the same memory backends`,
      );
    }
    if (g.usedLength !== b.length) {
      throw new QemuFileMismatchError(`RAM block ${b.name} is ${b.length} bytes in ${path} but ${g.usedLength} in the destination QEMU: give it the same memory size`);
    }
  }
  return report;
}

/** --verify: ramsnap's own reader must find the file complete, with the guest's RAM blocks in the guest's order. */
function verifySavedFile(path: string, guestBlocks: RamBlock[]): NonNullable<QemuSaveResult["verified"]> {
  let report: InspectReport;
  try {
    report = inspectFile(path);
  } catch (e) {
    throw new VerifyError(`--verify: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!report.complete) throw new VerifyError(`--verify: ${path} has no EOF`);
  if (report.ramFormat !== "mapped-ram") throw new VerifyError(`--verify: ${path} is not a mapped-ram file`);
  const inFile = report.blocks.map((b) => `${b.name}:${b.length}`).join(", ");
  const inGuest = guestBlocks.map((b) => `${b.name}:${b.usedLength}`).join(", ");
  if (inFile !== inGuest) throw new VerifyError(`--verify: ${path} holds blocks [${inFile}], the guest has [${inGuest}]`);
  return { complete: true, blocks: report.blocks.map((b) => ({ name: b.name, length: b.length, present: b.present })) };
}
