// Getting a chunk's pages to an address that can be written from, for each kind of PageSource.
// Used by the channels (Workers) and by the main thread when it writes a classic stream itself.
import * as libc from "../../ffi/libc.ts";
import { fillOf } from "../format/pages.ts";
import type { PageSource } from "./messages.ts";

/** Reads exactly len bytes of a source; a short read means the source shrank while being saved. */
function readSource(fd: number, path: string, dst: number, len: number, offset: number): void {
  try {
    libc.preadFull(fd, dst, len, offset, { path });
  } catch (e) {
    if (e instanceof libc.ShortIoError) throw new Error(`${path} ends before offset ${offset + len}: the source shrank during the save`);
    throw e;
  }
}

export interface LoadedPages {
  /** Address of the chunk's first page. */
  base: number;
  /** Page-aligned, so direct I/O can write from it. */
  aligned: boolean;
  /** For scattered sources: whether the source holds page i at all. */
  exists?: (i: number) => boolean;
}

/** The chunk's `pages` pages at an address; files are read into the buffer `bounce(len)` returns. */
export function loadPages(src: PageSource, pages: number, ps: number, bounce: (len: number) => libc.AlignedBuffer): LoadedPages {
  const len = pages * ps;
  if (src.kind === "memory") return { base: src.addr, aligned: src.aligned };
  const b = bounce(len);
  if (src.kind === "file") {
    readSource(src.fd, src.path, b.ptr, len, src.offset);
    return { base: b.ptr, aligned: true };
  }
  const offsets = new Float64Array(src.offsets);
  for (let i = 0; i < pages; ) {
    const at = offsets[i]!;
    if (at < 0) {
      libc.memset(b.ptr + i * ps, fillOf(at), ps);
      i++;
      continue;
    }
    let n = 1; // pages stored back to back are read with one call
    while (i + n < pages && offsets[i + n] === at + n * ps) n++;
    readSource(src.fd, src.path, b.ptr + i * ps, n * ps, at);
    i += n;
  }
  return { base: b.ptr, aligned: true, exists: (i) => offsets[i]! >= 0 || fillOf(offsets[i]!) !== 0 };
}
