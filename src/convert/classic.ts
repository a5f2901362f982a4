// Writing a converted file as a classic stream: the block list, then each block's non-zero pages as
// PAGE records in the main stream itself (the block named on the first, CONTINUE after). Classic pages
// have no slots, so there is nothing for channels to do; the main thread reads and writes them in order.
import * as libc from "../../ffi/libc.ts";
import { chunks } from "../channels/jobs.ts";
import type { PageSession } from "../channels/session.ts";
import { throwIfAborted } from "../errors.ts";
import { StreamWriter } from "../format/bytes.ts";
import { RAM_FLAG_CONTINUE, RAM_FLAG_PAGE } from "../format/constants.ts";
import { OutputFile } from "../io/output.ts";
import { loadPages } from "../memory/page-source.ts";
import type { WrittenBlocks } from "./mapped-ram.ts";
import { pageSourceOf, type ConvertPlan } from "./plan.ts";
import { convertedStream } from "./stream.ts";

export function writeClassic(plan: ConvertPlan, session: PageSession, output: { path: string; offset: number }): WrittenBlocks {
  const out = OutputFile.open({ path: output.path }, output.offset);
  session.own({
    release: () => {
      out.abandon();
      out.close();
    },
  });
  const parts = convertedStream(plan);
  const w = new StreamWriter(out.main, output.offset);
  parts.head(w);
  for (const b of plan.info.blocks) w.write((x) => x.str8(b.name).be64(b.length));
  const pages: number[] = [];
  let done = 0;
  plan.info.blocks.forEach((b, i) => {
    pages.push(writeClassicPages(plan, w, i, session.options.signal));
    done += b.length;
    session.options.onProgress?.({ doneBytes: done, totalBytes: plan.totalBytes, ioBytes: sum(pages) * plan.pageSize, seconds: session.seconds });
  });
  parts.tail(w);
  w.flush();
  out.commit();
  return { pages, bytesWritten: sum(pages) * plan.pageSize, staleRemoved: out.staleRemoved };
}

const sum = (xs: number[]) => xs.reduce((s, x) => s + x, 0);

/** Writes block `block`'s non-zero pages as PAGE records; returns how many it wrote. */
function writeClassicPages(plan: ConvertPlan, w: StreamWriter, block: number, signal?: AbortSignal): number {
  const { name, pages } = plan.info.blocks[block]!;
  const ps = plan.pageSize;
  const zero = new libc.AlignedBuffer(ps);
  let buffer: libc.AlignedBuffer | undefined;
  const bounce = (len: number) => (buffer ??= new libc.AlignedBuffer(len));
  zero.view.fill(0);
  let written = 0;
  try {
    for (const c of chunks(pages, ps, 0)) {
      throwIfAborted(signal);
      const src = pageSourceOf(plan, block, c);
      if (src.kind === "packed") throw new Error("internal: a pack converted to classic"); // refused in convert()
      const { base, exists } = loadPages(src, c.pages, ps, bounce);
      for (let k = 0; k < c.pages; k++) {
        const addr = base + k * ps;
        if ((exists && !exists(k)) || libc.memcmp(addr, zero.ptr, ps) === 0) continue;
        const data = libc.viewOf(addr, ps);
        const first = written === 0;
        const word = (c.firstPage + k) * ps + (RAM_FLAG_PAGE | (first ? 0 : RAM_FLAG_CONTINUE));
        w.write((x) => (first ? x.be64(word).str8(name) : x.be64(word)).bytes(data));
        written++;
      }
    }
  } finally {
    zero.free();
    buffer?.free();
  }
  return written;
}
