// verify: a full structural check of a save file and, given the RAM images it was saved from, a byte
// comparison of every page. Structure problems are FormatErrors from the parser (every offset, bitmap bit,
// section and the trailer are checked on the way); content problems are reported per block, naming the
// first differing page.
import * as libc from "../ffi/libc.ts";
import { CancelledError } from "./errors.ts";
import { fillOf, PAGE_ABSENT, readPageMap, type BlockPages } from "./format/pages.ts";
import { MainFile } from "./io/main-file.ts";
import { loadExtent } from "./format/pack-extent.ts";
import { PackReader } from "./savefile/pack/reader.ts";
import { bufferRegion, mapFileForRead, type MemoryRegion } from "./memory/region.ts";
import type { Progress } from "./channels/session.ts";
import { checkFile, type ManifestCheck } from "./integrity/check.ts";
import { findManifest, readManifest } from "./integrity/sums.ts";
import type { BlockSource } from "./memory/sources.ts";
import { checkOneOf, matchBlocks } from "./options.ts";

export interface VerifyOptions {
  path: string;
  offset?: number;
  /** RAM images to compare with; blocks not named are checked for structure only. */
  blocks?: BlockSource[];
  /** The manifest to check against (default: FILE.sums when it exists). */
  manifest?: string;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export type Mismatch =
  | "data differs"
  | "absent from the file but not zero in the image"
  | "zero in the file but not in the image"
  | "size differs";

export interface BlockVerdict {
  name: string;
  length: number;
  pages: number;
  present: number;
  /** The image it was compared with, if any. */
  image?: string;
  /** What its pages were checked against: an image (--block), the manifest's hashes, both, or nothing. */
  checkedAgainst: ("image" | "manifest" | "pack")[];
  /** Pages that differ from the image; null when no image was given (then nothing was compared). */
  differing: number | null;
  first?: { page: number; offset: number; fileOffset: number | null; problem: Mismatch };
}

export interface VerifyReport {
  file: string;
  ok: boolean;
  ramFormat: "mapped-ram" | "classic" | null;
  sections: number;
  devices: number;
  trailer: boolean;
  blocks: BlockVerdict[];
  /** Structural oddities that do not stop a load but deserve a look. */
  warnings: string[];
  /** The manifest check, when the file has one. */
  manifest?: ManifestCheck;
  /**
   * Which blocks had their pages checked (against an image or the manifest): "all", "some", or "none",
   * when only the structure was checked. `ok` with "none" says nothing about the pages.
   */
  pagesChecked: "all" | "some" | "none";
}

/** Stored bytes read per call when checking a pack's extents. */
const PACK_BATCH_BYTES = 32 << 20;

/**
 * A pack: its structure (header, footer, index, the image's stream, bitmaps against the index) checked
 * on open, then every extent read, its hash checked and decoded; the first bad one is named (PackError).
 */
export async function verifyPack(o: { path: string; onProgress?: (p: Progress) => void; signal?: AbortSignal }): Promise<VerifyReport> {
  const t0 = performance.now();
  const pack = await PackReader.open({ path: o.path, offset: 0 });
  try {
    const sorted = [...pack.index].sort((a, b) => a.storedOffset - b.storedOffset);
    const total = pack.storedBytes;
    let done = 0;
    for (let i = 0; i < sorted.length; ) {
      if (o.signal?.aborted) throw new CancelledError();
      let j = i + 1;
      while (j < sorted.length && sorted[j]!.storedOffset + sorted[j]!.storedLength - sorted[i]!.storedOffset <= PACK_BATCH_BYTES) j++;
      const from = sorted[i]!.storedOffset;
      const last = sorted[j - 1]!;
      const bytes = await pack.input.read(from, last.storedOffset + last.storedLength - from);
      for (const e of sorted.slice(i, j)) loadExtent(bytes.subarray(e.storedOffset - from, e.storedOffset - from + e.storedLength), e, pack.info.pageSize, pack.name);
      done += bytes.length;
      o.onProgress?.({ doneBytes: done, totalBytes: total, ioBytes: done, seconds: (performance.now() - t0) / 1000 });
      i = j;
    }
    const info = pack.info;
    const full = info.sections.filter((s) => s.type === "FULL");
    return {
      file: o.path,
      ok: true,
      ramFormat: info.ramFormat,
      sections: info.sections.length,
      devices: full.length,
      trailer: info.trailer !== null,
      blocks: info.blocks.map((b) => ({ name: b.name, length: b.length, pages: b.pages, present: b.present, checkedAgainst: ["pack"], differing: null })),
      warnings: [...info.notes],
      pagesChecked: "all",
    };
  } finally {
    pack.release();
  }
}

/** Pages read per call when comparing runs of present pages. */
const WINDOW_PAGES = 2048;

export function verify(o: VerifyOptions): VerifyReport {
  const t0 = performance.now();
  const file = MainFile.openRead(o.path);
  const regions = new Map<string, MemoryRegion>();
  const buf = new libc.AlignedBuffer(WINDOW_PAGES * 4096);
  const zero = new libc.AlignedBuffer(4096);
  zero.view.fill(0);
  try {
    const map = readPageMap(file, { base: o.offset ?? 0 });
    const { info } = map;
    const warnings = [...info.notes];
    const full = info.sections.filter((s) => s.type === "FULL");
    if (info.trailer && info.trailer.devices !== full.length) {
      warnings.push(`the trailer describes ${info.trailer.devices} devices, but the stream has ${full.length} device sections`);
    }
    matchBlocks(o.path, info.blocks, (o.blocks ?? []).map((b) => b.name));
    for (const b of o.blocks ?? []) {
      checkOneOf(b, "image");
      regions.set(b.name, b.buffer ? bufferRegion(b.name, b.buffer) : mapFileForRead(b.path!));
    }
    const total = [...regions.values()].reduce((s, r) => s + r.length, 0);
    let done = 0;
    const blocks = map.blocks.map((bp): BlockVerdict => {
      const b = bp.info;
      const v: BlockVerdict = { name: b.name, length: b.length, pages: b.pages, present: b.present, checkedAgainst: [], differing: null };
      const r = regions.get(b.name);
      if (!r) return v;
      v.image = r.name;
      v.checkedAgainst.push("image");
      v.differing = 0;
      if (r.length !== b.length) {
        v.differing = b.pages;
        v.first = { page: 0, offset: 0, fileOffset: null, problem: "size differs" };
        return v;
      }
      compareBlock(file, bp, r, buf, zero.ptr, v, o.signal);
      done += b.length;
      o.onProgress?.({ doneBytes: done, totalBytes: total, ioBytes: done, seconds: (performance.now() - t0) / 1000 });
      return v;
    });
    const sums = o.manifest ?? findManifest(o.path);
    const sumsOf = sums ? readManifest(sums) : undefined;
    const manifest = sums && sumsOf ? checkFile(sums, sumsOf, file, info, map.blocks) : undefined;
    if (sumsOf && manifest) {
      for (const v of blocks) if (sumsOf.blocks.some((m) => m.name === v.name) && !manifest.mismatched.includes(v.name)) v.checkedAgainst.push("manifest");
    }
    // Blocks QEMU does not save (shared memory, x-ignore-shared) have no pages to check.
    const saved = blocks.filter((v) => !info.blocks.find((b) => b.name === v.name)?.shared);
    const checked = saved.filter((v) => v.checkedAgainst.length > 0).length;
    return {
      file: o.path,
      ok: blocks.every((b) => !b.differing) && (manifest?.ok ?? true),
      pagesChecked: checked === 0 ? "none" : checked === saved.length ? "all" : "some",
      ...(manifest ? { manifest } : {}),
      ramFormat: info.ramFormat,
      sections: info.sections.length,
      devices: full.length,
      trailer: info.trailer !== null,
      blocks,
      warnings,
    };
  } finally {
    for (const r of regions.values()) r.release();
    buf.free();
    zero.free();
    file.close();
  }
}

/** Compares every page of one block with its image; reads the file only where it holds data. */
function compareBlock(file: MainFile, bp: BlockPages, image: MemoryRegion, buf: libc.AlignedBuffer, zeroPage: number, v: BlockVerdict, signal?: AbortSignal): void {
  const ps = bp.info.length / bp.info.pages;
  const note = (page: number, fileOffset: number | null, problem: Mismatch) => {
    v.differing = (v.differing ?? 0) + 1;
    v.first ??= { page, offset: page * ps, fileOffset, problem };
  };
  for (let first = 0; first < bp.info.pages; first += WINDOW_PAGES) {
    if (signal?.aborted) throw new CancelledError();
    const end = Math.min(bp.info.pages, first + WINDOW_PAGES);
    let p = first;
    while (p < end) {
      const loc = bp.locate(p);
      const img = image.ptr + p * ps;
      if (loc < 0) {
        const fill = fillOf(loc);
        const same = fill === 0 ? libc.memcmp(img, zeroPage, ps) === 0 : libc.viewOf(img, ps).every((x) => x === fill);
        if (!same) note(p, null, loc === PAGE_ABSENT ? "absent from the file but not zero in the image" : "zero in the file but not in the image");
        p++;
        continue;
      }
      // A run of pages stored back to back (always so in mapped-ram) is read with one call.
      let n = 1;
      while (p + n < end && bp.locate(p + n) === loc + n * ps) n++;
      libc.preadFull(file.fd, buf.ptr, n * ps, loc, { path: file.name });
      for (let k = 0; k < n; k++) {
        if (libc.memcmp(buf.ptr + k * ps, img + k * ps, ps) !== 0) note(p + k, loc + k * ps, "data differs");
      }
      p += n;
    }
  }
}
