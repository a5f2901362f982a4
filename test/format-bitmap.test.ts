// The page bitmap: QEMU's raw little-endian 64-bit words, i.e. bit p is bit (p & 7) of byte (p >> 3).
import { describe, expect, test } from "bun:test";
import { clearBit, countSet, firstBitPast, setBit, setRuns, testBit } from "../src/format/bitmap.ts";
import { hex, toHex } from "../harness/streams.ts";

const runs = (bm: Uint8Array, from: number, to: number): [number, number][] => [...setRuns(bm, from, to)];

/** Reference: one bit at a time. */
function naiveRuns(bm: Uint8Array, from: number, to: number): [number, number][] {
  const out: [number, number][] = [];
  for (let p = from; p < to; p++) {
    if (!((bm[p >> 3]! >> (p & 7)) & 1)) continue;
    const start = p;
    while (p < to && (bm[p >> 3]! >> (p & 7)) & 1) p++;
    out.push([start, p - start]);
  }
  return out;
}

/** Deterministic pseudo-random bytes (xorshift32). */
function randomBitmap(len: number, seed: number, density: "sparse" | "dense" | "mixed"): Uint8Array {
  let x = seed >>> 0 || 1;
  const next = () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
  return Uint8Array.from({ length: len }, () => {
    const r = next();
    if (density === "sparse") return r % 4 === 0 ? r >>> 24 : 0;
    if (density === "dense") return r % 4 === 0 ? r >>> 24 : 0xff;
    return [0, 0xff, r >>> 24][r % 3]!;
  });
}

describe("bit order", () => {
  test("pages 0, 1 and 9 give 03 02 (the format notes' pc.bios example)", () => {
    const bm = new Uint8Array(8);
    for (const p of [0, 1, 9]) setBit(bm, p);
    expect(toHex(bm)).toBe("03 02 00 00 00 00 00 00");
    expect([0, 1, 2, 8, 9, 10].map((p) => testBit(bm, p))).toEqual([true, true, false, false, true, false]);
  });

  test("bit 63 is the top bit of byte 7; clearBit clears only its bit", () => {
    const bm = new Uint8Array(8).fill(0xff);
    clearBit(bm, 63);
    clearBit(bm, 8);
    expect(toHex(bm)).toBe("ff fe ff ff ff ff ff 7f");
  });
});

describe("countSet", () => {
  test("empty, full bytes and a partial last byte", () => {
    expect(countSet(new Uint8Array(16), 128)).toBe(0);
    expect(countSet(new Uint8Array(16).fill(0xff), 128)).toBe(128);
    expect(countSet(new Uint8Array(16).fill(0xff), 65)).toBe(65);
    expect(countSet(hex("ff 05"), 10)).toBe(9);
    expect(countSet(hex("ff 05"), 11)).toBe(10);
  });

  test("bits past the page count are not counted", () => {
    expect(countSet(hex("00 00 00 00 00 00 00 f0"), 60)).toBe(0);
    expect(countSet(hex("00 00 00 00 00 00 00 f0"), 61)).toBe(1);
  });

  test("matches a bit-by-bit count on random bitmaps", () => {
    for (let seed = 1; seed < 40; seed++) {
      const bm = randomBitmap(24, seed, "mixed");
      const pages = 1 + (seed * 37) % 192;
      let n = 0;
      for (let p = 0; p < pages; p++) if (testBit(bm, p)) n++;
      expect(countSet(bm, pages)).toBe(n);
    }
  });
});

describe("setRuns", () => {
  test("an empty bitmap has no runs", () => {
    expect(runs(new Uint8Array(16), 0, 128)).toEqual([]);
    expect(runs(new Uint8Array(0), 0, 0)).toEqual([]);
  });

  test("a run crossing byte boundaries", () => {
    const bm = new Uint8Array(8);
    for (let p = 6; p < 19; p++) setBit(bm, p);
    expect(runs(bm, 0, 64)).toEqual([[6, 13]]);
  });

  test("bits 7 and 8 make one run across the byte boundary", () => {
    expect(runs(hex("80 01 00 00 00 00 00 00"), 0, 64)).toEqual([[7, 2]]);
  });

  test("full 0xff bytes are one run, cut at `to`", () => {
    expect(runs(new Uint8Array(8).fill(0xff), 0, 64)).toEqual([[0, 64]]);
    expect(runs(new Uint8Array(8).fill(0xff), 0, 61)).toEqual([[0, 61]]);
    expect(runs(new Uint8Array(8).fill(0xff), 0, 12)).toEqual([[0, 12]]);
    expect(runs(new Uint8Array(8).fill(0xff), 3, 13)).toEqual([[3, 10]]);
  });

  test("several runs, with zero bytes between them", () => {
    expect(runs(hex("0f 00 00 f0 ff 01 00 80"), 0, 64)).toEqual([
      [0, 4],
      [28, 13],
      [63, 1],
    ]);
  });

  test("`from` inside a run starts the run there", () => {
    expect(runs(hex("ff ff"), 5, 16)).toEqual([[5, 11]]);
    expect(runs(hex("00 ff"), 9, 16)).toEqual([[9, 7]]);
  });

  test("matches a bit-by-bit reference on random bitmaps and ranges", () => {
    for (let seed = 1; seed < 120; seed++) {
      const bm = randomBitmap(32, seed, (["sparse", "dense", "mixed"] as const)[seed % 3]!);
      const from = (seed * 13) % 100;
      const to = from + ((seed * 29) % (256 - from));
      expect(runs(bm, from, to)).toEqual(naiveRuns(bm, from, to));
      expect(runs(bm, 0, 256)).toEqual(naiveRuns(bm, 0, 256));
    }
  });
});

describe("firstBitPast", () => {
  test("-1 when nothing is set past the page count", () => {
    expect(firstBitPast(hex("ff ff 00 00 00 00 00 00"), 16)).toBe(-1);
    expect(firstBitPast(new Uint8Array(8), 0)).toBe(-1);
    expect(firstBitPast(new Uint8Array(8).fill(0xff), 64)).toBe(-1);
  });

  test("the bit right at the page count", () => {
    expect(firstBitPast(hex("00 00 00 00 00 00 00 10"), 60)).toBe(60);
  });

  test("a bit in a later byte, after zero bytes, with a page count not a multiple of 8", () => {
    expect(firstBitPast(hex("07 00 00 00 00 00 00 40"), 3)).toBe(62);
    expect(firstBitPast(hex("ff 03 00 00 00 00 00 00"), 10)).toBe(-1);
    expect(firstBitPast(hex("ff 07 00 00 00 00 00 00"), 10)).toBe(10);
    expect(firstBitPast(hex("ff 0b 00 00 00 00 00 00"), 10)).toBe(11);
  });

  test("bits below the page count are ignored", () => {
    expect(firstBitPast(hex("ff ff ff ff ff ff ff ff 01 00 00 00 00 00 00 00"), 65)).toBe(-1);
    expect(firstBitPast(hex("ff ff ff ff ff ff ff ff 03 00 00 00 00 00 00 00"), 65)).toBe(65);
  });
});
