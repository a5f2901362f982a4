// Harness: small migration streams built in memory, for tests to parse, corrupt and cut.
//
// - `buildMappedRam` writes a complete mapped-ram file with ramsnap's own writer (head, pages, bitmaps,
//   tail) and returns the bytes with the layout, so a test knows where every field sits.
// - `ClassicBuilder` writes a classic (non-mapped-ram) stream record by record, by hand, and remembers
//   the offset of every piece it was asked to mark.
// - `SparseImage` is a sink and source that stores only what was written, so a test can write the 1 GiB
//   worked example of the format notes without allocating it.
// - `StrictSource` serves bytes like the real main file does, refusing offsets a pread would refuse,
//   so a parser that computes a negative or fractional offset fails the test instead of slipping through.
// - `expectFormatError` checks that a call fails with a FormatError naming the file, the offset and what
//   was expected.
import { expect } from "bun:test";
import { ByteBuilder, MemorySink, type ByteSink, type ByteSource } from "../src/format/bytes.ts";
import { FormatError } from "../src/format/errors.ts";
import type { MappedRamLayout } from "../src/format/layout.ts";
import { writeMappedRamHead, writeMappedRamTail, type MappedRamPlan } from "../src/format/mapped-ram-stream.ts";
import { PAGE } from "./units.ts";


// ---- bytes -----------------------------------------------------------------------------------

/** "51 45 56 4d" (spaces and newlines ignored) to bytes. */
export function hex(text: string): Uint8Array<ArrayBuffer> {
  const clean = text.replace(/\s+/g, "");
  if (!/^([0-9a-f]{2})*$/i.test(clean)) throw new Error(`bad hex: ${text}`);
  return Uint8Array.from(clean.match(/../g) ?? [], (h) => Number.parseInt(h, 16));
}

export function ascii(text: string): Uint8Array<ArrayBuffer> {
  return Uint8Array.from(text, (ch) => ch.charCodeAt(0));
}

export function concat(...parts: (Uint8Array | number[])[]): Uint8Array<ArrayBuffer> {
  const total = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(total);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function toHex(bytes: Uint8Array): string {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join(" ");
}

export function be32(v: number): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(4);
  new DataView(b.buffer).setUint32(0, v);
  return b;
}

export function be64(v: number | bigint): Uint8Array<ArrayBuffer> {
  const b = new Uint8Array(8);
  new DataView(b.buffer).setBigUint64(0, BigInt(v));
  return b;
}

/** A copy of `bytes` with `patch` written at `offset`. */
export function patched(bytes: Uint8Array, offset: number, patch: Uint8Array | number[]): Uint8Array {
  const out = bytes.slice();
  out.set(patch, offset);
  return out;
}

export function readBe32(bytes: Uint8Array, offset: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset).getUint32(offset);
}

export function readBe64(bytes: Uint8Array, offset: number): number {
  return Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(offset));
}

/** Page `p` of block `b` in test files: a byte pattern nobody would write by accident. */
export function pageFill(block: number, page: number): number {
  return (0x40 + block * 16 + page) & 0xff || 1;
}

// ---- sources and sinks -------------------------------------------------------------------------

/** Bytes served the way MainFile serves them: copies, and a pread-like refusal of impossible offsets. */
export class StrictSource implements ByteSource {
  reads = 0;
  constructor(
    readonly bytes: Uint8Array,
    readonly name = "test.mig",
  ) {}
  get size(): number {
    return this.bytes.length;
  }
  readAt(offset: number, length: number): Uint8Array {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`StrictSource: bad offset ${offset}`);
    if (!Number.isSafeInteger(length) || length < 0) throw new RangeError(`StrictSource: bad length ${length}`);
    this.reads++;
    return this.bytes.slice(offset, Math.min(offset + length, this.bytes.length));
  }
}

/** Stores only written extents; everything else reads as zero, like a sparse file. */
export class SparseImage implements ByteSink, ByteSource {
  readonly extents: { offset: number; bytes: Uint8Array }[] = [];
  #size = 0;
  constructor(readonly name = "sparse.mig") {}
  get size(): number {
    return this.#size;
  }
  writeAt(offset: number, bytes: Uint8Array): void {
    this.extents.push({ offset, bytes: bytes.slice() });
    this.#size = Math.max(this.#size, offset + bytes.length);
  }
  readAt(offset: number, length: number): Uint8Array {
    if (!Number.isSafeInteger(offset) || offset < 0) throw new RangeError(`SparseImage: bad offset ${offset}`);
    const end = Math.min(offset + length, this.#size);
    const out = new Uint8Array(Math.max(0, end - offset));
    for (const e of this.extents) {
      const from = Math.max(offset, e.offset);
      const to = Math.min(end, e.offset + e.bytes.length);
      if (from < to) out.set(e.bytes.subarray(from - e.offset, to - e.offset), from - offset);
    }
    return out;
  }
}

// ---- mapped-ram files --------------------------------------------------------------------------

export interface TestBlock {
  name: string;
  pages: number;
  /** Pages whose bitmap bit is set and whose slot gets pageFill() bytes. */
  present?: number[];
}

export interface MappedRamOptions {
  blocks: TestBlock[];
  base?: number;
  machineType?: string;
  switchoverStart?: boolean;
  ramSectionId?: number;
  name?: string;
}

export interface MappedRamFile {
  bytes: Uint8Array;
  plan: MappedRamPlan;
  layout: MappedRamLayout;
  bitmaps: Uint8Array[];
  /** Offset of the RAM size word (MEM_SIZE). */
  memSizeOffset: number;
  source(name?: string): StrictSource;
}

export const PREFIX_BYTE = 0x58; // 'X', like QEMU's offset tests

/** A complete mapped-ram file written by ramsnap's writer; bytes before `base` are 'X'. */
export function buildMappedRam(o: MappedRamOptions): MappedRamFile {
  const base = o.base ?? 0;
  const machineType = o.machineType ?? "pc-q35-10.0";
  const plan: MappedRamPlan = {
    machineType,
    blocks: o.blocks.map((b) => ({ name: b.name, length: b.pages * PAGE })),
    pageSize: PAGE,
    base,
    ramSectionId: o.ramSectionId ?? 2,
    switchoverStart: o.switchoverStart ?? true,
  };
  const sink = new MemorySink(o.name ?? "test.mig");
  if (base > 0) sink.writeAt(0, new Uint8Array(base).fill(PREFIX_BYTE));
  const layout = writeMappedRamHead(sink, plan);
  const bitmaps = layout.blocks.map((l, bi) => {
    const bm = new Uint8Array(l.bitmapSize);
    for (const p of o.blocks[bi]!.present ?? []) {
      bm[p >> 3]! |= 1 << (p & 7);
      sink.writeAt(l.pagesOffset + p * PAGE, new Uint8Array(PAGE).fill(pageFill(bi, p)));
    }
    return bm;
  });
  writeMappedRamTail(sink, plan, layout, bitmaps);
  const bytes = sink.bytes();
  // header 8 + configuration (1 + 4 + name + capabilities subsection) + START header (1+4+1+3+4+4)
  const nameLen = new TextEncoder().encode(machineType).length;
  const memSizeOffset = base + 8 + 1 + 4 + nameLen + (1 + 1 + 26 + 4 + 4 + 1 + 10) + (1 + 4 + 4 + 4 + 4);
  return { bytes, plan, layout, bitmaps, memSizeOffset, source: (name = o.name ?? "test.mig") => new StrictSource(bytes, name) };
}

/** Two small blocks: "pc.ram" 5 pages (0, 1, 4 present), "pc.bios" 2 pages (1 present). About 2 MiB. */
export function smallMappedRam(extra: Partial<MappedRamOptions> = {}): MappedRamFile {
  return buildMappedRam({
    blocks: [
      { name: "pc.ram", pages: 5, present: [0, 1, 4] },
      { name: "pc.bios", pages: 2, present: [1] },
    ],
    ...extra,
  });
}

// ---- classic streams ---------------------------------------------------------------------------

const RAM_FLAG_ZERO = 0x002;
const RAM_FLAG_MEM_SIZE = 0x004;
const RAM_FLAG_PAGE = 0x008;
const RAM_FLAG_EOS = 0x010;
const RAM_FLAG_CONTINUE = 0x020;

/** Writes a classic stream by hand; `mark(name)` remembers the current offset under a name. */
export class ClassicBuilder {
  readonly b = new ByteBuilder();
  readonly marks = new Map<string, number>();

  get length(): number {
    return this.b.length;
  }
  mark(name: string): this {
    this.marks.set(name, this.b.length);
    return this;
  }
  at(name: string): number {
    const v = this.marks.get(name);
    if (v === undefined) throw new Error(`no mark ${name}`);
    return v;
  }
  header(version = 3): this {
    this.b.be32(0x5145564d).be32(version);
    return this;
  }
  configuration(machine: string, subsections: { name: string; fields: Uint8Array }[] = []): this {
    this.b.u8(0x07).str32(machine);
    for (const s of subsections) this.b.u8(0x05).str8(s.name).be32(1).bytes(s.fields);
    return this;
  }
  start(id: number, idstr: string, instance: number, version: number): this {
    this.b.u8(0x01).be32(id).str8(idstr).be32(instance).be32(version);
    return this;
  }
  full(id: number, idstr: string, instance: number, version: number): this {
    this.b.u8(0x04).be32(id).str8(idstr).be32(instance).be32(version);
    return this;
  }
  part(id: number): this {
    this.b.u8(0x02).be32(id);
    return this;
  }
  end(id: number): this {
    this.b.u8(0x03).be32(id);
    return this;
  }
  footer(id: number): this {
    this.b.u8(0x7e).be32(id);
    return this;
  }
  command(cmd: number, payload = new Uint8Array(0)): this {
    this.b.u8(0x08).be16(cmd).be16(payload.length).bytes(payload);
    return this;
  }
  memSize(blocks: { name: string; length: number }[]): this {
    const total = blocks.reduce((s, x) => s + x.length, 0);
    this.b.be64(BigInt(total) | BigInt(RAM_FLAG_MEM_SIZE));
    for (const x of blocks) this.b.str8(x.name).be64(x.length);
    return this;
  }
  /** A PAGE record; `block` null means CONTINUE (same block as the previous record). */
  page(block: string | null, page: number, fill: number): this {
    this.b.be64(page * PAGE + RAM_FLAG_PAGE + (block === null ? RAM_FLAG_CONTINUE : 0));
    if (block !== null) this.b.str8(block);
    this.b.bytes(new Uint8Array(PAGE).fill(fill));
    return this;
  }
  /** A ZERO record with its fill byte; `block` null means CONTINUE. */
  zero(block: string | null, page: number, fill = 0): this {
    this.b.be64(page * PAGE + RAM_FLAG_ZERO + (block === null ? RAM_FLAG_CONTINUE : 0));
    if (block !== null) this.b.str8(block);
    this.b.u8(fill);
    return this;
  }
  flags(word: number): this {
    this.b.be64(word);
    return this;
  }
  eos(): this {
    this.b.be64(RAM_FLAG_EOS);
    return this;
  }
  raw(bytes: Uint8Array): this {
    this.b.bytes(bytes);
    return this;
  }
  eof(): this {
    this.b.u8(0x00);
    return this;
  }
  trailer(json: string): this {
    const j = new TextEncoder().encode(json);
    this.b.u8(0x06).be32(j.length).bytes(j);
    return this;
  }
  bytes(): Uint8Array {
    return this.b.finish();
  }
}

/** The device a classic test stream saves, and its trailer description: 20 bytes of fields, one subsection. */
export const TIMER_DEVICE = {
  name: "timer",
  instance_id: 0,
  vmsd_name: "timer",
  version: 2,
  fields: [
    { name: "cpu_ticks_offset", type: "int64", size: 8 },
    { name: "dummy", type: "int64", size: 8 },
    { name: "cpu_clock_offset", type: "int32", size: 4 },
  ],
  subsections: [{ vmsd_name: "timer/dummy_sub", version: 1, fields: [{ name: "x", type: "uint32", size: 4 }] }],
};
/** 20 bytes of fields + subsection (1 type + 1 length + 15 name + 4 version + 4 field). */
export const TIMER_PAYLOAD_SIZE = 20 + 1 + 1 + 15 + 4 + 4;

export interface ClassicOptions {
  /** Write the vmdesc trailer (default true). */
  trailer?: boolean;
  /** Trailer description of the device (default TIMER_DEVICE). */
  device?: object;
  /** Bytes of the FULL section payload (default: TIMER_PAYLOAD_SIZE bytes, no footer look-alikes). */
  payload?: Uint8Array;
  name?: string;
}

export interface ClassicFile {
  bytes: Uint8Array;
  marks: Map<string, number>;
  at(mark: string): number;
  source(name?: string): StrictSource;
}

/**
 * A classic stream with two blocks and every record kind ramsnap reads. Final page states:
 *   pc.ram (4 pages): 0 data, 1 data (ZERO then PAGE), 2 zero (PAGE then ZERO), 3 absent
 *                     -> present 2, zero 1, absent 1
 *   vga    (2 pages): 0 zero, 1 ZERO record with fill 0xaa (data)  -> present 1, zero 1, absent 0
 */
export function buildClassic(o: ClassicOptions = {}): ClassicFile {
  const payload = o.payload ?? Uint8Array.from({ length: TIMER_PAYLOAD_SIZE }, (_, i) => 0x20 + (i % 0x40));
  const c = new ClassicBuilder()
    .header()
    .mark("config")
    .configuration("pc-i440fx-9.2")
    .mark("start")
    .start(2, "ram", 0, 4)
    .mark("memsize")
    .memSize([
      { name: "pc.ram", length: 4 * PAGE },
      { name: "vga", length: 2 * PAGE },
    ])
    .mark("rec-ram0")
    .page("pc.ram", 0, 0x11)
    .mark("rec-ram1-zero")
    .zero(null, 1)
    .mark("rec-ram2-page")
    .page(null, 2, 0x22)
    .mark("rec-vga0")
    .zero("vga", 0)
    .eos()
    .mark("start-footer")
    .footer(2)
    .mark("part")
    .part(2)
    .mark("rec-ram1-page")
    .page("pc.ram", 1, 0x33)
    .flags(0x200) // MULTIFD_FLUSH, skipped
    .mark("rec-ram2-zero")
    .zero(null, 2)
    .eos()
    .footer(2)
    .mark("end")
    .end(2)
    .mark("rec-vga1")
    .zero("vga", 1, 0xaa)
    .eos()
    .footer(2)
    .mark("full")
    .full(3, "timer", 0, 2)
    .mark("full-payload")
    .raw(payload)
    .mark("full-footer")
    .footer(3)
    .mark("eof")
    .eof()
    .mark("trailer");
  if (o.trailer ?? true) c.trailer(JSON.stringify({ page_size: PAGE, devices: [o.device ?? TIMER_DEVICE] }));
  const bytes = c.bytes();
  return { bytes, marks: c.marks, at: (m) => c.at(m), source: (name = o.name ?? "classic.mig") => new StrictSource(bytes, name) };
}

// ---- assertions --------------------------------------------------------------------------------

export interface ExpectedError {
  file: string;
  offset: number;
  /** What the message must say besides file and offset. */
  detail: RegExp;
}

/** Runs `fn`, which must throw a FormatError naming the file, the offset and the detail. */
export function expectFormatError(fn: () => unknown, want: ExpectedError): FormatError {
  let caught: unknown;
  try {
    fn();
  } catch (e) {
    caught = e;
  }
  if (!(caught instanceof FormatError)) {
    throw new Error(`expected a FormatError, got ${caught === undefined ? "no error" : String((caught as Error)?.stack ?? caught)}`);
  }
  expect(caught.file).toBe(want.file);
  expect(caught.offset).toBe(want.offset);
  expect(caught.detail).toMatch(want.detail);
  expect(caught.message).toContain(want.file);
  expect(caught.message).toContain(`at offset ${want.offset} (0x${want.offset.toString(16)})`);
  return caught;
}
