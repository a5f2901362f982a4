// Driving a running QEMU through a save to, or a restore from, a mapped-ram file, the way libvirt's
// `virsh save --parallel --bypass-cache` does: check the version and the state, choose who moves the
// pages (ramsnap, when the guest's memory backends are shared files: ramsnap-pages.ts; QEMU otherwise),
// set the migration capabilities, hand QEMU its file as an fdset, follow the migration, and clean up
// (fdset, settings, a partial file, the guest's run state) whether it worked or not.
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { basename, join, resolve } from "node:path";
import { convert } from "../convert/index.ts";
import type { Compression } from "../format/pack-extent.ts";
import { inspectPack } from "../inspect.ts";
import { parseS3Url } from "../io/s3.ts";
import { formatOf, isPack } from "../savefile/open.ts";
import { CancelledError, IntegrityError, OptionError, RefusedError, throwIfAborted } from "../errors.ts";
import { findManifest, manifestPath, writeManifestFromFile } from "../integrity/sums.ts";
import { removeStaleTemporaries, renameDurably, temporaryBeside } from "../io/output.ts";
import { verify, verifyPack } from "../verify.ts";
import { recoverLeftovers } from "./leftovers.ts";
import { choosePages, queryBackends, type Backend, type PagesChoice, type PagesMode } from "./backends.ts";
import { checkFileFits, checkFreeSpace, checkLoadable, checkSavable, verifySavedFile, type VerifiedFile } from "./checks.ts";
import { migrateFromFile, migrateToFile, removeFdset, restoreSettings } from "./file-migration.ts";
import { queryMachineType, queryRamBlocks, queryRunState, type RamBlock } from "./guest-state.ts";
import { applyMigrationSettings, MAX_QEMU_CHANNELS } from "./migration-settings.ts";
import type { MigrationProgress } from "./migration-watch.ts";
import { QmpClient, type QmpVersion } from "./qmp.ts";
import { restoreByRamsnap, saveByRamsnap, type PagesMoved } from "./ramsnap-pages.ts";
import { mappableBlocks, restoreLazily, type LazyLoaded } from "./lazy.ts";
import { prefetch } from "../prefetch.ts";
import { checkQemuVersion, versionText } from "./version.ts";

export type { MigrationProgress } from "./migration-watch.ts";
export type { PagesMode } from "./backends.ts";

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
  /**
   * Who moves the guest's pages: "ramsnap" (its channels, straight from or into the shared memory
   * backends; QEMU moves only device state), "qemu" (QEMU's own mapped-ram migration), or "auto"
   * (default): ramsnap when every memory backend is a shared file.
   */
  pages?: PagesMode;
}

export interface QemuSaveOptions extends CommonOptions {
  /** Resume the guest after the save if it was running before; default: leave it paused. */
  keepRunning?: boolean;
  /** Read the written file back with ramsnap's parser and compare its blocks with the guest's. */
  verify?: boolean;
  /** Keep a running guest running during the save (QEMU's precopy, so QEMU moves the pages). */
  live?: boolean;
  /** Also write FILE.sums (the CLI's default): hashed in the channels on ramsnap's path, read back on QEMU's. */
  manifest?: boolean;
  /** Start a save QEMU writes even when the file system may not have room for it (QEMU 10.0 can crash when it fills). */
  force?: boolean;
  /** Saving into a pack (a path ending in .rpk, or s3://BUCKET/KEY): how its extents are compressed. */
  compression?: Compression;
}

export interface QemuRestoreOptions extends CommonOptions {
  /**
   * Instant restore: the destination maps the file as guest RAM itself (started with the arguments
   * `backendArgs` gives); QEMU loads device state and the small blocks, no page of a mapped block is read.
   */
  lazy?: boolean;
  /** With lazy: once the guest runs, read the mapped blocks' present pages into the page cache. */
  prefetch?: boolean;
  /** Start the guest (`cont`) once it is loaded; default: leave it paused. */
  resume?: boolean;
  /** Where the stream starts in the file (QEMU's file:...,offset=). */
  offset?: number;
  /** Check against FILE.sums before the guest can run: the pages ramsnap places, or the whole file otherwise. */
  verify?: boolean;
}

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
  /** Who moved the pages (for a lazy restore: nobody yet, the guest maps the file), and why that path. */
  pagesBy: "ramsnap" | "qemu" | "mapped";
  pagesWhy: string;
}

export interface QemuSaveResult extends CommonResult {
  /** Guest RAM covered (all blocks, zero pages included). */
  ramBytes: number;
  /** The manifest written beside the file. */
  manifest?: string;
  /** Bytes written: pages and the stream's records (by QEMU, or by ramsnap and QEMU's device state). */
  writtenBytes: number;
  /** ramBytes / seconds. */
  gibPerSecond: number;
  /** The guest was running when the save began (it is paused for the save, as libvirt does). */
  wasRunning: boolean;
  verified: VerifiedFile | null;
}

export interface QemuRestoreResult extends CommonResult {
  /** With prefetch: the present pages read into the page cache after the guest started. */
  prefetch?: { bytes: number; seconds: number };
  ramBytes: number;
  /** Bytes of page data in the file (present pages). */
  dataBytes: number;
  gibPerSecond: number;
  machineType: string | null;
}

/** What a save or restore path reports, before the common fields are added. */
interface Moved {
  seconds: number;
  writtenBytes: number;
  manifest?: string;
  fdset: { id: number; descriptors: number; removed: boolean };
}

interface Context {
  qmp: QmpClient;
  version: QmpVersion;
  path: string;
  channels: number;
  directIo: boolean;
  blocks: RamBlock[];
  warnings: string[];
}

export async function qemuSave(o: QemuSaveOptions): Promise<QemuSaveResult> {
  const directIo = o.directIo ?? false;
  const channels = checkedChannels(o.channels);
  const path = located(o.path);
  const pack = formatOf({ path }) === "pack";
  return withQmp(o, async (qmp, socket) => {
    const version = qmp.greeting.version.qemu;
    checkQemuVersion(version, { directIo });
    const warnings = await recoverLeftovers(qmp);
    const before = await checkSavable(qmp, socket);
    // RAM blocks do not change while a guest runs: one query serves the space check and --verify.
    const blocks = await queryRamBlocks(qmp);
    const backends = await queryBackends(qmp);
    const pages = choosePages(o.pages ?? "auto", { live: o.live, forLoad: false }, blocks, backends);
    throwIfAborted(o.signal);
    const c: Context = { qmp, version, path, channels, directIo, blocks, warnings };
    const byQemu = pack ? savePagesByQemuIntoPack : savePagesByQemu;
    const moved = pages.by === "ramsnap" ? await savePagesByRamsnap(c, o, pages, before.running) : await byQemu(c, o, backends, before.running);
    // The file is complete from here on: nothing below removes it.
    if (o.keepRunning && before.running) await qmp.execute("cont");
    // A pack hashes its own extents: no FILE.sums beside it.
    const manifest = o.manifest && !pack ? (moved.manifest ?? writeManifestFromFile(path, 0)) : undefined;
    const ramBytes = blocks.reduce((n, b) => n + b.usedLength, 0);
    return {
      ...commonResult(c, socket, pages, moved),
      ramBytes,
      ...(manifest ? { manifest } : {}),
      writtenBytes: moved.writtenBytes,
      gibPerSecond: moved.seconds > 0 ? ramBytes / 2 ** 30 / moved.seconds : 0,
      wasRunning: before.running,
      vmState: (await queryRunState(qmp)).status,
      verified: o.verify ? verifySavedFile(path, blocks, pack ? await inspectPack(path) : undefined) : null,
    };
  });
}

export async function qemuRestore(o: QemuRestoreOptions): Promise<QemuRestoreResult> {
  if (o.prefetch && !o.lazy) throw new OptionError("--prefetch goes with --lazy: it warms the page cache for a guest that maps the file");
  const directIo = o.directIo ?? false;
  const channels = checkedChannels(o.channels);
  const path = located(o.path);
  const pack = isPack({ path });
  if (pack && o.lazy) throw new OptionError(`--lazy maps a mapped-ram file as guest RAM; ${path} is a pack (compressed): convert it --to mapped-ram first`);
  return withQmp(o, async (qmp, socket) => {
    const version = qmp.greeting.version.qemu;
    checkQemuVersion(version, { directIo });
    const warnings = await recoverLeftovers(qmp);
    await checkLoadable(qmp, socket);
    const blocks = await queryRamBlocks(qmp);
    const report = checkFileFits(path, await queryMachineType(qmp), blocks, o.offset, pack ? await inspectPack(path) : undefined);
    const backends = await queryBackends(qmp);
    const pages = o.lazy ? lazyChoice(path, o) : choosePages(o.pages ?? "auto", { forLoad: true }, blocks, backends);
    throwIfAborted(o.signal);
    const c: Context = { qmp, version, path, channels, directIo, blocks, warnings };
    // ramsnap checks the pages it places as it places them; QEMU's and a mapping's are checked in the file first.
    if (o.verify && pages.by !== "ramsnap") await (pack ? verifyPack({ path }) : verifyAgainstManifest(path, o.offset ?? 0));
    const moved =
      pages.by === "mapped"
        ? fromLazy(await restoreLazily({ ...c, report, backends, signal: o.signal }))
        : pages.by === "ramsnap"
          ? fromPages(await restoreByRamsnap({ ...c, offset: o.offset, verify: o.verify, backends: pages.backends.filter((b) => report.blocks.some((x) => x.name === b.id)), signal: o.signal, onProgress: o.onProgress }))
          : await (pack ? restorePagesByQemuFromPack : restorePagesByQemu)(c, o);
    if (o.resume) await qmp.execute("cont");
    const prefetched = o.prefetch ? await prefetch({ path, offset: o.offset, blocks: mappableBlocks(report).map((b) => b.name), channels: Math.min(channels, 64), signal: o.signal }) : undefined;
    const ramBytes = report.blocks.reduce((n, b) => n + b.length, 0);
    return {
      ...commonResult(c, socket, pages, moved),
      ...(prefetched ? { prefetch: { bytes: prefetched.bytes, seconds: prefetched.seconds } } : {}),
      ramBytes,
      dataBytes: report.blocks.reduce((n, b) => n + b.present, 0) * report.pageSize,
      gibPerSecond: moved.seconds > 0 ? ramBytes / 2 ** 30 / moved.seconds : 0,
      machineType: report.machineType,
      vmState: (await queryRunState(qmp)).status,
    };
  });
}

/**
 * QEMU moves the pages: its mapped-ram migration with multifd channels, into a temporary file beside the
 * target passed as an fdset, renamed over the target only once QEMU completed it and it is on disk. An
 * interrupted or failed save leaves the previous file as it was; a save QEMU completed is kept, even when
 * Ctrl-C came too late to stop it.
 */
async function savePagesByQemu(c: Context, o: QemuSaveOptions, backends: Backend[], running: boolean): Promise<Moved> {
  for (const p of removeStaleTemporaries(c.path)) c.warnings.push(`removed ${p}, left by an earlier save that was killed`);
  checkFreeSpace(c.path, c.blocks, backends, o.force ?? false, c.warnings);
  const settings = await applyMigrationSettings(c.qmp, c.version, { channels: c.channels, directIo: c.directIo, unlimitedBandwidth: true });
  const temporary = temporaryBeside(c.path);
  // Paused first, as libvirt does (one pass over RAM, the file holds one instant), unless --live.
  const outcome = await migrateToFile(c.qmp, { ...o, target: c.path, label: settings.label }, temporary, running && !o.live, async () => restoreSettings(settings, c.warnings));
  const removed = await removeFdset(outcome.fdset, c.warnings);
  await restoreSettings(settings, c.warnings);
  renameDurably(temporary, c.path);
  if (outcome.late) {
    const resumed = running && !o.live;
    if (resumed) await c.qmp.execute("cont").catch(() => {});
    throw new CancelledError(`cancelled too late: QEMU had completed the save, and ${c.path} holds it${resumed ? "; the guest runs again" : ""}`);
  }
  return { seconds: outcome.seconds, writtenBytes: outcome.info.ram?.transferred ?? 0, fdset: { id: outcome.fdset.id, descriptors: outcome.fdset.qemuFds.length, removed } };
}

/** ramsnap moves the pages: the guest is paused for the save (as libvirt does) and runs again if the save fails. */
async function savePagesByRamsnap(c: Context, o: QemuSaveOptions, pages: PagesChoice, running: boolean): Promise<Moved> {
  if (running) await c.qmp.execute("stop");
  try {
    return fromPages(await saveByRamsnap({ ...c, backends: pages.backends, manifest: o.manifest, compression: o.compression, signal: o.signal, onProgress: o.onProgress }));
  } catch (e) {
    if (running) await c.qmp.execute("cont").catch(() => {});
    if (e instanceof CancelledError) throw new CancelledError(`cancelled; ${c.path} was not changed${running ? ", and the guest runs again" : ""}`);
    throw e;
  }
}

async function restorePagesByQemu(c: Context, o: QemuRestoreOptions): Promise<Moved> {
  const settings = await applyMigrationSettings(c.qmp, c.version, { channels: c.channels, directIo: c.directIo, unlimitedBandwidth: false });
  const outcome = await migrateFromFile(c.qmp, { ...o, label: settings.label }, c.path, c.version, async () => restoreSettings(settings, c.warnings));
  const removed = await removeFdset(outcome.fdset, c.warnings);
  await restoreSettings(settings, c.warnings);
  return { seconds: outcome.seconds, writtenBytes: outcome.info.ram?.transferred ?? 0, fdset: { id: outcome.fdset.id, descriptors: outcome.fdset.qemuFds.length, removed } };
}

/** A local file's absolute path, or an object's s3:// URL as it is. */
const located = (path: string): string => (parseS3Url(path) ? path : resolve(path));

/**
 * A temporary mapped-ram file for QEMU's side of a pack: beside a local pack, in the temporary folder for
 * an object; named like every temporary file ramsnap writes, so the next run removes one a kill -9 left.
 */
function scratchFileFor(path: string, warnings: string[]): string {
  const s3 = parseS3Url(path);
  const beside = s3 ? join(tmpdir(), basename(s3.key)) : path;
  for (const p of removeStaleTemporaries(beside)) warnings.push(`removed ${p}, left by an earlier run that was killed`);
  return temporaryBeside(beside);
}

/**
 * QEMU's path into a pack: QEMU writes a mapped-ram file, which is packed (and uploaded), then removed. A
 * pack that could not be made leaves the previous one, and a guest paused for the save runs again.
 */
async function savePagesByQemuIntoPack(c: Context, o: QemuSaveOptions, backends: Backend[], running: boolean): Promise<Moved> {
  const scratch = scratchFileFor(c.path, c.warnings);
  try {
    const moved = await savePagesByQemu({ ...c, path: scratch }, o, backends, running);
    const packed = await convert({ input: scratch, output: c.path, to: "pack", compression: o.compression, channels: c.channels, signal: o.signal });
    return { ...moved, seconds: moved.seconds + packed.seconds, writtenBytes: packed.bytesWritten };
  } catch (e) {
    const resume = running && !o.live;
    if (resume) await c.qmp.execute("cont").catch(() => {});
    if (e instanceof CancelledError) throw new CancelledError(`cancelled; ${c.path} was not changed${resume ? ", and the guest runs again" : ""}`, e.exitCode);
    throw e;
  } finally {
    rmSync(scratch, { force: true });
  }
}

/** QEMU's path from a pack: unpacked into a temporary mapped-ram file, which QEMU loads, then removed. */
async function restorePagesByQemuFromPack(c: Context, o: QemuRestoreOptions): Promise<Moved> {
  const scratch = scratchFileFor(c.path, c.warnings);
  try {
    const unpacked = await convert({ input: c.path, output: scratch, to: "mapped-ram", channels: c.channels, signal: o.signal });
    const moved = await restorePagesByQemu({ ...c, path: scratch }, o);
    return { ...moved, seconds: moved.seconds + unpacked.seconds };
  } finally {
    rmSync(scratch, { force: true });
  }
}

/** --lazy: nobody moves the pages now; the guest maps the file. */
function lazyChoice(path: string, o: QemuRestoreOptions): { by: "mapped"; why: string; backends: [] } {
  if (o.pages !== undefined && o.pages !== "auto") throw new OptionError("--lazy and --pages do not go together: with --lazy the guest maps the file and nobody moves its pages");
  return { by: "mapped", why: `--lazy: the guest maps ${path} copy-on-write; QEMU loaded the device state and the small blocks`, backends: [] };
}

const fromLazy = (l: LazyLoaded): Moved => ({ seconds: l.seconds, writtenBytes: l.streamBytes, fdset: l.fdset });

const fromPages = (p: PagesMoved): Moved => ({ seconds: p.seconds, writtenBytes: p.pageBytes + p.streamBytes, fdset: p.fdset, ...(p.manifest ? { manifest: p.manifest } : {}) });

/** --verify for a load ramsnap does not do itself: the file against FILE.sums, before QEMU reads it. */
function verifyAgainstManifest(path: string, offset: number): void {
  const found = findManifest(path);
  if (!found) throw new RefusedError(`--verify: ${manifestPath(path)} does not exist (save with a manifest to write one)`);
  const r = verify({ path, offset, manifest: found });
  if (!r.manifest?.ok) throw new IntegrityError(`${path} does not match ${found}${r.manifest?.bad[0] ? `: block ${r.manifest.bad[0].block}, extent ${r.manifest.bad[0].extent}` : ""}; the guest was not loaded`);
}

function commonResult(c: Context, socket: string, pages: { by: "ramsnap" | "qemu" | "mapped"; why: string }, moved: Moved) {
  return {
    file: c.path,
    qmp: socket,
    qemuVersion: versionText(c.version),
    channels: c.channels,
    directIo: c.directIo,
    seconds: moved.seconds,
    fdset: moved.fdset,
    warnings: c.warnings,
    pagesBy: pages.by,
    pagesWhy: pages.why,
  };
}

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

