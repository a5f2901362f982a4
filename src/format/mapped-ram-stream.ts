// The main stream of a mapped-ram file as ramsnap writes it, in two halves. The head (header,
// configuration, RAM block list with every MappedRamHeader) is written before any page; the tail
// (bitmaps, end of RAM, EOF, trailer) only after every page is on disk. A file whose save stopped in
// between has no EOF, so neither ramsnap nor QEMU takes it for complete.
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

/** Writes everything before the pages and returns where each block's bitmap and pages go. */
export function writeMappedRamHead(sink: ByteSink, plan: MappedRamPlan): MappedRamLayout {
  const w = new StreamWriter(sink, plan.base);
  const total = plan.blocks.reduce((s, b) => s + b.length, 0);
  w.write((b) => {
    encodeFileHeader(b);
    encodeConfiguration(b, configurationOf(plan));
    encodeSectionHeader(b, Tag.SectionStart, plan.ramSectionId, RAM_IDSTR, 0, RAM_VERSION);
    encodeMemSize(b, total);
  });
  const layout = layoutMappedRam(w.position, plan.blocks, plan.pageSize);
  for (const l of layout.blocks) {
    w.write((b) => {
      b.str8(l.name).be64(l.length);
      encodeMappedRamHeader(b, { version: MAPPED_RAM_HEADER_VERSION, pageSize: plan.pageSize, bitmapOffset: l.bitmapOffset, pagesOffset: l.pagesOffset });
    });
    w.seek(l.pagesOffset + l.length);
  }
  w.flush();
  return layout;
}

/** Writes the bitmaps, then the rest of the stream ending in EOF and the trailer. */
export function writeMappedRamTail(sink: ByteSink, plan: MappedRamPlan, layout: MappedRamLayout, bitmaps: readonly Uint8Array[]): void {
  layout.blocks.forEach((l, i) => {
    const bm = bitmaps[i];
    if (!bm || bm.length !== l.bitmapSize) throw new RangeError(`bitmap of block ${l.name} must be ${l.bitmapSize} bytes`);
    sink.writeAt(l.bitmapOffset, bm);
  });
  const w = new StreamWriter(sink, layout.end);
  const id = plan.ramSectionId;
  w.write((b) => {
    encodeFooter(encodeEos(b), id);
    if (plan.switchoverStart) encodeCommand(b, MIG_CMD_SWITCHOVER_START);
    encodeEmptyRamSection(b, Tag.SectionEnd, id);
    b.u8(Tag.EOF);
    encodeVmdesc(b, describeConfiguration(configurationOf(plan), plan.pageSize));
  });
  w.flush();
}

/** Whether a machine type name is for QEMU 10.0 or later (which sends SWITCHOVER_START). */
export function machineSendsSwitchover(machineType: string): boolean {
  const m = /-(\d+)\.(\d+)$/.exec(machineType);
  return m ? Number(m[1]) >= 10 : true;
}
