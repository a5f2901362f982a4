// Synthetic RAM images for the demo, the benchmarks and the tests, and the one PRNG they all draw from.
// An image is a pure function of its pattern and size: any range of it can be written on its own and
// matches the whole.
//
// Which pages are non-zero, over an image of N 4 KiB pages, with p = `nonZero` (default 0.6):
//   dense      every page.
//   zero       none.
//   scattered  each page on its own, with chance p: data and zero pages interleave page by page.
//   clustered  the image cut in 2 MiB units of 512 pages from its start (the last one may be shorter), each
//              unit wholly non-zero with chance p, else wholly zero: long runs, like touched and untouched
//              guest RAM.
//
// What a non-zero page holds, decided by a hash of (seed, page index):
//   stamped    (15 in 16) "SMAR", the page index and the seed (u32 LE each) at its start, then bytes from a
//              64 KiB pool of the seed's at a per-page offset. Every stamped page is unique, so a page
//              written to the wrong place shows.
//   lone byte  (1 in 16) zero but for one byte, at any position; for a quarter of these pages, the last
//              byte of the page. A zero-page check that reads only part of a page takes them for zero pages,
//              and a test that compares the bytes finds out.
import * as libc from "../../ffi/libc.ts";

export type PatternKind = "dense" | "clustered" | "scattered" | "zero";

export interface Pattern {
  kind: PatternKind;
  seed: number;
  /** Share of non-zero pages (clustered: of 2 MiB units), 0..1. Ignored for dense and zero. */
  nonZero?: number;
}

const PAGE = 4096;
const UNIT_PAGES = 512; // clustered: 2 MiB
const POOL_BYTES = 64 * 1024;
const STAMP = 0x52414d53; // "SMAR"
// Salts keep the streams for the page map, the pool and the per-page choices apart.
const POOL_SALT = 0x5bd1e995;
const PAGE_SALT = 0x27d4eb2f;

/** murmur3's 32-bit finalizer: every input bit reaches every output bit. */
function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** A non-zero 32-bit state from any number of integers (up to 2^53), each mixed in fully. */
function stateOf(seeds: readonly number[]): number {
  let s = 0x9e3779b9;
  for (const x of seeds) {
    s = fmix32((s ^ x) >>> 0);
    const high = Math.floor(x / 2 ** 32) >>> 0;
    if (high) s = fmix32((s ^ high) >>> 0);
  }
  return s || 0x9e3779b9;
}

/**
 * The PRNG: xorshift32 (fast, deterministic, good enough to lay out pages, fill them and pick fuzz cases),
 * seeded from one or more integers. Seeds that differ in one bit start unrelated streams.
 */
export function rng(...seeds: number[]): () => number {
  let s = stateOf(seeds);
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s;
  };
}

/** Whether each page is non-zero (1) under the pattern. */
export function pagesOf(p: Pattern, pages: number): Uint8Array {
  const out = new Uint8Array(pages);
  const r = rng(p.seed);
  const share = p.nonZero ?? 0.6;
  const chance = () => r() / 2 ** 32 < share;
  if (p.kind === "dense") out.fill(1);
  else if (p.kind === "scattered") for (let i = 0; i < pages; i++) out[i] = chance() ? 1 : 0;
  else if (p.kind === "clustered") for (let u = 0; u < pages; u += UNIT_PAGES) if (chance()) out.fill(1, u, Math.min(pages, u + UNIT_PAGES));
  return out;
}

/** Where the only non-zero byte of non-zero page `page` lies when it is a lone-byte page, else -1. */
export function loneByteOf(seed: number, page: number): number {
  return loneAt(stateOf([seed, page, PAGE_SALT]));
}

/** The lone byte's position for a page whose hash is `h` (low 4 bits: lone or not; then: last byte or not; position). */
function loneAt(h: number): number {
  if ((h & 15) !== 0) return -1;
  return ((h >>> 4) & 3) === 0 ? PAGE - 1 : (h >>> 8) & (PAGE - 1);
}

/** Writes pages (non-zero per `map`, zero otherwise) into a page-aligned window of an image. */
class PageWriter {
  readonly #pool: Uint8Array;

  constructor(
    readonly pattern: Pattern,
    readonly map: Uint8Array,
  ) {
    const r = rng(pattern.seed, POOL_SALT);
    this.#pool = new Uint8Array(new Uint32Array((POOL_BYTES + PAGE) / 4).map(() => r()).buffer);
  }

  /** Writes image pages first, first + 1, ... into `view` (a whole number of pages). */
  write(view: Uint8Array, first: number): void {
    const dv = new DataView(view.buffer, view.byteOffset, view.byteLength);
    const seed = this.pattern.seed;
    for (let off = 0; off < view.length; off += PAGE) {
      const page = first + off / PAGE;
      if (!this.map[page]) {
        view.fill(0, off, off + PAGE);
        continue;
      }
      const h = stateOf([seed, page, PAGE_SALT]);
      const lone = loneAt(h);
      if (lone >= 0) {
        view.fill(0, off, off + PAGE);
        view[off + lone] = 1 + ((h >>> 20) % 255);
        continue;
      }
      const from = ((h >>> 4) % (POOL_BYTES / 4)) * 4;
      view.set(this.#pool.subarray(from, from + PAGE), off);
      dv.setUint32(off, STAMP, true);
      dv.setUint32(off + 4, page, true);
      dv.setUint32(off + 8, seed >>> 0, true);
    }
  }
}

/**
 * Writes the pattern into memory at `ptr` (length a multiple of 4 KiB), zero pages included, as page 0
 * onwards of an image of that length. Returns the page map.
 */
export function fillPattern(ptr: number, length: number, p: Pattern): Uint8Array {
  const pages = Math.floor(length / PAGE);
  const map = pagesOf(p, pages);
  const writer = new PageWriter(p, map);
  const STEP = 1 << 28; // views are limited to 4 GiB; work in 256 MiB windows
  for (let base = 0; base < pages * PAGE; base += STEP) {
    writer.write(libc.viewOf(ptr + base, Math.min(STEP, pages * PAGE - base)), base / PAGE);
  }
  return map;
}

/** An image held as its pattern and page map, written out range by range (e.g. into guest RAM files). */
export interface SyntheticImage {
  readonly pattern: Pattern;
  readonly sizeBytes: number;
  /** One entry per 4 KiB page: 1 if the page is non-zero. */
  readonly nonZeroPages: Uint8Array;
  readonly nonZeroCount: number;
  /** Writes bytes [byteOffset, byteOffset + buf.length) of the image into buf; both multiples of 4 KiB. */
  fill(buf: Uint8Array, byteOffset: number): void;
}

export function syntheticImage(sizeBytes: number, pattern: Pattern): SyntheticImage {
  if (sizeBytes % PAGE !== 0) throw new Error(`image size ${sizeBytes} is not a multiple of ${PAGE}`);
  const nonZeroPages = pagesOf(pattern, sizeBytes / PAGE);
  const writer = new PageWriter(pattern, nonZeroPages);
  return {
    pattern,
    sizeBytes,
    nonZeroPages,
    nonZeroCount: nonZeroPages.reduce((s, v) => s + v, 0),
    fill(buf, byteOffset) {
      if (byteOffset % PAGE !== 0 || buf.length % PAGE !== 0) throw new Error(`fill: offset ${byteOffset} and length ${buf.length} must be multiples of ${PAGE}`);
      if (byteOffset + buf.length > sizeBytes) throw new Error(`fill: range ends beyond the image's ${sizeBytes} bytes`);
      writer.write(buf, byteOffset / PAGE);
    },
  };
}
