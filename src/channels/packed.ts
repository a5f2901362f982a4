// A channel's side of a pack (docs/pack-format.md): on save, a chunk's present pages cut into extents,
// each compressed and hashed here, on the channel's thread, so compression runs as parallel as the
// channels; on restore, the chunk's stored extents read (pread on a local pack, ranged GETs on an
// object: the channels are the parallel downloads), checked, decoded and put in place.
import * as libc from "../../ffi/libc.ts";
import { type Compression, loadExtent, storeExtent } from "../format/pack-extent.ts";
import { pagePresent, type PackExtent } from "../format/pack.ts";
import { readRange } from "../io/s3.ts";
import type { PackedChunk, PackStoreRef } from "./messages.ts";

/** What messages call a pack's store: its path or its s3:// URL. */
export const storeName = (store: PackStoreRef): string => (store.kind === "s3" ? store.location.url : store.path);

/** Stored extents closer than this are read with one call, the bytes between thrown away. */
const MERGE_GAP = 64 << 10;

/** Where a channel gathers one extent's present pages: one buffer for the channel's life, not one per extent. */
let gather: Uint8Array | undefined;

/**
 * The chunk's pages at `base` stored as extents; `present[i]` says which pages go in. The stored bytes go
 * into one buffer the size of the chunk, cut to what they take: it is handed to the main thread whole
 * (transferred, not copied), so a channel keeps no garbage per job but zstd's output. Buffers per
 * extent and per job left the collector megabytes behind per job and channel (peak memory: bench/PACK.md).
 */
export function packChunk(base: number, present: Uint8Array, pageSize: number, firstPage: number, extentPages: number, compression: Compression): PackedChunk {
  const out = new Uint8Array(new ArrayBuffer(present.length * pageSize));
  const extents: PackedChunk["extents"] = [];
  if (!gather || gather.length < extentPages * pageSize) gather = new Uint8Array(extentPages * pageSize);
  let offset = 0;
  for (let first = 0; first < present.length; first += extentPages) {
    const n = Math.min(extentPages, present.length - first);
    const map = new Uint8Array(extentPages / 8);
    let count = 0;
    for (let i = 0; i < n; i++) {
      if (!present[first + i]) continue;
      map[i >> 3]! |= 1 << (i & 7);
      gather.set(libc.viewOf(base + (first + i) * pageSize, pageSize), count++ * pageSize);
    }
    if (count === 0) continue;
    const stored = storeExtent(gather.subarray(0, count * pageSize), compression);
    out.set(stored.bytes, offset);
    extents.push({ extent: (firstPage + first) / extentPages, offset, length: stored.bytes.length, encoding: stored.encoding, hash: stored.hash, present: map });
    offset += stored.bytes.length;
  }
  return { data: out.buffer.transfer(offset), extents };
}

/**
 * Where a channel reads a local pack's stored bytes: one buffer for the channel's life. A fresh buffer per
 * job costs a first touch of every page it reads into, on a path whose pages are mostly raw (random RAM)
 * and should cost what a mapped-ram restore costs (bench/PACK-FINAL.md: 1.02x on 2 GiB of random RAM).
 */
let readBuffer: libc.AlignedBuffer | undefined;

/** Frees the channel's pack buffers (when the channel closes). */
export function freePackBuffers(): void {
  readBuffer?.free();
  readBuffer = undefined;
  gather = undefined;
}

/** Reads the stored bytes of `extents`, neighbours with one call; by extent number. */
export async function readStored(store: PackStoreRef, extents: readonly PackExtent[]): Promise<Map<number, Uint8Array>> {
  const sorted = [...extents].sort((a, b) => a.storedOffset - b.storedOffset);
  const groups: { from: number; end: number; members: PackExtent[] }[] = [];
  for (const e of sorted) {
    const g = groups[groups.length - 1];
    if (g && e.storedOffset - g.end <= MERGE_GAP) {
      g.end = Math.max(g.end, e.storedOffset + e.storedLength);
      g.members.push(e);
    } else groups.push({ from: e.storedOffset, end: e.storedOffset + e.storedLength, members: [e] });
  }
  const total = groups.reduce((n, g) => n + g.end - g.from, 0);
  if (store.kind === "file" && (!readBuffer || readBuffer.size < total)) {
    readBuffer?.free();
    readBuffer = new libc.AlignedBuffer(Math.max(total, 1));
  }
  const out = new Map<number, Uint8Array>();
  let at = 0;
  for (const g of groups) {
    const bytes = await readBytes(store, g.from, g.end - g.from, at);
    at += g.end - g.from;
    // A short read (a truncated pack) leaves the extents past its end short: loadExtent names them.
    for (const e of g.members) out.set(e.extent, bytes.subarray(Math.min(bytes.length, e.storedOffset - g.from), Math.min(bytes.length, e.storedOffset - g.from + e.storedLength)));
  }
  return out;
}

async function readBytes(store: PackStoreRef, offset: number, length: number, bufferAt: number): Promise<Uint8Array> {
  if (store.kind === "s3") return readRange(store.settings, store.location, offset, length);
  const n = libc.pread(store.fd, readBuffer!.ptr + bufferAt, length, offset, { path: store.path });
  return readBuffer!.view.subarray(bufferAt, bufferAt + n);
}

/**
 * Decodes each extent and calls `place(pageInChunk, count, bytes)` for every run of consecutive present
 * pages (one copy a run, not one a page); `firstPage` is the chunk's first page in its block.
 */
export function unpackExtents(extents: readonly PackExtent[], stored: Map<number, Uint8Array>, pageSize: number, firstPage: number, extentPages: number, name: string, place: (page: number, count: number, bytes: Uint8Array) => void): void {
  for (const e of extents) {
    const pages = loadExtent(stored.get(e.extent) ?? new Uint8Array(0), e, pageSize, name);
    const first = e.extent * extentPages - firstPage;
    let k = 0;
    for (let i = 0; i < extentPages; ) {
      if (!pagePresent(e.present, i)) {
        i++;
        continue;
      }
      let n = 1;
      while (i + n < extentPages && pagePresent(e.present, i + n)) n++;
      place(first + i, n, pages.subarray(k * pageSize, (k + n) * pageSize));
      k += n;
      i += n;
    }
  }
}
