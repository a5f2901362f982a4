// Where a chunk of pages comes from (a PageSource, which travels in a channel job) and how to get those
// pages to an address that can be written from. Used by the channels (Workers) and by the main thread
// when it writes a classic stream itself.
import * as libc from "../../ffi/libc.ts";
import { RefusedError } from "../errors.ts";
import { fillOf } from "../format/pages.ts";

/**
 * Where a save job's pages come from. Files are read with pread into an aligned buffer rather than
 * mapped: a mapped file that shrinks under us raises SIGBUS and kills the process, a read just comes
 * up short and becomes an error message.
 */
export type PageSource =
  /** An in-process buffer, used in place (through a bounce buffer when not page-aligned). */
  | { kind: "memory"; addr: number; aligned: boolean }
  /**
   * A file holding the chunk's pages back to back from `offset`; `data`, when known, lists the page
   * ranges [first, stop) that are not holes (see memory/holes.ts).
   */
  | { kind: "file"; fd: number; path: string; offset: number; data?: [number, number][] }
  /**
   * Pages scattered in a file (a save file being re-laid): a Float64Array with, per page of the chunk, the
   * file offset of its bytes, or a pages.ts code for a page not stored as data (absent, or a fill byte).
   */
  | { kind: "pages"; fd: number; path: string; offsets: SharedArrayBuffer };

/** Reads exactly len bytes of a source; a short read means the source shrank while being saved. */
function readSource(fd: number, path: string, dst: number, len: number, offset: number): void {
  try {
    libc.preadFull(fd, dst, len, offset, { path });
  } catch (e) {
    if (e instanceof libc.ShortIoError) throw new RefusedError(`${path} ends before offset ${offset + len}: the source shrank during the save`);
    throw e;
  }
}

export interface LoadedPages {
  /** Address of the chunk's first page. */
  base: number;
  /** Page-aligned, so direct I/O can write from it. */
  aligned: boolean;
  /** False for a page known to be no data (zeros there); such a page is absent from the file. */
  exists?: (i: number) => boolean;
  /** Bytes of the chunk that were holes in a file source, not read. */
  holeBytes?: number;
}

/**
 * The chunk's `pages` pages at an address; files are read into the buffer `bounce(len)` returns. The
 * holes of a file source that has its data ranges are not read: their pages are zeros in the buffer
 * and marked as not existing (sources are mapped only where zero pages are left out of the file).
 */
export function loadPages(src: PageSource, pages: number, ps: number, bounce: (len: number) => libc.AlignedBuffer): LoadedPages {
  const len = pages * ps;
  if (src.kind === "memory") return { base: src.addr, aligned: src.aligned };
  const b = bounce(len);
  if (src.kind === "file") {
    const data = src.data;
    if (!data) {
      readSource(src.fd, src.path, b.ptr, len, src.offset);
      return { base: b.ptr, aligned: true };
    }
    // Zeros where the holes are, so bridged gaps and manifest hashes see what a loader sees.
    const inData = new Uint8Array(pages);
    let at = 0;
    let read = 0;
    for (const [first, stop] of data) {
      if (first > at) libc.memset(b.ptr + at * ps, 0, (first - at) * ps);
      readSource(src.fd, src.path, b.ptr + first * ps, (stop - first) * ps, src.offset + first * ps);
      inData.fill(1, first, stop);
      read += stop - first;
      at = stop;
    }
    if (at < pages) libc.memset(b.ptr + at * ps, 0, (pages - at) * ps);
    // Past the end of the file reads like a hole: a source that shrank must fail, not pass for zeros.
    // Checked after the reads, so a shrink at any moment before them is caught.
    if (libc.fstatx(src.fd, src.path).size < src.offset + len) readSource(src.fd, src.path, b.ptr, len, src.offset);
    return { base: b.ptr, aligned: true, exists: (i) => inData[i] === 1, holeBytes: (pages - read) * ps };
  }
  const offsets = new Float64Array(src.offsets);
  gatherPages(b.ptr, pages, ps, (i) => offsets[i]!, (dst, n, at) => readSource(src.fd, src.path, dst, n, at));
  return { base: b.ptr, aligned: true, exists: (i) => offsets[i]! >= 0 || fillOf(offsets[i]!) !== 0 };
}

/**
 * Fills `pages` pages at `dst` as a loader sees them: `locate(i)` says where page i's bytes lie in a
 * file (or, below 0, a pages.ts code for a page not stored as data, whose fill byte is written);
 * pages stored back to back are read with one `read(dst, length, offset)`.
 */
export function gatherPages(dst: number, pages: number, ps: number, locate: (i: number) => number, read: (dst: number, length: number, offset: number) => void): void {
  for (let i = 0; i < pages; ) {
    const at = locate(i);
    if (at < 0) {
      libc.memset(dst + i * ps, fillOf(at), ps);
      i++;
      continue;
    }
    let n = 1;
    while (i + n < pages && locate(i + n) === at + n * ps) n++;
    read(dst + i * ps, n * ps, at);
    i += n;
  }
}
