// Harness: damage copies of save files in precise ways (a flipped byte, a cleared bitmap bit, a cut),
// and hand back what was there, so a test can check that the damage is reported where it was done.
import { closeSync, copyFileSync, openSync, readSync, truncateSync, writeSync } from "node:fs";

function readByte(fd: number, offset: number, path: string): number {
  const b = new Uint8Array(1);
  if (readSync(fd, b, 0, 1, offset) !== 1) throw new Error(`${path}: no byte at offset ${offset}`);
  return b[0]!;
}

function writeByte(fd: number, offset: number, value: number): void {
  writeSync(fd, Uint8Array.of(value), 0, 1, offset);
}

/** Copies `src` to `dst` (replacing it) and returns `dst`. */
export function copy(src: string, dst: string): string {
  copyFileSync(src, dst);
  return dst;
}

/** XORs the byte at `offset` with `mask` (default: every bit). Returns the old and new values. */
export function flipByte(path: string, offset: number, mask = 0xff): { before: number; after: number } {
  const fd = openSync(path, "r+");
  try {
    const before = readByte(fd, offset, path);
    const after = before ^ mask;
    writeByte(fd, offset, after);
    return { before, after };
  } finally {
    closeSync(fd);
  }
}

/** Clears bit `bit` (0 = least significant) of the byte at `offset`. Returns whether it was set. */
export function clearBit(path: string, offset: number, bit: number): boolean {
  const fd = openSync(path, "r+");
  try {
    const before = readByte(fd, offset, path);
    writeByte(fd, offset, before & ~(1 << bit));
    return (before & (1 << bit)) !== 0;
  } finally {
    closeSync(fd);
  }
}

/** Overwrites `bytes.length` bytes at `offset`. */
export function overwrite(path: string, offset: number, bytes: Uint8Array): void {
  const fd = openSync(path, "r+");
  try {
    writeSync(fd, bytes, 0, bytes.length, offset);
  } finally {
    closeSync(fd);
  }
}

/** A copy of `src` cut to `length` bytes. */
export function truncatedCopy(src: string, dst: string, length: number): string {
  copyFileSync(src, dst);
  truncateSync(dst, length);
  return dst;
}

/** Bytes [offset, offset + length) of a file. */
export function readRange(path: string, offset: number, length: number): Uint8Array {
  const fd = openSync(path, "r");
  try {
    const b = new Uint8Array(length);
    const n = readSync(fd, b, 0, length, offset);
    return b.subarray(0, n);
  } finally {
    closeSync(fd);
  }
}
