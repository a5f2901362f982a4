// The integrity manifest (FILE.sums) written beside a save: an xxh3-64 hash of every 1 MiB extent of
// each block's RAM as a loader would see it (pages the file does not hold count as zeros), and one of
// the main stream's bytes (everything in the file that is not a page array). QEMU never sees it.
// xxh3 catches corruption (bit rot, torn or misplaced writes) at memory speed; it is not a defence
// against someone who rewrites both the file and its manifest.
import { existsSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { OptionError } from "./errors.ts";
import type { ByteSource } from "./format/bytes.ts";
import type { BlockPages } from "./format/pages.ts";
import { gatherPages } from "./channels/page-source.ts";
import type { StreamInfo } from "./format/parse.ts";

export const EXTENT_BYTES = 1 << 20;
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

function hashBytes(view: Uint8Array): string {
  return Bun.hash.xxHash3(view).toString(16).padStart(16, "0");
}

/** Hashes of the extents of `length` bytes of memory at `addr` (the last one may be short). */
export function hashExtents(addr: number, length: number): string[] {
  const out: string[] = [];
  for (let off = 0; off < length; off += EXTENT_BYTES) out.push(hashBytes(libc.viewOf(addr + off, Math.min(EXTENT_BYTES, length - off))));
  return out;
}

export function manifestPath(file: string): string {
  return `${file}${MANIFEST_SUFFIX}`;
}

/** The file's bytes outside the page arrays, from the stream's start to the end of the file. */
function mainStreamHash(source: ByteSource, base: number, arrays: [number, number][]): { bytes: number; xxh3: string } {
  const parts: Uint8Array[] = [];
  let at = base;
  for (const [start, length] of [...arrays].sort((a, b) => a[0] - b[0])) {
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

function pageArrays(info: StreamInfo): [number, number][] {
  return info.blocks.filter((b) => b.mapped).map((b) => [b.mapped!.pagesOffset, b.length]);
}

/**
 * Builds and writes FILE.sums (under a temporary name, renamed when written). `extents` holds the hashes
 * the channels computed, by block index in the file's block list.
 */
export function writeManifest(file: string, source: ByteSource, info: StreamInfo, extents: ReadonlyMap<number, string[]>): Manifest {
  const m: Manifest = {
    format: "ramsnap-sums",
    version: 1,
    algorithm: "xxh3-64",
    extentBytes: EXTENT_BYTES,
    offset: info.base,
    mainStream: mainStreamHash(source, info.base, pageArrays(info)),
    blocks: info.blocks.map((b, i) => ({ name: b.name, length: b.length, extents: extents.get(i) ?? [] })),
  };
  const path = manifestPath(file);
  const tmp = join(dirname(path), `.${basename(path)}.${process.pid}.tmp`);
  writeFileSync(tmp, `${JSON.stringify(m)}\n`);
  renameSync(tmp, path);
  return m;
}

export function readManifest(path: string): Manifest {
  let m: Manifest;
  try {
    m = JSON.parse(readFileSync(path, "utf8")) as Manifest;
  } catch (e) {
    throw new OptionError(`${path} is not a ramsnap manifest (${(e as Error).message})`);
  }
  if (m?.format !== "ramsnap-sums" || m.version !== 1 || m.algorithm !== "xxh3-64" || m.extentBytes !== EXTENT_BYTES || !Array.isArray(m.blocks)) {
    throw new OptionError(`${path} is not a ramsnap manifest of a version this ramsnap reads`);
  }
  // The rest is read without further checks: a damaged one must not get as far as a TypeError.
  const ms = m.mainStream as unknown as Record<string, unknown> | null;
  const count = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 0;
  const shaped =
    typeof ms === "object" && ms !== null && count(ms.bytes) && typeof ms.xxh3 === "string" &&
    m.blocks.every((b) => typeof b === "object" && b !== null && typeof b.name === "string" && count(b.length) && Array.isArray(b.extents) && b.extents.every((e) => typeof e === "string"));
  if (!shaped) throw new OptionError(`${path} is not a ramsnap manifest: its main stream or block list is malformed`);
  return m;
}

export function findManifest(file: string): string | null {
  const p = manifestPath(file);
  return existsSync(p) ? p : null;
}

export interface ManifestCheck {
  path: string;
  mainStreamOk: boolean;
  /** The first extent whose hash differs, per block that has one. */
  bad: { block: string; extent: number; offset: number; length: number }[];
  /** Blocks the manifest names that the file does not have, or with another length. */
  mismatched: string[];
  ok: boolean;
}

/** Compares extent hashes computed elsewhere (a restored target) with the manifest's. */
export function compareExtents(m: Manifest, block: string, hashes: string[]): { extent: number; offset: number; length: number } | null {
  const want = m.blocks.find((b) => b.name === block);
  if (!want) return { extent: 0, offset: 0, length: 0 };
  for (let i = 0; i < Math.max(want.extents.length, hashes.length); i++) {
    if (want.extents[i] !== hashes[i]) return { extent: i, offset: i * EXTENT_BYTES, length: Math.min(EXTENT_BYTES, want.length - i * EXTENT_BYTES) };
  }
  return null;
}

/** Whether the file's main stream (everything outside the page arrays) is what the manifest says. */
export function checkMainStream(m: Manifest, source: ByteSource, info: StreamInfo): boolean {
  const ms = mainStreamHash(source, info.base, pageArrays(info));
  return ms.xxh3 === m.mainStream.xxh3 && ms.bytes === m.mainStream.bytes;
}

/** Checks a file against its manifest, reading each extent as a loader would see it. */
export function checkFile(path: string, m: Manifest, source: ByteSource & { fd: number }, info: StreamInfo, pages: BlockPages[]): ManifestCheck {
  const res: ManifestCheck = { path, mainStreamOk: false, bad: [], mismatched: [], ok: false };
  res.mainStreamOk = checkMainStream(m, source, info);
  const buf = new libc.AlignedBuffer(EXTENT_BYTES);
  try {
    for (const want of m.blocks) {
      const bp = pages.find((p) => p.info.name === want.name);
      if (!bp || bp.info.length !== want.length) {
        res.mismatched.push(want.name);
        continue;
      }
      const ps = bp.info.length / bp.info.pages;
      const perExtent = EXTENT_BYTES / ps;
      for (let e = 0; e * EXTENT_BYTES < want.length; e++) {
        const len = Math.min(EXTENT_BYTES, want.length - e * EXTENT_BYTES);
        const first = e * perExtent;
        gatherPages(buf.ptr, len / ps, ps, (k) => bp.locate(first + k), (dst, n, at) => libc.preadFull(source.fd, dst, n, at, { path: source.name }));
        if (hashBytes(buf.view.subarray(0, len)) !== want.extents[e]) {
          res.bad.push({ block: want.name, extent: e, offset: e * EXTENT_BYTES, length: len });
          break;
        }
      }
    }
  } finally {
    buf.free();
  }
  res.ok = res.mainStreamOk && res.bad.length === 0 && res.mismatched.length === 0;
  return res;
}
