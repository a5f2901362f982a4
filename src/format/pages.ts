// Where each page of each RAM block lives in a file, for either RAM format. mapped-ram answers from
// the bitmap and the page array; a classic stream is walked once and the last record of every page
// remembered (a live save sends a page again each time it changes, and the last one counts).
import { testBit } from "./bitmap.ts";
import type { ByteSource } from "./bytes.ts";
import { parseStream, type ParseOptions, type RamBlockInfo, type StreamInfo } from "./parse.ts";

/** The page is not in the file: a loader leaves it as it is (zero in a fresh guest). */
export const PAGE_ABSENT = -1;
/** A classic ZERO record: the page is all zeros. */
export const PAGE_ZERO = -2;
/** A classic ZERO record with a non-zero fill byte (obsolete QEMU) is PAGE_FILL_BASE - fill. */
export const PAGE_FILL_BASE = -3;

export interface BlockPages {
  readonly info: RamBlockInfo;
  /** Absolute offset of page p's bytes, or PAGE_ABSENT / PAGE_ZERO / PAGE_FILL_BASE - fill. */
  locate(p: number): number;
}

export interface PageMap {
  info: StreamInfo;
  blocks: BlockPages[];
}

/** The byte every byte of a page not stored as data reads as: 0 when absent, else the zero record's fill. */
export function fillOf(loc: number): number {
  return loc === PAGE_ABSENT || loc === PAGE_ZERO ? 0 : PAGE_FILL_BASE - loc;
}

export function readPageMap(source: ByteSource, options: Omit<ParseOptions, "keepBitmaps" | "onClassicPage"> = {}): PageMap {
  const classic: Float64Array[] = [];
  const info = parseStream(source, {
    ...options,
    keepBitmaps: true,
    onClassicPage: (e) => {
      const offsets = (classic[e.block] ??= new Float64Array(e.blockPages).fill(PAGE_ABSENT));
      offsets[e.page] = e.dataOffset >= 0 ? e.dataOffset : e.fill === 0 ? PAGE_ZERO : PAGE_FILL_BASE - e.fill;
    },
  });
  const blocks = info.blocks.map((b, i): BlockPages => {
    if (b.mapped) {
      const bitmap = b.bitmap!;
      const base = b.mapped.pagesOffset;
      const ps = b.mapped.pageSize;
      return { info: b, locate: (p) => (testBit(bitmap, p) ? base + p * ps : PAGE_ABSENT) };
    }
    if (b.shared) return { info: b, locate: () => PAGE_ABSENT };
    const offsets = classic[i] ?? new Float64Array(b.pages).fill(PAGE_ABSENT);
    return { info: b, locate: (p) => offsets[p]! };
  });
  return { info, blocks };
}
