// Writing a converted file as mapped-ram: the save-file side lays out the block list and page slots, the
// channels move every block's pages (from the input or a replacing image) to their slots, and the
// bitmaps and the rest of the stream follow once the pages are on disk, as in a save.
import { jobsPerChunk } from "../channels/jobs.ts";
import type { PageSession } from "../channels/session.ts";
import { countSet } from "../format/bitmap.ts";
import type { Compression } from "../format/pack-extent.ts";
import { createSaveFile } from "../savefile/open.ts";
import type { SaveFormat } from "../savefile/side.ts";
import type { ConvertPlan } from "./plan.ts";
import { pageSourceOf } from "./plan.ts";
import { convertedStream, verbatimPossible, verbatimStream } from "./stream.ts";

export interface WrittenBlocks {
  /** Pages written per block, in the file's block order. */
  pages: number[];
  bytesWritten: number;
  /** Temporary files of earlier, killed writes of the same output, removed first. */
  staleRemoved: readonly string[];
}

export async function writeMappedRam(plan: ConvertPlan, session: PageSession, output: { path: string; offset: number; directIo: boolean; manifest?: boolean; format?: SaveFormat; compression?: Compression }): Promise<WrittenBlocks> {
  // Into or out of a pack, a mapped-ram stream is carried as it is, bitmaps included (no zero-page
  // detection: a page the input holds stays held), so packing and unpacking gives the same file.
  const verbatim = (output.format === "pack" || plan.pack !== undefined) && verbatimPossible(plan);
  const parts = verbatim ? verbatimStream(plan) : convertedStream(plan);
  const file = session.own(await createSaveFile({ path: output.path, offset: output.offset, format: output.format, compression: output.compression }, parts));
  await session.start(file.openChannels(output.directIo), plan.pageSize);
  const bitmaps = file.layout.blocks.map((l) => new SharedArrayBuffer(l.bitmapSize));
  const jobs = jobsPerChunk(file.layout.blocks, plan.pageSize, (i, c) => ({
    type: "save" as const,
    block: i,
    source: pageSourceOf(plan, i, c),
    to: file.pagesTo(i, c),
    bitmap: bitmaps[i]!,
    firstPage: c.firstPage,
    pages: c.pages,
    zeroDetect: !verbatim,
    hashExtents: output.manifest,
  }));
  const stats = await session.run(jobs, plan.totalBytes, (d, job) => file.consume?.(d, job.block));
  const maps = bitmaps.map((b) => new Uint8Array(b));
  await file.finish(maps);
  return { pages: file.layout.blocks.map((l, i) => countSet(maps[i]!, l.pages)), bytesWritten: stats.ioBytes, staleRemoved: file.staleRemoved };
}
