// FILE.sums, the integrity manifest written beside a save: the xxh3 of every 1 MiB extent of each block's
// RAM as a loader would see it (pages the file does not hold count as zeros), and one of the main
// stream's bytes (everything in the file that is not a page array). QEMU never sees it.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { RefusedError } from "../errors.ts";
import type { ByteSource } from "../format/bytes.ts";
import { readPageMap } from "../format/pages.ts";
import { parseStream, type StreamInfo } from "../format/parse.ts";
import { MainFile } from "../io/main-file.ts";
import { hashFileExtents } from "./extents.ts";
import { EXTENT_BYTES, ExtentHashes, hashBytes } from "./hash.ts";

const MANIFEST_SUFFIX = ".sums";

export interface Manifest {
  format: "ramsnap-sums";
  version: 1;
  algorithm: "xxh3-64";
  extentBytes: number;
  /** Where the stream starts in the file. */
  offset: number;
  mainStream: { bytes: number; xxh3: string };
  blocks: { name: string; length: number; extents: string[] }[];
}

export function manifestPath(file: string): string {
  return `${file}${MANIFEST_SUFFIX}`;
}

export function findManifest(file: string): string | null {
  const p = manifestPath(file);
  return existsSync(p) ? p : null;
}

/** The file's bytes outside the page arrays, from the stream's start to the end of the file. */
export function mainStreamHash(source: ByteSource, info: StreamInfo): { bytes: number; xxh3: string } {
  const arrays = info.blocks.filter((b) => b.mapped).map((b): [number, number] => [b.mapped!.pagesOffset, b.length]);
  const parts: Uint8Array[] = [];
  let at = info.base;
  for (const [start, length] of arrays.sort((a, b) => a[0] - b[0])) {
    if (start > at) parts.push(source.readAt(at, start - at));
    at = Math.max(at, start + length);
  }
  if (source.size > at) parts.push(source.readAt(at, source.size - at));
  const all = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let o = 0;
  for (const p of parts) {
    all.set(p, o);
    o += p.length;
  }
  return { bytes: all.length, xxh3: hashBytes(all) };
}

/**
 * Builds and writes FILE.sums (under a temporary name, renamed when written) from the finished file's
 * main stream and the extent hashes the channels computed. Returns the manifest's path.
 */
export function writeManifest(file: string, source: ByteSource, info: StreamInfo, extents: ExtentHashes): string {
  const m: Manifest = {
    format: "ramsnap-sums",
    version: 1,
    algorithm: "xxh3-64",
    extentBytes: EXTENT_BYTES,
    offset: info.base,
    mainStream: mainStreamHash(source, info),
    blocks: info.blocks.map((b, i) => ({ name: b.name, length: b.length, extents: extents.of(i) })),
  };
  const path = manifestPath(file);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(m)}\n`);
  renameSync(tmp, path);
  return path;
}

/** Writes FILE.sums for a finished file, reading back its main stream (which also re-checks the file). */
export function writeManifestOf(path: string, offset: number, extents: ExtentHashes): string {
  const f = MainFile.openRead(path);
  try {
    return writeManifest(path, f, parseStream(f, { base: offset }), extents);
  } finally {
    f.close();
  }
}

/**
 * Writes FILE.sums for a file some other writer made (QEMU): every extent read back from the file as a
 * loader sees it. Costs a read of the file's pages, where ramsnap's own saves hash in the channels.
 */
export function writeManifestFromFile(path: string, offset: number): string {
  using f = MainFile.openRead(path);
  const map = readPageMap(f, { base: offset });
  const hashes = new ExtentHashes();
  map.blocks.forEach((bp, i) => {
    hashFileExtents(bp, f, (e, hash) => {
      hashes.add(i, e * EXTENT_BYTES, [hash]);
      return true;
    });
  });
  return writeManifest(path, f, map.info, hashes);
}

export function readManifest(path: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(path, "utf8")) as Manifest;
  } catch (e) {
    throw new RefusedError(`${path} is not a ramsnap manifest (${(e as Error).message})`);
  }
  if (m?.format !== "ramsnap-sums" || m.version !== 1 || m.algorithm !== "xxh3-64" || m.extentBytes !== EXTENT_BYTES || !Array.isArray(m.blocks)) {
    throw new RefusedError(`${path} is not a ramsnap manifest of a version this ramsnap reads`);
  }
  // The rest is read without further checks: a damaged one must not get as far as a TypeError.
  if (!wellShaped(m)) throw new RefusedError(`${path} is not a ramsnap manifest: its main stream or block list is malformed`);
  return m;
}

function wellShaped(m: Manifest): boolean {
  const ms = m.mainStream as unknown as Record<string, unknown> | null;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const block = (b: Manifest["blocks"][number]) =>
    typeof b === "object" && b !== null && typeof b.name === "string" && count(b.length) && Array.isArray(b.extents) && b.extents.every((e) => typeof e === "string");
  return typeof ms === "object" && ms !== null && count(ms.bytes) && typeof ms.xxh3 === "string" && m.blocks.every(block);
}
