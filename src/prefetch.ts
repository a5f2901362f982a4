// prefetch: read a mapped-ram file's present pages through the page cache, in parallel channels, and drop
// them. A guest restored lazily maps the file and faults each page in on first touch; once its pages are
// in the page cache a fault costs a memory copy instead of a disk read.
import { jobsPerChunk } from "./channels/jobs.ts";
import { gibPerSecond, PageSession } from "./channels/session.ts";
import { RefusedError } from "./errors.ts";
import { parseStream } from "./format/parse.ts";
import { MainFile } from "./io/main-file.ts";
import { DEFAULT_MAX_GAP, matchBlocks } from "./options.ts";

export interface PrefetchResult {
  file: string;
  /** Bytes read into the page cache (present pages, with short gaps bridged). */
  bytes: number;
  seconds: number;
  gibPerSecond: number;
}

export async function prefetch(o: { path: string; blocks: string[]; channels?: number; offset?: number; signal?: AbortSignal }): Promise<PrefetchResult> {
  await using session = new PageSession({ channels: o.channels ?? 4, maxGap: DEFAULT_MAX_GAP, signal: o.signal });
  const main = session.own(MainFile.openRead(o.path));
  const info = parseStream(main, { base: o.offset ?? 0, keepBitmaps: true });
  if (info.ramFormat !== "mapped-ram") throw new RefusedError(`${o.path} is not a mapped-ram file: there are no page arrays to prefetch`);
  const blocks = matchBlocks(o.path, info.blocks, o.blocks);
  // Buffered reads on purpose: the page cache is where the pages are wanted.
  await session.start({ fd: main.fd, direct: false, name: o.path }, info.pageSize);
  const places = blocks.map((b) => ({ pages: b.pages, pagesOffset: b.mapped!.pagesOffset }));
  const bitmaps = blocks.map((b) => {
    const shared = new SharedArrayBuffer(b.bitmap!.length);
    new Uint8Array(shared).set(b.bitmap!);
    return shared;
  });
  const jobs = jobsPerChunk(places, info.pageSize, (i, c) => ({ type: "prefetch" as const, block: i, fileOffset: c.fileOffset, bitmap: bitmaps[i]!, firstPage: c.firstPage, pages: c.pages }));
  const stats = await session.run(jobs, blocks.reduce((s, b) => s + b.length, 0));
  const seconds = session.seconds;
  return { file: o.path, bytes: stats.ioBytes, seconds, gibPerSecond: gibPerSecond(stats.ioBytes, seconds) };
}
