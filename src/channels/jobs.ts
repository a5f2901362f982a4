// How blocks are cut into channel jobs: chunks of CHUNK_PAGES pages, each starting on a 64-page bound so
// it owns whole bitmap words (channels never coordinate) and on a 1 MiB bound so it owns whole manifest
// extents. Jobs are made only as the pool asks for them: a job may carry per-page data (a conversion's
// page offsets), and a 1 TiB image has 131,072 chunks.
import { CHUNK_PAGES } from "../options.ts";

export interface Chunk {
  firstPage: number;
  pages: number;
  /** Offset of the chunk's first page within the block. */
  byteOffset: number;
  /** Absolute file offset of the chunk's first page slot. */
  fileOffset: number;
}

export function* chunks(pages: number, pageSize: number, pagesOffset: number): Generator<Chunk> {
  for (let first = 0; first < pages; first += CHUNK_PAGES) {
    yield { firstPage: first, pages: Math.min(CHUNK_PAGES, pages - first), byteOffset: first * pageSize, fileOffset: pagesOffset + first * pageSize };
  }
}

/** One job per chunk of every block; `make` gets the block's index and the chunk. */
export function* jobsPerChunk<T>(blocks: readonly { pages: number; pagesOffset: number }[], pageSize: number, make: (block: number, c: Chunk) => T): Generator<T> {
  for (const [i, b] of blocks.entries()) for (const c of chunks(b.pages, pageSize, b.pagesOffset)) yield make(i, c);
}
