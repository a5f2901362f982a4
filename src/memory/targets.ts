// The RAM side of a restore: where a block's pages go. A file (raw image, /dev/shm guest RAM) is created
// or resized to the block and mapped shared; an in-process buffer is used in place.
import { existsSync, rmSync } from "node:fs";
import { OptionError } from "../errors.ts";
import { checkOneOf } from "../options.ts";
import { bufferRegion, mapFileForWrite, mapFilePart, type MemoryRegion } from "./region.ts";

export interface BlockTarget {
  /** The RAM block's name in the file. */
  name: string;
  /** A file to write the block's bytes to: created, or resized to the block's length. */
  path?: string;
  /** Or bytes in this process, exactly as long as the block. */
  buffer?: Uint8Array;
  /**
   * With a path: write into `length` bytes of the existing file from `offset` (a running QEMU's memory
   * backend): the file is neither created nor resized, since QEMU maps it (shrinking it would kill QEMU).
   */
  part?: { offset: number; length: number };
}

export function checkTarget(t: BlockTarget, file: string, length: number): void {
  checkOneOf(t, "target");
  if (t.buffer && t.buffer.length !== length) {
    throw new OptionError(`block ${t.name} is ${length} bytes in ${file}, but the target buffer holds ${t.buffer.length}`);
  }
}

/** A restore's targets. A target file this set created goes again when the restore does not finish. */
export class RamTargets {
  readonly regions: MemoryRegion[] = [];
  #created: string[] = [];
  #finished = false;

  /** `keepHoles`: a fresh file stays sparse (extract), rather than having its blocks reserved up front. */
  open(t: BlockTarget, length: number, keepHoles: boolean): MemoryRegion {
    if (t.path && !t.part && !existsSync(t.path)) this.#created.push(t.path);
    const r = t.buffer ? bufferRegion(t.name, t.buffer) : t.part ? mapFilePart(t.path!, t.part.offset, length) : mapFileForWrite(t.path!, length, keepHoles ? "none" : "as-written");
    this.regions.push(r);
    return r;
  }

  /** Makes every target's pages durable; the targets are kept from here on. */
  finish(): void {
    for (const r of this.regions) r.sync();
    this.#finished = true;
  }

  release(): void {
    for (const r of this.regions) r.release();
    if (!this.#finished) for (const p of this.#created) rmSync(p, { force: true });
  }
}
