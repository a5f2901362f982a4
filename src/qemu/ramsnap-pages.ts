// `qemu save|restore` with ramsnap moving the pages. When every memory backend of the guest is a shared
// file, QEMU writes only the device state and the small blocks that are not backends (x-ignore-shared,
// a classic stream of about 300 KB, 10 ms), and ramsnap's channels move the backends' pages with direct
// I/O, gap bridging and holes skipped. The file is one standard mapped-ram file that plain QEMU loads.
// Loading is the mirror image: ramsnap's channels put the pages into the destination's backend files,
// and QEMU loads a copy of the stream whose bitmaps for those blocks are clear, so it reads none of them.
import { rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import type { Progress } from "../channels/session.ts";
import { convert } from "../convert/index.ts";
import type { BlockTarget } from "../memory/targets.ts";
import { restore } from "../restore.ts";
import { withLoadStream, withPackLoadStream } from "../savefile/load-stream.ts";
import { formatOf, isPack } from "../savefile/open.ts";
import { parseS3Url } from "../io/s3.ts";
import type { Compression } from "../format/pack-extent.ts";
import { tmpdir } from "node:os";
import type { Backend } from "./backends.ts";
import { loadPreparedStream, migrateToFile, removeFdset, restoreSettings, type FdsetReport } from "./file-migration.ts";
import type { RamBlock } from "./guest-state.ts";
import { applyMigrationSettings } from "./migration-settings.ts";
import type { MigrationProgress } from "./migration-watch.ts";
import type { QmpClient, QmpVersion } from "./qmp.ts";

export interface PagesJob {
  qmp: QmpClient;
  /** Save: also write FILE.sums (hashed in the channels). Restore: check the placed pages against it. */
  manifest?: boolean;
  verify?: boolean;
  /** Where the stream starts in the file (restore only). */
  offset?: number;
  /** Saving into a pack: how its extents are compressed. */
  compression?: Compression;
  version: QmpVersion;
  path: string;
  channels: number;
  directIo: boolean;
  /** The backends whose pages ramsnap moves. */
  backends: Backend[];
  /** The guest's RAM blocks (sizes). */
  blocks: RamBlock[];
  signal?: AbortSignal;
  onProgress?: (p: MigrationProgress) => void;
  warnings: string[];
}

export interface PagesMoved {
  seconds: number;
  manifest?: string;
  /** Page bytes ramsnap's channels moved (present pages plus bridged gaps). */
  pageBytes: number;
  /** Bytes of QEMU's own stream: device state and the blocks that are not backends. */
  streamBytes: number;
  fdset: FdsetReport;
}

/** Saves a paused guest: QEMU's device state to a temporary stream, then one mapped-ram file built from it and the backends. */
export async function saveByRamsnap(job: PagesJob): Promise<PagesMoved> {
  const t0 = performance.now();
  // Beside the target (its file system has room for the target anyway); for an object, in the temporary folder.
  const dir = parseS3Url(job.path) ? tmpdir() : dirname(job.path);
  const devices = join(dir, `.${basename(job.path)}.ramsnap-${process.pid}-devices.tmp`);
  try {
    const dev = await deviceStateTo(job, devices);
    const made = await convert({
      input: devices,
      output: job.path,
      to: formatOf({ path: job.path }),
      compression: job.compression,
      replace: job.backends.map((b) => ({ name: b.id, path: b.memPath!, part: { offset: b.offset, length: lengthOf(job, b) } })),
      channels: job.channels,
      // Direct I/O is about a mapped-ram file's page slots; a pack's extents are compressed and appended.
      directIo: job.directIo && formatOf({ path: job.path }) !== "pack",
      manifest: job.manifest,
      onProgress: (p) => job.onProgress?.(asMigrationProgress("save", p)),
      signal: job.signal,
    });
    const pageBytes = made.bytesWritten;
    for (const p of made.staleRemoved ?? []) job.warnings.push(`removed ${p}, left by an earlier save that was killed`);
    return { seconds: (performance.now() - t0) / 1000, pageBytes, streamBytes: dev.bytes, fdset: dev.fdset, ...(made.manifest ? { manifest: made.manifest } : {}) };
  } finally {
    rmSync(devices, { force: true });
  }
}

/** QEMU writes its device state and the non-backend blocks (x-ignore-shared, classic stream) to `file`. */
async function deviceStateTo(job: PagesJob, file: string): Promise<{ bytes: number; fdset: PagesMoved["fdset"] }> {
  const settings = await applyMigrationSettings(job.qmp, job.version, { channels: 1, directIo: false, unlimitedBandwidth: true, stream: "device-state" });
  try {
    // Not cancellable: it takes milliseconds, and a cancel is checked again before the pages move.
    const outcome = await migrateToFile(job.qmp, { label: settings.label }, file, false, async () => {});
    const removed = await removeFdset(outcome.fdset, job.warnings);
    return { bytes: outcome.info.ram?.transferred ?? 0, fdset: { id: outcome.fdset.id, descriptors: outcome.fdset.qemuFds.length, removed } };
  } finally {
    await restoreSettings(settings, job.warnings);
  }
}

/** Loads a file into a QEMU started with -incoming defer: the backends' pages by ramsnap, the rest by QEMU. */
export async function restoreByRamsnap(job: PagesJob): Promise<PagesMoved> {
  const t0 = performance.now();
  const targets: BlockTarget[] = job.backends.map((b) => ({ name: b.id, path: b.memPath!, part: { offset: b.offset, length: lengthOf(job, b) } }));
  const placed = await restore({
    path: job.path,
    offset: job.offset,
    blocks: targets,
    channels: job.channels,
    directIo: job.directIo && !isPack({ path: job.path }),
    verify: job.verify,
    onProgress: (p) => job.onProgress?.(asMigrationProgress("restore", p)),
    signal: job.signal,
  });
  const placedBlocks = new Set(targets.map((t) => t.name));
  const withCopy = (use: (load: string, streamBytes: number) => Promise<PagesMoved>) =>
    isPack({ path: job.path }) ? withPackLoadStream(job.path, placedBlocks, use) : withLoadStream(job.path, job.offset ?? 0, placedBlocks, use);
  return withCopy(async (load, streamBytes) => {
    const fdset = await loadPreparedStream(job.qmp, job.version, load, { signal: job.signal, offset: job.offset }, job.warnings);
    return { seconds: (performance.now() - t0) / 1000, pageBytes: placed.readBytes, streamBytes, fdset };
  });
}

function lengthOf(job: PagesJob, b: Backend): number {
  return job.blocks.find((x) => x.name === b.id)?.usedLength ?? b.size;
}

/**
 * ramsnap's own counters, in the shape the QEMU path reports: bytes actually moved, and the rate of RAM
 * covered per second with the time left (the rate the summary reports too, RAM over seconds).
 */
function asMigrationProgress(direction: "save" | "restore", p: Progress): MigrationProgress {
  const rate = p.seconds > 0 ? p.doneBytes / p.seconds : 0;
  return {
    direction,
    status: p.doneBytes < p.totalBytes ? "active" : "completed",
    seconds: p.seconds,
    totalBytes: p.totalBytes,
    remainingBytes: p.totalBytes - p.doneBytes,
    transferredBytes: p.ioBytes,
    bytesPerSecond: rate,
    ...(rate > 0 ? { etaSeconds: (p.totalBytes - p.doneBytes) / rate } : {}),
  };
}
