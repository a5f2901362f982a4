// Where each RAM block's metadata and pages sit in a mapped-ram file. QEMU decides this as it writes the
// block list; ramsnap decides it up front with the same arithmetic, so channels can start writing pages
// at fixed offsets without asking anybody.
import { MAPPED_RAM_FILE_OFFSET_ALIGNMENT, MAPPED_RAM_HEADER_SIZE } from "./constants.ts";

export interface BlockSpec {
  name: string;
  /** Bytes; a multiple of the page size. */
  length: number;
}

export interface BlockLayout extends BlockSpec {
  /** Absolute offset of the block's counted-string name in the RAM START section. */
  entryOffset: number;
  /** Absolute offset of the 28-byte MappedRamHeader. */
  headerOffset: number;
  bitmapOffset: number;
  bitmapSize: number;
  /** Absolute offset of page 0; a multiple of 1 MiB. */
  pagesOffset: number;
  pages: number;
}

export interface MappedRamLayout {
  blocks: BlockLayout[];
  /** Absolute offset where the stream goes on after the last page array (the EOS word). */
  end: number;
}

/**
 * The most bytes a mapped-ram file holding `pageBytes` of pages in `blocks` blocks takes on disk: the pages,
 * plus up to 1 MiB of alignment before each block's page array and 1 MiB for the rest of the stream. The
 * one space estimate of ramsnap (save, qemu save, extract and doctor all check against it).
 */
export function spaceBound(pageBytes: number, blocks: number): number {
  return pageBytes + (blocks + 1) * MAPPED_RAM_FILE_OFFSET_ALIGNMENT;
}

export const roundUp = (v: number, to: number): number => Math.ceil(v / to) * to;

/** Bitmap bytes for a block: one bit a page, stored as 64-bit words. */
export function bitmapSize(pages: number): number {
  return Math.ceil(pages / 64) * 8;
}

/** Blocks laid out one after another, each entry starting where the previous page array ends. */
export function layoutMappedRam(firstEntryOffset: number, blocks: readonly BlockSpec[], pageSize: number): MappedRamLayout {
  let pos = firstEntryOffset;
  const out: BlockLayout[] = [];
  for (const b of blocks) {
    if (b.length % pageSize !== 0) throw new RangeError(`block ${b.name}: length ${b.length} is not a multiple of the page size ${pageSize}`);
    const l = blockAt(pos, b, pageSize);
    out.push(l);
    pos = l.pagesOffset + l.length;
  }
  return { blocks: out, end: pos };
}

/** One block's layout, its entry (name, length, header) starting at `entryOffset`. */
export function blockAt(entryOffset: number, b: BlockSpec, pageSize: number): BlockLayout {
  const nameBytes = new TextEncoder().encode(b.name).length;
  const headerOffset = entryOffset + 1 + nameBytes + 8;
  return placeBlock(b, entryOffset, headerOffset, pageSize);
}

/** The rest of a block's layout once its header position is known (the bitmap follows the header). */
export function placeBlock(b: BlockSpec, entryOffset: number, headerOffset: number, pageSize: number): BlockLayout {
  const pages = b.length / pageSize;
  const bitmapOffset = headerOffset + MAPPED_RAM_HEADER_SIZE;
  const size = bitmapSize(pages);
  const pagesOffset = roundUp(bitmapOffset + size, MAPPED_RAM_FILE_OFFSET_ALIGNMENT);
  return { ...b, entryOffset, headerOffset, bitmapOffset, bitmapSize: size, pagesOffset, pages };
}
