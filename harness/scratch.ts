// Harness: scratch directories on real file systems, a direct-I/O probe, and RAM images made from
// the synthetic patterns.
//
// Direct-I/O tests must run on /tmp (ext4 here): tmpfs (/dev/shm) accepts O_DIRECT with any alignment,
// so an alignment bug would pass there unseen. `requireDirectIo` never lets a CI run skip: under CI it
// throws when direct I/O is missing; on a developer's machine it warns loudly and returns false so tests
// can `test.skipIf(!direct)`.
import { mkdtempSync, rmSync, unlinkSync } from "node:fs";
import { join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { fillPattern, type Pattern } from "../src/memory/synthetic.ts";
import { mapFileForWrite } from "../src/memory/region.ts";
import { PAGE } from "./units.ts";

export interface Scratch {
  path: string;
  cleanup(): void;
}

/** A fresh directory `<base>/<prefix>XXXXXX` (base /tmp by default: ext4 here), removed by cleanup(). */
export function scratchDir(prefix: string, base = "/tmp"): Scratch {
  const path = mkdtempSync(join(base, prefix.endsWith("-") ? prefix : `${prefix}-`));
  return { path, cleanup: () => rmSync(path, { recursive: true, force: true }) };
}

/** Whether `dir`'s file system takes O_DIRECT: opens a file there with it and does one aligned 4 KiB pwrite. */
export function directIoAvailable(dir: string): boolean {
  const file = join(dir, `.direct-io-probe-${process.pid}-${Math.random().toString(36).slice(2)}`);
  let fd = -1;
  const buf = new libc.AlignedBuffer(PAGE);
  try {
    buf.view.fill(0x5a);
    fd = libc.open(file, libc.O_WRONLY | libc.O_CREAT | libc.O_DIRECT, 0o600);
    libc.pwriteFull(fd, buf.ptr, PAGE, 0, { path: file, align: PAGE });
    return true;
  } catch {
    return false;
  } finally {
    buf.free();
    if (fd >= 0) libc.close(fd, file);
    try {
      unlinkSync(file);
    } catch {}
  }
}

/** Whether `dir`'s file system refuses a misaligned O_DIRECT write (tmpfs does not: alignment bugs hide there). */
export function directIoEnforcesAlignment(dir: string): boolean {
  const file = join(dir, `.direct-io-align-${process.pid}-${Math.random().toString(36).slice(2)}`);
  let fd = -1;
  const buf = new libc.AlignedBuffer(2 * PAGE);
  try {
    fd = libc.open(file, libc.O_WRONLY | libc.O_CREAT | libc.O_DIRECT, 0o600);
    libc.pwrite(fd, buf.ptr, PAGE, 100); // no `align`: let the kernel judge
    return false;
  } catch (e) {
    return e instanceof libc.SysError && e.code === "EINVAL";
  } finally {
    buf.free();
    if (fd >= 0) libc.close(fd, file);
    try {
      unlinkSync(file);
    } catch {}
  }
}

function warn(text: string): void {
  const bar = "!".repeat(100);
  process.stderr.write(`\n${bar}\n!!! ${text}\n${bar}\n\n`);
}

/**
 * True when `dir` takes O_DIRECT. When it does not: under CI, throws (direct-I/O tests never skip in CI);
 * elsewhere prints a loud warning and returns false, for `test.skipIf`.
 */
export function requireDirectIo(dir: string): boolean {
  if (directIoAvailable(dir)) {
    if (!directIoEnforcesAlignment(dir)) warn(`${dir} accepts misaligned O_DIRECT (tmpfs?): direct-I/O tests there cannot catch alignment bugs; use an ext4 /tmp`);
    return true;
  }
  const text = `${dir} does not accept O_DIRECT: direct-I/O tests are SKIPPED (they need ext4 or xfs under /tmp)`;
  if (process.env.CI) throw new Error(`${text.replace("are SKIPPED", "cannot run")}; CI never skips them`);
  warn(text);
  return false;
}

// ---- images -------------------------------------------------------------------------------------

/** Writes a pattern into a new (or resized) file via a shared mapping; returns the page map (1 = non-zero). */
export function writeImage(path: string, length: number, pattern: Pattern): Uint8Array {
  const r = mapFileForWrite(path, length);
  try {
    return fillPattern(r.ptr, length, pattern);
  } finally {
    r.release();
  }
}

/** Fills an in-process buffer with a pattern; returns the page map. */
export function fillBuffer(buf: Uint8Array, pattern: Pattern): Uint8Array {
  return fillPattern(libc.addressOf(buf), buf.length, pattern);
}

/** A file of `length` bytes all set to `byte`. */
export async function writeFilled(path: string, length: number, byte: number): Promise<void> {
  await Bun.write(path, new Uint8Array(length).fill(byte));
}

export async function readBytes(path: string): Promise<Uint8Array> {
  return new Uint8Array(await Bun.file(path).arrayBuffer());
}

/** Number of set entries in a page map. */
export const countPages = (map: Uint8Array): number => map.reduce((s, v) => s + (v ? 1 : 0), 0);

/**
 * Where two byte arrays first differ, as a readable string, or null when they are identical. Meant for
 * `expect(firstDifference(a, b)).toBeNull()`, so a failure says which page went wrong.
 */
export function firstDifference(a: Uint8Array, b: Uint8Array): string | null {
  if (a.length !== b.length) return `lengths differ: ${a.length} vs ${b.length}`;
  if (Buffer.compare(a, b) === 0) return null;
  for (let off = 0; off < a.length; off += PAGE) {
    const end = Math.min(a.length, off + PAGE);
    if (Buffer.compare(a.subarray(off, end), b.subarray(off, end)) !== 0) {
      let i = off;
      while (a[i] === b[i]) i++;
      const zero = b.subarray(off, end).every((v) => v === 0);
      return `first difference in page ${off / PAGE} at byte ${i}: ${a[i]} vs ${b[i]}${zero ? " (second is all zero)" : ""}`;
    }
  }
  return "differ";
}

/** Throws naming `what` and the first differing page unless the two byte arrays are identical. */
export function expectSameBytes(actual: Uint8Array, expected: Uint8Array, what: string): void {
  const d = firstDifference(actual, expected);
  if (d !== null) throw new Error(`${what}: ${d}`);
}

export async function sameFiles(a: string, b: string): Promise<string | null> {
  return firstDifference(await readBytes(a), await readBytes(b));
}
