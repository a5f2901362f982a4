// What the main thread and the channel Workers say to each other. Pointers travel as numbers: Workers
// share the process's address space, and posting the memory itself would copy it.

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
  /** Address of the chunk's first page in the source. */
  src: number;
  /** The source address is page-aligned (otherwise pages go through an aligned bounce buffer). */
  srcAligned: boolean;
  /** Absolute file offset of the chunk's first page. */
  fileOffset: number;
  /** The block's bitmap, shared; the chunk owns whole bytes of it (chunks start on 64-page bounds). */
  bitmap: SharedArrayBuffer;
  firstPage: number;
  pages: number;
  /** Detect zero pages (off: every page is written and marked present). */
  zeroDetect: boolean;
  /**
   * Pages scattered in memory (an mmap'd input file): a Float64Array of one address per page of the chunk,
   * or -1 for a page that is absent. When set, `src` is unused and pages are gathered into an aligned buffer.
   */
  srcPages?: SharedArrayBuffer;
}

/** Restore one chunk: read the present pages into the target; zero the absent ones if asked. */
export interface RestoreJob {
  type: "restore";
  id: number;
  dst: number;
  dstAligned: boolean;
  fileOffset: number;
  bitmap: SharedArrayBuffer;
  firstPage: number;
  pages: number;
  /** The target may hold old data: absent pages must be written as zeros. */
  zeroAbsent: boolean;
}

export type Job = SaveJob | RestoreJob;
export type ToChannel = ChannelSetup | Job | { type: "close" };

export interface JobDone {
  type: "done";
  id: number;
  /** Page bytes the job covered (present or not), for progress. */
  bytes: number;
  /** Bytes that went through I/O calls. */
  ioBytes: number;
  ioCalls: number;
  present: number;
}

export interface JobFailed {
  type: "failed";
  id: number;
  message: string;
  /** errno name when a libc call failed (ENOSPC, EIO, ...). */
  code?: string;
}

export type FromChannel = { type: "ready"; channel: number } | JobDone | JobFailed;
