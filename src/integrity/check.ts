// Checking RAM and files against a manifest (FILE.sums): the main stream, hashes a restore's channels
// computed, or a whole file read extent by extent as a loader would see it (verify).
import type { ByteSource } from "../format/bytes.ts";
import type { BlockPages } from "../format/pages.ts";
import type { StreamInfo } from "../format/parse.ts";
import { hashFileExtents } from "./extents.ts";
import { EXTENT_BYTES } from "./hash.ts";
import { mainStreamHash, type Manifest } from "./sums.ts";

export interface BadExtent {
  extent: number;
  offset: number;
  length: number;
}

export interface ManifestCheck {
  path: string;
  mainStreamOk: boolean;
  /** The first extent whose hash differs, per block that has one. */
  bad: ({ block: string } & BadExtent)[];
  /** Blocks the manifest names that the file does not have, or with another length. */
  mismatched: string[];
  ok: boolean;
}

/** Whether the file's main stream (everything outside the page arrays) is what the manifest says. */
export function checkMainStream(m: Manifest, source: ByteSource, info: StreamInfo): boolean {
  const ms = mainStreamHash(source, info);
  return ms.xxh3 === m.mainStream.xxh3 && ms.bytes === m.mainStream.bytes;
}

/** Compares extent hashes computed elsewhere (a restored target) with the manifest's. */
export function compareExtents(m: Manifest, block: string, hashes: string[]): BadExtent | null {
  const want = m.blocks.find((b) => b.name === block);
  if (!want) return { extent: 0, offset: 0, length: 0 };
  for (let i = 0; i < Math.max(want.extents.length, hashes.length); i++) {
    if (want.extents[i] !== hashes[i]) return { extent: i, offset: i * EXTENT_BYTES, length: Math.min(EXTENT_BYTES, want.length - i * EXTENT_BYTES) };
  }
  return null;
}

/** Checks a file against its manifest, reading each extent as a loader would see it. */
export function checkFile(path: string, m: Manifest, source: ByteSource & { fd: number; name: string }, info: StreamInfo, pages: BlockPages[]): ManifestCheck {
  const res: ManifestCheck = { path, mainStreamOk: checkMainStream(m, source, info), bad: [], mismatched: [], ok: false };
  for (const want of m.blocks) {
    const bp = pages.find((p) => p.info.name === want.name);
    if (!bp || bp.info.length !== want.length) {
      res.mismatched.push(want.name);
      continue;
    }
    hashFileExtents(bp, source, (e, hash, length) => {
      if (hash === want.extents[e]) return true;
      res.bad.push({ block: want.name, extent: e, offset: e * EXTENT_BYTES, length });
      return false;
    });
  }
  res.ok = res.mainStreamOk && res.bad.length === 0 && res.mismatched.length === 0;
  return res;
}
