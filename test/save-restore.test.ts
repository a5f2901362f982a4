// save() and restore() through the library API, on real files and real Worker channels: save files on
// ext4 (/tmp, where O_DIRECT alignment is enforced), RAM images in /dev/shm or in this process.
import { readdirSync } from "node:fs";
import { basename, dirname } from "node:path";
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readFileSync, statSync, writeFileSync } from "node:fs";
import * as libc from "../ffi/libc.ts";
import { CancelledError, FormatError, inspectFile, OptionError, restore, save } from "../src/index.ts";
import { testBit } from "../src/format/bitmap.ts";
import { planRuns } from "../src/channels/plan.ts";
import type { StageSeconds } from "../src/channels/messages.ts";
import { CHUNK_PAGES, DEFAULT_MAX_GAP } from "../src/options.ts";
import type { Pattern } from "../src/memory/synthetic.ts";
import {
  countPages,
  fillBuffer,
  firstDifference,
  readBytes,
  requireDirectIo,
  sameFiles,
  scratchDir,
  writeFilled,
  writeImage,
} from "../harness/scratch.ts";
import { KiB, MiB, PAGE } from "../harness/units.ts";

const disk = scratchDir("ramsnap-save-restore"); // save files: ext4
const shm = scratchDir("ramsnap-save-restore", "/dev/shm"); // RAM images
const direct = requireDirectIo(disk.path);
afterAll(() => {
  disk.cleanup();
  shm.cleanup();
});

let serial = 0;
const onDisk = (name: string) => `${disk.path}/${++serial}-${name}`;
const inShm = (name: string) => `${shm.path}/${++serial}-${name}`;

/** A RAM image file in /dev/shm with the pattern; returns its path and page map. */
function image(name: string, length: number, pattern: Pattern): { path: string; map: Uint8Array } {
  const path = inShm(name);
  return { path, map: writeImage(path, length, pattern) };
}

/** Makes one page of an image file non-zero (and records it in the map). */
function stampPage(img: { path: string; map: Uint8Array }, page: number, byte: number): void {
  const fd = libc.open(img.path, libc.O_WRONLY);
  try {
    const b = new Uint8Array(PAGE).fill(byte);
    libc.pwriteFull(fd, libc.addressOf(b), PAGE, page * PAGE);
  } finally {
    libc.close(fd);
  }
  img.map[page] = 1;
}

/** The block's bitmap in the file, bit for bit, as a page map. */
function bitmapInFile(file: string, bitmapOffset: number, pages: number): Uint8Array {
  const bytes = readFileSync(file).subarray(bitmapOffset, bitmapOffset + Math.ceil(pages / 64) * 8);
  return Uint8Array.from({ length: pages }, (_, p) => (testBit(bytes, p) ? 1 : 0));
}

/** I/O calls and bytes a save should issue for a page map: chunk by chunk, short gaps bridged. */
function expectedIo(map: Uint8Array, maxGap = DEFAULT_MAX_GAP): { calls: number; bytes: number } {
  let calls = 0;
  let bytes = 0;
  for (let first = 0; first < map.length; first += CHUNK_PAGES) {
    const n = Math.min(CHUNK_PAGES, map.length - first);
    for (const r of planRuns((i) => map[first + i] === 1, 0, n, maxGap, n)) {
      calls++;
      bytes += r.count * PAGE;
    }
  }
  return { calls, bytes };
}

/** Save, check the counters, the file's bitmap and inspect; restore to a new file; compare. */
async function roundTrip(blocks: { name: string; path: string; map: Uint8Array }[], channels: number, directIo: boolean): Promise<void> {
  const file = onDisk("rt.ram");
  const s = await save({ path: file, blocks: blocks.map((b) => ({ name: b.name, path: b.path })), channels, directIo });
  const present = blocks.map((b) => countPages(b.map));
  expect(s.blocks).toEqual(blocks.map((b, i) => ({ name: b.name, length: b.map.length * PAGE, present: present[i]!, zero: b.map.length - present[i]! })));
  expect(s.pagesPresent).toBe(present.reduce((a, b) => a + b, 0));
  expect(s.pagesZero).toBe(blocks.reduce((a, b) => a + b.map.length, 0) - s.pagesPresent);
  expect(s.totalBytes).toBe(blocks.reduce((a, b) => a + b.map.length * PAGE, 0));
  expect([s.channels, s.directIo, s.offset]).toEqual([channels, directIo, 0]);
  const io = blocks.map((b) => expectedIo(b.map));
  expect(s.ioCalls).toBe(io.reduce((a, b) => a + b.calls, 0));
  expect(s.writtenBytes).toBe(io.reduce((a, b) => a + b.bytes, 0));

  const rep = inspectFile(file);
  expect(rep.complete).toBe(true);
  expect(rep.ramFormat).toBe("mapped-ram");
  expect(rep.blocks.map((b) => [b.name, b.length, b.present, b.absent])).toEqual(blocks.map((b, i) => [b.name, b.map.length * PAGE, present[i]!, b.map.length - present[i]!]));
  for (const [i, b] of rep.blocks.entries()) {
    expect(b.pagesOffset! % MiB).toBe(0);
    expect(firstDifference(bitmapInFile(file, b.bitmapOffset!, b.pages), blocks[i]!.map)).toBeNull();
  }

  const targets = blocks.map((b, i) => ({ name: b.name, path: inShm(`block${i}.out`) }));
  const r = await restore({ path: file, blocks: targets, channels, directIo });
  expect(r.blocks.map((b) => [b.name, b.present, b.absent, b.target])).toEqual(blocks.map((b, i) => [b.name, present[i]!, b.map.length - present[i]!, targets[i]!.path]));
  expect(r.skipped).toEqual([]);
  for (const [i, b] of blocks.entries()) expect(await sameFiles(b.path, targets[i]!.path)).toBeNull();
}

describe("round trip", () => {
  // 3 channel chunks; 15% of pages non-zero, so both bridged and unbridged gaps occur.
  const scattered = image("scattered.raw", 24 * MiB, { kind: "scattered", seed: 11, nonZero: 0.15 });
  test("the scattered image has gaps both shorter and longer than maxGap", () => {
    const io = expectedIo(scattered.map);
    expect(io.calls).toBeGreaterThan(3);
    expect(io.bytes).toBeGreaterThan(countPages(scattered.map) * PAGE);
  });
  for (const directIo of [false, true]) {
    for (const channels of [1, 4]) {
      test.skipIf(directIo && !direct)(`direct I/O ${directIo ? "on" : "off"}, ${channels} channel${channels > 1 ? "s" : ""}: identical, counters and inspect agree`, async () => {
        await roundTrip([{ name: "ram0", ...scattered }], channels, directIo);
      });
    }
  }

  test("a block of 8 MiB + 12 KiB (not a whole number of chunks), 4 channels", async () => {
    const img = image("odd.raw", 8 * MiB + 12 * KiB, { kind: "scattered", seed: 12, nonZero: 0.4 });
    stampPage(img, img.map.length - 1, 0x11); // the 3-page tail chunk has data in its last page
    await roundTrip([{ name: "ram0", ...img }], 4, direct);
  });

  test("a one-page block", async () => {
    const img = image("one.raw", PAGE, { kind: "dense", seed: 13 });
    await roundTrip([{ name: "pc.bios", ...img }], 1, direct);
  });

  test("three blocks at once with different patterns and sizes", async () => {
    const a = image("a.raw", 8 * MiB + 12 * KiB, { kind: "scattered", seed: 14, nonZero: 0.3 });
    stampPage(a, a.map.length - 1, 0x22);
    const b = image("b.raw", PAGE, { kind: "dense", seed: 15 });
    const c = image("c.raw", 6 * MiB, { kind: "clustered", seed: 16, nonZero: 0.5 });
    expect(countPages(c.map)).toBeGreaterThan(0);
    expect(countPages(c.map)).toBeLessThan(c.map.length);
    await roundTrip(
      [
        { name: "pc.ram", ...a },
        { name: "pc.bios", ...b },
        { name: "/rom@etc/acpi/tables", ...c },
      ],
      3,
      direct,
    );
  });
});

describe("zero and dense blocks", () => {
  test("an all-zero block takes almost no space in the file and restores as zeros over old data", async () => {
    const size = 32 * MiB;
    const img = image("zero.raw", size, { kind: "zero", seed: 1 });
    const file = onDisk("zero.ram");
    const s = await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct });
    expect([s.pagesPresent, s.pagesZero, s.writtenBytes, s.ioCalls]).toEqual([0, size / PAGE, 0, 0]);
    const st = libc.statx(file);
    expect(st.size).toBeGreaterThan(size); // the page array is there, as a hole
    expect(st.allocated).toBeLessThan(256 * KiB);
    const rep = inspectFile(file);
    expect(rep.complete).toBe(true);
    expect([rep.blocks[0]!.present, rep.blocks[0]!.absent]).toEqual([0, size / PAGE]);

    const fresh = inShm("zero.fresh");
    const old = inShm("zero.old");
    await writeFilled(old, size, 0xaa);
    await restore({ path: file, blocks: [{ name: "ram0", path: fresh }], channels: 2, directIo: direct });
    await restore({ path: file, blocks: [{ name: "ram0", path: old }], channels: 2, directIo: direct });
    const zeros = new Uint8Array(size);
    expect(firstDifference(await readBytes(fresh), zeros)).toBeNull();
    expect(firstDifference(await readBytes(old), zeros)).toBeNull();
  });

  test("a dense block: every page present, one I/O call per chunk", async () => {
    const size = 16 * MiB;
    const img = image("dense.raw", size, { kind: "dense", seed: 2 });
    const file = onDisk("dense.ram");
    const s = await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct });
    expect([s.pagesPresent, s.pagesZero, s.writtenBytes, s.ioCalls]).toEqual([size / PAGE, 0, size, 2]);
    expect(libc.statx(file).allocated).toBeGreaterThanOrEqual(size);
    const out = inShm("dense.out");
    const r = await restore({ path: file, blocks: [{ name: "ram0", path: out }], channels: 2, directIo: direct });
    expect([r.readBytes, r.ioCalls]).toEqual([size, 2]);
    expect(await sameFiles(img.path, out)).toBeNull();
  });
});

describe("fresh restore targets get memory only where the file has pages", () => {
  test("a clustered image: the target's allocated bytes are the present runs', not the block's; old targets are filled whole", async () => {
    const size = 48 * MiB;
    const img = image("clustered-fresh.raw", size, { kind: "clustered", seed: 9, nonZero: 0.3 });
    const file = onDisk("clustered-fresh.ram");
    const s = await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct });
    expect(s.pagesZero).toBeGreaterThan(0);
    const out = inShm("clustered-fresh.out");
    const r = await restore({ path: file, blocks: [{ name: "ram0", path: out }], channels: 2, directIo: direct });
    expect(await sameFiles(img.path, out)).toBeNull();
    // Clustered units are 2 MiB: whole runs, nothing bridged, so exactly the present pages were reserved.
    expect(libc.statx(out).allocated).toBe(s.pagesPresent * PAGE);
    expect(r.readBytes).toBe(s.pagesPresent * PAGE);
    // A target that held data is reserved whole and its absent pages zeroed.
    const old = inShm("clustered-old.out");
    await writeFilled(old, size, 0x6b);
    await restore({ path: file, blocks: [{ name: "ram0", path: old }], channels: 2, directIo: direct });
    expect(await sameFiles(img.path, old)).toBeNull();
    expect(libc.statx(old).allocated).toBeGreaterThanOrEqual(size);
  });
});

describe("stage counters", () => {
  // Which stages a run passes through is a fact of the code path, not of the machine: a stage the run
  // never enters stays exactly 0, one it enters is above 0, and the channels' busy time fits in their wall time.
  const size = 16 * MiB;
  const img = image("stages.raw", size, { kind: "scattered", seed: 5, nonZero: 0.5 });
  type Timed = { stages: StageSeconds; transferSeconds: number; seconds: number; channels: number };
  const busyFits = (r: Timed) => {
    for (const v of Object.values(r.stages)) expect(Number.isFinite(v) && v >= 0).toBe(true);
    expect(r.transferSeconds).toBeGreaterThan(0);
    expect(r.transferSeconds).toBeLessThanOrEqual(r.seconds);
    const busy = r.stages.readSource! + r.stages.zeroCheck! + r.stages.diskWait! + r.stages.faultTarget! + r.stages.hash!;
    expect(busy).toBeLessThanOrEqual(r.channels * r.transferSeconds);
  };

  test("save: source reads, zero checks and disk writes; hashing only with a manifest; no target faults", async () => {
    const file = onDisk("stages.ram");
    const s = await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct });
    expect(Object.keys(s.stages).sort()).toEqual(["compress", "diskWait", "faultTarget", "hash", "idle", "readSource", "zeroCheck"]);
    expect([s.stages.readSource > 0, s.stages.zeroCheck > 0, s.stages.diskWait > 0]).toEqual([true, true, true]);
    expect([s.stages.faultTarget, s.stages.hash]).toEqual([0, 0]);
    busyFits(s);
    const m = await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct, manifest: true });
    expect(m.stages.hash).toBeGreaterThan(0);
    busyFits(m);
    const all = await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 1, directIo: direct, zeroPageDetection: false });
    expect(all.stages.zeroCheck).toBe(0);
    expect(all.stages.diskWait).toBeGreaterThan(0);
    busyFits(all);
  });

  test("restore: target faults and disk reads; no source reads or zero checks; hashing only with --verify", async () => {
    const file = onDisk("stages-r.ram");
    await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct, manifest: true });
    const r = await restore({ path: file, blocks: [{ name: "ram0", path: inShm("stages.out") }], channels: 2, directIo: direct });
    expect([r.stages.faultTarget > 0, r.stages.diskWait > 0]).toEqual([true, true]);
    expect([r.stages.readSource, r.stages.zeroCheck, r.stages.hash]).toEqual([0, 0, 0]);
    busyFits(r);
    const v = await restore({ path: file, blocks: [{ name: "ram0", path: inShm("stages-v.out") }], channels: 2, directIo: direct, verify: true });
    expect(v.stages.hash).toBeGreaterThan(0);
    busyFits(v);
  });
});

describe("sources with holes (never-touched guest RAM)", () => {
  /**
   * A 64 MiB image that is mostly holes: single pages at chunk edges, a 3 MiB run straddling a chunk
   * boundary at an odd page, the last page; the same bytes written out in full beside it.
   */
  function sparseAndFull(dir: string, name: string): { sparse: string; full: string; pages: number[] } {
    const size = 64 * MiB;
    const sparse = `${dir}/${++serial}-${name}.sparse`;
    const full = `${dir}/${++serial}-${name}.full`;
    const pages = [0, 5, CHUNK_PAGES - 1, CHUNK_PAGES, 3 * CHUNK_PAGES + 7, size / PAGE - 1];
    const runFirst = 4 * CHUNK_PAGES - 301;
    for (let p = runFirst; p < runFirst + (3 * MiB) / PAGE; p++) pages.push(p);
    const bytes = new Uint8Array(size);
    for (const p of pages) bytes.fill((p % 251) + 1, p * PAGE, (p + 1) * PAGE);
    writeFileSync(full, bytes);
    const fd = libc.open(sparse, libc.O_WRONLY | libc.O_CREAT, 0o600);
    try {
      libc.ftruncate(fd, size);
      for (const p of pages) libc.pwriteFull(fd, libc.addressOf(bytes.subarray(p * PAGE)), PAGE, p * PAGE);
    } finally {
      libc.close(fd);
    }
    return { sparse, full, pages };
  }

  for (const where of ["/dev/shm", "ext4"] as const) {
    test(`${where}: holes are not read, and the file is byte for byte the one the full image gives`, async () => {
      const { sparse, full, pages } = sparseAndFull(where === "ext4" ? disk.path : shm.path, "holes");
      expect(libc.statx(sparse).allocated).toBeLessThan(8 * MiB); // really sparse
      const a = await save({ path: onDisk("holes-sparse.ram"), blocks: [{ name: "ram0", path: sparse }], channels: 2, directIo: direct });
      const b = await save({ path: onDisk("holes-full.ram"), blocks: [{ name: "ram0", path: full }], channels: 2, directIo: direct });
      expect(b.sourceHoleBytes).toBe(0); // written out in full: no holes
      // Everything but the data pages (and pages sharing a file system block with them) was skipped.
      expect(a.sourceHoleBytes).toBeGreaterThan(64 * MiB - pages.length * PAGE - 64 * KiB);
      expect(a.sourceHoleBytes).toBeLessThanOrEqual(64 * MiB - pages.length * PAGE);
      expect([a.pagesPresent, a.writtenBytes, a.ioCalls]).toEqual([b.pagesPresent, b.writtenBytes, b.ioCalls]);
      expect(a.pagesPresent).toBe(pages.length);
      expect(await sameFiles(a.file, b.file)).toBeNull();
      const out = inShm("holes.out");
      await restore({ path: a.file, blocks: [{ name: "ram0", path: out }], channels: 2, directIo: direct });
      expect(await sameFiles(full, out)).toBeNull();
    });
  }

  test("with zero-page detection off every page is written, holes included", async () => {
    const { sparse, full } = sparseAndFull(shm.path, "nozero");
    const a = await save({ path: onDisk("nozero.ram"), blocks: [{ name: "ram0", path: sparse }], channels: 2, directIo: direct, zeroPageDetection: false });
    expect([a.sourceHoleBytes, a.pagesPresent, a.writtenBytes]).toEqual([0, (64 * MiB) / PAGE, 64 * MiB]);
    const out = inShm("nozero.out");
    await restore({ path: a.file, blocks: [{ name: "ram0", path: out }], channels: 2, directIo: direct });
    expect(await sameFiles(full, out)).toBeNull();
  });

  test("the manifest of a sparse source equals the full image's", async () => {
    const { sparse, full } = sparseAndFull(shm.path, "manifest");
    const a = await save({ path: onDisk("m-sparse.ram"), blocks: [{ name: "ram0", path: sparse }], channels: 2, manifest: true });
    const b = await save({ path: onDisk("m-full.ram"), blocks: [{ name: "ram0", path: full }], channels: 2, manifest: true });
    const extents = (f: string) => JSON.parse(readFileSync(`${f}.sums`, "utf8")).blocks;
    expect(extents(a.file)).toEqual(extents(b.file));
  });
});

describe("offset", () => {
  const img = image("offset.raw", 6 * MiB, { kind: "scattered", seed: 21, nonZero: 0.3 });
  for (const offset of [4096, MiB + 5]) {
    test(`a stream at offset ${offset} keeps the prefix, drops what followed, and reads back`, async () => {
      const file = onDisk("offset.ram");
      const prefix = new Uint8Array(offset).fill(0x58); // 'X'
      // the prefix, then 3 MiB of an older content that the save must not keep
      writeFileSync(file, Buffer.concat([prefix, new Uint8Array(3 * MiB).fill(0x77)]));
      const s = await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct, offset });
      expect(s.offset).toBe(offset);
      const bytes = await readBytes(file);
      expect(firstDifference(bytes.subarray(0, offset), prefix)).toBeNull();
      const rep = inspectFile(file, { offset });
      // the older content after the prefix is gone: between the bitmap and the page array is a hole
      const { bitmapOffset, pagesOffset, pages } = rep.blocks[0]!;
      expect(bytes.subarray(bitmapOffset! + Math.ceil(pages / 64) * 8, pagesOffset!).every((v) => v === 0)).toBe(true);
      expect(rep.complete).toBe(true);
      expect(rep.base).toBe(offset);
      expect(rep.blocks[0]!.present).toBe(countPages(img.map));
      expect(rep.blocks[0]!.pagesOffset! % MiB).toBe(0);
      expect(rep.blocks[0]!.pagesOffset!).toBeGreaterThan(offset);
      expect(() => inspectFile(file)).toThrow(FormatError); // the stream is not at 0
      const out = inShm("offset.out");
      await restore({ path: file, blocks: [{ name: "ram0", path: out }], channels: 2, directIo: direct, offset });
      expect(await sameFiles(img.path, out)).toBeNull();
    });
  }
});

describe("descriptors handed over (fd, directFd)", () => {
  test.skipIf(!direct)("save and restore through caller-opened descriptors, which stay open", async () => {
    const img = image("fd.raw", 10 * MiB, { kind: "scattered", seed: 31, nonZero: 0.3 });
    const file = onDisk("fd.ram");
    const wfd = libc.open(file, libc.O_WRONLY | libc.O_CREAT, 0o600);
    const wdirect = libc.open(file, libc.O_WRONLY | libc.O_DIRECT);
    const rfd = { main: -1, direct: -1 };
    try {
      const flagsBefore = [libc.getFlags(wfd), libc.getFlags(wdirect)];
      const s = await save({ fd: wfd, directFd: wdirect, blocks: [{ name: "ram0", path: img.path }], channels: 2 });
      expect(s.directIo).toBe(true); // implied by directFd
      expect(s.file).toBe(`fd ${wfd}`);
      expect([libc.getFlags(wfd), libc.getFlags(wdirect)]).toEqual(flagsBefore); // still open, untouched
      expect(libc.getFlags(wdirect) & libc.O_DIRECT).toBe(libc.O_DIRECT);
      expect(inspectFile(file).complete).toBe(true);

      rfd.main = libc.open(file, libc.O_RDONLY);
      rfd.direct = libc.open(file, libc.O_RDONLY | libc.O_DIRECT);
      const out = inShm("fd.out");
      const r = await restore({ fd: rfd.main, directFd: rfd.direct, blocks: [{ name: "ram0", path: out }], channels: 2 });
      expect(r.directIo).toBe(true);
      expect(await sameFiles(img.path, out)).toBeNull();
      expect(libc.getFlags(rfd.main) & libc.O_ACCMODE).toBe(libc.O_RDONLY);
      expect(libc.getFlags(rfd.direct) & libc.O_DIRECT).toBe(libc.O_DIRECT);
    } finally {
      for (const fd of [wfd, wdirect, rfd.main, rfd.direct]) if (fd >= 0) libc.close(fd);
    }
  });

  test("buffered save and restore through one caller-opened descriptor each, which stays open", async () => {
    const img = image("fd1.raw", 4 * MiB, { kind: "scattered", seed: 32, nonZero: 0.3 });
    const file = onDisk("fd1.ram");
    const wfd = libc.open(file, libc.O_RDWR | libc.O_CREAT, 0o600);
    try {
      await save({ fd: wfd, blocks: [{ name: "ram0", path: img.path }], channels: 2 });
      expect(libc.getFlags(wfd) & libc.O_ACCMODE).toBe(libc.O_RDWR);
      const out = inShm("fd1.out");
      await restore({ fd: wfd, blocks: [{ name: "ram0", path: out }], channels: 2 });
      expect(libc.getFlags(wfd) & libc.O_ACCMODE).toBe(libc.O_RDWR);
      expect(await sameFiles(img.path, out)).toBeNull();
    } finally {
      libc.close(wfd);
    }
  });
});

describe("in-process buffers", () => {
  test.skipIf(!direct)("an unaligned source buffer saved with direct I/O, restored into an unaligned buffer (bounce buffers)", async () => {
    const size = 12 * MiB;
    const srcBacking = new Uint8Array(size + 2 * PAGE);
    const src = new Uint8Array(srcBacking.buffer, 16, size);
    expect(libc.addressOf(src) % PAGE).not.toBe(0);
    const map = fillBuffer(src, { kind: "scattered", seed: 41, nonZero: 0.4 });
    const file = onDisk("buffer.ram");
    const s = await save({ path: file, blocks: [{ name: "ram0", buffer: src }], channels: 2, directIo: true });
    expect(s.pagesPresent).toBe(countPages(map));

    const dstBacking = new Uint8Array(size + 2 * PAGE).fill(0xaa);
    const dst = new Uint8Array(dstBacking.buffer, 100, size);
    expect(libc.addressOf(dst) % PAGE).not.toBe(0);
    await restore({ path: file, blocks: [{ name: "ram0", buffer: dst }], channels: 2, directIo: true });
    expect(firstDifference(dst, src)).toBeNull();
    // nothing written outside the target
    expect(dstBacking.subarray(0, 100).every((v) => v === 0xaa)).toBe(true);
    expect(dstBacking.subarray(100 + size).every((v) => v === 0xaa)).toBe(true);
  });

  test("an aligned buffer round trip with buffered I/O", async () => {
    const size = 4 * MiB;
    const src = new Uint8Array(size);
    fillBuffer(src, { kind: "clustered", seed: 42, nonZero: 0.5 });
    src.fill(0x33, 3 * MiB, 3 * MiB + PAGE);
    const file = onDisk("buffer2.ram");
    await save({ path: file, blocks: [{ name: "ram0", buffer: src }], channels: 1 });
    const dst = new Uint8Array(size).fill(0xaa);
    await restore({ path: file, blocks: [{ name: "ram0", buffer: dst }], channels: 1 });
    expect(firstDifference(dst, src)).toBeNull();
  });
});

describe("restore into old data", () => {
  const img = image("old.raw", 10 * MiB, { kind: "scattered", seed: 51, nonZero: 0.1 });
  const file = onDisk("old.ram");
  beforeAll(async () => {
    await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct });
  });
  for (const [what, length] of [
    ["the same size", 10 * MiB],
    ["a larger size", 13 * MiB],
    ["a smaller size", 3 * MiB],
  ] as const) {
    for (const directIo of new Set([false, direct])) {
      test(`a target file of ${what} full of 0xAA: absent pages come out zero (direct I/O ${directIo ? "on" : "off"})`, async () => {
        const out = inShm("old.out");
        await writeFilled(out, length, 0xaa);
        await restore({ path: file, blocks: [{ name: "ram0", path: out }], channels: 2, directIo });
        expect(statSync(out).size).toBe(10 * MiB);
        expect(await sameFiles(img.path, out)).toBeNull();
      });
    }
  }
});

describe("stale data in absent page slots", () => {
  test("garbage in every absent slot (bridged or not) never reaches the target", async () => {
    const img = image("stale.raw", 8 * MiB, { kind: "scattered", seed: 61, nonZero: 0.3 });
    const file = onDisk("stale.ram");
    await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct });
    const before = inspectFile(file);
    const { pagesOffset, present } = before.blocks[0]!;
    // absent pages lying between present ones within maxGap: restore reads them along (bridging)
    const bridged = img.map.findIndex((v, p) => v === 0 && p > 0 && img.map[p - 1] === 1 && img.map[p + 1] === 1);
    expect(bridged).toBeGreaterThan(0);

    const garbage = new Uint8Array(PAGE).fill(0xee);
    const fd = libc.open(file, libc.O_WRONLY);
    try {
      for (let p = 0; p < img.map.length; p++) {
        if (img.map[p] === 0) libc.pwriteFull(fd, libc.addressOf(garbage), PAGE, pagesOffset! + p * PAGE);
      }
    } finally {
      libc.close(fd);
    }
    // the file still says the same: the bitmap, not slot contents, decides
    const after = inspectFile(file);
    expect(after.complete).toBe(true);
    expect(after.blocks[0]!.present).toBe(present);
    const raw = await readBytes(file);
    expect(raw[pagesOffset! + bridged * PAGE]).toBe(0xee);

    for (const maxGap of [DEFAULT_MAX_GAP, 0]) {
      const out = inShm("stale.out"); // a new file: only bridged slots need zeroing
      const r = await restore({ path: file, blocks: [{ name: "ram0", path: out }], channels: 2, directIo: direct, maxGap });
      if (maxGap > 0) expect(r.readBytes).toBeGreaterThan(present * PAGE); // gaps were bridged
      else expect(r.readBytes).toBe(present * PAGE);
      const got = await readBytes(out);
      expect(got.subarray(bridged * PAGE, (bridged + 1) * PAGE).every((v) => v === 0)).toBe(true);
      expect(firstDifference(got, await readBytes(img.path))).toBeNull();
    }
  });
});

describe("a truncated file is refused before any target is touched", () => {
  const img = image("trunc.raw", 4 * MiB, { kind: "scattered", seed: 71, nonZero: 0.5 });
  let whole: Uint8Array = new Uint8Array(0);
  let rep: ReturnType<typeof inspectFile>;
  beforeAll(async () => {
    const file = onDisk("trunc.ram");
    await save({ path: file, blocks: [{ name: "ram0", path: img.path }], channels: 2, directIo: direct });
    whole = await readBytes(file);
    rep = inspectFile(file);
    expect(rep.complete).toBe(true);
  });
  const cuts: [string, () => number][] = [
    ["just before EOF", () => rep.eofOffset],
    ["in the trailer", () => whole.length - 3],
    ["in the page array", () => rep.blocks[0]!.pagesOffset! + 100 * PAGE + 7],
    ["in the bitmap", () => rep.blocks[0]!.bitmapOffset! + 3],
  ];
  for (const [where, at] of cuts) {
    test(`cut ${where}`, async () => {
      const cut = onDisk("cut.ram");
      writeFileSync(cut, whole.subarray(0, at()));
      const target = inShm("cut-new.out");
      await expect(restore({ path: cut, blocks: [{ name: "ram0", path: target }], channels: 2, directIo: direct })).rejects.toThrow(FormatError);
      expect(existsSync(target)).toBe(false);

      const existing = inShm("cut-old.out");
      const old = new Uint8Array(1 * MiB + 3 * PAGE).fill(0xaa);
      writeFileSync(existing, old);
      await expect(restore({ path: cut, blocks: [{ name: "ram0", path: existing }], channels: 2, directIo: direct })).rejects.toThrow(FormatError);
      expect(firstDifference(await readBytes(existing), old)).toBeNull();
    });
  }
});

describe("cancel", () => {
  const big = image("cancel.raw", 64 * MiB, { kind: "dense", seed: 81 });
  const small = image("cancel-small.raw", 2 * MiB, { kind: "dense", seed: 82 });
  let during: string[] = [];

  /** The save's temporary files beside `path`: `.NAME.ramsnap-PID-XXXXXX.tmp`. */
  const temporaries = (path: string) => readdirSync(dirname(path)).filter((n) => n.startsWith(`.${basename(path)}.ramsnap-${process.pid}-`) && n.endsWith(".tmp"));

  /** Cancels a save at its first progress report; `during` is what temporaries() saw at that moment. */
  async function cancelledSave(path: string, offset = 0): Promise<number> {
    const ac = new AbortController();
    let calls = 0;
    during = [];
    const run = save({
      path,
      blocks: [{ name: "ram0", path: big.path }],
      channels: 2,
      directIo: direct,
      offset,
      signal: ac.signal,
      onProgress: () => {
        if (++calls === 1) {
          during = temporaries(path);
          ac.abort();
        }
      },
    });
    await expect(run).rejects.toBeInstanceOf(CancelledError);
    return calls;
  }

  test("a save cancelled from onProgress rejects with CancelledError and removes the file it created", async () => {
    const file = onDisk("cancel.ram");
    const calls = await cancelledSave(file);
    expect(calls).toBeGreaterThanOrEqual(1);
    expect(calls).toBeLessThan(8); // 8 jobs in all: it stopped early
    expect(existsSync(file)).toBe(false);
    expect(during).toHaveLength(1); // the name the check below looks for is the one the save used
    expect(temporaries(file)).toEqual([]);
  });

  test("a cancelled save over an existing complete file leaves that file as it was, and no temporary file", async () => {
    const file = onDisk("cancel-existing.ram");
    await save({ path: file, blocks: [{ name: "ram0", path: small.path }], channels: 1 });
    expect(inspectFile(file).complete).toBe(true);
    const before = await readBytes(file);
    await cancelledSave(file);
    expect(firstDifference(await readBytes(file), before)).toBeNull(); // written beside it, renamed only when complete
    expect(during).toHaveLength(1);
    expect(temporaries(file)).toEqual([]);
  });

  test("a cancelled save at an offset leaves the file (prefix and previous stream) as it was", async () => {
    const file = onDisk("cancel-offset.ram");
    const prefix = new Uint8Array(8192).fill(0x58);
    writeFileSync(file, prefix);
    await save({ path: file, blocks: [{ name: "ram0", path: small.path }], channels: 1, offset: prefix.length });
    expect(inspectFile(file, { offset: prefix.length }).complete).toBe(true);
    const before = await readBytes(file);
    await cancelledSave(file, prefix.length);
    expect(firstDifference(await readBytes(file), before)).toBeNull();
    expect(during).toHaveLength(1);
    expect(temporaries(file)).toEqual([]);
  });

  test("a save at an offset over an existing file carries its prefix into the new file", async () => {
    const file = onDisk("offset-prefix-carried.ram");
    const prefix = new Uint8Array(4096 + 123).map((_, i) => (i * 7) & 0xff);
    writeFileSync(file, prefix);
    await save({ path: file, blocks: [{ name: "ram0", path: small.path }], channels: 1, offset: 8192 });
    const bytes = await readBytes(file);
    expect(firstDifference(bytes.subarray(0, prefix.length), prefix)).toBeNull();
    expect(bytes.subarray(prefix.length, 8192).every((x) => x === 0)).toBe(true);
    expect(inspectFile(file, { offset: 8192 }).complete).toBe(true);
  });

  test("an already aborted signal: nothing is created", async () => {
    const file = onDisk("cancel-early.ram");
    await expect(save({ path: file, blocks: [{ name: "ram0", path: small.path }], signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    expect(existsSync(file)).toBe(false);
  });
});

describe("restore target mistakes", () => {
  const a = image("names-a.raw", 2 * MiB, { kind: "scattered", seed: 91, nonZero: 0.5 });
  const b = image("names-b.raw", PAGE, { kind: "dense", seed: 92 });
  const file = onDisk("names.ram");
  beforeAll(async () => {
    await save({ path: file, blocks: [{ name: "pc.ram", path: a.path }, { name: "pc.bios", path: b.path }], channels: 1 });
  });

  test("a name the file does not have: OptionError listing the file's blocks; no target created", async () => {
    const target = inShm("names.out");
    const err = await restore({ path: file, blocks: [{ name: "ram0", path: target }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as Error).message).toBe(`${file} has no RAM block named ram0; it has pc.ram, pc.bios`);
    expect(existsSync(target)).toBe(false);
  });

  test("a target buffer of the wrong size: OptionError", async () => {
    const err = await restore({ path: file, blocks: [{ name: "pc.ram", buffer: new Uint8Array(2 * MiB + PAGE) }] }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(OptionError);
    expect((err as Error).message).toBe(`block pc.ram is ${2 * MiB} bytes in ${file}, but the target buffer holds ${2 * MiB + PAGE}`);
  });

  test("restoring only some blocks lists the others as skipped", async () => {
    const out = inShm("bios.out");
    const r = await restore({ path: file, blocks: [{ name: "pc.bios", path: out }], channels: 1 });
    expect(r.skipped).toEqual(["pc.ram"]);
    expect(await sameFiles(b.path, out)).toBeNull();
  });
});
