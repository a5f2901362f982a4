// One extent of a pack, stored and read back: its present pages back to back, compressed with zstd on
// its own (so any extent can be read without the others) or kept raw where zstd would not make it
// smaller (random or encrypted RAM costs nothing extra but the index entry), and hashed as stored, so
// a corrupt extent is named before anything is decompressed.
import { PackError } from "./errors.ts";
import { countPresent, Encoding, type EncodingCode, type PackExtent } from "./pack.ts";

/** How a pack's extents are compressed: zstd at a level, or not at all. */
export type Compression = { kind: "zstd"; level: number } | { kind: "none" };

export const storedHash = (bytes: Uint8Array): string => Bun.hash.xxHash3(bytes).toString(16).padStart(16, "0");

/** Stores `pages` (an extent's present pages back to back); returns the bytes to write and how they are encoded. */
export function storeExtent(pages: Uint8Array, compression: Compression): { bytes: Uint8Array; encoding: EncodingCode; hash: string } {
  let bytes = pages;
  let encoding: EncodingCode = Encoding.raw;
  if (compression.kind === "zstd" && compressible(pages, compression.level)) {
    const packed = Bun.zstdCompressSync(pages, { level: compression.level });
    if (packed.length < pages.length) {
      bytes = packed;
      encoding = Encoding.zstd;
    }
  }
  return { bytes, encoding, hash: storedHash(bytes) };
}

/** Bytes of an extent tried first: when even they do not shrink, the extent is random (or encrypted) RAM. */
const SAMPLE_BYTES = 128 << 10;

/**
 * Whether zstd is worth running on a whole extent: its first 128 KiB must shrink by a sixteenth. Random
 * RAM then costs one small trial, not a full compression thrown away (and its 1 MiB of garbage).
 * An extent that starts random but compresses later is stored raw: a loss of size, never of data.
 */
function compressible(pages: Uint8Array, level: number): boolean {
  if (pages.length <= SAMPLE_BYTES) return true;
  const sample = pages.subarray(0, SAMPLE_BYTES);
  return Bun.zstdCompressSync(sample, { level }).length < SAMPLE_BYTES - SAMPLE_BYTES / 16;
}

/** What an extent's stored bytes say the pages are: the hash checked first, then the size after decoding. */
export function loadExtent(stored: Uint8Array, e: PackExtent, pageSize: number, name: string): Uint8Array {
  const where = () => `${name}: block ${e.block}, extent ${e.extent} (stored at ${e.storedOffset}, ${e.storedLength} bytes)`;
  if (stored.length !== e.storedLength) throw new PackError(`${where()}: only ${stored.length} bytes could be read (a truncated pack)`);
  if (storedHash(stored) !== e.hash) throw new PackError(`${where()}: its bytes do not match their hash (a corrupt pack)`);
  const want = countPresent(e.present) * pageSize;
  let pages: Uint8Array;
  try {
    pages = e.encoding === Encoding.zstd ? Bun.zstdDecompressSync(stored) : stored;
  } catch (err) {
    throw new PackError(`${where()}: zstd cannot decode it (${(err as Error).message})`);
  }
  if (pages.length !== want) throw new PackError(`${where()}: holds ${pages.length} bytes of pages, its index entry says ${want}`);
  return pages;
}
