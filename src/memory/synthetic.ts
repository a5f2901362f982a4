// Synthetic RAM images for the demo, the benchmarks and tests: deterministic, with a chosen share of
// all-zero pages laid out the way real guests have them (large zero areas, or zero pages scattered).
import * as libc from "../../ffi/libc.ts";

export type PatternKind = "dense" | "clustered" | "scattered" | "zero";

export interface Pattern {
  kind: PatternKind;
  seed: number;
  /** Share of non-zero pages (clustered: of 2 MiB extents), 0..1. Ignored for dense and zero. */
  nonZero?: number;
}

const PAGE = 4096;
const EXTENT_PAGES = 512; // 2 MiB

/** xorshift32: fast, deterministic, good enough to decide page layout and fill bytes. */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 0x9e3779b9;
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
  else if (p.kind === "clustered") for (let e = 0; e < pages; e += EXTENT_PAGES) if (chance()) out.fill(1, e, Math.min(pages, e + EXTENT_PAGES));
  return out;
}

/**
 * Writes the pattern into memory at `ptr` (length a multiple of 4 KiB): non-zero pages get pseudo-random
 * bytes with their page index and the seed stamped at the start, so a page in the wrong place shows;
 * zero pages are zeroed. Returns the page map.
 */
export function fillPattern(ptr: number, length: number, p: Pattern): Uint8Array {
  const pages = Math.floor(length / PAGE);
  const map = pagesOf(p, pages);
  const r = rng(p.seed ^ 0x5bd1e995);
  const template = new Uint32Array(PAGE / 4).map(() => r());
  const t8 = new Uint8Array(template.buffer);
  const STEP = 1 << 28; // views are limited to 4 GiB; work in 256 MiB windows
  for (let base = 0; base < pages * PAGE; base += STEP) {
    const len = Math.min(STEP, pages * PAGE - base);
    const view = libc.viewOf(ptr + base, len);
    const dv = new DataView(view.buffer, view.byteOffset, view.byteLength);
    for (let off = 0; off < len; off += PAGE) {
      const page = (base + off) / PAGE;
      if (map[page]) {
        view.set(t8, off);
        dv.setUint32(off, page, true);
        dv.setUint32(off + 4, p.seed, true);
        dv.setUint32(off + 8, 0x52414d53, true); // "SMAR": never all zero
      } else view.fill(0, off, off + PAGE);
    }
  }
  return map;
}
