// The save-file side for writing a pack (docs/pack-format.md). The image's main stream is laid out as a
// mapped-ram file from offset 0 and kept in memory; the channels hand back each chunk's compressed
// extents, appended as they come (the pool gives a channel no new job until its extents are taken, so
// memory stays bounded); finish appends the main stream, the index and the footer, then commits.
import type { JobDone, PagesTo } from "../../channels/messages.ts";
import type { ChannelIo } from "../../channels/session.ts";
import { OptionError } from "../../errors.ts";
import { StreamWriter } from "../../format/bytes.ts";
import type { MappedRamLayout } from "../../format/layout.ts";
import { writeBitmaps, writeBlockList, type MainStreamParts } from "../../format/mapped-ram-stream.ts";
import { type Compression, storedHash } from "../../format/pack-extent.ts";
import { encodeFooter, encodeHeader, encodeIndex, encodeSegments, Encoding, PACK_EXTENT_PAGES, PACK_HEADER_SIZE, type PackExtent } from "../../format/pack.ts";
import type { SaveFileWriter } from "../side.ts";
import { SegmentSink } from "./image.ts";
import { createPackOutput, type PackOutput } from "./store.ts";

/** Releases a buffer's memory at once (detaching it); nothing may use it afterwards. */
const free = (b: ArrayBuffer) => void b.transfer(0);

export class PackWriter implements SaveFileWriter {
  readonly layout: MappedRamLayout;
  readonly #image: SegmentSink;
  #index: PackExtent[] = [];
  /** Bytes appended so far (or queued to be): where the next extent lands. */
  #at = PACK_HEADER_SIZE;
  #done = false;
  /** Bytes of stored extents. */
  storedBytes = 0;

  private constructor(
    readonly output: PackOutput,
    readonly parts: MainStreamParts,
    readonly compression: Compression,
  ) {
    this.#image = new SegmentSink(output.name);
    const w = new StreamWriter(this.#image, 0);
    parts.head(w);
    this.layout = writeBlockList(w, parts.blocks, parts.pageSize);
    w.flush();
  }

  static async create(location: { path?: string; fd?: number; offset: number }, parts: MainStreamParts, compression: Compression): Promise<PackWriter> {
    if (location.offset !== 0) throw new OptionError("--offset places a mapped-ram stream inside a file; a pack is a file of its own (drop --offset)");
    const output = await createPackOutput(location);
    try {
      const w = new PackWriter(output, parts, compression);
      await output.write(encodeHeader({ pageSize: parts.pageSize, extentPages: PACK_EXTENT_PAGES }));
      return w;
    } catch (e) {
      await output.abort();
      throw e;
    }
  }

  get name(): string {
    return this.output.name;
  }

  get staleRemoved(): readonly string[] {
    return this.output.staleRemoved;
  }

  openChannels(direct: boolean): ChannelIo {
    if (direct) throw new OptionError(`${this.name}: --direct-io moves aligned page slots; a pack's extents are compressed and unaligned (drop --direct-io)`);
    return { fd: -1, direct: false, name: this.name };
  }

  pagesTo(): PagesTo {
    return { kind: "pack", compression: this.compression, extentPages: PACK_EXTENT_PAGES };
  }

  /**
   * Takes a channel's extents: their bytes appended, and their index entries. A failed append (it throws
   * or rejects) ends the save: the pool stops and release() abandons the output, so no entry may point
   * past what was written, and nothing is committed.
   */
  consume(d: JobDone, block: number): void | Promise<void> {
    const p = d.packed;
    if (!p || p.extents.length === 0) return;
    const at = this.#at;
    const written = this.output.write(new Uint8Array(p.data));
    for (const e of p.extents) {
      this.#index.push({ block, extent: e.extent, storedOffset: at + e.offset, storedLength: e.length, encoding: e.encoding, hash: e.hash, present: e.present });
    }
    this.#at += p.data.byteLength;
    this.storedBytes += p.data.byteLength;
    // The bytes are on their way (written, or copied into the upload's buffer): free them now rather than
    // when the collector next runs, which may be hundreds of megabytes later.
    if (written instanceof Promise) return written.then(() => free(p.data));
    free(p.data);
  }

  async finish(bitmaps: readonly Uint8Array[]): Promise<void> {
    if (this.#done) throw new Error("internal: a pack finished twice, or after it was abandoned");
    writeBitmaps(this.#image, this.layout, bitmaps);
    const w = new StreamWriter(this.#image, this.layout.end);
    this.parts.tail(w);
    w.flush();
    const record = encodeSegments(this.#image.segments(this.layout));
    const main = Bun.zstdCompressSync(record, { level: 3 });
    this.#index.sort((a, b) => a.block - b.block || a.extent - b.extent);
    const index = encodeIndex(this.#index, PACK_EXTENT_PAGES);
    const hashed = new Uint8Array(main.length + index.length);
    hashed.set(main);
    hashed.set(index, main.length);
    const footer = { mainEncoding: Encoding.zstd, mainOffset: this.#at, mainStoredLength: main.length, mainLength: record.length, indexOffset: this.#at + main.length, indexEntries: this.#index.length, hash: storedHash(hashed) };
    await this.output.write(hashed);
    await this.output.write(encodeFooter(footer));
    await this.output.commit();
    this.#done = true;
  }

  /** Extents stored, and how many bytes of RAM they hold. */
  get extents(): number {
    return this.#index.length;
  }

  async release(): Promise<void> {
    if (this.#done) return;
    this.#done = true;
    await this.output.abort();
  }
}

