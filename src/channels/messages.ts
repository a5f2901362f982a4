// What the main thread and the channel Workers say to each other. Pointers travel as numbers: Workers
// share the process's address space, and posting the memory itself would copy it.
import type { PageSource } from "../memory/page-source.ts";

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
  source: PageSource;
  /** Absolute file offset of the chunk's first page. */
  fileOffset: number;
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
  fileOffset: number;
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
  /** Waiting for this job after the last one ended (or after setup, for the first). */
  idle: number;
}

export const STAGES = ["readSource", "zeroCheck", "diskWait", "faultTarget", "hash", "idle"] as const satisfies readonly (keyof StageSeconds)[];

export const noStages = (): StageSeconds => ({ readSource: 0, zeroCheck: 0, diskWait: 0, faultTarget: 0, hash: 0, idle: 0 });

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
  stages: StageSeconds;
}

export interface JobFailed {
  type: "failed";
  id: number;
  message: string;
  /** errno name when a libc call failed (ENOSPC, EIO, ...). */
  code?: string;
}

export type FromChannel = { type: "ready"; channel: number } | JobDone | JobFailed;
