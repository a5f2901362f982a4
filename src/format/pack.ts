// The packed save format (docs/pack-format.md), pure encode and decode: a pack stands for one mapped-ram
// file laid out from offset 0 (its "image"), but holds only the image's main stream and its present
// pages, in extents of 1 MiB of guest RAM, each compressed on its own and hashed. Written in one
// sequential pass: header, extents in whatever order the channels finish them, the main stream, the
// index, and a fixed-size footer that finds both. All integers are little-endian (the main stream inside
// keeps QEMU's big-endian bytes untouched).
import { PackError } from "./errors.ts";

export const PACK_MAGIC = "RAMSNAPK";
export const PACK_FOOTER_MAGIC = "RSNPKEND";
export const PACK_VERSION = 1;
export const PACK_HEADER_SIZE = 64;
export const PACK_FOOTER_SIZE = 64;
/** Guest RAM per extent, in pages (1 MiB of 4 KiB pages): the manifest's extent, and 8 per channel job. */
export const PACK_EXTENT_PAGES = 256;
/** The most a pack's main stream record may take, stored or decoded (QEMU's device state is megabytes). */
export const MAX_MAIN_RECORD = 1 << 30;

/** How an extent's (or the main stream's) bytes are stored. */
export const Encoding = { raw: 0, zstd: 1 } as const;
export type EncodingCode = (typeof Encoding)[keyof typeof Encoding];

export interface PackHeader {
  version: number;
  pageSize: number;
  extentPages: number;
}

/** One extent in the index: where its stored bytes are and which of its pages they hold. */
export interface PackExtent {
  /** Index of the block in the image's block list. */
  block: number;
  /** The extent's number in its block: its first page is extent × extentPages. */
  extent: number;
  storedOffset: number;
  storedLength: number;
  encoding: EncodingCode;
  /** xxh3-64 of the stored bytes, as 16 hex digits. */
  hash: string;
  /** One bit a page of the extent, least significant bit first: set where the page is stored. */
  present: Uint8Array;
}

export interface PackFooter {
  version: number;
  mainEncoding: EncodingCode;
  mainOffset: number;
  mainStoredLength: number;
  mainLength: number;
  indexOffset: number;
  indexEntries: number;
  /** xxh3-64 of the stored main stream and the index, as they lie in the pack. */
  hash: string;
}

/** A byte range of the image outside every page array, and its bytes. */
export interface ImageSegment {
  offset: number;
  bytes: Uint8Array;
}

export const indexEntrySize = (extentPages: number): number => 32 + extentPages / 8;

const ascii = (s: string) => new TextEncoder().encode(s);
const hex64 = (v: bigint) => v.toString(16).padStart(16, "0");

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

function u64(dv: DataView, at: number, what: string): number {
  const v = dv.getBigUint64(at, true);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new PackError(`${what} is out of range (${v})`);
  return Number(v);
}

function magicAt(bytes: Uint8Array, at: number, magic: string): boolean {
  const m = ascii(magic);
  return m.every((b, i) => bytes[at + i] === b);
}

export function encodeHeader(h: Omit<PackHeader, "version">): Uint8Array {
  const out = new Uint8Array(PACK_HEADER_SIZE);
  out.set(ascii(PACK_MAGIC));
  const dv = view(out);
  dv.setUint32(8, PACK_VERSION, true);
  dv.setUint32(12, h.pageSize, true);
  dv.setUint32(16, h.extentPages, true);
  return out;
}

/** The header of `name`; anything else than a version-1 pack is refused, naming what was found. */
export function decodeHeader(bytes: Uint8Array, name: string): PackHeader {
  if (bytes.length < PACK_HEADER_SIZE || !magicAt(bytes, 0, PACK_MAGIC)) throw new PackError(`${name} is not a ramsnap pack (no "${PACK_MAGIC}" at offset 0)`);
  const dv = view(bytes);
  const h = { version: dv.getUint32(8, true), pageSize: dv.getUint32(12, true), extentPages: dv.getUint32(16, true) };
  if (h.version !== PACK_VERSION) throw new PackError(`${name}: pack version ${h.version} at offset 8; this ramsnap reads version ${PACK_VERSION}`);
  if (h.pageSize < 512 || h.pageSize > 1 << 21 || (h.pageSize & (h.pageSize - 1)) !== 0) throw new PackError(`${name}: page size ${h.pageSize} at offset 12 is not a power of two between 512 and 2 MiB`);
  // A power of two from 64 to 2048: an extent then owns whole bitmap words and lies inside one channel job (2048 pages).
  if (h.extentPages < 64 || h.extentPages > 2048 || (h.extentPages & (h.extentPages - 1)) !== 0) {
    throw new PackError(`${name}: ${h.extentPages} pages per extent at offset 16 (a power of two from 64 to 2048)`);
  }
  return h;
}

export function encodeFooter(f: Omit<PackFooter, "version">): Uint8Array {
  const out = new Uint8Array(PACK_FOOTER_SIZE);
  out.set(ascii(PACK_FOOTER_MAGIC));
  const dv = view(out);
  dv.setUint32(8, PACK_VERSION, true);
  dv.setUint32(12, f.mainEncoding, true);
  dv.setBigUint64(16, BigInt(f.mainOffset), true);
  dv.setBigUint64(24, BigInt(f.mainStoredLength), true);
  dv.setBigUint64(32, BigInt(f.mainLength), true);
  dv.setBigUint64(40, BigInt(f.indexOffset), true);
  dv.setUint32(48, f.indexEntries, true);
  dv.setBigUint64(56, BigInt(`0x${f.hash}`), true);
  return out;
}

/**
 * The footer of a pack of `size` bytes (its last PACK_FOOTER_SIZE bytes), checked against the pack's
 * shape: the main stream and the index lie back to back between the header and the footer.
 */
export function decodeFooter(bytes: Uint8Array, size: number, extentPages: number, name: string): PackFooter {
  const at = size - PACK_FOOTER_SIZE;
  if (size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE || !magicAt(bytes, 0, PACK_FOOTER_MAGIC)) {
    throw new PackError(`${name}: no pack footer at offset ${Math.max(0, at)} (a truncated or unfinished pack)`);
  }
  const dv = view(bytes);
  const f: PackFooter = {
    version: dv.getUint32(8, true),
    mainEncoding: dv.getUint32(12, true) as EncodingCode,
    mainOffset: u64(dv, 16, `${name}: main stream offset`),
    mainStoredLength: u64(dv, 24, `${name}: main stream length`),
    mainLength: u64(dv, 32, `${name}: main stream size`),
    indexOffset: u64(dv, 40, `${name}: index offset`),
    indexEntries: dv.getUint32(48, true),
    hash: hex64(dv.getBigUint64(56, true)),
  };
  if (f.version !== PACK_VERSION) throw new PackError(`${name}: footer version ${f.version} at offset ${at + 8}`);
  if (f.mainEncoding !== Encoding.raw && f.mainEncoding !== Encoding.zstd) throw new PackError(`${name}: unknown main stream encoding ${f.mainEncoding} at offset ${at + 12}`);
  const indexEnd = f.indexOffset + f.indexEntries * indexEntrySize(extentPages);
  // The main stream record is device state and a block list: megabytes. A footer that says more is corrupt,
  // and reading what it says would be reading the whole pack into memory.
  if (f.mainStoredLength > MAX_MAIN_RECORD || f.mainLength > MAX_MAIN_RECORD) throw new PackError(`${name}: the footer at offset ${at} gives a main stream of ${Math.max(f.mainStoredLength, f.mainLength)} bytes (at most ${MAX_MAIN_RECORD})`);
  if (f.mainOffset < PACK_HEADER_SIZE || f.mainOffset + f.mainStoredLength !== f.indexOffset || indexEnd !== at) {
    throw new PackError(`${name}: the footer at offset ${at} does not fit the pack (main stream ${f.mainOffset}+${f.mainStoredLength}, index ${f.indexOffset}, ${f.indexEntries} entries, footer ${at})`);
  }
  return f;
}

export function encodeIndex(extents: readonly PackExtent[], extentPages: number): Uint8Array {
  const size = indexEntrySize(extentPages);
  const out = new Uint8Array(extents.length * size);
  const dv = view(out);
  extents.forEach((e, i) => {
    const at = i * size;
    dv.setUint32(at, e.block, true);
    dv.setUint32(at + 4, e.extent, true);
    dv.setBigUint64(at + 8, BigInt(e.storedOffset), true);
    dv.setUint32(at + 16, e.storedLength, true);
    dv.setUint8(at + 20, e.encoding);
    dv.setBigUint64(at + 24, BigInt(`0x${e.hash}`), true);
    out.set(e.present, at + 32);
  });
  return out;
}

/** The index entries, each checked on its own (stored bytes inside the data area, a known encoding, in order). */
export function decodeIndex(bytes: Uint8Array, f: PackFooter, extentPages: number, name: string): PackExtent[] {
  const size = indexEntrySize(extentPages);
  const dv = view(bytes);
  const out: PackExtent[] = [];
  for (let i = 0; i < f.indexEntries; i++) {
    const at = i * size;
    const where = `${name}: index entry ${i} (offset ${f.indexOffset + at})`;
    const e: PackExtent = {
      block: dv.getUint32(at, true),
      extent: dv.getUint32(at + 4, true),
      storedOffset: u64(dv, at + 8, `${where}: stored offset`),
      storedLength: dv.getUint32(at + 16, true),
      encoding: dv.getUint8(at + 20) as EncodingCode,
      hash: hex64(dv.getBigUint64(at + 24, true)),
      present: bytes.slice(at + 32, at + size),
    };
    if (e.encoding !== Encoding.raw && e.encoding !== Encoding.zstd) throw new PackError(`${where}: unknown encoding ${e.encoding}`);
    if (e.storedOffset < PACK_HEADER_SIZE || e.storedOffset + e.storedLength > f.mainOffset || e.storedLength === 0) {
      throw new PackError(`${where}: stored bytes ${e.storedOffset}+${e.storedLength} lie outside the extents area [${PACK_HEADER_SIZE}, ${f.mainOffset})`);
    }
    const prev = out[i - 1];
    if (prev && (prev.block > e.block || (prev.block === e.block && prev.extent >= e.extent))) throw new PackError(`${where}: entries are not in (block, extent) order`);
    if (countPresent(e.present) === 0) throw new PackError(`${where}: an extent with no page`);
    out.push(e);
  }
  return out;
}

export function countPresent(present: Uint8Array): number {
  let n = 0;
  for (const byte of present) for (let b = byte; b; b &= b - 1) n++;
  return n;
}

export const pagePresent = (present: Uint8Array, page: number): boolean => ((present[page >> 3]! >> (page & 7)) & 1) === 1;

/**
 * The image's main stream as the pack stores it: a count, then (offset, length) per segment, then the
 * segments' bytes back to back.
 */
export function encodeSegments(segments: readonly ImageSegment[]): Uint8Array {
  const head = 4 + segments.length * 16;
  const out = new Uint8Array(head + segments.reduce((s, x) => s + x.bytes.length, 0));
  const dv = view(out);
  dv.setUint32(0, segments.length, true);
  let data = head;
  segments.forEach((s, i) => {
    dv.setBigUint64(4 + i * 16, BigInt(s.offset), true);
    dv.setBigUint64(12 + i * 16, BigInt(s.bytes.length), true);
    out.set(s.bytes, data);
    data += s.bytes.length;
  });
  return out;
}

export function decodeSegments(bytes: Uint8Array, name: string): ImageSegment[] {
  const dv = view(bytes);
  if (bytes.length < 4) throw new PackError(`${name}: the main stream record is ${bytes.length} bytes`);
  const count = dv.getUint32(0, true);
  let data = 4 + count * 16;
  if (data > bytes.length) throw new PackError(`${name}: the main stream record lists ${count} segments but holds ${bytes.length} bytes`);
  const out: ImageSegment[] = [];
  let end = 0;
  for (let i = 0; i < count; i++) {
    const offset = u64(dv, 4 + i * 16, `${name}: segment ${i} offset`);
    const length = u64(dv, 12 + i * 16, `${name}: segment ${i} length`);
    if (offset < end || data + length > bytes.length) throw new PackError(`${name}: main stream segment ${i} (image offset ${offset}, ${length} bytes) overlaps another or runs past the record`);
    out.push({ offset, bytes: bytes.subarray(data, data + length) });
    data += length;
    end = offset + length;
  }
  if (data !== bytes.length) throw new PackError(`${name}: ${bytes.length - data} bytes after the main stream's last segment`);
  return out;
}
