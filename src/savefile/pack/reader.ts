// The save-file side for reading a pack (docs/pack-format.md): header and footer first, then the main
// stream record and the index in one read, then the image's stream parsed like any mapped-ram file's
// (a pack that is not what its index says is refused before any target is touched). Pages are read by
// the channels, extent by extent, from the same file or object.
import type { Chunk } from "../../channels/jobs.ts";
import type { PagesFrom } from "../../channels/messages.ts";
import type { ChannelIo } from "../../channels/session.ts";
import { OptionError, RefusedError } from "../../errors.ts";
import { testBit } from "../../format/bitmap.ts";
import { PackError } from "../../format/errors.ts";
import { storedHash } from "../../format/pack-extent.ts";
import { decodeFooter, decodeHeader, decodeIndex, decodeSegments, Encoding, PACK_FOOTER_SIZE, PACK_HEADER_SIZE, type PackExtent, type PackFooter, pagePresent } from "../../format/pack.ts";
import { parseStream, type StreamInfo } from "../../format/parse.ts";
import type { SaveFileReader } from "../side.ts";
import { PackImage } from "./image.ts";
import { openPackInput, type PackInput } from "./store.ts";

export class PackReader implements SaveFileReader {
  readonly kind = "pack";
  private constructor(
    readonly input: PackInput,
    readonly main: PackImage,
    readonly info: StreamInfo,
    readonly footer: PackFooter,
    readonly index: PackExtent[],
    readonly path: string | undefined,
  ) {}

  static async open(location: { path?: string; fd?: number; offset: number }): Promise<PackReader> {
    if (location.offset !== 0) throw new OptionError("--offset places a mapped-ram stream inside a file; a pack is a file of its own (drop --offset)");
    const input = await openPackInput(location);
    try {
      const { image, footer, index } = await readStructure(input);
      const info = parseStream(image, { base: 0, keepBitmaps: true });
      if (info.ramFormat !== "mapped-ram") throw new PackError(`${input.name}: the pack's image is not a mapped-ram stream`);
      if (info.pageSize !== image.header.pageSize) throw new PackError(`${input.name}: the header's page size ${image.header.pageSize} is not the image's ${info.pageSize}`);
      image.setPageArrays(info.blocks.filter((b) => b.mapped).map((b) => ({ block: info.blocks.indexOf(b), offset: b.mapped!.pagesOffset, length: b.length })));
      checkIndex(input.name, info, index, image.header.extentPages);
      return new PackReader(input, image, info, footer, index, location.path);
    } catch (e) {
      input.close();
      throw e;
    }
  }

  get name(): string {
    return this.input.name;
  }

  /** Bytes the pack stores for pages (its extents). */
  get storedBytes(): number {
    return this.index.reduce((s, e) => s + e.storedLength, 0);
  }

  openChannels(direct: boolean): ChannelIo {
    if (direct) throw new OptionError(`${this.name}: --direct-io reads aligned page slots; a pack's extents are compressed and unaligned (drop --direct-io)`);
    return { fd: this.input.ref.kind === "file" ? this.input.ref.fd : -1, direct: false, name: this.name };
  }

  pagesFrom(block: number, c: Chunk): Extract<PagesFrom, { kind: "packed" }> {
    const ep = this.main.header.extentPages;
    const list = this.main.extents[block] ?? [];
    const extents: PackExtent[] = [];
    for (let e = c.firstPage / ep; e * ep < c.firstPage + c.pages; e++) if (list[e]) extents.push(list[e]!);
    return { kind: "packed", store: this.input.ref, extents, extentPages: ep };
  }

  /** Fetches the extents of these blocks, so the image can serve their pages synchronously (an object's). */
  async preload(blocks: ReadonlySet<number>): Promise<void> {
    if (this.input.readSync) return;
    for (const e of this.index.filter((x) => blocks.has(x.block))) this.main.preload(e, await this.input.read(e.storedOffset, e.storedLength));
  }

  #released = false;
  release(): void {
    if (this.#released) return;
    this.#released = true;
    this.input.close();
  }
}

/** Header, footer, main stream record and index, each checked; the image built from them. */
async function readStructure(input: PackInput): Promise<{ image: PackImage; footer: PackFooter; index: PackExtent[] }> {
  const name = input.name;
  if (input.size < PACK_HEADER_SIZE + PACK_FOOTER_SIZE) throw new PackError(`${name} is ${input.size} bytes, too short for a pack (a truncated or unfinished one, or not a pack)`);
  const header = decodeHeader(await input.read(0, PACK_HEADER_SIZE), name);
  const footer = decodeFooter(await input.read(input.size - PACK_FOOTER_SIZE, PACK_FOOTER_SIZE), input.size, header.extentPages, name);
  const tail = await input.read(footer.mainOffset, input.size - PACK_FOOTER_SIZE - footer.mainOffset);
  if (storedHash(tail) !== footer.hash) throw new PackError(`${name}: the main stream and index at offset ${footer.mainOffset} do not match the footer's hash (a corrupt pack)`);
  const stored = tail.subarray(0, footer.mainStoredLength);
  let record: Uint8Array;
  try {
    record = footer.mainEncoding === Encoding.zstd ? Bun.zstdDecompressSync(stored) : stored;
  } catch (e) {
    throw new PackError(`${name}: the main stream at offset ${footer.mainOffset} cannot be decoded (${(e as Error).message})`);
  }
  if (record.length !== footer.mainLength) throw new PackError(`${name}: the main stream decodes to ${record.length} bytes, the footer says ${footer.mainLength}`);
  const index = decodeIndex(tail.subarray(footer.mainStoredLength), footer, header.extentPages, name);
  const byBlock: PackExtent[][] = [];
  for (const e of index) (byBlock[e.block] ??= [])[e.extent] = e;
  const image = new PackImage(name, header, decodeSegments(record, name), byBlock, input.readSync);
  return { image, footer, index };
}

/** Every index entry names a page of a block, and the image's bitmaps say exactly what the index says. */
function checkIndex(name: string, info: StreamInfo, index: PackExtent[], ep: number): void {
  if (info.pageSize !== undefined && info.blocks.length === 0) throw new RefusedError(`${name}: the pack's image has no RAM block`);
  const counted = info.blocks.map(() => 0);
  for (const e of index) {
    const b = info.blocks[e.block];
    if (!b) throw new PackError(`${name}: index entry for block ${e.block}, extent ${e.extent}: the image has ${info.blocks.length} blocks`);
    if (!b.bitmap || !b.mapped) throw new PackError(`${name}: index entry for block ${b.name}, extent ${e.extent}: that block has no page array in the image`);
    for (let i = 0; i < ep; i++) {
      if (!pagePresent(e.present, i)) continue;
      const page = e.extent * ep + i;
      if (page >= b.pages || !testBit(b.bitmap!, page)) throw new PackError(`${name}: block ${b.name}, extent ${e.extent}: page ${page} is stored but ${page >= b.pages ? "past the block's end" : "clear in the block's bitmap"}`);
      counted[e.block]!++;
    }
  }
  info.blocks.forEach((b, i) => {
    if (counted[i] !== b.present) throw new PackError(`${name}: block ${b.name}'s bitmap has ${b.present} pages, the pack stores ${counted[i]}`);
  });
}
