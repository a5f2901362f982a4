// The main stream of a converted file around its RAM: the input's configuration (mapped-ram set as the
// output needs) and every section before the RAM section, then, after the pages, the RAM START's end
// and every later section in the input's order, EOF and the trailer. Device sections and commands are
// copied byte for byte; only the RAM section is written anew.
import type { StreamWriter } from "../format/bytes.ts";
import { CAP_X_IGNORE_SHARED, RAM_IDSTR, RAM_VERSION, Tag } from "../format/constants.ts";
import { encodeConfiguration, encodeEos, encodeFileHeader, encodeFooter, encodeMemSize, encodeSectionContinuation, encodeSectionHeader, encodeVmdesc } from "../format/encode.ts";
import type { MainStreamParts } from "../format/mapped-ram-stream.ts";
import type { SectionInfo } from "../format/parse.ts";
import type { ConvertPlan } from "./plan.ts";
import { trailerFor } from "./trailer.ts";

/** Bytes of a section or command as it stands in the file, footer included. */
function span(s: SectionInfo, footers: boolean): [number, number] {
  const end = s.payloadOffset + s.payloadSize + (s.type !== "COMMAND" && footers ? 5 : 0);
  return [s.offset, end - s.offset];
}

function copy(plan: ConvertPlan, w: StreamWriter, s: SectionInfo): void {
  const [at, len] = span(s, plan.info.footers);
  const bytes = plan.input.readAt(at, len);
  w.write((b) => b.bytes(bytes));
}

export function convertedStream(plan: ConvertPlan): MainStreamParts {
  const id = plan.ramStart.id!;
  return {
    blocks: plan.info.blocks.map((b) => ({ name: b.name, length: b.length })),
    pageSize: plan.pageSize,
    head: (w) => {
      w.write((b) => encodeConfiguration(encodeFileHeader(b), plan.config));
      for (const s of plan.before) copy(plan, w, s);
      w.write((b) => encodeMemSize(encodeSectionHeader(b, Tag.SectionStart, id, RAM_IDSTR, 0, RAM_VERSION), plan.info.ramTotal!));
    },
    tail: (w) => {
      w.write((b) => encodeFooter(encodeEos(b), id));
      for (const s of plan.after) {
        if (s.idstr === RAM_IDSTR && s.type === "PART") continue; // nothing left to say: all pages are in place
        if (s.idstr === RAM_IDSTR && s.type === "END") w.write((b) => encodeFooter(encodeEos(encodeSectionContinuation(b, Tag.SectionEnd, s.id!)), s.id!));
        else copy(plan, w, s);
      }
      w.write((b) => encodeVmdesc(b.u8(Tag.EOF), trailerFor(plan)));
    },
  };
}

/** Device sections and commands the converted file carries over verbatim. */
export function copiedSections(plan: ConvertPlan): number {
  return plan.before.length + plan.after.filter((s) => s.idstr !== RAM_IDSTR).length;
}

/**
 * A mapped-ram input carried over as it is (into a pack, or out of one): everything before the block
 * list and everything after the last page array copied byte for byte, so the output's stream is the
 * input's (only the bitmap and MappedRamHeader offsets follow the output's own layout, the same
 * arithmetic when both start at offset 0). QEMU's file packed and unpacked is the same file.
 */
export function verbatimStream(plan: ConvertPlan): MainStreamParts {
  const blocks = plan.info.blocks;
  const last = blocks[blocks.length - 1]!;
  const end = last.mapped!.pagesOffset + last.length;
  return {
    blocks: blocks.map((b) => ({ name: b.name, length: b.length })),
    pageSize: plan.pageSize,
    head: (w) => copyRange(plan, w, plan.info.base, blocks[0]!.entryOffset),
    tail: (w) => copyRange(plan, w, end, plan.input.size),
  };
}

/** Whether the input can be carried over verbatim: mapped-ram, every block with its page array. */
export function verbatimPossible(plan: ConvertPlan): boolean {
  const { info } = plan;
  // With x-ignore-shared each block entry carries one more word (its guest address) that the block list
  // writer does not write: such a file is re-laid (and loses the capability), never copied.
  if (info.capabilities.includes(CAP_X_IGNORE_SHARED)) return false;
  return info.ramFormat === "mapped-ram" && plan.replaced.size === 0 && info.blocks.length > 0 && info.blocks.every((b) => b.mapped && !b.shared);
}

function copyRange(plan: ConvertPlan, w: StreamWriter, from: number, to: number): void {
  const STEP = 1 << 20;
  for (let at = from; at < to; at += STEP) {
    const bytes = plan.input.readAt(at, Math.min(STEP, to - at));
    w.write((b) => b.bytes(bytes));
  }
}
