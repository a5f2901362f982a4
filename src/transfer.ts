// What save and restore share: splitting blocks into channel jobs, running them on a pool with
// progress, and adding up what the channels did.
import type { ChannelPool } from "./channels/pool.ts";
import type { RestoreJob, SaveJob } from "./channels/messages.ts";
import { CHUNK_PAGES } from "./options.ts";
import { EXTENT_BYTES } from "./manifest.ts";

export interface Progress {
  /** Page bytes handled so far (present or not) and in all. */
  doneBytes: number;
  totalBytes: number;
  /** Bytes that went through I/O calls so far. */
  ioBytes: number;
  seconds: number;
}

export interface TransferStats {
  ioBytes: number;
  ioCalls: number;
  present: number;
  /** Save: source bytes skipped as holes (never-touched guest RAM), not read. */
  holeBytes: number;
}

export interface Chunk {
  firstPage: number;
  pages: number;
  /** Offset of the chunk's first page within the block. */
  byteOffset: number;
  /** Absolute file offset of the chunk's first page slot. */
  fileOffset: number;
}

/** A block cut into jobs of CHUNK_PAGES pages; each starts on a 64-page bound so it owns whole bitmap words. */
export function* chunks(pages: number, pageSize: number, pagesOffset: number): Generator<Chunk> {
  for (let first = 0; first < pages; first += CHUNK_PAGES) {
    yield { firstPage: first, pages: Math.min(CHUNK_PAGES, pages - first), byteOffset: first * pageSize, fileOffset: pagesOffset + first * pageSize };
  }
}

/** Extent hashes the channels computed, per block index, in extent order. */
export type ExtentHashes = Map<number, string[]>;

type AnyJob = Omit<SaveJob, "id"> | Omit<RestoreJob, "id">;

/**
 * One job per chunk of every block, made only as the pool asks for it: a job may carry per-page data
 * (a rewrite's page offsets), and a 1 TiB image has 131,072 chunks.
 */
export function* jobsPerChunk<T>(blocks: readonly { pages: number; pagesOffset: number }[], pageSize: number, make: (block: number, c: Chunk) => T): Generator<T> {
  for (const [i, b] of blocks.entries()) for (const c of chunks(b.pages, pageSize, b.pagesOffset)) yield make(i, c);
}

export async function runJobs<J extends AnyJob>(
  pool: ChannelPool,
  jobs: Iterable<J & { block?: number }>,
  totalBytes: number,
  onProgress: ((p: Progress) => void) | undefined,
  signal: AbortSignal | undefined,
  hashes?: ExtentHashes,
): Promise<TransferStats> {
  const t0 = performance.now();
  const stats: TransferStats = { ioBytes: 0, ioCalls: 0, present: 0, holeBytes: 0 };
  let doneBytes = 0;
  await pool.run(
    jobs,
    (d, job) => {
      if (d.hashes && hashes && job.block !== undefined) {
        const list = hashes.get(job.block) ?? [];
        const first = (job.firstPage * (d.bytes / job.pages)) / EXTENT_BYTES;
        d.hashes.forEach((h, k) => (list[first + k] = h));
        hashes.set(job.block, list);
      }
      doneBytes += d.bytes;
      stats.ioBytes += d.ioBytes;
      stats.ioCalls += d.ioCalls;
      stats.present += d.present;
      stats.holeBytes += d.holeBytes ?? 0;
      onProgress?.({ doneBytes, totalBytes, ioBytes: stats.ioBytes, seconds: (performance.now() - t0) / 1000 });
    },
    signal,
  );
  return stats;
}

export const gibPerSecond = (bytes: number, seconds: number): number => (seconds > 0 ? bytes / 2 ** 30 / seconds : 0);
