// The hashing primitive of the integrity manifest: xxh3-64 of every 1 MiB extent of a block's RAM as a
// loader sees it. The channels hash the chunks they move (a chunk starts on an extent bound), and the
// main thread gathers the hashes by block. xxh3 runs at memory speed and catches corruption (bit rot,
// torn or misplaced writes); it is no defence against someone who rewrites the file and its manifest.
import * as libc from "../../ffi/libc.ts";

/** The unit a manifest hashes: 1 MiB of a block's RAM (the last extent of a block may be shorter). */
export const EXTENT_BYTES = 1 << 20;

export function hashBytes(view: Uint8Array): string {
  return Bun.hash.xxHash3(view).toString(16).padStart(16, "0");
}

/** Hashes of the extents of `length` bytes of memory at `addr` (the last one may be short). */
export function hashExtents(addr: number, length: number): string[] {
  const out: string[] = [];
  for (let off = 0; off < length; off += EXTENT_BYTES) out.push(hashBytes(libc.viewOf(addr + off, Math.min(EXTENT_BYTES, length - off))));
  return out;
}

/** Extent hashes as channel jobs report them, gathered per block (by index in the file's block list). */
export class ExtentHashes {
  #blocks = new Map<number, string[]>();

  /** The hashes of a chunk whose first byte is `byteOffset` bytes into block `block`. */
  add(block: number, byteOffset: number, hashes: readonly string[]): void {
    const list = this.#blocks.get(block) ?? [];
    const first = byteOffset / EXTENT_BYTES;
    hashes.forEach((h, k) => {
      list[first + k] = h;
    });
    this.#blocks.set(block, list);
  }

  of(block: number): string[] {
    return this.#blocks.get(block) ?? [];
  }
}
