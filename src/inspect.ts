// `inspect` as a library call: parse a file and describe it in a stable, JSON-friendly shape.
import * as libc from "../ffi/libc.ts";
import { parseStream, type SectionInfo } from "./format/parse.ts";
import { MainFile } from "./io/main-file.ts";

export interface BlockReport {
  name: string;
  length: number;
  pages: number;
  present: number;
  zero: number;
  absent: number;
  gpa?: number;
  shared?: boolean;
  headerOffset?: number;
  bitmapOffset?: number;
  pagesOffset?: number;
}

export interface InspectReport {
  file: string;
  /** EOF was reached, after every section parsed (for mapped-ram that means bitmaps were written). */
  complete: boolean;
  version: number;
  base: number;
  machineType: string | null;
  capabilities: string[];
  uuid?: string;
  pageSize: number;
  fileSize: number;
  allocatedBytes: number;
  ramFormat: "mapped-ram" | "classic" | null;
  ramSectionId: number | null;
  ramTotal: number | null;
  footers: boolean;
  blocks: BlockReport[];
  sections: SectionInfo[];
  eofOffset: number;
  trailer: { offset: number; length: number; devices: number } | null;
  notes: string[];
}

export interface InspectOptions {
  /** Where the stream starts in the file (QEMU's `offset=`). */
  offset?: number;
}

/** Throws FormatError (naming file and offset) for anything truncated, corrupt or unknown. */
export function inspectFile(path: string, options: InspectOptions = {}): InspectReport {
  const file = MainFile.openRead(path);
  try {
    const info = parseStream(file, { base: options.offset ?? 0 });
    return {
      file: path,
      complete: info.eofOffset >= 0,
      version: info.version,
      base: info.base,
      machineType: info.machineType,
      capabilities: info.capabilities,
      ...(info.uuid ? { uuid: info.uuid } : {}),
      pageSize: info.pageSize,
      fileSize: info.fileSize,
      allocatedBytes: libc.fstatx(file.fd, path).allocated,
      ramFormat: info.ramFormat,
      ramSectionId: info.ramSectionId ?? null,
      ramTotal: info.ramTotal ?? null,
      footers: info.footers,
      blocks: info.blocks.map((b) => ({
        name: b.name,
        length: b.length,
        pages: b.pages,
        present: b.present,
        zero: b.zero,
        absent: b.absent,
        ...(b.gpa !== undefined ? { gpa: b.gpa } : {}),
        ...(b.shared ? { shared: true } : {}),
        ...(b.mapped ? { headerOffset: b.mapped.headerOffset, bitmapOffset: b.mapped.bitmapOffset, pagesOffset: b.mapped.pagesOffset } : {}),
      })),
      sections: info.sections,
      eofOffset: info.eofOffset,
      trailer: info.trailer,
      notes: info.notes,
    };
  } finally {
    file.close();
  }
}
