// A seed: one save file of the corpus, held in memory sparsely (its non-zero pages only), with the places
// where its structure lives (filled in by analysis.ts).
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import type { StreamInfo } from "../../src/format/parse.ts";
import { MiB, PAGE } from "../units.ts";

export interface SeedSpec {
  /** Short name, e.g. "qemu-mapped". */
  name: string;
  path: string;
  /** Whether FILE.sums lies beside it. */
  manifest: boolean;
}

export type FieldKind =
  | "magic"
  | "version"
  | "length"
  | "offset"
  | "id"
  | "count"
  | "tag"
  | "ram-word"
  | "name-len"
  | "name"
  | "bitmap"
  | "page"
  | "payload"
  | "eof"
  | "json";

/** A place in a seed where structure lives: `width` bytes at `at` (big-endian numbers for widths 2, 4 and 8). */
export interface Field {
  at: number;
  width: number;
  kind: FieldKind;
  label: string;
}

/** A seed file with what the fuzzer knows about it. Its bytes are kept sparsely: only non-zero pages. */
export interface Seed extends SeedSpec {
  index: number;
  size: number;
  info: StreamInfo;
  fields: Field[];
  /** Offsets of the seed's non-zero 4 KiB pages, ascending, and their bytes. */
  pages: Map<number, Uint8Array>;
  pageList: number[];
  trailer: { at: number; json: string } | null;
  manifestText: string | null;
}

/** Bytes [at, at + len) of the seed as it is on disk (zeros where it has holes or zero pages). */
export function seedBytes(seed: Seed, at: number, len: number): Uint8Array {
  const out = new Uint8Array(Math.max(0, Math.min(len, seed.size - at)));
  for (let p = Math.floor(at / PAGE) * PAGE; p < at + out.length; p += PAGE) {
    const page = seed.pages.get(p);
    if (!page) continue;
    const from = Math.max(at, p);
    const to = Math.min(at + out.length, p + PAGE);
    out.set(page.subarray(from - p, to - p), from - at);
  }
  return out;
}

/** The big-endian number `width` bytes long at `at`. */
export function readBe(seed: Seed, at: number, width: number): bigint {
  let v = 0n;
  for (const x of seedBytes(seed, at, width)) v = (v << 8n) | BigInt(x);
  return v;
}

/** Reads a whole seed sparsely: only its non-zero pages are kept. */
export function loadPages(path: string): { size: number; pages: Map<number, Uint8Array> } {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const pages = new Map<number, Uint8Array>();
    const buf = Buffer.alloc(4 * MiB);
    const zero = Buffer.alloc(PAGE);
    for (let at = 0; at < size; at += buf.length) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
      for (let k = 0; k < n; k += PAGE) {
        const page = buf.subarray(k, Math.min(n, k + PAGE));
        if (zero.compare(page, 0, page.length, 0, page.length) !== 0) pages.set(at + k, new Uint8Array(page));
      }
    }
    return { size, pages };
  } finally {
    closeSync(fd);
  }
}
