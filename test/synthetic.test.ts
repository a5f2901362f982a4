// The synthetic images (src/memory/synthetic.ts) every test, benchmark and `ramsnap demo` uses: the four
// kinds mean what its header says, images are a pure function of (pattern, page), and among the non-zero
// pages are pages whose only non-zero byte lies anywhere, the last byte included, so a zero-page check that
// reads part of a page cannot pass.
import { describe, expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import { fillPattern, loneByteOf, pagesOf, rng, syntheticImage, type Pattern } from "../src/memory/synthetic.ts";
import { MiB, PAGE } from "../harness/units.ts";

const UNIT_PAGES = (2 * MiB) / PAGE;

function isAllZero(bytes: Uint8Array): boolean {
  const words = new BigUint64Array(bytes.buffer, bytes.byteOffset, bytes.length / 8);
  for (const word of words) if (word !== 0n) return false;
  return true;
}

/** The non-zero bytes of a page, as [position, value]. */
function nonZeroBytes(page: Uint8Array): [number, number][] {
  const out: [number, number][] = [];
  page.forEach((v, i) => {
    if (v) out.push([i, v]);
  });
  return out;
}

function bytesOf(size: number, p: Pattern): Uint8Array {
  const b = new Uint8Array(size);
  syntheticImage(size, p).fill(b, 0);
  return b;
}

describe("which pages are non-zero", () => {
  test("scattered: page by page, about the share asked for; dense: all; zero: none", () => {
    const map = pagesOf({ kind: "scattered", seed: 3, nonZero: 0.3 }, 10_000);
    const count = map.reduce((s, v) => s + v, 0);
    expect(count).toBeGreaterThan(2800);
    expect(count).toBeLessThan(3200);
    let changes = 0;
    for (let p = 1; p < map.length; p++) if (map[p] !== map[p - 1]) changes++;
    expect(changes).toBeGreaterThan(3000); // interleaved, not in runs
    expect(pagesOf({ kind: "dense", seed: 3 }, 1000).every((v) => v === 1)).toBe(true);
    expect(pagesOf({ kind: "zero", seed: 3 }, 1000).every((v) => v === 0)).toBe(true);
  });

  test("clustered: whole 2 MiB units from the image's start, non-zero or zero, the short last unit too", () => {
    const pages = 40 * UNIT_PAGES + 100;
    const map = pagesOf({ kind: "clustered", seed: 8, nonZero: 0.5 }, pages);
    const units: number[] = [];
    for (let u = 0; u < pages; u += UNIT_PAGES) {
      const unit = map.subarray(u, u + UNIT_PAGES);
      expect(unit.every((v) => v === unit[0])).toBe(true);
      units.push(unit[0]!);
    }
    expect(units).toContain(0);
    expect(units).toContain(1);
    expect(units.filter((v) => v).length).toBeGreaterThan(10);
    expect(units.filter((v) => v).length).toBeLessThan(31);
  });
});

describe("what the pages hold", () => {
  const image = syntheticImage(4 * MiB, { kind: "scattered", seed: 0, nonZero: 0.5 });
  const bytes = new Uint8Array(4 * MiB);
  image.fill(bytes, 0);
  const page = (p: number) => bytes.subarray(p * PAGE, (p + 1) * PAGE);
  const pages = Array.from({ length: image.nonZeroPages.length }, (_, p) => p);
  const lone = pages.filter((p) => image.nonZeroPages[p] && loneByteOf(0, p) >= 0);

  test("zero pages are all zero, non-zero pages never; stamped pages are unique", () => {
    const seen = new Set<string>();
    for (const p of pages) {
      expect(isAllZero(page(p))).toBe(image.nonZeroPages[p] === 0);
      if (image.nonZeroPages[p] && loneByteOf(0, p) < 0) seen.add(Buffer.from(page(p)).toString("base64"));
    }
    expect(seen.size).toBe(image.nonZeroCount - lone.length);
    expect(image.nonZeroCount).toBeGreaterThan(400);
    expect(image.nonZeroCount).toBeLessThan(624);
  });

  test("lone-byte pages: one non-zero byte, where loneByteOf says; some at the last byte, most past the first 64", () => {
    expect(lone.length).toBeGreaterThan(image.nonZeroCount / 32);
    for (const p of lone) {
      const only = nonZeroBytes(page(p));
      expect(only).toHaveLength(1);
      expect(only[0]![0]).toBe(loneByteOf(0, p));
    }
    const at = lone.map((p) => loneByteOf(0, p));
    expect(at.filter((i) => i === PAGE - 1).length).toBeGreaterThan(0);
    expect(at.filter((i) => i >= 64 && i < PAGE - 1).length).toBeGreaterThan(lone.length / 3);
  });

  test("a pure function of (pattern, page): a sub-range is the same bytes as the whole, in memory as in a buffer; the seed decides", () => {
    const part = new Uint8Array(8 * PAGE);
    image.fill(part, 100 * PAGE);
    expect(part).toEqual(bytes.subarray(100 * PAGE, 108 * PAGE));
    const mem = new libc.AlignedBuffer(4 * MiB);
    try {
      expect(fillPattern(mem.ptr, 4 * MiB, image.pattern)).toEqual(image.nonZeroPages);
      expect(Buffer.from(mem.view).equals(bytes)).toBe(true);
    } finally {
      mem.free();
    }
    expect(bytesOf(MiB, { kind: "dense", seed: 5 })).toEqual(bytesOf(MiB, { kind: "dense", seed: 5 }));
    expect(Buffer.from(bytesOf(MiB, { kind: "dense", seed: 5 })).equals(bytesOf(MiB, { kind: "dense", seed: 6 }))).toBe(false);
  });
});

test("rng: the same seeds give the same stream; seeds one apart, unrelated streams", () => {
  const take = (r: () => number) => Array.from({ length: 64 }, r);
  expect(take(rng(1, 2, 3))).toEqual(take(rng(1, 2, 3)));
  const a = take(rng(20261126, 41));
  const b = take(rng(20261126, 42));
  // about half the bits differ in every word: no linear trace of the one-bit change
  const differing = a.map((x, i) => (x ^ b[i]!).toString(2).replace(/0/g, "").length);
  expect(differing.reduce((s, n) => s + n, 0) / differing.length).toBeGreaterThan(12);
  expect(differing.every((n) => n > 2)).toBe(true);
  expect(new Set(take(rng(0))).size).toBe(64);
});
