// `inspect` as a library call: parse a file and describe it in a stable, JSON-friendly shape.
import * as libc from "../ffi/libc.ts";
import { parseStream, type SectionInfo, type StreamInfo } from "./format/parse.ts";
import { MainFile } from "./io/main-file.ts";
import { countPresent, Encoding } from "./format/pack.ts";
import { PackReader } from "./savefile/pack/reader.ts";

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
  /** A pack: the mapped-ram file it stands for is described above; this is the pack itself. */
  pack?: PackSummary;
  notes: string[];
}

export interface PackSummary {
  version: number;
  /** The pack's own size, in bytes (fileSize above is its image's: the mapped-ram file it stands for). */
  size: number;
  extents: number;
  extentBytes: number;
  /** Bytes of present pages, and what the pack stores for them. */
  pageBytes: number;
  storedBytes: number;
  /** Extents stored as zstd frames; the others are raw (zstd did not make them smaller). */
  zstdExtents: number;
  /** pageBytes / storedBytes. */
  ratio: number;
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
    return reportOf(path, info, libc.fstatx(file.fd, path).allocated);
  } finally {
    file.close();
  }
}

/** A pack (local or s3://): its image described like a mapped-ram file, and the pack itself. */
export async function inspectPack(path: string): Promise<InspectReport> {
  const pack = await PackReader.open({ path, offset: 0 });
  try {
    const pageBytes = pack.index.reduce((s, e) => s + countPresent(e.present), 0) * pack.info.pageSize;
    const storedBytes = pack.storedBytes;
    const summary: PackSummary = {
      version: pack.main.header.version,
      size: pack.input.size,
      extents: pack.index.length,
      extentBytes: pack.main.header.extentPages * pack.info.pageSize,
      pageBytes,
      storedBytes,
      zstdExtents: pack.index.filter((e) => e.encoding === Encoding.zstd).length,
      ratio: storedBytes > 0 ? pageBytes / storedBytes : 1,
    };
    return { ...reportOf(path, pack.info, pack.main.size), pack: summary };
  } finally {
    pack.release();
  }
}

function reportOf(path: string, info: StreamInfo, allocatedBytes: number): InspectReport {
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
    allocatedBytes,
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
}
