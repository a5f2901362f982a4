// Walks a whole migration stream the way QEMU's loader does, without loading anything: header,
// configuration, sections in order, EOF and the trailer. RAM sections are understood in both forms
// (mapped-ram and classic); other sections are stepped over (see vmdesc.ts for how).
import { firstBitPast, countSet } from "./bitmap.ts";
import { StreamReader, type ByteSource } from "./bytes.ts";
import {
  CAP_MAPPED_RAM,
  CAP_X_IGNORE_SHARED,
  COMMAND_NAMES,
  DEFAULT_PAGE_SIZE,
  MAPPED_RAM_HEADER_VERSION,
  QEMU_VM_FILE_MAGIC,
  QEMU_VM_FILE_VERSION,
  QEMU_VM_FILE_VERSION_OBSOLETE,
  RAM_FLAG_COMPRESS_PAGE,
  RAM_FLAG_CONTINUE,
  RAM_FLAG_EOS,
  RAM_FLAG_HOOK,
  RAM_FLAG_MEM_SIZE,
  RAM_FLAG_MULTIFD_FLUSH,
  RAM_FLAG_PAGE,
  RAM_FLAG_XBZRLE,
  RAM_FLAG_ZERO,
  RAM_IDSTR,
  RAM_VERSION,
  SECTION_TYPE_NAMES,
  SUBSECTION_CAPABILITIES,
  SUBSECTION_TARGET_PAGE_BITS,
  SUBSECTION_UUID,
  Tag,
} from "./constants.ts";
import type { MappedRamHeader } from "./encode.ts";
import { bitmapSize } from "./layout.ts";
import { describedSize, findTrailer, parseTrailerJson, scanForFooter, type Trailer, type VmdescDevice } from "./vmdesc.ts";

export interface RamBlockInfo {
  name: string;
  length: number;
  pages: number;
  /** Absolute offset of the block's entry in the RAM block list. */
  entryOffset: number;
  /** Guest physical address; only in streams with x-ignore-shared. */
  gpa?: number;
  /** mapped-ram only. */
  mapped?: MappedRamHeader & { headerOffset: number; bitmapSize: number };
  /** mapped-ram: the block is shared memory QEMU did not save (x-ignore-shared, both offsets 0). */
  shared?: boolean;
  /** mapped-ram: the bitmap as read from the file (only if ParseOptions.keepBitmaps). */
  bitmap?: Uint8Array;
  /** Pages whose data the file holds (mapped-ram: bitmap bits set; classic: last record carried data). */
  present: number;
  /** Classic only: pages whose last record said "zero". */
  zero: number;
  /** Pages the file says nothing about (loaders leave them as they are, i.e. zero in a fresh guest). */
  absent: number;
}

export type SizeSource = "ram" | "vmdesc" | "footer-scan" | "command";

export interface SectionInfo {
  type: "START" | "PART" | "END" | "FULL" | "COMMAND";
  offset: number;
  id?: number;
  idstr?: string;
  instance?: number;
  version?: number;
  command?: string;
  payloadOffset: number;
  payloadSize: number;
  sizeFrom: SizeSource;
}

export interface StreamInfo {
  file: string;
  base: number;
  fileSize: number;
  version: number;
  machineType: string | null;
  targetPageBits?: number;
  capabilities: string[];
  uuid?: string;
  pageSize: number;
  ramFormat: "mapped-ram" | "classic" | null;
  ramSectionId?: number;
  ramTotal?: number;
  blocks: RamBlockInfo[];
  sections: SectionInfo[];
  footers: boolean;
  eofOffset: number;
  trailer: { offset: number; length: number; devices: number } | null;
  /** Non-fatal oddities worth telling a user (bytes after the trailer, scanned section ends, ...). */
  notes: string[];
}

export interface ClassicPageEvent {
  block: number;
  /** Pages in that block. */
  blockPages: number;
  page: number;
  /** Absolute offset of the page data, or -1 for a zero record. */
  dataOffset: number;
  fill: number;
}

export interface ParseOptions {
  /** Where the stream starts in the file (QEMU's `file:...,offset=`). */
  base?: number;
  /** Keep each mapped-ram block's bitmap in RamBlockInfo.bitmap. */
  keepBitmaps?: boolean;
  /** Called for each page record of a classic stream, in stream order (later records win). */
  onClassicPage?: (e: ClassicPageEvent) => void;
}

const MAX_MACHINE_NAME = 256;
const MAX_CAPABILITIES = 64;
/** 2^28 pages: 1 TiB of 4 KiB pages in one classic block (its page map then takes 2 GiB; see pages.ts). */
const MAX_CLASSIC_PAGES = 2 ** 28;

export function parseStream(source: ByteSource, options: ParseOptions = {}): StreamInfo {
  return new StreamParser(source, options).run();
}

class StreamParser {
  readonly r: StreamReader;
  readonly info: StreamInfo;
  #trailer: Trailer | null | undefined;
  #deviceIndex = 0;
  /** Classic only: per block, per page, 0 absent / 1 zero / 2 data. */
  #pageState: Uint8Array[] = [];
  #lastBlock = -1;

  constructor(
    readonly source: ByteSource,
    readonly options: ParseOptions,
  ) {
    const base = options.base ?? 0;
    this.r = new StreamReader(source, base);
    this.info = {
      file: source.name,
      base,
      fileSize: source.size,
      version: 0,
      machineType: null,
      capabilities: [],
      pageSize: DEFAULT_PAGE_SIZE,
      ramFormat: null,
      blocks: [],
      sections: [],
      footers: false,
      eofOffset: -1,
      trailer: null,
      notes: [],
    };
  }

  run(): StreamInfo {
    const { r, info } = this;
    if (info.base > this.source.size) throw r.error(`the stream offset is past the end of the file (${this.source.size} bytes)`, 0);
    const magic = r.be32("the migration stream magic");
    if (magic !== QEMU_VM_FILE_MAGIC) {
      throw r.error(`not a QEMU migration stream: magic is 0x${hex(magic, 8)}, expected 0x${hex(QEMU_VM_FILE_MAGIC, 8)} ("QEVM")`, info.base);
    }
    info.version = r.be32("the stream version");
    if (info.version === QEMU_VM_FILE_VERSION_OBSOLETE) throw r.error("stream version 2 is obsolete and no longer supported", r.position - 4);
    if (info.version !== QEMU_VM_FILE_VERSION) throw r.error(`unsupported stream version ${info.version}, expected ${QEMU_VM_FILE_VERSION}`, r.position - 4);
    if (r.peek(1, "the configuration section or first section")[0] === Tag.Configuration) this.configuration();
    for (;;) {
      const at = r.position;
      const tag = r.u8("a section type, a command or EOF");
      if (tag === Tag.EOF) {
        info.eofOffset = at;
        break;
      }
      if (tag === Tag.SectionStart || tag === Tag.SectionFull) this.sectionWithHeader(tag, at);
      else if (tag === Tag.SectionPart || tag === Tag.SectionEnd) this.sectionContinuation(tag, at);
      else if (tag === Tag.Command) this.command(at);
      else throw r.error(`unknown section type 0x${hex(tag, 2)}; expected a section (0x01-0x04), a command (0x08) or EOF (0x00)`, at);
    }
    this.afterEof();
    this.finishClassicCounts();
    return info;
  }

  configuration(): void {
    const { r, info } = this;
    r.u8("the configuration section");
    const nameAt = r.position;
    const len = r.be32("the machine type length");
    if (len > MAX_MACHINE_NAME) throw r.error(`machine type length ${len} is implausible (at most ${MAX_MACHINE_NAME})`, nameAt);
    info.machineType = new TextDecoder().decode(r.bytes(len, "the machine type name"));
    while (r.peek(1, "a configuration subsection or the first section")[0] === Tag.Subsection) {
      const at = r.position;
      r.u8("subsection");
      const name = r.str8("the subsection name");
      const version = r.be32("the subsection version");
      if (version !== 1) throw r.error(`configuration subsection ${name} has version ${version}, expected 1`, at);
      if (name === SUBSECTION_TARGET_PAGE_BITS) {
        const bits = r.be32("target page bits");
        if (bits < 10 || bits > 16) throw r.error(`target page bits ${bits} is implausible (10 to 16)`, r.position - 4);
        info.targetPageBits = bits;
        info.pageSize = 2 ** bits;
      } else if (name === SUBSECTION_CAPABILITIES) {
        const n = r.be32("the capability count");
        if (n > MAX_CAPABILITIES) throw r.error(`capability count ${n} is implausible`, r.position - 4);
        for (let i = 0; i < n; i++) info.capabilities.push(r.str8("a capability name"));
      } else if (name === SUBSECTION_UUID) {
        info.uuid = formatUuid(r.bytes(16, "the UUID"));
      } else {
        throw r.error(`unknown configuration subsection "${name}"`, at);
      }
    }
  }

  get mappedRam(): boolean {
    return this.info.capabilities.includes(CAP_MAPPED_RAM);
  }
  get ignoreShared(): boolean {
    return this.info.capabilities.includes(CAP_X_IGNORE_SHARED);
  }

  sectionWithHeader(tag: number, at: number): void {
    const { r, info } = this;
    const id = r.be32("the section id");
    const idstr = r.str8("the section name");
    const instance = r.be32("the instance id");
    const version = r.be32("the section version");
    const type = SECTION_TYPE_NAMES[tag] as "START" | "FULL";
    const s: SectionInfo = { type, offset: at, id, idstr, instance, version, payloadOffset: r.position, payloadSize: 0, sizeFrom: "ram" };
    if (idstr === RAM_IDSTR) {
      if (tag !== Tag.SectionStart) throw r.error(`the RAM section "ram" must be a START section, found ${type}`, at);
      if (version !== RAM_VERSION) throw r.error(`RAM section version ${version} is not supported (expected ${RAM_VERSION})`, at);
      if (info.ramSectionId !== undefined) throw r.error(`a second RAM START section (id ${id})`, at);
      info.ramSectionId = id;
      info.ramFormat = this.mappedRam ? "mapped-ram" : "classic";
      this.ramStart();
    } else {
      this.stepOver(s, tag === Tag.SectionFull ? this.nextDevice(idstr, instance) : undefined);
    }
    s.payloadSize = r.position - s.payloadOffset;
    this.footer(id, type, idstr);
    info.sections.push(s);
  }

  sectionContinuation(tag: number, at: number): void {
    const { r, info } = this;
    const id = r.be32("the section id");
    const type = SECTION_TYPE_NAMES[tag] as "PART" | "END";
    const isRam = id === info.ramSectionId;
    const s: SectionInfo = { type, offset: at, id, payloadOffset: r.position, payloadSize: 0, sizeFrom: "ram" };
    if (isRam) {
      s.idstr = RAM_IDSTR;
      if (this.mappedRam) this.expectEos(`the RAM ${type} section`);
      else this.classicPages();
    } else {
      const start = info.sections.find((x) => x.type === "START" && x.id === id);
      if (!start) throw r.error(`${type} section refers to section id ${id}, which no START section opened`, at);
      s.idstr = start.idstr;
      this.stepOver(s);
    }
    s.payloadSize = r.position - s.payloadOffset;
    this.footer(id, type, s.idstr);
    info.sections.push(s);
  }

  command(at: number): void {
    const { r, info } = this;
    const cmd = r.be16("the command id");
    const len = r.be16("the command length");
    r.bytes(len, `the payload of command ${cmd}`);
    const name = COMMAND_NAMES[cmd];
    if (!name) throw r.error(`unknown command ${cmd}`, at);
    info.sections.push({ type: "COMMAND", offset: at, command: name, payloadOffset: at + 5, payloadSize: len, sizeFrom: "command" });
  }

  /** The footer after a section. Whether the stream has footers is learnt from the first section. */
  footer(id: number, type: string, idstr: string | undefined): void {
    const { r, info } = this;
    const first = info.sections.every((x) => x.type === "COMMAND");
    const next = r.peek(1, `the footer or next element after ${type} section ${idstr ?? id}`)[0];
    if (first) info.footers = next === Tag.SectionFooter;
    if (!info.footers) return;
    const at = r.position;
    if (r.u8("a section footer") !== Tag.SectionFooter) {
      throw r.error(`expected the footer (0x7e) of ${type} section ${idstr ?? ""} (id ${id}); the section's payload does not end where it should`, at);
    }
    const got = r.be32("the footer's section id");
    if (got !== id) throw r.error(`footer names section id ${got}, but the section being closed is ${id} (${idstr ?? type})`, at);
  }

  nextDevice(idstr: string, instance: number): VmdescDevice | undefined {
    const devices = this.trailer?.json.devices;
    if (!Array.isArray(devices)) return undefined;
    const d = devices[this.#deviceIndex];
    if (d && d.name === idstr && d.instance_id === instance) {
      this.#deviceIndex++;
      return d;
    }
    return undefined;
  }

  get trailer(): Trailer | null {
    if (this.#trailer === undefined) this.#trailer = findTrailer(this.source);
    return this.#trailer;
  }

  /** Moves past a payload ramsnap does not interpret (see vmdesc.ts for the rules). */
  stepOver(s: SectionInfo, device?: VmdescDevice): void {
    const { r, info } = this;
    const name = s.idstr ?? `id ${s.id}`;
    if (device) {
      const size = describedSize(device);
      if (size !== null) {
        const end = s.payloadOffset + size;
        const b = this.source.readAt(end, 5);
        const dv = new DataView(b.buffer, b.byteOffset, b.byteLength);
        const footerOk = b.length === 5 && b[0] === Tag.SectionFooter && dv.getUint32(1) === s.id;
        if (footerOk || (!info.footers && info.sections.length > 0 && end <= this.source.size)) {
          s.sizeFrom = "vmdesc";
          r.seek(end);
          return;
        }
        info.notes.push(`${s.type} section ${name} at offset ${s.offset}: the trailer's description (${size} bytes) does not end at its footer; located the footer by scanning`);
      }
    }
    if (!info.footers && info.sections.length > 0) {
      throw r.error(`cannot find the end of ${s.type} section ${name}: the stream has no section footers and the trailer does not describe it`, s.offset);
    }
    const footerAt = scanForFooter(this.source, s.id!, s.payloadOffset);
    if (footerAt < 0) throw r.error(`cannot find the end of ${s.type} section ${name} (id ${s.id}): no footer follows it; the file is truncated or corrupt`, s.offset);
    s.sizeFrom = "footer-scan";
    r.seek(footerAt);
  }

  expectEos(what: string): void {
    const { r } = this;
    const at = r.position;
    const word = r.be64big(`the end-of-section marker of ${what}`);
    if (word !== BigInt(RAM_FLAG_EOS)) {
      const flags = Number(word & BigInt(this.info.pageSize - 1));
      throw r.error(`unexpected RAM flags 0x${hex(flags, 3)} in ${what}; a mapped-ram stream carries only EOS (0x010) here`, at);
    }
  }

  ramStart(): void {
    const { r, info } = this;
    const at = r.position;
    const word = r.be64big("the RAM size word");
    const flags = Number(word & BigInt(info.pageSize - 1));
    if (flags !== RAM_FLAG_MEM_SIZE) throw r.error(`the RAM section must open with MEM_SIZE (0x004), found flags 0x${hex(flags, 3)}`, at);
    const total = Number(word & ~BigInt(info.pageSize - 1));
    info.ramTotal = total;
    let sum = 0;
    while (sum < total) {
      if (r.peek(1, "a RAM block name")[0] === 0) {
        throw r.error(`expected another RAM block: the blocks so far add up to ${sum} bytes, less than the total of ${total} announced at offset ${at}`);
      }
      const block = this.ramBlockEntry(sum, total, at);
      sum += block.length;
    }
    if (this.mappedRam) this.expectEos("the RAM START section");
    else this.classicPages();
  }

  /** One entry of the block list; `sum` is what the entries before it add up to, of the `total` announced at `totalAt`. */
  ramBlockEntry(sum: number, total: number, totalAt: number): RamBlockInfo {
    const { r, info } = this;
    const entryOffset = r.position;
    const name = r.str8("a RAM block name");
    const length = r.be64(`the length of RAM block ${name}`);
    if (name.length === 0) throw r.error("a RAM block has an empty name", entryOffset);
    if (info.blocks.some((b) => b.name === name)) throw r.error(`RAM block ${name} is listed twice`, entryOffset);
    if (length % info.pageSize !== 0) throw r.error(`RAM block ${name}: length ${length} is not a multiple of the page size ${info.pageSize}`, r.position - 8);
    // Checked before anything is sized by the length (a classic block's page states are allocated below).
    if (sum + length > total) {
      throw r.error(`RAM blocks add up to ${sum + length} bytes, more than the total of ${total} announced at offset ${totalAt}`, entryOffset);
    }
    const pages = length / info.pageSize;
    // A classic block's page states are kept per page; past this a corrupt length would exhaust memory first.
    if (!this.mappedRam && pages > MAX_CLASSIC_PAGES) {
      throw r.error(`RAM block ${name}: ${length} bytes is more than ramsnap reads in a classic stream (${MAX_CLASSIC_PAGES * info.pageSize} bytes)`, entryOffset);
    }
    const block: RamBlockInfo = { name, length, pages, entryOffset, present: 0, zero: 0, absent: pages };
    if (this.ignoreShared) block.gpa = r.be64(`the guest address of RAM block ${name}`);
    info.blocks.push(block);
    if (this.mappedRam) this.mappedRamHeader(block);
    else this.#pageState.push(new Uint8Array(pages));
    return block;
  }

  mappedRamHeader(block: RamBlockInfo): void {
    const { r, info, source } = this;
    const headerOffset = r.position;
    const version = r.be32(`the mapped-ram header of block ${block.name}`);
    const pageSize = r.be64(`the header page size of block ${block.name}`);
    const bitmapOffset = r.be64(`the bitmap offset of block ${block.name}`);
    const pagesOffset = r.be64(`the pages offset of block ${block.name}`);
    if (version > MAPPED_RAM_HEADER_VERSION) throw r.error(`block ${block.name}: mapped-ram header version ${version} is not supported (at most ${MAPPED_RAM_HEADER_VERSION})`, headerOffset);
    if (this.ignoreShared && bitmapOffset === 0 && pagesOffset === 0) {
      block.shared = true;
      return;
    }
    if (pageSize !== info.pageSize) throw r.error(`block ${block.name}: header page size ${pageSize} differs from the stream's page size ${info.pageSize}`, headerOffset + 4);
    const size = bitmapSize(block.pages);
    block.mapped = { version, pageSize, bitmapOffset, pagesOffset, headerOffset, bitmapSize: size };
    if (pagesOffset % info.pageSize !== 0) throw r.error(`block ${block.name}: pages offset ${pagesOffset} is not aligned to the page size ${info.pageSize}`, headerOffset + 20);
    if (bitmapOffset + size > source.size) throw r.error(`block ${block.name}: bitmap at ${bitmapOffset} (+${size} bytes) lies past the end of the file (${source.size} bytes)`, headerOffset + 12);
    if (pagesOffset + block.length > source.size) {
      throw r.error(`block ${block.name}: page array at ${pagesOffset} (+${block.length} bytes) lies past the end of the file (${source.size} bytes); the file is truncated`, headerOffset + 20);
    }
    if (bitmapOffset < pagesOffset + block.length && pagesOffset < bitmapOffset + size) {
      throw r.error(`block ${block.name}: bitmap [${bitmapOffset}, +${size}) overlaps the page array [${pagesOffset}, +${block.length})`, headerOffset + 12);
    }
    const bitmap = source.readAt(bitmapOffset, size).slice();
    const past = firstBitPast(bitmap, block.pages);
    if (past >= 0) throw r.error(`block ${block.name}: bitmap bit ${past} is set, but the block has only ${block.pages} pages`, bitmapOffset + (past >> 3));
    block.present = countSet(bitmap, block.pages);
    block.absent = block.pages - block.present;
    if (this.options.keepBitmaps) block.bitmap = bitmap;
    // Like QEMU's loader, continue after the block's page array.
    r.seek(pagesOffset + block.length);
  }

  /** Page records of a classic RAM section, up to and including EOS. */
  classicPages(): void {
    const { r, info } = this;
    const ps = info.pageSize;
    for (;;) {
      const at = r.position;
      const word = r.be64big("a RAM page record");
      const flags = Number(word & BigInt(ps - 1));
      const addr = Number(word & ~BigInt(ps - 1));
      if (flags & RAM_FLAG_EOS) return;
      if (flags & RAM_FLAG_MULTIFD_FLUSH) continue;
      if (flags & (RAM_FLAG_HOOK | RAM_FLAG_XBZRLE | RAM_FLAG_COMPRESS_PAGE | RAM_FLAG_MEM_SIZE) || !(flags & (RAM_FLAG_PAGE | RAM_FLAG_ZERO))) {
        throw r.error(`unsupported RAM flags 0x${hex(flags, 3)} in a classic page record (ramsnap reads PAGE, ZERO, CONTINUE, EOS and MULTIFD_FLUSH)`, at);
      }
      let block = this.#lastBlock;
      if (!(flags & RAM_FLAG_CONTINUE)) {
        const name = r.str8("the RAM block name of a page");
        block = info.blocks.findIndex((b) => b.name === name);
        if (block < 0) throw r.error(`page record names RAM block "${name}", which the block list does not have`, at);
        this.#lastBlock = block;
      } else if (block < 0) {
        throw r.error("page record continues a block, but no block was named before", at);
      }
      const b = info.blocks[block]!;
      const page = addr / ps;
      if (addr >= b.length) throw r.error(`page at 0x${addr.toString(16)} is outside RAM block ${b.name} (${b.length} bytes)`, at);
      let fill = 0;
      let dataOffset = -1;
      if (flags & RAM_FLAG_ZERO) {
        fill = r.u8("the fill byte of a zero page");
        this.#pageState[block]![page] = fill === 0 ? 1 : 2;
      } else {
        dataOffset = r.position;
        r.skip(ps, `the data of page ${page} of ${b.name}`);
        this.#pageState[block]![page] = 2;
      }
      this.options.onClassicPage?.({ block, blockPages: b.pages, page, dataOffset, fill });
    }
  }

  finishClassicCounts(): void {
    this.#pageState.forEach((state, i) => {
      const b = this.info.blocks[i]!;
      let present = 0;
      let zero = 0;
      for (const s of state) {
        if (s === 2) present++;
        else if (s === 1) zero++;
      }
      b.present = present;
      b.zero = zero;
      b.absent = b.pages - present - zero;
    });
  }

  afterEof(): void {
    const { r, info, source } = this;
    if (info.ramFormat === null) info.notes.push("the stream has no RAM section");
    if (r.atEnd) {
      info.notes.push("no vmdesc trailer after EOF (QEMU only warns about this)");
      return;
    }
    const at = r.position;
    const tag = r.u8("the trailer marker");
    if (tag !== Tag.VmDescription) throw r.error(`expected the vmdesc trailer (0x06) or the end of the file after EOF, found 0x${hex(tag, 2)}`, at);
    const len = r.be32("the trailer length");
    const json = parseTrailerJson(r.bytes(len, "the trailer JSON"));
    if (!json) throw r.error("the vmdesc trailer is not a JSON object", at + 5);
    info.trailer = { offset: at, length: len, devices: Array.isArray(json.devices) ? json.devices.length : 0 };
    if (!r.atEnd) info.notes.push(`${source.size - r.position} bytes follow the trailer`);
  }
}

function hex(v: number, width: number): string {
  return v.toString(16).padStart(width, "0");
}

function formatUuid(b: Uint8Array): string {
  const h = Array.from(b, (x) => hex(x, 2)).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}
