// The RAM side of a save: where a block's pages come from. A file (raw image, /dev/shm guest RAM) is
// read by pread with its holes mapped once, so never-touched RAM is not read; an in-process buffer is
// used in place. Either way a block hands each channel job a PageSource for its chunk.
import { OptionError, RefusedError } from "../errors.ts";
import { checkOneOf } from "../options.ts";
import { dataPagesOf, mapData } from "./holes.ts";
import type { PageSource } from "./page-source.ts";
import { bufferRegion, openFileSource } from "./region.ts";

export interface BlockSource {
  /** The RAM block's name as QEMU knows it (the memory backend's id, e.g. "ram0", or "pc.ram"). */
  name: string;
  /** A file holding the block's bytes (raw image, /dev/shm guest RAM). */
  path?: string;
  /** Or bytes in this process. */
  buffer?: Uint8Array;
  /**
   * With a path: the block is `length` bytes of the file from `offset` (a QEMU memory backend's
   * mem-path and offset=), not the whole file.
   */
  part?: { offset: number; length: number };
}

/** A block's pages as channels read them: in place for buffers, by pread for files. */
export interface RamSource {
  readonly name: string;
  readonly length: number;
  /** What messages call it: the path, or "(buffer)". */
  readonly origin: string;
  /** The page source of the chunk of `pages` pages of `pageSize` bytes starting `byteOffset` bytes into the block. */
  at(byteOffset: number, pages: number, pageSize: number): PageSource;
  release(): void;
}

/** `mapHoles`: find a file's holes, so they are not read (only where zero pages are left out anyway). */
export function openSource(b: BlockSource, mapHoles = true): RamSource {
  checkOneOf(b, "source");
  if (b.buffer) {
    if (b.buffer.length === 0) throw new OptionError(`block ${b.name} is empty`);
    const r = bufferRegion(b.name, b.buffer);
    const at = (off: number): PageSource => ({ kind: "memory", addr: r.ptr + off, aligned: r.aligned && off % 4096 === 0 });
    return { name: b.name, length: r.length, origin: "(buffer)", at, release: r.release };
  }
  const path = b.path!;
  const f = openFileSource(path);
  try {
    const base = b.part?.offset ?? 0;
    const length = b.part?.length ?? f.length;
    if (base + length > f.length) throw new RefusedError(`${path} holds ${f.length} bytes, but block ${b.name} needs ${length} from offset ${base}`);
    const map = mapHoles ? mapData(f.fd, path, base + length) : null;
    const at = (off: number, pages: number, pageSize: number): PageSource => {
      const data = map ? dataPagesOf(map, base + off, pages, pageSize) : undefined;
      return { kind: "file", fd: f.fd, path, offset: base + off, ...(data ? { data } : {}) };
    };
    return { name: b.name, length, origin: path, at, release: f.release };
  } catch (e) {
    f.release();
    throw e;
  }
}
