// The image a pack stands for (docs/pack-format.md): the mapped-ram file laid out from offset 0, served
// as a ByteSource so every reader of mapped-ram files (the stream parser, inspect, the load stream QEMU
// gets) reads a pack unchanged. Bytes outside the page arrays come from the pack's main stream record
// (in memory); page bytes from the extents, decoded on demand: synchronously from a local pack, and
// from an object only once `preload` fetched them (a ranged GET cannot be waited for inside a read).
import { PackError } from "../../format/errors.ts";
import type { ByteSink, ByteSource } from "../../format/bytes.ts";
import { loadExtent } from "../../format/pack-extent.ts";
import { type ImageSegment, type PackExtent, type PackHeader, pagePresent } from "../../format/pack.ts";
import type { MappedRamLayout } from "../../format/layout.ts";

/** A page array of the image: block `block`'s pages at `offset`. */
interface PageArray {
  block: number;
  offset: number;
  length: number;
}

export class PackImage implements ByteSource {
  readonly size: number;
  #arrays: PageArray[] = [];
  #cache = new Map<PackExtent, Uint8Array>();

  constructor(
    readonly name: string,
    readonly header: PackHeader,
    readonly segments: readonly ImageSegment[],
    /** Index entries by block, then by extent number. */
    readonly extents: readonly (readonly (PackExtent | undefined)[])[],
    /** Reads stored bytes synchronously; undefined for an object (see preload). */
    readonly readStored: ((offset: number, length: number) => Uint8Array) | undefined,
  ) {
    const last = segments[segments.length - 1];
    this.size = last ? last.offset + last.bytes.length : 0;
  }

  /** The page arrays, once the block list is parsed (before, every byte outside segments reads as zero). */
  setPageArrays(arrays: PageArray[]): void {
    this.#arrays = arrays;
  }

  /** Keeps the decoded pages of these extents, for an image whose stored bytes cannot be read synchronously. */
  preload(extent: PackExtent, stored: Uint8Array): void {
    this.#cache.set(extent, loadExtent(stored, extent, this.header.pageSize, this.name));
  }

  readAt(offset: number, length: number): Uint8Array {
    const end = Math.min(this.size, offset + length);
    const out = new Uint8Array(Math.max(0, end - offset));
    for (const s of this.segments) copyOverlap(out, offset, s.offset, s.bytes);
    for (const a of this.#arrays) {
      const from = Math.max(offset, a.offset);
      const to = Math.min(end, a.offset + a.length);
      if (from < to) this.#pagesInto(out, offset, a, from, to);
    }
    return out;
  }

  #pagesInto(out: Uint8Array, outAt: number, a: PageArray, from: number, to: number): void {
    const ps = this.header.pageSize;
    const ep = this.header.extentPages;
    const firstPage = Math.floor((from - a.offset) / ps);
    const lastPage = Math.ceil((to - a.offset) / ps);
    for (let ext = Math.floor(firstPage / ep); ext * ep < lastPage; ext++) {
      const e = this.extents[a.block]?.[ext];
      if (!e) continue;
      const pages = this.#decoded(e);
      let k = 0;
      for (let i = 0; i < ep; i++) {
        if (!pagePresent(e.present, i)) continue;
        const pageAt = a.offset + (ext * ep + i) * ps;
        copyOverlap(out, outAt, pageAt, pages.subarray(k * ps, (k + 1) * ps));
        k++;
      }
    }
  }

  #decoded(e: PackExtent): Uint8Array {
    const cached = this.#cache.get(e);
    if (cached) return cached;
    if (!this.readStored) throw new PackError(`${this.name}: block ${e.block}, extent ${e.extent} was not fetched before it was read (internal)`);
    return loadExtent(this.readStored(e.storedOffset, e.storedLength), e, this.header.pageSize, this.name);
  }
}

/** Copies the part of `bytes` (which sits at `at`) that falls in `out` (which stands for `outAt`...). */
function copyOverlap(out: Uint8Array, outAt: number, at: number, bytes: Uint8Array): void {
  const from = Math.max(outAt, at);
  const to = Math.min(outAt + out.length, at + bytes.length);
  if (from < to) out.set(bytes.subarray(from - at, to - at), from - outAt);
}

/**
 * Where a pack writer puts the image's main stream while the pages travel elsewhere: every write kept,
 * then cut into the segments outside the page arrays (the zero padding before each page array included).
 */
export class SegmentSink implements ByteSink {
  #writes: { offset: number; bytes: Uint8Array }[] = [];
  #end = 0;
  constructor(readonly name: string) {}

  writeAt(offset: number, bytes: Uint8Array): void {
    this.#writes.push({ offset, bytes: bytes.slice() });
    this.#end = Math.max(this.#end, offset + bytes.length);
  }

  segments(layout: MappedRamLayout): ImageSegment[] {
    const ranges: [number, number][] = [];
    let at = 0;
    for (const b of layout.blocks) {
      ranges.push([at, b.pagesOffset]);
      at = b.pagesOffset + b.length;
    }
    ranges.push([at, this.#end]);
    return ranges
      .filter(([a, b]) => b > a)
      .map(([a, b]) => {
        const bytes = new Uint8Array(b - a);
        for (const w of this.#writes) copyOverlap(bytes, a, w.offset, w.bytes);
        return { offset: a, bytes };
      });
  }
}
