// save: RAM images into one mapped-ram file. The main stream (plain descriptor) writes the head,
// channels (Workers, O_DIRECT descriptor with direct I/O) write the pages at their fixed slots, and only
// then does the main stream write bitmaps and the tail that ends in EOF.
import * as libc from "../ffi/libc.ts";
import { ChannelPool } from "./channels/pool.ts";
import { CancelledError, OptionError } from "./errors.ts";
import { DEFAULT_MACHINE_TYPE, DEFAULT_PAGE_SIZE } from "./format/constants.ts";
import { machineSendsSwitchover, writeMappedRamHead, writeMappedRamTail, type MappedRamPlan } from "./format/mapped-ram-stream.ts";
import { countSet } from "./format/bitmap.ts";
import { OutputFile } from "./io/output.ts";
import { bufferRegion, openFileSource } from "./memory/region.ts";
import { dataPagesOf, mapData } from "./memory/holes.ts";
import type { PageSource } from "./channels/messages.ts";
import { checkBlocks, checkTransfer, DEFAULT_MAX_GAP, openDirect, probeDirect } from "./options.ts";
import { gibPerSecond, jobsPerChunk, runJobs, type ExtentHashes, type Progress } from "./transfer.ts";
import { manifestPath, writeManifest } from "./manifest.ts";
import { parseStream } from "./format/parse.ts";
import { MainFile } from "./io/main-file.ts";

/** Writes FILE.sums for a finished file, reading back its main stream (which also re-checks the file). */
export function writeManifestFor(path: string, offset: number, extents: ExtentHashes): string {
  const f = MainFile.openRead(path);
  try {
    writeManifest(path, f, parseStream(f, { base: offset }), extents);
    return manifestPath(path);
  } finally {
    f.close();
  }
}

export interface BlockSource {
  /** The RAM block's name as QEMU knows it (the memory backend's id, e.g. "ram0", or "pc.ram"). */
  name: string;
  /** A file holding the block's bytes (raw image, /dev/shm guest RAM). */
  path?: string;
  /** Or bytes in this process. */
  buffer?: Uint8Array;
}

export interface SaveOptions {
  /** The file to write; created if needed, bytes before `offset` kept, everything after replaced. */
  path?: string;
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
  /** Also write FILE.sums: a hash of each 1 MiB of every block and of the main stream (see manifest.ts). */
  manifest?: boolean;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface SaveResult {
  file: string;
  blocks: { name: string; length: number; present: number; zero: number }[];
  totalBytes: number;
  /** The manifest written beside the file, if asked for. */
  manifest?: string;
  /** Page bytes written (present pages plus bridged gaps). */
  writtenBytes: number;
  /** Source bytes that were holes in their files (never-touched guest RAM): known zero, not read. */
  sourceHoleBytes: number;
  ioCalls: number;
  pagesPresent: number;
  pagesZero: number;
  seconds: number;
  gibPerSecond: number;
  channels: number;
  directIo: boolean;
  offset: number;
}

/** A block's pages as channels read them: in place for buffers, by pread for files. */
export interface SourceBlock {
  readonly name: string;
  readonly length: number;
  /** The page source of the chunk of `pages` pages of `pageSize` bytes starting `byteOffset` bytes into the block. */
  at(byteOffset: number, pages: number, pageSize: number): PageSource;
  release(): void;
}

/** `mapHoles`: find a file's holes, so they are not read (only where zero pages are left out anyway). */
export function openSource(b: BlockSource, mapHoles = true): SourceBlock {
  if (b.buffer && b.path) throw new OptionError(`block ${b.name}: give a path or a buffer, not both`);
  if (b.buffer) {
    if (b.buffer.length === 0) throw new OptionError(`block ${b.name} is empty`);
    const r = bufferRegion(b.name, b.buffer);
    return { name: b.name, length: r.length, at: (off) => ({ kind: "memory", addr: r.ptr + off, aligned: r.aligned && off % 4096 === 0 }), release: r.release };
  }
  if (b.path) {
    const f = openFileSource(b.path);
    try {
      const map = mapHoles ? mapData(f.fd, b.path, f.length) : null;
      const at = (off: number, pages: number, pageSize: number): PageSource => {
        const data = map ? dataPagesOf(map, off, pages, pageSize) : undefined;
        return { kind: "file", fd: f.fd, path: b.path!, offset: off, ...(data ? { data } : {}) };
      };
      return { name: b.name, length: f.length, at, release: f.release };
    } catch (e) {
      f.release();
      throw e;
    }
  }
  throw new OptionError(`block ${b.name}: no source (a path or a buffer)`);
}


export async function save(o: SaveOptions): Promise<SaveResult> {
  const t0 = performance.now();
  const pageSize = DEFAULT_PAGE_SIZE;
  const { channels, directIo, offset } = checkTransfer(o, "write");
  if (o.manifest && o.path === undefined) throw new OptionError("--manifest needs an output path (FILE.sums is written beside FILE)");
  if (o.signal?.aborted) throw new CancelledError();

  const sources: SourceBlock[] = [];
  let out: OutputFile | undefined;
  let directFd: number | undefined;
  let pool: ChannelPool | undefined;
  const name = o.path ?? `fd ${o.fd}`;
  try {
    const zeroDetect = o.zeroPageDetection ?? true;
    for (const b of o.blocks) sources.push(openSource(b, zeroDetect));
    const specs = sources.map((b) => ({ name: b.name, length: b.length }));
    checkBlocks(specs, pageSize);
    const machineType = o.machineType ?? DEFAULT_MACHINE_TYPE;
    const plan: MappedRamPlan = { machineType, blocks: specs, pageSize, base: offset, ramSectionId: 2, switchoverStart: machineSendsSwitchover(machineType) };

    out = OutputFile.open(o, offset);
    const main = out.main;
    const layout = writeMappedRamHead(main, plan);
    const probeAt = layout.blocks[0]!.pagesOffset;
    if (directIo) {
      if (o.directFd !== undefined) probeDirect(o.directFd, name, "write", probeAt);
      else directFd = openDirect(out.writePath!, "write", probeAt, name);
    }
    const channelFd = o.directFd ?? directFd ?? main.fd;
    const bitmaps = layout.blocks.map((l) => new SharedArrayBuffer(l.bitmapSize));
    pool = await ChannelPool.start(channels, { fd: channelFd, direct: directIo, path: name, pageSize, maxGap: o.maxGap ?? DEFAULT_MAX_GAP });
    const totalBytes = specs.reduce((s, b) => s + b.length, 0);
    const jobs = jobsPerChunk(layout.blocks, pageSize, (i, c) => ({
      type: "save" as const,
      source: sources[i]!.at(c.byteOffset, c.pages, pageSize),
      fileOffset: c.fileOffset,
      bitmap: bitmaps[i]!,
      firstPage: c.firstPage,
      pages: c.pages,
      zeroDetect,
      hashExtents: o.manifest,
      block: i,
    }));
    const hashes: ExtentHashes = new Map();
    const stats = await runJobs(pool, jobs, totalBytes, o.onProgress, o.signal, hashes);
    const maps = bitmaps.map((b) => new Uint8Array(b));
    // Pages must be on disk before the bitmaps and EOF that make the file complete.
    libc.fsync(channelFd, name);
    writeMappedRamTail(main, plan, layout, maps);
    out.commit();
    const manifest = o.manifest ? writeManifestFor(o.path!, offset, hashes) : undefined;
    const seconds = (performance.now() - t0) / 1000;
    const blocks = layout.blocks.map((l, i) => {
      const present = countSet(maps[i]!, l.pages);
      return { name: l.name, length: l.length, present, zero: l.pages - present };
    });
    return {
      file: name,
      blocks,
      ...(manifest ? { manifest } : {}),
      totalBytes,
      writtenBytes: stats.ioBytes,
      sourceHoleBytes: stats.holeBytes,
      ioCalls: stats.ioCalls,
      pagesPresent: stats.present,
      pagesZero: blocks.reduce((s, b) => s + b.zero, 0),
      seconds,
      gibPerSecond: gibPerSecond(totalBytes, seconds),
      channels,
      directIo,
      offset,
    };
  } finally {
    await pool?.close();
    for (const b of sources) b.release();
    if (directFd !== undefined) libc.close(directFd, name);
    // A save that did not finish must not leave a file that could pass for one.
    out?.abandon();
    out?.close();
  }
}
