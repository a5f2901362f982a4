// The main stream of a mapped-ram file, in the pieces a writer puts around the pages. Before any page:
// everything up to the RAM section's start (`head`), then the block list with each block's
// MappedRamHeader (`writeBlockList`, which decides where bitmaps and pages go). Only once every page is on
// disk: the bitmaps (`writeBitmaps`), then the rest of the stream ending in EOF and the trailer (`tail`).
// A file whose save stopped in between has no EOF, so neither ramsnap nor QEMU takes it for complete.
// ramsnap's own saves use `ramsnapStream`; a conversion carries another file's pieces (convert/).
import type { ByteSink } from "./bytes.ts";
import { StreamWriter } from "./bytes.ts";
import { CAP_MAPPED_RAM, MAPPED_RAM_HEADER_VERSION, MIG_CMD_SWITCHOVER_START, RAM_IDSTR, RAM_VERSION, Tag } from "./constants.ts";
import {
  type Configuration,
  describeConfiguration,
  encodeCommand,
  encodeConfiguration,
  encodeEmptyRamSection,
  encodeEos,
  encodeFileHeader,
  encodeFooter,
  encodeMappedRamHeader,
  encodeMemSize,
  encodeSectionHeader,
  encodeVmdesc,
} from "./encode.ts";
import { layoutMappedRam, type BlockSpec, type MappedRamLayout } from "./layout.ts";

/** The stream around a mapped-ram file's pages, as whoever knows it writes it. */
export interface MainStreamParts {
  blocks: BlockSpec[];
  pageSize: number;
  /** Everything before the block list: header, configuration, sections before RAM, RAM START and its size. */
  head(w: StreamWriter): void;
  /** Everything from the end of the last page array: the RAM START's end, later sections, EOF, trailer. */
  tail(w: StreamWriter): void;
}

export interface MappedRamPlan {
  machineType: string;
  blocks: BlockSpec[];
  pageSize: number;
  /** Where the stream starts in the file (QEMU's `offset=`); every offset in the file stays absolute. */
  base: number;
  /** QEMU numbers sections by registration order; any value works as long as it is used consistently. */
  ramSectionId: number;
  /** QEMU 10 machine types announce the switch-over before the END sections; older ones do not. */
  switchoverStart: boolean;
}

export function configurationOf(plan: Pick<MappedRamPlan, "machineType">): Configuration {
  return { machineType: plan.machineType, capabilities: [CAP_MAPPED_RAM] };
}

/** The stream ramsnap writes for its own saves: configuration, one RAM section, EOF, trailer. */
export function ramsnapStream(plan: MappedRamPlan): MainStreamParts {
  const id = plan.ramSectionId;
  return {
    blocks: plan.blocks,
    pageSize: plan.pageSize,
    head: (w) =>
      w.write((b) => {
        encodeFileHeader(b);
        encodeConfiguration(b, configurationOf(plan));
        encodeSectionHeader(b, Tag.SectionStart, id, RAM_IDSTR, 0, RAM_VERSION);
        encodeMemSize(b, plan.blocks.reduce((s, x) => s + x.length, 0));
      }),
    tail: (w) =>
      w.write((b) => {
        encodeFooter(encodeEos(b), id);
        if (plan.switchoverStart) encodeCommand(b, MIG_CMD_SWITCHOVER_START);
        encodeEmptyRamSection(b, Tag.SectionEnd, id);
        b.u8(Tag.EOF);
        encodeVmdesc(b, describeConfiguration(configurationOf(plan), plan.pageSize));
      }),
  };
}

/** Writes the RAM block list, each entry followed by its page array's room, and says where everything goes. */
export function writeBlockList(w: StreamWriter, blocks: readonly BlockSpec[], pageSize: number): MappedRamLayout {
  const layout = layoutMappedRam(w.position, blocks, pageSize);
  for (const l of layout.blocks) {
    w.write((b) => {
      b.str8(l.name).be64(l.length);
      encodeMappedRamHeader(b, { version: MAPPED_RAM_HEADER_VERSION, pageSize, bitmapOffset: l.bitmapOffset, pagesOffset: l.pagesOffset });
    });
    w.seek(l.pagesOffset + l.length);
  }
  return layout;
}

export function writeBitmaps(sink: ByteSink, layout: MappedRamLayout, bitmaps: readonly Uint8Array[]): void {
  layout.blocks.forEach((l, i) => {
    const bm = bitmaps[i];
    if (!bm || bm.length !== l.bitmapSize) throw new RangeError(`bitmap of block ${l.name} must be ${l.bitmapSize} bytes`);
    sink.writeAt(l.bitmapOffset, bm);
  });
}

/** Writes everything before the pages and returns where each block's bitmap and pages go. */
export function writeMappedRamHead(sink: ByteSink, plan: MappedRamPlan): MappedRamLayout {
  const w = new StreamWriter(sink, plan.base);
  ramsnapStream(plan).head(w);
  const layout = writeBlockList(w, plan.blocks, plan.pageSize);
  w.flush();
  return layout;
}

/** Writes the bitmaps, then the rest of the stream ending in EOF and the trailer. */
export function writeMappedRamTail(sink: ByteSink, plan: MappedRamPlan, layout: MappedRamLayout, bitmaps: readonly Uint8Array[]): void {
  writeBitmaps(sink, layout, bitmaps);
  const w = new StreamWriter(sink, layout.end);
  ramsnapStream(plan).tail(w);
  w.flush();
}

/** Whether a machine type name is for QEMU 10.0 or later (which sends SWITCHOVER_START). */
export function machineSendsSwitchover(machineType: string): boolean {
  const m = /-(\d+)\.(\d+)$/.exec(machineType);
  return m ? Number(m[1]) >= 10 : true;
}
