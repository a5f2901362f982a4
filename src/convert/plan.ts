// What a conversion carries over, settled before anything is written: the input's page map, its sections
// before and after the RAM section (copied byte for byte), its configuration with mapped-ram set as the
// output needs, and the images that replace some blocks' pages (save --like). What cannot be carried
// over correctly is refused by name here.
import { fstatSync, statSync } from "node:fs";
import { OptionError, RefusedError } from "../errors.ts";
import { CAP_MAPPED_RAM, CAP_X_IGNORE_SHARED, RAM_IDSTR } from "../format/constants.ts";
import type { Configuration } from "../format/encode.ts";
import { readPageMap, type PageMap } from "../format/pages.ts";
import type { RamBlockInfo, SectionInfo, StreamInfo } from "../format/parse.ts";
import type { Chunk } from "../channels/jobs.ts";
import type { PackedSource } from "../channels/messages.ts";
import type { ByteSource } from "../format/bytes.ts";
import { MainFile } from "../io/main-file.ts";
import { isPack } from "../savefile/open.ts";
import { PackReader } from "../savefile/pack/reader.ts";
import type { PageSource } from "../memory/page-source.ts";
import { openSource, type BlockSource, type RamSource } from "../memory/sources.ts";
import { matchBlocks } from "../options.ts";

export type RamFormat = "mapped-ram" | "classic" | "pack";

export interface ConvertPlan {
  /** The input's stream: a QEMU save file, or the image of a pack. */
  input: ByteSource;
  /** A pack input: where each chunk's pages are (its extents). */
  pack?: PackReader;
  map: PageMap;
  info: StreamInfo;
  to: RamFormat;
  config: Configuration;
  /** The input's RAM START section; everything before it and after it is carried over. */
  ramStart: SectionInfo;
  before: SectionInfo[];
  after: SectionInfo[];
  /** Blocks whose pages come from images instead of the input. */
  replaced: Map<string, RamSource>;
  pageSize: number;
  totalBytes: number;
}

/** Reads the input and settles the plan; `own` takes every opened file into the caller's session. */
export async function planConversion(o: { input: string; inputOffset?: number; output: string; to: RamFormat; replace?: BlockSource[] }, own: <T extends { release(): void }>(r: T) => T): Promise<ConvertPlan> {
  const { input, pack } = await openInput(o, own);
  const map = readPageMap(input, { base: o.inputOffset ?? 0 });
  const { info } = map;
  checkCarriable(info, o.input);
  checkSharedGiven(map, o.input, new Set((o.replace ?? []).map((r) => r.name)));
  const ramStart = info.sections.find((s) => s.type === "START" && s.idstr === RAM_IDSTR)!;
  return {
    input,
    ...(pack ? { pack } : {}),
    map,
    info,
    to: o.to,
    config: configurationFor(info, o.to),
    ramStart,
    before: info.sections.filter((s) => s.offset < ramStart.offset),
    after: info.sections.filter((s) => s.offset > ramStart.offset),
    replaced: openReplacements(info, o.input, o.replace ?? [], own),
    pageSize: info.pageSize,
    totalBytes: info.blocks.reduce((s, b) => s + b.length, 0),
  };
}

/** The input as a stream: a save file, or a pack's image (whose pages the channels read from its extents). */
async function openInput(o: { input: string; inputOffset?: number; output: string }, own: <T extends { release(): void }>(r: T) => T): Promise<{ input: ByteSource; pack?: PackReader }> {
  if (isPack({ path: o.input })) {
    const pack = own(await PackReader.open({ path: o.input, offset: o.inputOffset ?? 0 }));
    if (pack.input.ref.kind === "file") refuseSameFile(pack.input.ref.fd, o.input, o.output);
    return { input: pack.main, pack };
  }
  const input = MainFile.openRead(o.input);
  own({ release: () => input.close() });
  refuseSameFile(input.fd, o.input, o.output);
  return { input };
}

/** INPUT and OUTPUT must be different files however spelled ("./x", a hard link): the output would take the input's place. */
function refuseSameFile(fd: number, inputPath: string, output: string): void {
  const a = fstatSync(fd);
  const b = statSync(output, { throwIfNoEntry: false });
  if (b && b.dev === a.dev && b.ino === a.ino) throw new OptionError(`${output} is the same file as ${inputPath}; write the re-laid file elsewhere`);
}

/** Sections and commands the conversion can carry over; anything else is named and refused. */
function checkCarriable(info: StreamInfo, name: string): void {
  if (info.ramFormat === null) throw new RefusedError(`${name} has no RAM section; there is nothing to re-lay`);
  for (const s of info.sections) {
    if (s.type === "COMMAND" && s.command !== "SWITCHOVER_START") {
      throw new RefusedError(`${name}: command ${s.command} at offset ${s.offset} cannot be carried into a re-laid file`);
    }
    if ((s.type === "START" || s.type === "PART" || s.type === "END") && s.idstr !== RAM_IDSTR) {
      throw new RefusedError(`${name}: iterative section "${s.idstr}" (${s.type} at offset ${s.offset}) holds state ramsnap cannot re-lay`);
    }
  }
  if (info.machineType === null) throw new RefusedError(`${name} has no configuration section (a pre-2.x stream); ramsnap cannot re-lay it`);
}

/**
 * A stream saved with x-ignore-shared holds no page of the blocks QEMU left out as shared memory (their
 * pages stayed in the memory backends' files): every such block must come from an image, or the output
 * would hold zeros where the guest had RAM. A block with no page record at all is one of them.
 */
function checkSharedGiven(map: PageMap, name: string, given: Set<string>): void {
  if (!map.info.capabilities.includes(CAP_X_IGNORE_SHARED)) return;
  const empty = (b: RamBlockInfo) => b.shared || b.present + b.zero === 0;
  const left = map.info.blocks.filter((b) => !given.has(b.name) && empty(b)).map((b) => b.name);
  if (left.length) {
    throw new RefusedError(`${name} was saved with x-ignore-shared and holds no pages of ${left.join(", ")} (shared memory): give their images (--block NAME=PATH)`);
  }
}

/** The input's configuration with mapped-ram set as the output needs; x-ignore-shared goes (every block's pages are in the output). */
function configurationFor(info: StreamInfo, to: RamFormat): Configuration {
  const capabilities = info.capabilities.filter((c) => c !== CAP_MAPPED_RAM && c !== CAP_X_IGNORE_SHARED);
  if (to !== "classic") capabilities.push(CAP_MAPPED_RAM); // a pack's image is a mapped-ram stream
  return { machineType: info.machineType ?? "", capabilities, ...(info.targetPageBits !== undefined ? { targetPageBits: info.targetPageBits } : {}) };
}

function openReplacements(info: StreamInfo, name: string, replace: BlockSource[], own: <T extends { release(): void }>(r: T) => T): Map<string, RamSource> {
  const blocks = matchBlocks(name, info.blocks, replace.map((r) => r.name));
  const out = new Map<string, RamSource>();
  replace.forEach((r, i) => {
    const src = own(openSource(r));
    out.set(r.name, src);
    if (src.length !== blocks[i]!.length) throw new RefusedError(`block ${r.name} is ${blocks[i]!.length} bytes in ${name}, but ${r.path ?? "the buffer"} holds ${src.length}`);
  });
  return out;
}

/** A chunk's pages: from the replacing image, or from wherever the input holds them. */
export function pageSourceOf(plan: ConvertPlan, block: number, c: Chunk): PageSource | PackedSource {
  const replaced = plan.replaced.get(plan.info.blocks[block]!.name);
  if (replaced) return replaced.at(c.byteOffset, c.pages, plan.pageSize);
  if (plan.pack) {
    const from = plan.pack.pagesFrom(block, c);
    return { kind: "packed", store: from.store, extents: from.extents, extentPages: from.extentPages };
  }
  if (!(plan.input instanceof MainFile)) throw new Error("internal: pages of a stream that is not a file");
  const offsets = new Float64Array(new SharedArrayBuffer(c.pages * 8));
  for (let k = 0; k < c.pages; k++) offsets[k] = plan.map.blocks[block]!.locate(c.firstPage + k);
  return { kind: "pages", fd: plan.input.fd, path: plan.input.name, offsets: offsets.buffer as SharedArrayBuffer };
}

/** Where a block's pages came from, for the report. */
export function originOf(plan: ConvertPlan, block: string): string {
  return plan.replaced.get(block)?.origin ?? plan.input.name;
}
