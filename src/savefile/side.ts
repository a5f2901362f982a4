// A save-file side: where a save's bytes live and how channels reach them. The orchestrators (save,
// restore, convert, extract) and the page-mover session see a save file only through these two
// interfaces: a mapped-ram file on a local file system (local-mapped-ram.ts), and a pack, local or in
// object storage (pack/: docs/pack-format.md), chosen in open.ts.
import type { Chunk } from "../channels/jobs.ts";
import type { JobDone, PagesFrom, PagesTo } from "../channels/messages.ts";
import type { ChannelIo, Releasable } from "../channels/session.ts";
import type { Compression } from "../format/pack-extent.ts";
import type { MappedRamLayout } from "../format/layout.ts";
import type { StreamInfo } from "../format/parse.ts";
import type { ByteSource } from "../format/bytes.ts";

/** Where a save file is: a path, or descriptors a management program handed over. */
export interface SaveFileLocation {
  path?: string;
  /** The main stream's descriptor (never O_DIRECT). */
  fd?: number;
  /** A second descriptor on the same file, opened with O_DIRECT, for the channels. */
  directFd?: number;
  /** Where the stream starts in the file (QEMU's file:...,offset=). */
  offset: number;
  /** Writing: the format to write (default: a pack for a name ending in .rpk or an s3:// URL). */
  format?: SaveFormat;
  /** Writing a pack: how its extents are compressed (default zstd at DEFAULT_ZSTD_LEVEL). */
  compression?: Compression;
}

export type SaveFormat = "mapped-ram" | "pack";

/** A save being written. Released without `finish`, it leaves no file that could pass for complete. */
export interface SaveFileWriter extends Releasable {
  /** What messages call the file: its target path, or "fd N". */
  readonly name: string;
  /** Where each block's bitmap and page slots are, fixed before any page moves. */
  readonly layout: MappedRamLayout;
  /** The descriptor channels write pages on; with `direct`, O_DIRECT is proven here before any page moves. */
  openChannels(direct: boolean): ChannelIo;
  /** Where a chunk's pages go, as its channel job says. */
  pagesTo(block: number, c: Chunk): PagesTo;
  /** Takes what a channel handed back for a chunk of `block` (a pack's extents); its channel waits meanwhile. */
  consume?(d: JobDone, block: number): void | Promise<void>;
  /** Every page is written: make the pages durable, then write the bitmaps and the rest, then commit. */
  finish(bitmaps: readonly Uint8Array[]): void | Promise<void>;
  /** What earlier, killed saves of the same target left behind and this one removed. */
  readonly staleRemoved: readonly string[];
}

/** A save being read: its whole main stream parsed (bitmaps kept) before any page moves. */
export interface SaveFileReader extends Releasable {
  readonly kind: SaveFormat;
  readonly name: string;
  /** The path, when the file was opened by one (a manifest lies beside it). */
  readonly path: string | undefined;
  /** The main stream's bytes, for the manifest's check. */
  readonly main: ByteSource;
  readonly info: StreamInfo;
  /** The descriptor channels read pages from; with `direct`, O_DIRECT is proven here before any target is touched. */
  openChannels(direct: boolean): ChannelIo;
  /** Where a chunk's pages come from, as its channel job says. */
  pagesFrom(block: number, c: Chunk): PagesFrom;
}
