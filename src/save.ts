// save: RAM images into one mapped-ram file. The main stream writes the head, the channels write the
// pages at their fixed slots (direct I/O when asked), and only once the pages are on disk does the main
// stream write the bitmaps and the tail that ends in EOF.
import { gibPerSecond, PageSession, type Progress } from "./channels/session.ts";
import type { StageSeconds } from "./channels/messages.ts";
import { OptionError } from "./errors.ts";
import { countSet } from "./format/bitmap.ts";
import { DEFAULT_MACHINE_TYPE, DEFAULT_PAGE_SIZE } from "./format/constants.ts";
import { machineSendsSwitchover, ramsnapStream, type MappedRamPlan } from "./format/mapped-ram-stream.ts";
import { jobsPerChunk } from "./channels/jobs.ts";
import { checkDescriptors } from "./io/descriptors.ts";
import { writeManifestOf } from "./integrity/sums.ts";
import { openSource, type BlockSource, type RamSource } from "./memory/sources.ts";
import { checkBlocks, checkTransfer, type Transfer } from "./options.ts";
import type { Compression } from "./format/pack-extent.ts";
import { createSaveFile, formatOf } from "./savefile/open.ts";
import type { SaveFileWriter, SaveFormat } from "./savefile/side.ts";

export type { BlockSource } from "./memory/sources.ts";

export interface SaveOptions {
  /**
   * The file to write; created if needed, bytes before `offset` kept, everything after replaced. A name
   * ending in .rpk, or an s3://BUCKET/KEY URL, is written as a pack (docs/pack-format.md).
   */
  path?: string;
  /** The format to write, when the name does not say (see `path`). */
  format?: SaveFormat;
  /** A pack's compression (default zstd at DEFAULT_ZSTD_LEVEL). */
  compression?: Compression;
  /** Or a descriptor opened for writing without O_DIRECT (the main stream)... */
  fd?: number;
  /** ...and one opened with O_DIRECT on the same file, for the channels. Implies direct I/O. */
  directFd?: number;
  blocks: BlockSource[];
  /** Worker channels moving pages (default 4). */
  channels?: number;
  directIo?: boolean;
  /** Where the stream starts in the file (QEMU's file:...,offset=). */
  offset?: number;
  /** Machine type in the configuration section; QEMU refuses a file whose type differs from its own. */
  machineType?: string;
  /** Skip all-zero pages (default true). Off: every page is written and marked present. */
  zeroPageDetection?: boolean;
  /** Gaps of at most this many absent pages are written along with their neighbours (default 32). */
  maxGap?: number;
  /** Also write FILE.sums: a hash of each 1 MiB of every block and of the main stream (see integrity/). */
  manifest?: boolean;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface SaveResult {
  file: string;
  format: SaveFormat;
  blocks: { name: string; length: number; present: number; zero: number }[];
  totalBytes: number;
  /** The manifest written beside the file, if asked for. */
  manifest?: string;
  /** Temporary files of earlier saves of this file that were killed, removed before this one began. */
  staleRemoved?: string[];
  /** Page bytes written (present pages plus bridged gaps). */
  writtenBytes: number;
  /** Source bytes that were holes in their files (never-touched guest RAM): known zero, not read. */
  sourceHoleBytes: number;
  ioCalls: number;
  /** Seconds each stage of the channels took, summed over them (channels/messages.ts StageSeconds). */
  stages: StageSeconds;
  /** Wall seconds the channels moved pages; the rest of `seconds` is opening, preparing and finishing. */
  transferSeconds: number;
  pagesPresent: number;
  pagesZero: number;
  seconds: number;
  gibPerSecond: number;
  channels: number;
  directIo: boolean;
  offset: number;
}

export async function save(o: SaveOptions): Promise<SaveResult> {
  const t = checkSaveOptions(o);
  const zeroDetect = o.zeroPageDetection ?? true;
  await using session = new PageSession({ ...t, onProgress: o.onProgress, signal: o.signal });
  const sources = o.blocks.map((b) => session.own(openSource(b, zeroDetect)));
  const plan = planOf(sources, o.machineType, t.offset);
  const file = session.own(await createSaveFile({ ...o, offset: t.offset }, ramsnapStream(plan)));
  await session.start(file.openChannels(t.directIo), DEFAULT_PAGE_SIZE);
  const bitmaps = file.layout.blocks.map((l) => new SharedArrayBuffer(l.bitmapSize));
  const stats = await session.run(saveJobs(file, sources, bitmaps, zeroDetect, t.manifest), plan.totalBytes, (d, job) => file.consume?.(d, job.block));
  const maps = bitmaps.map((b) => new Uint8Array(b));
  await file.finish(maps);
  const manifest = t.manifest ? writeManifestOf(o.path!, t.offset, session.hashes) : undefined;
  const blocks = file.layout.blocks.map((l, i) => {
    const present = countSet(maps[i]!, l.pages);
    return { name: l.name, length: l.length, present, zero: l.pages - present };
  });
  const seconds = session.seconds;
  return {
    file: file.name,
    format: t.format,
    blocks,
    ...(manifest ? { manifest } : {}),
    ...(file.staleRemoved.length ? { staleRemoved: [...file.staleRemoved] } : {}),
    totalBytes: plan.totalBytes,
    writtenBytes: stats.ioBytes,
    sourceHoleBytes: stats.holeBytes,
    ioCalls: stats.ioCalls,
    stages: stats.stages,
    transferSeconds: stats.transferSeconds,
    pagesPresent: stats.present,
    pagesZero: blocks.reduce((s, b) => s + b.zero, 0),
    seconds,
    gibPerSecond: gibPerSecond(plan.totalBytes, seconds),
    channels: t.channels,
    directIo: t.directIo,
    offset: t.offset,
  };
}

function checkSaveOptions(o: SaveOptions): Transfer & { format: SaveFormat; manifest: boolean } {
  const t = checkTransfer(o, "write");
  // Handed-over descriptors first: a number closed by mistake could otherwise be reused by a file opened below.
  if (o.fd !== undefined) checkDescriptors(o.fd, o.directFd, "write");
  const format = formatOf(o);
  if (o.manifest && o.path === undefined) throw new OptionError("--manifest needs an output path (FILE.sums is written beside FILE)");
  // A pack hashes every extent it stores (docs/pack-format.md): no FILE.sums beside it.
  return { ...t, format, manifest: (o.manifest ?? false) && format === "mapped-ram" };
}

/** The stream to write: ramsnap's own configuration and one RAM section holding the sources' blocks. */
function planOf(sources: RamSource[], machineType = DEFAULT_MACHINE_TYPE, base: number): MappedRamPlan & { totalBytes: number } {
  const blocks = sources.map((b) => ({ name: b.name, length: b.length }));
  checkBlocks(blocks, DEFAULT_PAGE_SIZE);
  const totalBytes = blocks.reduce((s, b) => s + b.length, 0);
  return { machineType, blocks, pageSize: DEFAULT_PAGE_SIZE, base, ramSectionId: 2, switchoverStart: machineSendsSwitchover(machineType), totalBytes };
}

function saveJobs(file: SaveFileWriter, sources: RamSource[], bitmaps: SharedArrayBuffer[], zeroDetect: boolean, hash?: boolean) {
  const ps = DEFAULT_PAGE_SIZE;
  return jobsPerChunk(file.layout.blocks, ps, (i, c) => ({
    type: "save" as const,
    block: i,
    source: sources[i]!.at(c.byteOffset, c.pages, ps),
    to: file.pagesTo(i, c),
    bitmap: bitmaps[i]!,
    firstPage: c.firstPage,
    pages: c.pages,
    zeroDetect,
    hashExtents: hash,
  }));
}
