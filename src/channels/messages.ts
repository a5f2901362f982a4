// What the main thread and the channel Workers say to each other. Pointers travel as numbers: Workers
// share the process's address space, and posting the memory itself would copy it.
import type { Compression } from "../format/pack-extent.ts";
import type { EncodingCode, PackExtent } from "../format/pack.ts";
import type { S3Location, S3Settings } from "../io/s3.ts";
import type { PageSource } from "../memory/page-source.ts";

/** Where a pack's stored bytes are, as a channel reaches them: a descriptor, or an object it reads by ranges. */
export type PackStoreRef = { kind: "file"; fd: number; path: string } | { kind: "s3"; settings: S3Settings; location: S3Location };

/** Where a save job's pages go: slots of a mapped-ram file, or compressed extents handed back for a pack. */
export type PagesTo = { kind: "slots"; fileOffset: number } | { kind: "pack"; compression: Compression; extentPages: number };

/** Where a restore job's pages come from: slots of a mapped-ram file, or extents of a pack. */
export type PagesFrom = { kind: "slots"; fileOffset: number } | { kind: "packed"; store: PackStoreRef; extents: PackExtent[]; extentPages: number };

/** A chunk's pages in a pack being converted: its extents, decoded by the channel into its buffer. */
export interface PackedSource {
  kind: "packed";
  store: PackStoreRef;
  extents: PackExtent[];
  extentPages: number;
}

/** A save job's pages as a pack stores them: the chunk's stored extents back to back in `data`. */
export interface PackedChunk {
  data: ArrayBuffer;
  extents: { extent: number; offset: number; length: number; encoding: EncodingCode; hash: string; present: Uint8Array }[];
}

export interface ChannelSetup {
  type: "setup";
  channel: number;
  /** Descriptor the channel does its positional I/O on (O_DIRECT when direct is true). */
  fd: number;
  direct: boolean;
  /** Names the file in error messages. */
  path: string;
  pageSize: number;
  /** Longest gap of absent pages bridged by one call (see plan.ts). */
  maxGap: number;
}

/** Save one chunk of a block: find zero pages, set bitmap bits, write the rest at their slots. */
export interface SaveJob {
  type: "save";
  id: number;
  /** The block's index in the file's block list (extent hashes are gathered by it). */
  block: number;
  source: PageSource | PackedSource;
  to: PagesTo;
  /** The block's bitmap, shared; the chunk owns whole bytes of it (chunks start on 64-page bounds). */
  bitmap: SharedArrayBuffer;
  firstPage: number;
  pages: number;
  /** Detect zero pages (off: every page is written and marked present). */
  zeroDetect: boolean;
  /** Hash each 1 MiB extent of the chunk for the manifest (chunks start on extent bounds). */
  hashExtents?: boolean;
}

/** Restore one chunk: read the present pages into the target; zero the absent ones if asked. */
export interface RestoreJob {
  type: "restore";
  id: number;
  block: number;
  dst: number;
  dstAligned: boolean;
  from: PagesFrom;
  bitmap: SharedArrayBuffer;
  firstPage: number;
  pages: number;
  /** The target may hold old data: absent pages must be written as zeros. */
  zeroAbsent: boolean;
  /** The target is fresh and must stay sparse: never touch a page the file does not hold. */
  keepHoles?: boolean;
  /**
   * The target is a fresh file not reserved yet (memory/region.ts reserveFd): fallocate each run at
   * `offset` + its offset in the chunk on `fd` before reading into it (ENOSPC, never SIGBUS).
   */
  reserve?: { fd: number; offset: number; path: string };
  /** Hash each 1 MiB extent of the restored chunk, to check against the manifest. */
  hashExtents?: boolean;
}

/**
 * Read a chunk's present pages through the page cache and drop them: an instant restore's prefetch, so a
 * guest that maps the file finds its pages in memory instead of on disk.
 */
export interface PrefetchJob {
  type: "prefetch";
  id: number;
  block: number;
  fileOffset: number;
  bitmap: SharedArrayBuffer;
  firstPage: number;
  pages: number;
}

export type Job = SaveJob | RestoreJob | PrefetchJob;
export type ToChannel = ChannelSetup | Job | { type: "close" };

/**
 * Seconds one channel spent in each stage of a job, taken with performance.now() around the calls (a
 * dozen reads of the clock per job of 8 MiB). What is left of a job's time is planning runs and bitmaps.
 */
export interface StageSeconds {
  /** Getting the source's pages to an address: pread of a file source (holes zeroed), faulting a buffer in. */
  readSource: number;
  /** Zero-page checks (memcmp per page). */
  zeroCheck: number;
  /** In pwrite / preadv on the save file: under O_DIRECT, waiting for the disk. */
  diskWait: number;
  /**
   * Reserving a fresh target's runs (fallocate), faulting other targets in (MADV_POPULATE_WRITE), zeroing
   * absent pages, copying out of a bounce buffer. A fresh target's pages are faulted in by the read
   * itself (pinning them for O_DIRECT), so that time is in diskWait.
   */
  faultTarget: number;
  /** Hashing extents for the manifest. */
  hash: number;
  /** A pack's extents: compressing and hashing them on save, decoding them on restore. */
  compress: number;
  /** Waiting for this job after the last one ended (or after setup, for the first). */
  idle: number;
}

export const STAGES = ["readSource", "zeroCheck", "diskWait", "faultTarget", "hash", "compress", "idle"] as const satisfies readonly (keyof StageSeconds)[];

export const noStages = (): StageSeconds => ({ readSource: 0, zeroCheck: 0, diskWait: 0, faultTarget: 0, hash: 0, compress: 0, idle: 0 });

export interface JobDone {
  type: "done";
  id: number;
  /** Page bytes the job covered (present or not), for progress. */
  bytes: number;
  /** Bytes that went through I/O calls. */
  ioBytes: number;
  ioCalls: number;
  present: number;
  /** Save: bytes of a file source that were holes, skipped rather than read. */
  holeBytes?: number;
  /** With hashExtents: the xxh3 of each extent of the chunk, in order. */
  hashes?: string[];
  /** A job saving into a pack: its stored extents, for the main thread to append. */
  packed?: PackedChunk;
  stages: StageSeconds;
}

export interface JobFailed {
  type: "failed";
  id: number;
  message: string;
  /** errno name when a libc call failed (ENOSPC, EIO, ...). */
  code?: string;
  /** The job found a pack not what it should be (a PackError, so the caller gets one too). */
  pack?: boolean;
}

export type FromChannel = { type: "ready"; channel: number } | JobDone | JobFailed;
