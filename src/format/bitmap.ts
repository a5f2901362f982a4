// The per-block page bitmap. QEMU writes its in-memory `unsigned long` array raw, so on the 64-bit
// little-endian hosts that matter (x86-64, aarch64) bit p is bit (p & 7) of byte (p >> 3). ramsnap writes
// that layout and reads it back the same way.

const POPCOUNT = new Uint8Array(256).map((_, i) => {
  let n = 0;
  for (let v = i; v; v >>= 1) n += v & 1;
  return n;
});

export function testBit(bitmap: Uint8Array, page: number): boolean {
  return ((bitmap[page >> 3]! >> (page & 7)) & 1) === 1;
}

export function setBit(bitmap: Uint8Array, page: number): void {
  bitmap[page >> 3] = bitmap[page >> 3]! | (1 << (page & 7));
}

export function clearBit(bitmap: Uint8Array, page: number): void {
  bitmap[page >> 3] = bitmap[page >> 3]! & ~(1 << (page & 7));
}

/** Number of set bits among the first `pages` bits. */
export function countSet(bitmap: Uint8Array, pages: number): number {
  let n = 0;
  const whole = pages >> 3;
  for (let i = 0; i < whole; i++) n += POPCOUNT[bitmap[i]!]!;
  for (let p = whole * 8; p < pages; p++) if (testBit(bitmap, p)) n++;
  return n;
}

/** The first set bit at or after `pages` (bits past the block's end must be clear), or -1. */
export function firstBitPast(bitmap: Uint8Array, pages: number): number {
  const total = bitmap.length * 8;
  for (let p = pages; p < total; p++) {
    if ((p & 7) === 0 && bitmap[p >> 3] === 0) {
      p += 7;
      continue;
    }
    if (testBit(bitmap, p)) return p;
  }
  return -1;
}

/** Runs of set bits in [from, to) as [firstPage, pageCount] pairs, skipping zero bytes quickly. */
export function* setRuns(bitmap: Uint8Array, from: number, to: number): Generator<[number, number]> {
  let p = from;
  while (p < to) {
    if ((p & 7) === 0 && bitmap[p >> 3] === 0) {
      p += 8;
      continue;
    }
    if (!testBit(bitmap, p)) {
      p++;
      continue;
    }
    const start = p;
    while (p < to && testBit(bitmap, p)) {
      if ((p & 7) === 0 && bitmap[p >> 3] === 0xff && p + 8 <= to) p += 8;
      else p++;
    }
    yield [start, p - start];
  }
}
