// A block's extents as a loader sees them, read from a save file: pages the file holds from where it holds
// them, pages it does not hold as zeros (or a classic ZERO record's fill byte).
import * as libc from "../../ffi/libc.ts";
import type { BlockPages } from "../format/pages.ts";
import { gatherPages } from "../memory/page-source.ts";
import { EXTENT_BYTES, hashBytes } from "./hash.ts";

/** Calls `fn(extent, hash)` for each extent of the block in order; stops early when `fn` returns false. */
export function hashFileExtents(bp: BlockPages, source: { fd: number; name: string }, fn: (extent: number, hash: string, length: number) => boolean | undefined): void {
  const length = bp.info.length;
  const ps = length / bp.info.pages;
  const buf = new libc.AlignedBuffer(EXTENT_BYTES);
  const read = (dst: number, n: number, at: number) => libc.preadFull(source.fd, dst, n, at, { path: source.name });
  try {
    for (let e = 0; e * EXTENT_BYTES < length; e++) {
      const len = Math.min(EXTENT_BYTES, length - e * EXTENT_BYTES);
      const first = e * (EXTENT_BYTES / ps);
      gatherPages(buf.ptr, len / ps, ps, (k) => bp.locate(first + k), read);
      if (fn(e, hashBytes(buf.view.subarray(0, len)), len) === false) return;
    }
  } finally {
    buf.free();
  }
}
