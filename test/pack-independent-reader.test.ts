// An independent reader of the pack format, written from docs/pack-format.md and QEMU's mapped-ram format
// (docs/qemu-mapped-ram-format.md) alone — nothing from src/ or harness/ is imported, so a place where the code
// and the doc disagree fails here. Packs made by the real CLI are rebuilt into their image and compared, byte for
// byte, with the mapped-ram file the same CLI writes for the same RAM.
import { afterAll, describe, expect, test } from "bun:test";
import { spawnSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";

// ---------------------------------------------------------------------------------------------------------------
// The reader
// ---------------------------------------------------------------------------------------------------------------

export interface PackEntry {
  block: number;
  extent: number;
  storedOffset: number;
  storedLength: number;
  encoding: number;
  present: Uint8Array;
  count: number;
}
export interface ImageBlock {
  name: string;
  length: number;
  pageSize: number;
  bitmapOffset: number;
  pagesOffset: number;
}
export interface ReadPack {
  pageSize: number;
  extentPages: number;
  mainEncoding: number;
  mainOffset: number;
  mainStoredLength: number;
  mainLength: number;
  segments: { offset: number; length: number }[];
  entries: PackEntry[];
  blocks: ImageBlock[];
  image: Uint8Array;
}

const HEADER = 64;
const FOOTER = 64;
const ascii = (b: Uint8Array, at: number, n: number): string => new TextDecoder().decode(b.subarray(at, at + n));
const u64 = (v: DataView, at: number, le: boolean): number => {
  const x = v.getBigUint64(at, le);
  if (x > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`u64 at ${at} too large: ${x}`);
  return Number(x);
};
const xxh3 = (b: Uint8Array): bigint => BigInt.asUintN(64, BigInt(Bun.hash.xxHash3(b)));
const allZero = (b: Uint8Array, from: number, to: number, what: string): void => {
  for (let i = from; i < to; i++) if (b[i] !== 0) throw new Error(`${what}: byte ${i} is ${b[i]}, expected 0`);
};
const bit = (bits: Uint8Array, p: number): boolean => ((bits[p >> 3] ?? 0) & (1 << (p & 7))) !== 0;
const fail = (msg: string): never => {
  throw new Error(msg);
};
/** Where the zstd frame (RFC 8878 §3.1.1) at the start of `b` ends: walks its header and block headers. */
const zstdFrameEnd = (b: Uint8Array, what: string): number => {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  if (b.length < 6 || v.getUint32(0, true) !== 0xfd2fb528) fail(`${what}: zstd encoding but no zstd frame magic`);
  const fhd = b[4] as number;
  const single = (fhd >> 5) & 1;
  let p = 5 + (single ? 0 : 1) + [0, 1, 2, 4][fhd & 3]! + [single, 2, 4, 8][fhd >> 6]!;
  for (let last = 0; !last; ) {
    if (p + 3 > b.length) fail(`${what}: zstd frame cut inside a block header at ${p}`);
    const h = (b[p] as number) | ((b[p + 1] as number) << 8) | ((b[p + 2] as number) << 16);
    last = h & 1;
    const type = (h >> 1) & 3;
    if (type === 3) fail(`${what}: zstd block type 3 (reserved) at ${p}`);
    p += 3 + (type === 1 ? 1 : h >>> 3);
  }
  return p + ((fhd >> 2) & 1) * 4;
};
const decode = (enc: number, stored: Uint8Array, expectLength: number, what: string): Uint8Array => {
  let out: Uint8Array;
  if (enc === 0) out = stored;
  else if (enc === 1) {
    const frameEnd = zstdFrameEnd(stored, what);
    if (frameEnd !== stored.length) fail(`${what}: one zstd frame ends at ${frameEnd} of ${stored.length} stored bytes`);
    out = new Uint8Array(Bun.zstdDecompressSync(stored));
  } else return fail(`${what}: encoding ${enc} (expected 0 or 1)`);
  if (out.length !== expectLength) fail(`${what}: decodes to ${out.length} bytes, expected ${expectLength}`);
  return out;
};

/** Parse the image's QEMU stream (its main stream being in place) far enough to list the mapped-ram blocks. */
export function parseBlockList(img: Uint8Array): ImageBlock[] {
  const v = new DataView(img.buffer, img.byteOffset, img.byteLength);
  let p = 0;
  const need = (n: number): void => void (p + n > img.length && fail(`stream ends at ${p} (need ${n} bytes)`));
  const be32 = (): number => (need(4), (p += 4), v.getUint32(p - 4, false));
  const be64 = (): number => (need(8), (p += 8), u64(v, p - 8, false));
  const u8 = (): number => (need(1), img[p++] as number);
  const str8 = (): string => {
    const n = u8();
    need(n);
    p += n;
    return ascii(img, p - n, n);
  };
  if (be32() !== 0x5145564d) fail("image: no QEVM magic at 0");
  if (be32() !== 3) fail("image: stream version is not 3");
  let ignoreShared = false;
  if (img[p] === 0x07) {
    p++;
    const n = be32();
    need(n);
    p += n; // machine type
    while (img[p] === 0x05) {
      p++;
      const name = str8();
      be32(); // subsection version
      if (name === "configuration/target-page-bits") be32();
      else if (name === "configuration/capabilities") {
        const caps = be32();
        for (let i = 0; i < caps; i++) if (str8() === "x-ignore-shared") ignoreShared = true;
      } else if (name === "configuration/uuid") p += 16;
      else fail(`image: unknown configuration subsection ${name}`);
    }
  }
  // device sections before RAM (early-setup FULL sections, commands): find RAM's START section
  const ramStart = (at: number): boolean =>
    img[at] === 0x01 &&
    ascii(img, at + 5, 4) === "\x03ram" &&
    v.getUint32(at + 9, false) === 0 &&
    v.getUint32(at + 13, false) === 4;
  while (!ramStart(p)) {
    if (p + 17 > img.length) fail("image: no RAM START section");
    p++;
  }
  p += 1;
  const sectionId = be32();
  p += 12; // "ram", instance 0, version 4
  const word = be64();
  if ((word & 0x3ff) !== 0x004) fail(`image: RAM setup word ${word.toString(16)} is not MEM_SIZE`);
  const total = word - 0x004;
  const blocks: ImageBlock[] = [];
  let sum = 0;
  while (sum < total) {
    const name = str8();
    const length = be64();
    if (ignoreShared) be64();
    const at = p;
    const version = be32();
    if (version !== 1) fail(`image: block ${name} MappedRamHeader version ${version} at ${at}`);
    const pageSize = be64();
    const bitmapOffset = be64();
    const pagesOffset = be64();
    blocks.push({ name, length, pageSize, bitmapOffset, pagesOffset });
    sum += length;
    p = pagesOffset + length;
  }
  if (sum !== total) fail(`image: block lengths sum to ${sum}, MEM_SIZE says ${total}`);
  if (be64() !== 0x10) fail(`image: no EOS after the block list (at ${p - 8})`);
  if (u8() !== 0x7e || be32() !== sectionId) fail(`image: bad footer of the RAM START section at ${p - 5}`);
  return blocks;
}

/** Read a whole pack, check everything the doc states, and rebuild its image. */
export function readPack(pack: Uint8Array): ReadPack {
  const v = new DataView(pack.buffer, pack.byteOffset, pack.byteLength);
  const size = pack.length;
  if (size < HEADER + FOOTER) fail(`pack: ${size} bytes, shorter than header + footer`);
  // 1. header and footer
  if (ascii(pack, 0, 8) !== "RAMSNAPK") fail("header: magic is not RAMSNAPK");
  if (v.getUint32(8, true) !== 1) fail(`header: version ${v.getUint32(8, true)}, expected 1`);
  const pageSize = v.getUint32(12, true);
  const extentPages = v.getUint32(16, true);
  if (pageSize < 512 || pageSize > 2 << 20 || (pageSize & (pageSize - 1)) !== 0) fail(`header: page_size ${pageSize}`);
  if (extentPages === 0 || extentPages % 64 !== 0 || extentPages > 65536) fail(`header: extentPages ${extentPages}`);
  allZero(pack, 20, 64, "header reserved");
  const f = size - FOOTER;
  if (ascii(pack, f, 8) !== "RSNPKEND") fail("footer: magic is not RSNPKEND");
  if (v.getUint32(f + 8, true) !== 1) fail(`footer: version ${v.getUint32(f + 8, true)}, expected 1`);
  const mainEncoding = v.getUint32(f + 12, true);
  const mainOffset = u64(v, f + 16, true);
  const mainStoredLength = u64(v, f + 24, true);
  const mainLength = u64(v, f + 32, true);
  const indexOffset = u64(v, f + 40, true);
  const indexEntries = v.getUint32(f + 48, true);
  allZero(pack, f + 52, f + 56, "footer reserved");
  const entrySize = 32 + extentPages / 8;
  if (mainOffset < HEADER) fail(`footer: mainOffset ${mainOffset} inside the header`);
  if (mainOffset + mainStoredLength !== indexOffset)
    fail(`footer: mainOffset ${mainOffset} + mainStoredLength ${mainStoredLength} != indexOffset ${indexOffset}`);
  if (indexOffset + indexEntries * entrySize !== f)
    fail(`footer: indexOffset ${indexOffset} + ${indexEntries} × ${entrySize} != size − 64 = ${f}`);
  // 2. main stream record and index, one read, one hash
  const tail = pack.subarray(mainOffset, f);
  const want = v.getBigUint64(f + 56, true);
  if (xxh3(tail) !== want) fail(`footer: hash ${want.toString(16)} != xxh3 of [mainOffset, size − 64) ${xxh3(tail).toString(16)}`);
  const main = decode(mainEncoding, tail.subarray(0, mainStoredLength), mainLength, "main stream record");
  const mv = new DataView(main.buffer, main.byteOffset, main.byteLength);
  const segmentCount = mv.getUint32(0, true);
  const segments: { offset: number; length: number }[] = [];
  let data = 4 + 16 * segmentCount;
  let end = 0;
  for (let i = 0; i < segmentCount; i++) {
    const offset = u64(mv, 4 + 16 * i, true);
    const length = u64(mv, 12 + 16 * i, true);
    if (offset < end) fail(`main: segment ${i} at ${offset} overlaps or precedes the previous one (ends ${end})`);
    segments.push({ offset, length });
    end = offset + length;
    data += length;
  }
  if (data !== mainLength) fail(`main: header + segment bytes = ${data}, mainLength ${mainLength}`);
  // 3. the image's main stream, and its block list
  const image = new Uint8Array(end);
  data = 4 + 16 * segmentCount;
  for (const s of segments) {
    image.set(main.subarray(data, data + s.length), s.offset);
    data += s.length;
  }
  const blocks = parseBlockList(image);
  for (const b of blocks) {
    if (b.pageSize !== pageSize) fail(`image: block ${b.name} page_size ${b.pageSize}, pack header ${pageSize}`);
    if (b.length % pageSize !== 0) fail(`image: block ${b.name} length ${b.length} not whole pages`);
  }
  // the bytes between segments are exactly the page arrays
  const gaps: [number, number][] = [];
  let at = 0;
  for (const s of segments) {
    if (s.offset > at) gaps.push([at, s.offset]);
    at = Math.max(at, s.offset + s.length);
  }
  const arrays = blocks
    .filter((b) => b.length > 0)
    .map((b): [number, number] => [b.pagesOffset, b.pagesOffset + b.length])
    .sort((a, b) => a[0] - b[0]);
  if (JSON.stringify(gaps) !== JSON.stringify(arrays))
    fail(`main: gaps between segments ${JSON.stringify(gaps)} != page arrays ${JSON.stringify(arrays)}`);
  // 4. the index: sorted, sizes, hashes; every present page at its slot
  const entries: PackEntry[] = [];
  const presentBits = blocks.map((b) => new Uint8Array(Math.ceil(b.length / pageSize / 8)));
  for (let i = 0; i < indexEntries; i++) {
    const e = indexOffset + i * entrySize;
    const what = `index entry ${i} (at ${e})`;
    const block = v.getUint32(e, true);
    const extent = v.getUint32(e + 4, true);
    const storedOffset = u64(v, e + 8, true);
    const storedLength = v.getUint32(e + 16, true);
    const encoding = pack[e + 20] as number;
    allZero(pack, e + 21, e + 24, `${what} reserved`);
    const present = pack.slice(e + 32, e + entrySize);
    const prev = entries[entries.length - 1];
    if (prev && (prev.block > block || (prev.block === block && prev.extent >= extent)))
      fail(`${what}: (${block}, ${extent}) not after (${prev.block}, ${prev.extent})`);
    const b = blocks[block] ?? fail(`${what}: block ${block}, image has ${blocks.length}`);
    const pagesB = b.length / pageSize;
    const first = extent * extentPages;
    if (first >= pagesB) fail(`${what}: extent ${extent} past block ${block}'s ${pagesB} pages`);
    const span = Math.min(extentPages, pagesB - first);
    let count = 0;
    for (let k = 0; k < extentPages; k++)
      if (bit(present, k)) {
        if (k >= span) fail(`${what}: present bit ${k} past the block's last page`);
        count++;
      }
    if (count === 0) fail(`${what}: no present bit`);
    if (storedLength === 0) fail(`${what}: storedLength 0`);
    if (storedOffset < HEADER || storedOffset + storedLength > mainOffset)
      fail(`${what}: stored [${storedOffset}, +${storedLength}) outside [64, mainOffset ${mainOffset})`);
    const stored = pack.subarray(storedOffset, storedOffset + storedLength);
    if (xxh3(stored) !== v.getBigUint64(e + 24, true)) fail(`${what}: hash of the stored bytes differs`);
    const pages = decode(encoding, stored, count * pageSize, what);
    let k = 0;
    for (let j = 0; j < span; j++)
      if (bit(present, j)) {
        image.set(pages.subarray(k * pageSize, (k + 1) * pageSize), b.pagesOffset + (first + j) * pageSize);
        const pb = presentBits[block] as Uint8Array;
        pb[(first + j) >> 3] = (pb[(first + j) >> 3] as number) | (1 << ((first + j) & 7));
        k++;
      }
    entries.push({ block, extent, storedOffset, storedLength, encoding, present, count });
  }
  const byOffset = [...entries].sort((a, b) => a.storedOffset - b.storedOffset);
  for (let i = 1; i < byOffset.length; i++) {
    const a = byOffset[i - 1] as PackEntry;
    const c = byOffset[i] as PackEntry;
    if (a.storedOffset + a.storedLength > c.storedOffset)
      fail(`extents (${a.block},${a.extent}) and (${c.block},${c.extent}) overlap in the pack`);
  }
  // the image's bitmaps agree with the index's present bits (bit p ⇔ page p present)
  blocks.forEach((b, i) => {
    const pagesB = b.length / pageSize;
    const bitmapSize = Math.ceil(pagesB / 64) * 8;
    const bm = image.subarray(b.bitmapOffset, b.bitmapOffset + bitmapSize);
    const pb = presentBits[i] as Uint8Array;
    for (let p = 0; p < bitmapSize * 8; p++)
      if (bit(bm, p) !== (p < pagesB && bit(pb, p)))
        fail(`block ${i} (${b.name}): bitmap bit ${p} (image byte ${b.bitmapOffset + (p >> 3)}) is ${bit(bm, p)}, index says ${bit(pb, p)}`);
  });
  return { pageSize, extentPages, mainEncoding, mainOffset, mainStoredLength, mainLength, segments, entries, blocks, image };
}

// ---------------------------------------------------------------------------------------------------------------
// Tests against packs made by the CLI
// ---------------------------------------------------------------------------------------------------------------

const CLI = join(import.meta.dir, "../src/cli/main.ts");
const KiB = 1024;
const MiB = 1024 * KiB;
const PAGE = 4096;
const dir = mkdtempSync(join(tmpdir(), "ramsnap-pack-reader-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const ramsnap = (...args: string[]): void => {
  const r = spawnSync("bun", [CLI, ...args], { encoding: "utf8", env: { ...process.env, NO_COLOR: "1" } });
  if (r.status !== 0) throw new Error(`ramsnap ${args.join(" ")} exited ${r.status}:\n${r.stderr}${r.stdout}`);
};

type Kind = "zero" | "random" | "text" | "scattered" | "mixed";
/** A RAM image: per 1 MiB extent a kind, the last extent short (size not a multiple of 1 MiB). */
function makeImage(path: string, kinds: Kind[], size: number, seed: number): { kinds: Kind[]; nonZero: boolean[] } {
  const img = new Uint8Array(size);
  let s = seed >>> 0 || 1;
  const rnd = (): number => {
    s ^= s << 13;
    s ^= s >>> 17;
    s ^= s << 5;
    return s >>> 0;
  };
  const fillRandom = (from: number, to: number): void => {
    const w = new Uint32Array(img.buffer, from, (to - from) / 4);
    for (let i = 0; i < w.length; i++) w[i] = rnd();
  };
  const text = new TextEncoder().encode("guest kernel data structure, repeated and compressible; ");
  kinds.forEach((kind, e) => {
    const from = e * MiB;
    const to = Math.min(size, from + MiB);
    if (kind === "random") fillRandom(from, to);
    else if (kind === "text") {
      for (let i = from; i < to; i++) img[i] = text[(i * 7 + (i >> 12)) % text.length] as number;
    } else if (kind === "scattered") {
      for (const p of [0, 17, 99, 255]) {
        if (from + p * PAGE < to) img[from + p * PAGE + ((p * 37) % PAGE)] = 1 + (p % 250);
      }
    } else if (kind === "mixed") {
      // random pages at even slots, zero pages at odd ones: the present pages are incompressible
      for (let p = 0; from + p * PAGE < to; p += 2) fillRandom(from + p * PAGE, from + (p + 1) * PAGE);
    }
  });
  writeFileSync(path, img);
  const nonZero: boolean[] = [];
  for (let p = 0; p * PAGE < size; p++) nonZero.push(img.subarray(p * PAGE, (p + 1) * PAGE).some((x) => x !== 0));
  return { kinds, nonZero };
}

const summary = (r: ReadPack, size: number) => ({
  size,
  mainEncoding: r.mainEncoding,
  mainOffset: r.mainOffset,
  mainStoredLength: r.mainStoredLength,
  mainLength: r.mainLength,
  segments: r.segments,
  blocks: r.blocks,
  extentBytes: r.entries.reduce((n, e) => n + e.storedLength, 0),
  entries: r.entries.map((e) => `${e.block}/${e.extent}@${e.storedOffset}+${e.storedLength} enc${e.encoding} n${e.count}`),
});

function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let at = 0; at < n; at += 64 * KiB) {
    const end = Math.min(n, at + 64 * KiB);
    if (!Buffer.from(a.buffer, a.byteOffset + at, end - at).equals(Buffer.from(b.buffer, b.byteOffset + at, end - at)))
      for (let i = at; i < end; i++) if (a[i] !== b[i]) return i;
  }
  return a.length === b.length ? -1 : n;
}

/** Save the images both ways, rebuild the pack's image, compare, and check the extents' encodings. */
function check(name: string, images: { path: string; kinds: Kind[]; nonZero: boolean[] }[], extra: string[] = []) {
  const ram = join(dir, `${name}.ram`);
  const rpk = join(dir, `${name}.rpk`);
  const blockArgs = images.flatMap((im, i) => ["--block", `ram${i}=${im.path}`]);
  const plainArgs = extra.filter((a, i) => a !== "--compress" && extra[i - 1] !== "--compress");
  ramsnap("save", "-o", ram, ...blockArgs, "--no-manifest", ...plainArgs);
  ramsnap("save", "-o", rpk, ...blockArgs, "--no-manifest", ...extra);
  const pack = new Uint8Array(readFileSync(rpk));
  const mapped = new Uint8Array(readFileSync(ram));
  const r = readPack(pack);
  if (process.env.PACK_READER_DEBUG) console.log(name, summary(r, pack.length));
  const diff = firstDifference(r.image, mapped);
  if (diff >= 0)
    throw new Error(`rebuilt image (${r.image.length} B) differs from ${name}.ram (${mapped.length} B) at byte ${diff}: ${r.image[diff]} vs ${mapped[diff]}`);
  expect(r.pageSize).toBe(PAGE);
  expect(r.extentPages).toBe(256);
  expect(r.blocks.map((b) => b.name)).toEqual(images.map((_, i) => `ram${i}`));
  const compress = extra[extra.indexOf("--compress") + 1] !== "none";
  let rawBytes = 0;
  images.forEach((im, bi) => {
    expect(r.blocks[bi]?.length).toBe(statSync(im.path).size);
    im.kinds.forEach((kind, e) => {
      const entry = r.entries.find((x) => x.block === bi && x.extent === e);
      const pages = im.nonZero.slice(e * 256, (e + 1) * 256);
      // present exactly where the RAM is not zero (ramsnap writes no zero page)
      if (!pages.some((z) => z)) {
        expect(entry).toBeUndefined();
        return;
      }
      if (!entry) throw new Error(`block ${bi} extent ${e} (${kind}) has no index entry`);
      expect(pages.map((_, k) => bit(entry.present, k))).toEqual(pages);
      const plain = entry.count * PAGE;
      if (!compress) expect(entry.encoding).toBe(0);
      else if (kind === "random" || kind === "mixed") expect(entry.encoding).toBe(0);
      else expect(entry.encoding).toBe(1);
      if (entry.encoding === 0) {
        expect(entry.storedLength).toBe(plain);
        rawBytes += plain;
      } else expect(entry.storedLength).toBeLessThan(plain);
    });
  });
  const presentBytes = r.entries.reduce((n, e) => n + e.count * PAGE, 0);
  if (compress) {
    // compressible pages cost a small fraction of their size: the pack is about the raw extents' size
    const compressibleBytes = presentBytes - rawBytes;
    expect(pack.length).toBeLessThan(rawBytes + compressibleBytes / 10 + 256 * KiB);
    expect(pack.length).toBeLessThan(mapped.length / 2);
  } else expect(pack.length).toBeGreaterThan(presentBytes);
  return r;
}

// 24 MiB + 12 KiB: 25 extents, the last one 3 pages
const kinds0: Kind[] = [
  "text", "zero", "random", "scattered", "zero", "zero", "mixed", "text", "zero", "zero", "zero", "scattered",
  "random", "zero", "zero", "zero", "text", "zero", "zero", "zero", "scattered", "zero", "zero", "zero", "text",
];
const size0 = 24 * MiB + 12 * KiB;
const img0 = { path: join(dir, "img0.raw"), ...makeImage(join(dir, "img0.raw"), kinds0, size0, 0x1234567) };
const kinds1: Kind[] = ["random", "zero", "scattered", "text", "zero", "mixed", "zero", "zero", "scattered"];
const size1 = 8 * MiB + 20 * KiB;
const img1 = { path: join(dir, "img1.raw"), ...makeImage(join(dir, "img1.raw"), kinds1, size1, 0xbeef) };

describe("independent pack reader", () => {
  test("the block-list parser reads the mapped-ram file ramsnap writes", () => {
    const ram = join(dir, "plain.ram");
    ramsnap("save", "-o", ram, "--block", `ram0=${img0.path}`, "--block", `ram1=${img1.path}`, "--no-manifest");
    const file = new Uint8Array(readFileSync(ram));
    const blocks = parseBlockList(file);
    expect(blocks.map((b) => [b.name, b.length, b.pageSize])).toEqual([
      ["ram0", size0, PAGE],
      ["ram1", size1, PAGE],
    ]);
    for (const [i, b] of blocks.entries()) {
      const im = i === 0 ? img0 : img1;
      expect(b.pagesOffset % MiB).toBe(0);
      const bm = file.subarray(b.bitmapOffset, b.bitmapOffset + Math.ceil(b.length / PAGE / 64) * 8);
      expect(im.nonZero.map((_, p) => bit(bm, p))).toEqual(im.nonZero);
    }
  });

  test("one block: the pack rebuilds the mapped-ram file byte for byte", () => {
    check("one", [img0]);
  });

  test("two blocks", () => {
    const r = check("two", [img0, img1]);
    expect(r.entries.some((e) => e.block === 1)).toBe(true);
  });

  test("the reader is not vacuous: damaged packs are refused, a raw main stream record is read", () => {
    check("dmg", [img1]);
    const pack = new Uint8Array(readFileSync(join(dir, "dmg.rpk")));
    const r = readPack(pack);
    const e = r.entries[0] as PackEntry;
    const flip = (at: number): Uint8Array => {
      const c = pack.slice();
      c[at] = (c[at] as number) ^ 0x40;
      return c;
    };
    expect(() => readPack(flip(e.storedOffset + e.storedLength - 1))).toThrow("hash of the stored bytes");
    expect(() => readPack(flip(pack.length - 70))).toThrow("footer: hash");
    expect(() => readPack(pack.subarray(0, pack.length - 1))).toThrow("footer: magic");
    expect(() => readPack(flip(3))).toThrow("header: magic");
    // the main stream record re-stored raw (mainEncoding 0), footer and its hash rewritten: still the same image
    const v = new DataView(pack.buffer, pack.byteOffset, pack.byteLength);
    const f = pack.length - 64;
    const indexOffset = Number(v.getBigUint64(f + 40, true));
    const stored = pack.subarray(r.mainOffset, indexOffset);
    const main = r.mainEncoding === 1 ? new Uint8Array(Bun.zstdDecompressSync(stored)) : stored.slice();
    const restore = (m: Uint8Array): Uint8Array => {
      const index = pack.subarray(indexOffset, f);
      const out = new Uint8Array(r.mainOffset + m.length + index.length + 64);
      out.set(pack.subarray(0, r.mainOffset));
      out.set(m, r.mainOffset);
      out.set(index, r.mainOffset + m.length);
      const foot = pack.slice(f);
      const fv = new DataView(foot.buffer);
      fv.setUint32(12, 0, true);
      fv.setBigUint64(24, BigInt(m.length), true);
      fv.setBigUint64(32, BigInt(m.length), true);
      fv.setBigUint64(40, BigInt(r.mainOffset + m.length), true);
      fv.setBigUint64(56, xxh3(out.subarray(r.mainOffset, out.length - 64)), true);
      out.set(foot, out.length - 64);
      return out;
    };
    expect(firstDifference(readPack(restore(main)).image, r.image)).toBe(-1);
    // a bitmap bit the index does not have: the doc says bitmaps and present bits agree
    const b = r.blocks[0] as ImageBlock;
    const absent = img1.nonZero.indexOf(false);
    let inMain = 4 + 16 * r.segments.length; // where the bitmap's byte lies in the decoded record
    for (const s of r.segments) {
      if (b.bitmapOffset >= s.offset && b.bitmapOffset < s.offset + s.length) {
        inMain += b.bitmapOffset - s.offset + (absent >> 3);
        break;
      }
      inMain += s.length;
    }
    const bad = main.slice();
    bad[inMain] = (bad[inMain] as number) | (1 << (absent & 7));
    expect(() => readPack(restore(bad))).toThrow(`bitmap bit ${absent}`);
  });

  test("--compress none: only raw extents, same image", () => {
    check("none", [img0, img1], ["--compress", "none"]);
  });

  test("--compress zstd:19 --channels 1", () => {
    check("z19", [img0], ["--compress", "zstd:19", "--channels", "1"]);
  });

  test("convert: mapped-ram to pack and back", () => {
    const ram = join(dir, "conv-src.ram");
    ramsnap("save", "-o", ram, "--block", `ram0=${img0.path}`, "--block", `ram1=${img1.path}`, "--no-manifest");
    const mapped = new Uint8Array(readFileSync(ram));
    const rpk = join(dir, "conv.rpk");
    ramsnap("convert", ram, rpk, "--to", "pack");
    const r = readPack(new Uint8Array(readFileSync(rpk)));
    expect(firstDifference(r.image, mapped)).toBe(-1);
    // a mapped-ram stream placed at offset 4096 in its file: the pack's image is the stream at offset 0
    const at4k = join(dir, "conv-4k.ram");
    ramsnap("save", "-o", at4k, "--block", `ram0=${img0.path}`, "--block", `ram1=${img1.path}`, "--no-manifest", "--offset", "4096");
    ramsnap("convert", at4k, join(dir, "conv-4k.rpk"), "--to", "pack", "--offset", "4096");
    expect(firstDifference(readPack(new Uint8Array(readFileSync(join(dir, "conv-4k.rpk")))).image, mapped)).toBe(-1);
    const back = join(dir, "conv.ram");
    ramsnap("convert", rpk, back, "--to", "mapped-ram", "--no-manifest");
    expect(firstDifference(new Uint8Array(readFileSync(back)), mapped)).toBe(-1);
  });
});
