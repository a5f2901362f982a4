// A copy of a mapped-ram file for QEMU to load once ramsnap has put some blocks' pages in place itself:
// the same bytes with those blocks' bitmaps clear and their page arrays left out (holes, so the copy
// costs the main stream and the small blocks only). QEMU reads a page only where its bit is set, so it
// loads the device state and the other blocks and leaves the placed blocks as they are (checked on QEMU
// 10.0.2: a 256 MiB guest loaded that way in 0.04 s, its RAM untouched).
import { rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { RefusedError } from "../errors.ts";
import type { ByteSource } from "../format/bytes.ts";
import { parseStream, type StreamInfo } from "../format/parse.ts";
import { MainFile } from "../io/main-file.ts";
import { PackReader } from "./pack/reader.ts";

const STEP = 1 << 20;

/** Writes the copy to `target` (created; it must not exist) and returns how many bytes it copied. */
export function writeStreamWithout(source: ByteSource, info: StreamInfo, leaveOut: ReadonlySet<string>, target: string): number {
  const out = MainFile.openWrite(target, libc.O_CREAT | libc.O_EXCL);
  let copied = 0;
  try {
    const skip = info.blocks.filter((b) => leaveOut.has(b.name)).map((b) => {
      if (!b.mapped) throw new RefusedError(`${info.file}: block ${b.name} has no page array to leave out (not mapped-ram)`);
      return [b.mapped.pagesOffset, b.mapped.pagesOffset + b.length] as const;
    });
    for (const [from, to] of rangesOutside(0, source.size, skip)) {
      for (let at = from; at < to; at += STEP) {
        const bytes = source.readAt(at, Math.min(STEP, to - at));
        out.writeAt(at, bytes);
        copied += bytes.length;
      }
    }
    libc.ftruncate(out.fd, source.size, target);
    for (const b of info.blocks) if (leaveOut.has(b.name)) out.writeAt(b.mapped!.bitmapOffset, new Uint8Array(b.mapped!.bitmapSize));
    return copied;
  } finally {
    out.close();
  }
}

/**
 * Runs `use` with a temporary copy of the file at `path` that leaves out `leaveOut` (in the temporary
 * folder: only the main stream and the small blocks take room), and removes the copy afterwards.
 */
export async function withLoadStream<T>(path: string, base: number, leaveOut: ReadonlySet<string>, use: (copy: string, bytes: number) => Promise<T>): Promise<T> {
  const copy = join(tmpdir(), `ramsnap-${process.pid}-${Math.random().toString(36).slice(2, 8)}-load.ram`);
  try {
    const bytes = copyWithout(path, base, leaveOut, copy);
    return await use(copy, bytes);
  } finally {
    rmSync(copy, { force: true });
  }
}

function copyWithout(path: string, base: number, leaveOut: ReadonlySet<string>, target: string): number {
  using main = MainFile.openRead(path);
  return writeStreamWithout(main, parseStream(main, { base }), leaveOut, target);
}

/** withLoadStream for a pack (local or s3://): the copy is the pack's image, less the placed blocks' pages. */
export async function withPackLoadStream<T>(path: string, leaveOut: ReadonlySet<string>, use: (copy: string, bytes: number) => Promise<T>): Promise<T> {
  const copy = join(tmpdir(), `ramsnap-${process.pid}-${Math.random().toString(36).slice(2, 8)}-load.ram`);
  const pack = await PackReader.open({ path, offset: 0 });
  try {
    // The blocks QEMU loads itself (ROMs, VGA memory) are read from the pack first: an object's ranges cannot be awaited inside a copy.
    await pack.preload(new Set(pack.info.blocks.flatMap((b, i) => (leaveOut.has(b.name) ? [] : [i]))));
    const bytes = writeStreamWithout(pack.main, pack.info, leaveOut, copy);
    pack.release();
    return await use(copy, bytes);
  } finally {
    pack.release();
    rmSync(copy, { force: true });
  }
}

/** [from, to) with the `skip` ranges taken out. */
function rangesOutside(from: number, to: number, skip: readonly (readonly [number, number])[]): [number, number][] {
  const out: [number, number][] = [];
  let at = from;
  for (const [a, b] of [...skip].sort((x, y) => x[0] - y[0])) {
    if (a > at) out.push([at, Math.min(a, to)]);
    at = Math.max(at, b);
  }
  if (at < to) out.push([at, to]);
  return out;
}
