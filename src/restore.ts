// restore: a mapped-ram file back into RAM images. The main stream (plain descriptor) reads the whole
// stream first, block list and bitmaps included, so a truncated or corrupt file is refused before any
// target is touched; then the channels read the present pages straight into the mapped targets.
import { existsSync, rmSync } from "node:fs";
import * as libc from "../ffi/libc.ts";
import { ChannelPool } from "./channels/pool.ts";
import { CancelledError, IntegrityError, OptionError } from "./errors.ts";
import { parseStream, type RamBlockInfo } from "./format/parse.ts";
import { MainFile } from "./io/main-file.ts";
import { bufferRegion, mapFileForWrite, type MemoryRegion } from "./memory/region.ts";
import { checkTransfer, DEFAULT_MAX_GAP, openDirect, probeDirect } from "./options.ts";
import { gibPerSecond, jobsPerChunk, runJobs, type ExtentHashes, type Progress } from "./transfer.ts";
import { checkMainStream, compareExtents, findManifest, manifestPath, readManifest, type Manifest } from "./manifest.ts";

export interface BlockTarget {
  /** The RAM block's name in the file. */
  name: string;
  /** A file to write the block's bytes to: created, or resized to the block's length. */
  path?: string;
  /** Or bytes in this process, exactly as long as the block. */
  buffer?: Uint8Array;
}

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
  /** Leave pages the file does not hold as holes in fresh target files (slower: see the worker). */
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
  seconds: number;
  gibPerSecond: number;
  channels: number;
  directIo: boolean;
  /** With verify: the manifest every restored block matched. */
  verifiedWith?: string;
}

function matchTargets(file: string, blocks: RamBlockInfo[], targets: BlockTarget[]): RamBlockInfo[] {
  if (targets.length === 0) throw new OptionError("no targets given (use --block NAME=PATH)");
  const names = blocks.map((b) => b.name);
  const seen = new Set<string>();
  return targets.map((t) => {
    if (seen.has(t.name)) throw new OptionError(`block ${t.name} is given twice`);
    seen.add(t.name);
    const b = blocks.find((x) => x.name === t.name);
    if (!b) throw new OptionError(`${file} has no RAM block named ${t.name}; it has ${names.join(", ")}`);
    if (b.shared) throw new OptionError(`block ${t.name} was not saved in ${file} (shared memory, x-ignore-shared)`);
    if (t.buffer && t.path) throw new OptionError(`block ${t.name}: give a path or a buffer, not both`);
    if (!t.buffer && !t.path) throw new OptionError(`block ${t.name}: no target (a path or a buffer)`);
    if (t.buffer && t.buffer.length !== b.length) {
      throw new OptionError(`block ${t.name} is ${b.length} bytes in ${file}, but the target buffer holds ${t.buffer.length}`);
    }
    return b;
  });
}

export async function restore(o: RestoreOptions): Promise<RestoreResult> {
  const t0 = performance.now();
  const { channels, directIo, offset } = checkTransfer(o, "read");
  if (o.signal?.aborted) throw new CancelledError();

  const name = o.path ?? `fd ${o.fd}`;
  const main = o.path !== undefined ? MainFile.openRead(o.path) : MainFile.fromFd(o.fd!, name);
  const regions: MemoryRegion[] = [];
  /** Target files this restore created: a failed restore removes them rather than leave half an image. */
  const created: string[] = [];
  let finished = false;
  let directFd: number | undefined;
  let pool: ChannelPool | undefined;
  try {
    const info = parseStream(main, { base: offset, keepBitmaps: true });
    if (info.ramFormat !== "mapped-ram") {
      if (info.ramFormat === null) throw new OptionError(`${name} is a stream without RAM; restore reads mapped-ram files`);
      throw new OptionError(`${name} is a classic (not mapped-ram) stream; restore reads mapped-ram files (ramsnap extract reads both, or convert it --to mapped-ram)`);
    }
    const blocks = matchTargets(name, info.blocks, o.blocks);
    let manifest: { path: string; m: Manifest } | undefined;
    if (o.verify) {
      if (o.path === undefined) throw new OptionError("--verify needs the file's path (its manifest FILE.sums lies beside it)");
      const path = findManifest(o.path);
      if (!path) throw new OptionError(`--verify: ${manifestPath(o.path)} does not exist (save with --manifest to write one)`);
      const m = readManifest(path);
      // The main stream first: a bad block list or bitmap would make every page check meaningless.
      const check = checkMainStream(m, main, info);
      if (!check) throw new IntegrityError(`${name}: the main stream (header, block list, bitmaps, device state) does not match ${path}`);
      manifest = { path, m };
    }
    const ps = info.pageSize;
    // Direct I/O is proven before any target is created or resized.
    const probeAt = blocks[0]!.mapped!.pagesOffset;
    if (directIo) {
      if (o.directFd !== undefined) probeDirect(o.directFd, name, "read", probeAt);
      else directFd = openDirect(o.path!, "read", probeAt);
    }
    for (const [i, t] of o.blocks.entries()) {
      if (t.path && !existsSync(t.path)) created.push(t.path);
      regions.push(t.buffer ? bufferRegion(t.name, t.buffer) : mapFileForWrite(t.path!, blocks[i]!.length, !o.keepHoles));
    }
    pool = await ChannelPool.start(channels, {
      fd: o.directFd ?? directFd ?? main.fd,
      direct: directIo,
      path: name,
      pageSize: ps,
      maxGap: o.maxGap ?? DEFAULT_MAX_GAP,
    });
    const bitmaps = blocks.map((b) => {
      const shared = new SharedArrayBuffer(b.bitmap!.length);
      new Uint8Array(shared).set(b.bitmap!);
      return shared;
    });
    const places = blocks.map((b) => ({ pages: b.pages, pagesOffset: b.mapped!.pagesOffset }));
    const jobs = jobsPerChunk(places, ps, (i, c) => ({
      type: "restore" as const,
      dst: regions[i]!.ptr + c.byteOffset,
      dstAligned: regions[i]!.aligned,
      fileOffset: c.fileOffset,
      bitmap: bitmaps[i]!,
      firstPage: c.firstPage,
      pages: c.pages,
      zeroAbsent: regions[i]!.mayHoldData,
      keepHoles: !regions[i]!.mayHoldData && o.keepHoles,
      hashExtents: o.verify,
      block: i,
    }));
    const totalBytes = blocks.reduce((s, b) => s + b.length, 0);
    const hashes: ExtentHashes = new Map();
    const stats = await runJobs(pool, jobs, totalBytes, o.onProgress, o.signal, hashes);
    if (manifest) {
      blocks.forEach((b, i) => {
        const bad = compareExtents(manifest!.m, b.name, hashes.get(i) ?? []);
        if (bad) {
          throw new IntegrityError(
            `${name}: block ${b.name}, extent ${bad.extent} (bytes 0x${bad.offset.toString(16)}-0x${(bad.offset + bad.length - 1).toString(16)}) does not match ${manifest!.path}`,
          );
        }
      });
    }
    for (const r of regions) r.sync();
    finished = true;
    const seconds = (performance.now() - t0) / 1000;
    return {
      file: name,
      blocks: blocks.map((b, i) => ({ name: b.name, length: b.length, present: b.present, absent: b.absent, target: o.blocks[i]!.path ?? "(buffer)" })),
      skipped: info.blocks.filter((b) => !blocks.includes(b)).map((b) => b.name),
      totalBytes,
      readBytes: stats.ioBytes,
      ioCalls: stats.ioCalls,
      seconds,
      gibPerSecond: gibPerSecond(totalBytes, seconds),
      channels,
      directIo,
      ...(manifest ? { verifiedWith: manifest.path } : {}),
    };
  } finally {
    await pool?.close();
    for (const r of regions) r.release();
    if (directFd !== undefined) libc.close(directFd, name);
    main.close();
    if (!finished) for (const p of created) rmSync(p, { force: true });
  }
}
