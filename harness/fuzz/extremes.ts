// The values mutators write into numeric fields: absolute extremes (0, 2^32, 2^53, 2^64 - 1, ...), values
// relative to the file's size and the field's old value, and RAM words with odd flags; and their bytes.
import type { Rng } from "./rng.ts";
import { readBe, type Field, type FieldKind, type Seed } from "./seed.ts";

const U64 = (1n << 64n) - 1n;
const ABSOLUTE: bigint[] = [
  0n, 1n, 2n, 0x7fn, 0xffn, 4095n, 4096n, 4097n, 0x7fffn, 0xffffn, 0x10000n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n,
  2n ** 32n + 4096n, 2n ** 40n, 2n ** 44n, 2n ** 48n, 2n ** 52n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 4096n, 2n ** 62n, 2n ** 63n,
  2n ** 63n + 4096n, U64 - 4095n, U64,
];
const FLAG_VALUES = [0x0, 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x22, 0x28, 0x40, 0x80, 0x100, 0x200, 0x3ff, 0xfff];

/** The kinds of field that hold a number (and so get extremes). */
export const NUMERIC: FieldKind[] = ["magic", "version", "length", "offset", "id", "count", "ram-word", "name-len"];

/** `v` as `width` big-endian bytes (its low bytes). */
export function be(v: bigint, width: number): Uint8Array {
  const out = new Uint8Array(width);
  let x = v & ((1n << BigInt(8 * width)) - 1n);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

/** A value as a report shows it: small ones in decimal, large ones in hex. */
export const show = (v: bigint) => (v > 4096n ? `0x${v.toString(16)}` : String(v));

/** An extreme value for a numeric field: absolute extremes, or relative to the file size and the old value. */
export function extremeFor(seed: Seed, f: Field, r: Rng, size: number): bigint {
  const old = readBe(seed, f.at, f.width);
  if (f.kind === "ram-word") return ramWordFor(old, r);
  const S = BigInt(size);
  const rel = [S - 1n, S, S + 1n, S - 4096n, S + 4096n, old - 1n, old + 1n, old - 4096n, old + 4096n, old * 2n, old + 2n ** 32n, old ^ 0x80n, old / 2n];
  return r.chance(0.55) ? r.pick(ABSOLUTE) : r.pick(rel) & U64;
}

/** A RAM word (address | flags) with odd flags, an extreme address, or both. */
function ramWordFor(old: bigint, r: Rng): bigint {
  const flags = old & 0xfffn;
  const addr = old & ~0xfffn;
  return r.weighted<() => bigint>([
    [3, () => addr | BigInt(r.pick(FLAG_VALUES))],
    [2, () => addr | (flags ^ (1n << BigInt(r.int(0, 11))))],
    [3, () => (r.pick(ABSOLUTE) & ~0xfffn) | flags],
    [1, () => ((addr + BigInt(r.pick([-4096, 4096, 2 ** 32, 2 ** 20]))) & U64) | flags],
    [1, () => r.pick(ABSOLUTE)],
  ])();
}

/** A value for a one-byte field: the edges of a byte, or one off its old value. */
export function byteValueFor(seed: Seed, f: Field, r: Rng): bigint {
  const old = Number(readBe(seed, f.at, f.width));
  return BigInt(r.pick([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, old + 1, old - 1]) & 0xff);
}

/** A position near `f`: inside it, or a few bytes either side (never before the file: a write there lands at 0). */
export function near(f: Field, r: Rng): number {
  return Math.max(0, f.at + r.int(-3, f.width + 3));
}
