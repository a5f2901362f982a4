// restore: a mapped-ram file back into RAM images. The whole main stream is read first, block list and
// bitmaps included, so a truncated or corrupt file is refused before any target is touched; then the
// channels read the present pages straight into the mapped targets.
import { jobsPerChunk } from "./channels/jobs.ts";
import { gibPerSecond, PageSession, type Progress } from "./channels/session.ts";
import type { StageSeconds } from "./channels/messages.ts";
import { IntegrityError, OptionError, RefusedError } from "./errors.ts";
import type { RamBlockInfo } from "./format/parse.ts";
import { checkMainStream, compareExtents } from "./integrity/check.ts";
import type { ExtentHashes } from "./integrity/hash.ts";
import { checkDescriptors } from "./io/descriptors.ts";
import { findManifest, manifestPath, readManifest, type Manifest } from "./integrity/sums.ts";
import type { MemoryRegion } from "./memory/region.ts";
import { checkTarget, RamTargets, type BlockTarget } from "./memory/targets.ts";
import { checkTransfer, matchBlocks } from "./options.ts";
import { openSaveFile } from "./savefile/open.ts";
import type { SaveFileReader } from "./savefile/side.ts";

export type { BlockTarget } from "./memory/targets.ts";

export interface RestoreOptions {
  path?: string;
  /** Or a descriptor open for reading without O_DIRECT (the main stream)... */
  fd?: number;
  /** ...and one with O_DIRECT on the same file, for the channels. Implies direct I/O. */
  directFd?: number;
  blocks: BlockTarget[];
  channels?: number;
  directIo?: boolean;
  offset?: number;
  maxGap?: number;
  /**
   * Leave every page the file does not hold as a hole in fresh target files, the few absent pages of a
   * bridged gap included (slower: see the worker). Without it a fresh target gets memory for each run the
   * channels read, so only long absent runs stay holes.
   */
  keepHoles?: boolean;
  /** Check the restored bytes (and the file's main stream) against FILE.sums; fail naming the first bad extent. */
  verify?: boolean;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface RestoreResult {
  file: string;
  blocks: { name: string; length: number; present: number; absent: number; target: string }[];
  /** Blocks in the file that no target asked for. */
  skipped: string[];
  totalBytes: number;
  readBytes: number;
  ioCalls: number;
  /** Seconds each stage of the channels took, summed over them (channels/messages.ts StageSeconds). */
  stages: StageSeconds;
  /** Wall seconds the channels moved pages; the rest of `seconds` is opening, preparing and finishing. */
  transferSeconds: number;
  seconds: number;
  gibPerSecond: number;
  channels: number;
  directIo: boolean;
  /** With verify: the manifest every restored block matched. */
  verifiedWith?: string;
}

interface CheckedManifest {
  path: string;
  m: Manifest;
}

export async function restore(o: RestoreOptions): Promise<RestoreResult> {
  const t = checkRestoreOptions(o);
  await using session = new PageSession({ ...t, onProgress: o.onProgress, signal: o.signal });
  const file = session.own(await openSaveFile({ ...o, offset: t.offset }));
  const blocks = matchTargets(file, o.blocks);
  // A pack checks every extent's hash as it reads it; a mapped-ram file is checked against FILE.sums.
  const manifest = o.verify && file.kind === "mapped-ram" ? checkManifestFirst(file) : undefined;
  const io = file.openChannels(t.directIo); // direct I/O proven before any target is created or resized
  const targets = session.own(new RamTargets());
  const regions = blocks.map((b, i) => targets.open(o.blocks[i]!, b.length, o.keepHoles ?? false));
  await session.start(io, file.info.pageSize);
  const totalBytes = blocks.reduce((s, b) => s + b.length, 0);
  const stats = await session.run(restoreJobs(file, blocks, regions, o), totalBytes);
  if (manifest) checkRestoredExtents(file.name, manifest, blocks, session.hashes);
  targets.finish();
  const seconds = session.seconds;
  return {
    file: file.name,
    blocks: blocks.map((b, i) => ({ name: b.name, length: b.length, present: b.present, absent: b.absent, target: o.blocks[i]!.path ?? "(buffer)" })),
    skipped: file.info.blocks.filter((b) => !blocks.includes(b)).map((b) => b.name),
    totalBytes,
    readBytes: stats.ioBytes,
    ioCalls: stats.ioCalls,
    stages: stats.stages,
    transferSeconds: stats.transferSeconds,
    seconds,
    gibPerSecond: gibPerSecond(totalBytes, seconds),
    channels: t.channels,
    directIo: t.directIo,
    ...(manifest ? { verifiedWith: manifest.path } : o.verify ? { verifiedWith: `${file.name} (the pack's extent hashes)` } : {}),
  };
}

function checkRestoreOptions(o: RestoreOptions) {
  const t = checkTransfer(o, "read");
  if (o.fd !== undefined) checkDescriptors(o.fd, o.directFd, "read");
  if (o.verify && o.path === undefined) throw new OptionError("--verify needs the file's path (its manifest FILE.sums lies beside it)");
  if (o.blocks.length === 0) throw new OptionError("no targets given (use --block NAME=PATH)");
  return t;
}

/** The file's blocks the targets name, in their order; each target fits its block. */
function matchTargets(file: SaveFileReader, targets: BlockTarget[]): RamBlockInfo[] {
  const blocks = matchBlocks(file.name, file.info.blocks, targets.map((t) => t.name));
  blocks.forEach((b, i) => {
    if (b.shared) throw new RefusedError(`block ${b.name} was not saved in ${file.name} (shared memory, x-ignore-shared)`);
    checkTarget(targets[i]!, file.name, b.length);
  });
  return blocks;
}

/** The manifest, and the file's main stream checked against it: a bad block list or bitmap would make every page check meaningless. */
function checkManifestFirst(file: SaveFileReader): CheckedManifest {
  const path = findManifest(file.path!);
  if (!path) throw new RefusedError(`--verify: ${manifestPath(file.path!)} does not exist (save with --manifest to write one)`);
  const m = readManifest(path);
  if (!checkMainStream(m, file.main, file.info)) {
    throw new IntegrityError(`${file.name}: the main stream (header, block list, bitmaps, device state) does not match ${path}`);
  }
  return { path, m };
}

function restoreJobs(file: SaveFileReader, blocks: RamBlockInfo[], regions: MemoryRegion[], o: RestoreOptions) {
  const bitmaps = blocks.map((b) => {
    const shared = new SharedArrayBuffer(b.bitmap!.length);
    new Uint8Array(shared).set(b.bitmap!);
    return shared;
  });
  const places = blocks.map((b) => ({ pages: b.pages, pagesOffset: b.mapped!.pagesOffset }));
  return jobsPerChunk(places, file.info.pageSize, (i, c) => ({
    type: "restore" as const,
    block: i,
    dst: regions[i]!.ptr + c.byteOffset,
    dstAligned: regions[i]!.aligned,
    from: file.pagesFrom(i, c),
    bitmap: bitmaps[i]!,
    firstPage: c.firstPage,
    pages: c.pages,
    zeroAbsent: regions[i]!.mayHoldData,
    keepHoles: !regions[i]!.mayHoldData && o.keepHoles,
    ...(regions[i]!.reserveFd !== undefined ? { reserve: { fd: regions[i]!.reserveFd!, offset: c.byteOffset, path: regions[i]!.name } } : {}),
    hashExtents: o.verify,
  }));
}

function checkRestoredExtents(name: string, manifest: CheckedManifest, blocks: RamBlockInfo[], hashes: ExtentHashes): void {
  blocks.forEach((b, i) => {
    const bad = compareExtents(manifest.m, b.name, hashes.of(i));
    if (bad) {
      const range = `bytes 0x${bad.offset.toString(16)}-0x${(bad.offset + bad.length - 1).toString(16)}`;
      throw new IntegrityError(`${name}: block ${b.name}, extent ${bad.extent} (${range}) does not match ${manifest.path}`);
    }
  });
}
