// parseStream: round trips of what ramsnap writes, a hand-built classic stream, and every kind of bad
// input, each of which must be a FormatError naming the file, the byte offset and what was expected.
import { describe, expect, test } from "bun:test";
import { MemorySource } from "../src/format/bytes.ts";
import { FormatError } from "../src/format/errors.ts";
import { parseStream, type ClassicPageEvent, type StreamInfo } from "../src/format/parse.ts";
import {
  ClassicBuilder,
  PREFIX_BYTE,
  StrictSource,
  TIMER_DEVICE,
  TIMER_PAYLOAD_SIZE,
  ascii,
  be32,
  be64,
  buildClassic,
  buildMappedRam,
  concat,
  expectFormatError,
  hex,
  pageFill,
  patched,
  smallMappedRam,
  toHex,
} from "../harness/streams.ts";
import { MiB, PAGE } from "../harness/units.ts";

const FILE = "test.mig";
const parse = (bytes: Uint8Array, base = 0): StreamInfo => parseStream(new StrictSource(bytes, FILE), { base });

// smallMappedRam(): pc.ram 5 pages (0, 1, 4 present) and pc.bios 2 pages (1 present).
const small = smallMappedRam();
const [ram, bios] = small.layout.blocks as [(typeof small.layout.blocks)[0], (typeof small.layout.blocks)[0]];
const END = small.layout.end; // the START section's EOS
const T = {
  eos: END,
  startFooter: END + 8,
  switchover: END + 13,
  endSection: END + 18,
  endEos: END + 23,
  endFooter: END + 31,
  eof: END + 36,
  trailer: END + 37,
};

describe("mapped-ram round trip", () => {
  const info = parseStream(small.source(), { keepBitmaps: true });

  test("the fixture is laid out as the helpers say", () => {
    expect(small.memSizeOffset).toBe(88);
    expect(ram.entryOffset).toBe(small.memSizeOffset + 8);
    expect(ram.pagesOffset).toBe(MiB);
    expect(bios.pagesOffset).toBe(2 * MiB);
    expect(small.bytes.length).toBeGreaterThan(T.trailer + 5);
  });

  test("stream facts", () => {
    expect(info).toMatchObject({
      file: FILE,
      base: 0,
      fileSize: small.bytes.length,
      version: 3,
      machineType: "pc-q35-10.0",
      capabilities: ["mapped-ram"],
      pageSize: PAGE,
      ramFormat: "mapped-ram",
      ramSectionId: 2,
      ramTotal: 7 * PAGE,
      footers: true,
      eofOffset: T.eof,
      notes: [],
    });
    expect(info.trailer).toEqual({ offset: T.trailer, length: small.bytes.length - T.trailer - 5, devices: 0 });
  });

  test("blocks, offsets and present counts", () => {
    expect(info.blocks.map((b) => ({ name: b.name, length: b.length, pages: b.pages, present: b.present, zero: b.zero, absent: b.absent }))).toEqual([
      { name: "pc.ram", length: 5 * PAGE, pages: 5, present: 3, zero: 0, absent: 2 },
      { name: "pc.bios", length: 2 * PAGE, pages: 2, present: 1, zero: 0, absent: 1 },
    ]);
    info.blocks.forEach((b, i) => {
      const l = small.layout.blocks[i]!;
      expect(b.entryOffset).toBe(l.entryOffset);
      expect(b.mapped).toEqual({ version: 1, pageSize: PAGE, bitmapOffset: l.bitmapOffset, pagesOffset: l.pagesOffset, headerOffset: l.headerOffset, bitmapSize: 8 });
      expect(b.bitmap).toEqual(small.bitmaps[i]!);
    });
    expect(toHex(info.blocks[0]!.bitmap!)).toBe("13 00 00 00 00 00 00 00");
  });

  test("page data sits at pages_offset + page * 4096", () => {
    expect(small.bytes[ram.pagesOffset + 4 * PAGE]).toBe(pageFill(0, 4));
    expect(small.bytes[ram.pagesOffset + 4 * PAGE + PAGE - 1]).toBe(pageFill(0, 4));
    expect(small.bytes[ram.pagesOffset + 2 * PAGE]).toBe(0);
    expect(small.bytes[bios.pagesOffset + PAGE]).toBe(pageFill(1, 1));
  });

  test("sections: START (RAM), COMMAND SWITCHOVER_START, END", () => {
    expect(info.sections).toEqual([
      { type: "START", offset: 71, id: 2, idstr: "ram", instance: 0, version: 4, payloadOffset: 88, payloadSize: END + 8 - 88, sizeFrom: "ram" },
      { type: "COMMAND", offset: T.switchover, command: "SWITCHOVER_START", payloadOffset: T.switchover + 5, payloadSize: 0, sizeFrom: "command" },
      { type: "END", offset: T.endSection, id: 2, idstr: "ram", payloadOffset: T.endSection + 5, payloadSize: 8, sizeFrom: "ram" },
    ]);
  });

  test("bitmaps are not kept unless asked for", () => {
    expect(parse(small.bytes).blocks[0]!.bitmap).toBeUndefined();
  });

  test("a pre-10.0 machine type: no SWITCHOVER_START", () => {
    const f = smallMappedRam({ machineType: "pc-q35-9.2", switchoverStart: false });
    const i = parse(f.bytes);
    expect(i.machineType).toBe("pc-q35-9.2");
    expect(i.sections.map((s) => s.type)).toEqual(["START", "END"]);
  });

  test("offset=4096: the stream parses from its base and the pages stay at 1 MiB", () => {
    const f = smallMappedRam({ base: 4096 });
    expect(f.bytes.subarray(0, 4096).every((b) => b === PREFIX_BYTE)).toBe(true);
    const i = parse(f.bytes, 4096);
    expect(i.base).toBe(4096);
    expect(i.blocks[0]!.mapped!.headerOffset).toBe(4096 + 111);
    expect(i.blocks[0]!.mapped!.pagesOffset).toBe(MiB);
    expect(i.blocks.map((b) => b.present)).toEqual([3, 1]);
    expect(i.sections[0]!.offset).toBe(4096 + 71);
  });

  test("a 255-byte block name and many blocks round-trip (the writer's buffer grows)", () => {
    const blocks = [{ name: "n".repeat(255), pages: 1, present: [0] }, ...Array.from({ length: 12 }, (_, i) => ({ name: `/rom@etc/block-${i}`, pages: 1 }))];
    const f = buildMappedRam({ blocks, machineType: `pc-q35-10.0-${"x".repeat(200)}`, ramSectionId: 0xfffffffe });
    const i = parse(f.bytes);
    expect(i.machineType).toBe(`pc-q35-10.0-${"x".repeat(200)}`);
    expect(i.ramSectionId).toBe(0xfffffffe);
    expect(i.blocks.map((b) => b.name)).toEqual(blocks.map((b) => b.name));
    expect(i.blocks[0]!.present).toBe(1);
    expect(i.eofOffset).toBeGreaterThan(12 * MiB);
  });

  test("a zero-length block takes no bitmap and no pages", () => {
    const f = buildMappedRam({ blocks: [{ name: "empty", pages: 0 }, { name: "one", pages: 1, present: [0] }] });
    const i = parse(f.bytes);
    expect(i.blocks.map((b) => [b.name, b.pages, b.present])).toEqual([
      ["empty", 0, 0],
      ["one", 1, 1],
    ]);
  });

  test("bytes after the trailer are a note, not an error", () => {
    const i = parse(concat(small.bytes, [1, 2, 3]));
    expect(i.notes).toContain("3 bytes follow the trailer");
    expect(i.eofOffset).toBe(T.eof);
  });
});

describe("classic round trip", () => {
  const c = buildClassic();
  const events: ClassicPageEvent[] = [];
  const info = parseStream(c.source(), { onClassicPage: (e) => events.push(e) });

  test("stream facts", () => {
    expect(info.ramFormat).toBe("classic");
    expect(info.machineType).toBe("pc-i440fx-9.2");
    expect(info.capabilities).toEqual([]);
    expect(info.ramTotal).toBe(6 * PAGE);
    expect(info.eofOffset).toBe(c.at("eof"));
    expect(info.trailer).toEqual({ offset: c.at("trailer"), length: c.bytes.length - c.at("trailer") - 5, devices: 1 });
    expect(info.notes).toEqual([]);
  });

  test("later records win: present, zero and absent per block", () => {
    expect(info.blocks.map((b) => [b.name, b.pages, b.present, b.zero, b.absent])).toEqual([
      ["pc.ram", 4, 2, 1, 1],
      ["vga", 2, 1, 1, 0],
    ]);
    expect(info.blocks.every((b) => b.mapped === undefined)).toBe(true);
  });

  test("page events come in stream order with the data's offset", () => {
    expect(events.map((e) => [e.block, e.page, e.dataOffset >= 0 ? "data" : `fill ${e.fill}`])).toEqual([
      [0, 0, "data"],
      [0, 1, "fill 0"],
      [0, 2, "data"],
      [1, 0, "fill 0"],
      [0, 1, "data"],
      [0, 2, "fill 0"],
      [1, 1, "fill 170"],
    ]);
    const fills = events.filter((e) => e.dataOffset >= 0).map((e) => [c.bytes[e.dataOffset], c.bytes[e.dataOffset + PAGE - 1]]);
    expect(fills).toEqual([
      [0x11, 0x11],
      [0x22, 0x22],
      [0x33, 0x33],
    ]);
    expect(events[0]!.dataOffset).toBe(c.at("rec-ram0") + 8 + 1 + 6);
  });

  test("sections, with the FULL section sized by the trailer", () => {
    expect(info.sections.map((s) => [s.type, s.offset, s.id, s.idstr, s.sizeFrom])).toEqual([
      ["START", c.at("start"), 2, "ram", "ram"],
      ["PART", c.at("part"), 2, "ram", "ram"],
      ["END", c.at("end"), 2, "ram", "ram"],
      ["FULL", c.at("full"), 3, "timer", "vmdesc"],
    ]);
    const full = info.sections[3]!;
    expect(full).toMatchObject({ instance: 0, version: 2, payloadOffset: c.at("full-payload"), payloadSize: TIMER_PAYLOAD_SIZE });
  });

  test("without the trailer the FULL section's end is found by scanning for its footer", () => {
    const bare = buildClassic({ trailer: false });
    const i = parseStream(bare.source());
    const full = i.sections.find((s) => s.type === "FULL")!;
    expect(full.sizeFrom).toBe("footer-scan");
    expect(full.payloadSize).toBe(TIMER_PAYLOAD_SIZE);
    expect(i.trailer).toBeNull();
    expect(i.notes).toContain("no vmdesc trailer after EOF (QEMU only warns about this)");
    expect(i.blocks.map((b) => [b.present, b.zero, b.absent])).toEqual([
      [2, 1, 1],
      [1, 1, 0],
    ]);
  });

  test("the trailer's size wins over a footer look-alike inside the payload", () => {
    const payload = Uint8Array.from({ length: TIMER_PAYLOAD_SIZE }, (_, i) => 0x30 + (i % 10));
    payload.set(hex("7e 00 00 00 03 00 06"), 10); // footer of section 3, then EOF and a trailer marker
    const i = parseStream(buildClassic({ payload }).source());
    expect(i.sections[3]).toMatchObject({ sizeFrom: "vmdesc", payloadSize: TIMER_PAYLOAD_SIZE });
  });

  test("a trailer size that does not land on the footer is not trusted", () => {
    const device = { ...TIMER_DEVICE, fields: [...TIMER_DEVICE.fields, { name: "extra", type: "uint8", size: 1 }] };
    const i = parseStream(buildClassic({ device }).source());
    expect(i.sections[3]).toMatchObject({ sizeFrom: "footer-scan", payloadSize: TIMER_PAYLOAD_SIZE });
    expect(i.notes.join("\n")).toContain(`FULL section timer at offset ${i.sections[3]!.offset}: the trailer's description (${TIMER_PAYLOAD_SIZE + 1} bytes) does not end at its footer`);
  });

  test.each([
    ["fields is not an array", { ...TIMER_DEVICE, fields: 5 }],
    ["a field is null", { ...TIMER_DEVICE, fields: [null] }],
    ["a subsection is null", { ...TIMER_DEVICE, subsections: [null] }],
    ["a subsection's fields are a string", { ...TIMER_DEVICE, subsections: [{ vmsd_name: "x", fields: "abc" }] }],
    ["an old-style size is negative", { name: "timer", instance_id: 0, size: -100000 }],
    ["an old-style size is fractional", { name: "timer", instance_id: 0, size: 2.5 }],
    ["an old-style size is huge", { name: "timer", instance_id: 0, size: 1e300 }],
  ])("a malformed trailer description (%s) falls back to the footer scan", (_what, device) => {
    const i = parseStream(buildClassic({ device }).source());
    expect(i.sections[3]).toMatchObject({ sizeFrom: "footer-scan", payloadSize: TIMER_PAYLOAD_SIZE });
  });

  test("an old-style device described by its size", () => {
    const i = parseStream(buildClassic({ device: { name: "timer", instance_id: 0, size: TIMER_PAYLOAD_SIZE } }).source());
    expect(i.sections[3]).toMatchObject({ sizeFrom: "vmdesc", payloadSize: TIMER_PAYLOAD_SIZE });
  });

  test("a trailer whose devices is not an array is still a trailer", () => {
    const b = new ClassicBuilder().header().configuration("m").eof().trailer('{"devices": "abc"}').bytes();
    expect(parse(b).trailer).toMatchObject({ devices: 0 });
  });
});

describe("prefixes: every cut is an error, never a crash", () => {
  /** Parses every listed prefix; returns the lengths accepted and the non-FormatError failures. */
  function cutAll(bytes: Uint8Array, lengths: Iterable<number>): { accepted: number[]; crashes: string[]; tried: number } {
    const accepted: number[] = [];
    const crashes: string[] = [];
    let tried = 0;
    for (const n of lengths) {
      tried++;
      try {
        parseStream(new MemorySource(bytes.subarray(0, n), FILE));
        accepted.push(n);
      } catch (e) {
        if (!(e instanceof FormatError)) crashes.push(`${n}: ${String(e)}`);
        else if (e.file !== FILE || e.offset < 0 || e.offset > n || !e.message.includes(`at offset ${e.offset}`)) crashes.push(`${n}: bad error ${e.message}`);
      }
    }
    return { accepted, crashes, tried };
  }

  function* range(from: number, to: number, step = 1): Generator<number> {
    for (let n = Math.max(0, from); n < to; n += step) yield n;
  }

  test("classic stream: every prefix length", () => {
    const c = buildClassic();
    const r = cutAll(c.bytes, range(0, c.bytes.length));
    expect(r.crashes).toEqual([]);
    // The only shorter stream that parses ends right after EOF: QEMU's trailer is optional (suppress-vmdesc).
    expect(r.accepted).toEqual([c.at("trailer")]);
    const cut = parse(c.bytes.subarray(0, c.at("trailer")));
    expect(cut.trailer).toBeNull();
    expect(cut.notes).toContain("no vmdesc trailer after EOF (QEMU only warns about this)");
  });

  test("mapped-ram stream: every prefix around the metadata, the page arrays and the tail, and a stride through the holes", () => {
    const n = small.bytes.length;
    const lengths = new Set<number>([
      ...range(0, ram.bitmapOffset + 64 + 1),
      ...range(ram.pagesOffset - 64, bios.bitmapOffset + 64 + 1),
      ...range(bios.pagesOffset - 64, n),
      ...range(0, n, 997),
    ]);
    const r = cutAll(small.bytes, lengths);
    expect(r.tried).toBeGreaterThan(7000);
    expect(r.crashes).toEqual([]);
    expect(r.accepted).toEqual([T.trailer]);
  });

  test("the full files parse", () => {
    expect(parse(small.bytes).eofOffset).toBe(T.eof);
    expect(parse(buildClassic().bytes).eofOffset).toBeGreaterThan(0);
  });

  test.each([
    ["inside the version", 6, 4, /file ends 2 bytes into the stream version \(4 bytes expected\); the file is truncated/],
    ["after the header", 8, 8, /file ends 0 bytes into the configuration section or first section/],
    ["inside the machine name", 20, 13, /file ends 7 bytes into the machine type name \(11 bytes expected\)/],
    ["inside the capabilities subsection", 0x40, 0x3d, /file ends 3 bytes into a capability name \(10 bytes expected\)/],
    ["inside the RAM size word", 92, 88, /file ends 4 bytes into the RAM size word/],
    ["inside a block name", 99, 97, /file ends 2 bytes into a RAM block name \(6 bytes expected\)/],
    ["inside a block length", 106, 103, /file ends 3 bytes into the length of RAM block pc.ram/],
    ["inside a MappedRamHeader", 111 + 10, 111 + 4, /file ends 6 bytes into the header page size of block pc.ram/],
    ["inside the bitmap", 139 + 4, 111 + 12, /block pc.ram: bitmap at 139 \(\+8 bytes\) lies past the end of the file \(143 bytes\)/],
    ["inside a page array", MiB + 100, 111 + 20, /block pc.ram: page array at 1048576 \(\+20480 bytes\) lies past the end of the file \(1048676 bytes\); the file is truncated/],
    ["inside the EOS", END + 3, END, /file ends 3 bytes into the end-of-section marker of the RAM START section/],
    ["before the START footer", END + 8, END + 8, /file ends 0 bytes into the footer or next element after START section ram/],
    ["inside SWITCHOVER_START", T.switchover + 2, T.switchover + 1, /file ends 1 bytes into the command id/],
    ["before EOF", T.eof, T.eof, /file ends 0 bytes into a section type, a command or EOF/],
    ["inside the trailer length", T.trailer + 3, T.trailer + 1, /file ends 2 bytes into the trailer length/],
    ["inside the trailer", T.trailer + 20, T.trailer + 5, /file ends 15 bytes into the trailer JSON/],
  ])("cut %s", (_where, length, offset, detail) => {
    expectFormatError(() => parse(small.bytes.subarray(0, length)), { file: FILE, offset, detail });
  });

  test("a stream offset past the end of the file", () => {
    expectFormatError(() => parse(small.bytes.subarray(0, 100), 4096), { file: FILE, offset: 0, detail: /the stream offset is past the end of the file \(100 bytes\)/ });
  });
});

describe("bad input", () => {
  test("wrong magic", () => {
    expectFormatError(() => parse(patched(small.bytes, 0, ascii("QEVX"))), { file: FILE, offset: 0, detail: /not a QEMU migration stream: magic is 0x51455658, expected 0x5145564d \("QEVM"\)/ });
  });

  test("wrong magic at a stream offset, and a based stream read from 0", () => {
    const f = smallMappedRam({ base: 4096 });
    expectFormatError(() => parse(patched(f.bytes, 4096, hex("00 00 00 00")), 4096), { file: FILE, offset: 4096, detail: /magic is 0x00000000, expected 0x5145564d/ });
    expectFormatError(() => parse(f.bytes), { file: FILE, offset: 0, detail: /magic is 0x58585858/ });
  });

  test("version 2 is obsolete, version 7 unsupported", () => {
    expectFormatError(() => parse(patched(small.bytes, 4, be32(2))), { file: FILE, offset: 4, detail: /stream version 2 is obsolete and no longer supported/ });
    expectFormatError(() => parse(patched(small.bytes, 4, be32(7))), { file: FILE, offset: 4, detail: /unsupported stream version 7, expected 3/ });
  });

  test("an implausible machine type length", () => {
    expectFormatError(() => parse(patched(small.bytes, 9, be32(0x10000))), { file: FILE, offset: 9, detail: /machine type length 65536 is implausible/ });
  });

  test("an unknown configuration subsection", () => {
    const b = new ClassicBuilder().header().configuration("pc-q35-10.0", [{ name: "configuration/bogus", fields: be32(1) }]).eof().bytes();
    expectFormatError(() => parse(b), { file: FILE, offset: 8 + 1 + 4 + 11, detail: /unknown configuration subsection "configuration\/bogus"/ });
  });

  test("a configuration subsection with version 2", () => {
    const b = patched(small.bytes, 0x34, be32(2));
    expectFormatError(() => parse(b), { file: FILE, offset: 0x18, detail: /configuration subsection configuration\/capabilities has version 2, expected 1/ });
  });

  test("implausible target page bits", () => {
    const b = new ClassicBuilder().header().configuration("virt", [{ name: "configuration/target-page-bits", fields: be32(40) }]).eof().bytes();
    expectFormatError(() => parse(b), { file: FILE, offset: b.length - 5, detail: /target page bits 40 is implausible \(10 to 16\)/ });
  });

  test("pages_offset not aligned to the page size", () => {
    const b = patched(small.bytes, ram.headerOffset + 20, be64(MiB + 512));
    expectFormatError(() => parse(b), { file: FILE, offset: ram.headerOffset + 20, detail: /block pc.ram: pages offset 1049088 is not aligned to the page size 4096/ });
  });

  test("a header page size that differs from the stream's", () => {
    const b = patched(small.bytes, ram.headerOffset + 4, be64(8192));
    expectFormatError(() => parse(b), { file: FILE, offset: ram.headerOffset + 4, detail: /block pc.ram: header page size 8192 differs from the stream's page size 4096/ });
  });

  test("a bitmap bit set past the end of a block", () => {
    // pc.ram has 5 pages: bits 0, 1 and 4 are set (0x13); set bit 6 as well
    const b = patched(small.bytes, ram.bitmapOffset, [0x53]);
    expectFormatError(() => parse(b), { file: FILE, offset: ram.bitmapOffset, detail: /block pc.ram: bitmap bit 6 is set, but the block has only 5 pages/ });
    // pc.bios has 2 pages: bit 63, in the last byte of its bitmap word
    const b2 = patched(small.bytes, bios.bitmapOffset + 7, [0x80]);
    expectFormatError(() => parse(b2), { file: FILE, offset: bios.bitmapOffset + 7, detail: /block pc.bios: bitmap bit 63 is set, but the block has only 2 pages/ });
  });

  test("blocks that add up to more than the RAM total", () => {
    const b = patched(small.bytes, small.memSizeOffset, be64(3 * PAGE + 4));
    expectFormatError(() => parse(b), { file: FILE, offset: ram.entryOffset, detail: /RAM blocks add up to 20480 bytes, more than the total of 12288 announced at offset 88/ });
    const b2 = patched(small.bytes, small.memSizeOffset, be64(6 * PAGE + 4));
    expectFormatError(() => parse(b2), { file: FILE, offset: bios.entryOffset, detail: /RAM blocks add up to 28672 bytes, more than the total of 24576 announced at offset 88/ });
  });

  test("a RAM total larger than the blocks", () => {
    const b = patched(small.bytes, small.memSizeOffset, be64(8 * PAGE + 4));
    expectFormatError(() => parse(b), { file: FILE, offset: END, detail: /expected another RAM block: the blocks so far add up to 28672 bytes, less than the total of 32768 announced at offset 88/ });
  });

  test("the RAM section must open with MEM_SIZE", () => {
    const b = patched(small.bytes, small.memSizeOffset, be64(7 * PAGE + 0x10));
    expectFormatError(() => parse(b), { file: FILE, offset: small.memSizeOffset, detail: /the RAM section must open with MEM_SIZE \(0x004\), found flags 0x010/ });
  });

  test("a page array past the end of the file", () => {
    const b = patched(small.bytes, bios.headerOffset + 20, be64(3 * MiB));
    expectFormatError(() => parse(b), { file: FILE, offset: bios.headerOffset + 20, detail: new RegExp(`block pc.bios: page array at ${3 * MiB} \\(\\+8192 bytes\\) lies past the end of the file \\(${small.bytes.length} bytes\\)`) });
  });

  test("a bitmap past the end of the file", () => {
    const b = patched(small.bytes, ram.headerOffset + 12, be64(small.bytes.length - 4));
    expectFormatError(() => parse(b), { file: FILE, offset: ram.headerOffset + 12, detail: /block pc.ram: bitmap at \d+ \(\+8 bytes\) lies past the end of the file/ });
  });

  test("a bitmap that overlaps the page array", () => {
    const b = patched(small.bytes, ram.headerOffset + 12, be64(ram.pagesOffset + PAGE));
    expectFormatError(() => parse(b), { file: FILE, offset: ram.headerOffset + 12, detail: /block pc.ram: bitmap \[1052672, \+8\) overlaps the page array \[1048576, \+20480\)/ });
  });

  test("an offset too large for a JS number", () => {
    const b = patched(small.bytes, ram.headerOffset + 20, hex("ff ff ff ff ff ff f0 00"));
    expectFormatError(() => parse(b), { file: FILE, offset: ram.headerOffset + 20, detail: /the pages offset of block pc.ram is 0xfffffffffffff000, too large to be a size or offset/ });
  });

  test("mapped-ram header version 2", () => {
    const b = patched(small.bytes, ram.headerOffset, be32(2));
    expectFormatError(() => parse(b), { file: FILE, offset: ram.headerOffset, detail: /block pc.ram: mapped-ram header version 2 is not supported \(at most 1\)/ });
  });

  test("an unknown section type byte", () => {
    const b = patched(small.bytes, T.switchover, [0x09]);
    expectFormatError(() => parse(b), { file: FILE, offset: T.switchover, detail: /unknown section type 0x09; expected a section \(0x01-0x04\), a command \(0x08\) or EOF \(0x00\)/ });
  });

  test("an unknown command", () => {
    const b = patched(small.bytes, T.switchover + 1, [0x00, 0x63]);
    expectFormatError(() => parse(b), { file: FILE, offset: T.switchover, detail: /unknown command 99/ });
  });

  test("PAGE (0x008) where a mapped-ram stream has EOS", () => {
    expectFormatError(() => parse(patched(small.bytes, T.eos, be64(0x008))), {
      file: FILE,
      offset: T.eos,
      detail: /unexpected RAM flags 0x008 in the RAM START section; a mapped-ram stream carries only EOS \(0x010\) here/,
    });
    expectFormatError(() => parse(patched(small.bytes, T.endEos, be64(0x200))), { file: FILE, offset: T.endEos, detail: /unexpected RAM flags 0x200 in the RAM END section/ });
  });

  test("a footer with the wrong section id", () => {
    expectFormatError(() => parse(patched(small.bytes, T.startFooter + 1, be32(3))), {
      file: FILE,
      offset: T.startFooter,
      detail: /footer names section id 3, but the section being closed is 2 \(ram\)/,
    });
    expectFormatError(() => parse(patched(small.bytes, T.endFooter + 1, be32(7))), { file: FILE, offset: T.endFooter, detail: /footer names section id 7, but the section being closed is 2/ });
  });

  test("a missing footer after a stream that has footers", () => {
    expectFormatError(() => parse(patched(small.bytes, T.endFooter, [0x00])), { file: FILE, offset: T.endFooter, detail: /expected the footer \(0x7e\) of END section ram \(id 2\)/ });
  });

  test("a PART section for a section id no START opened", () => {
    const b = new ClassicBuilder().header().configuration("m").part(9).eos().footer(9).eof().bytes();
    expectFormatError(() => parse(b), { file: FILE, offset: 8 + 1 + 4 + 1, detail: /PART section refers to section id 9, which no START section opened/ });
  });

  test("a RAM section with version 5, and a second RAM START", () => {
    expectFormatError(() => parse(patched(small.bytes, 71 + 13, be32(5))), { file: FILE, offset: 71, detail: /RAM section version 5 is not supported \(expected 4\)/ });
    const b = new ClassicBuilder().header().configuration("m").start(2, "ram", 0, 4).memSize([]).eos().footer(2).start(3, "ram", 0, 4).bytes();
    expectFormatError(() => parse(b), { file: FILE, offset: b.length - 17, detail: /a second RAM START section \(id 3\)/ });
  });

  test("the trailer marker is wrong, or its JSON is not an object", () => {
    expectFormatError(() => parse(patched(small.bytes, T.trailer, [0x07])), { file: FILE, offset: T.trailer, detail: /expected the vmdesc trailer \(0x06\) or the end of the file after EOF, found 0x07/ });
    expectFormatError(() => parse(patched(small.bytes, T.trailer + 5, ascii("["))), { file: FILE, offset: T.trailer + 5, detail: /the vmdesc trailer is not a JSON object/ });
  });

  test("a block name listed twice", () => {
    const f = buildMappedRam({ blocks: [{ name: "pc.ram", pages: 1 }, { name: "pc.ram", pages: 1 }] });
    const second = f.layout.blocks[1]!.entryOffset;
    expectFormatError(() => parse(f.bytes), { file: FILE, offset: second, detail: /RAM block pc.ram is listed twice/ });
  });

  test("a block length that is not a multiple of the page size", () => {
    const b = patched(small.bytes, ram.entryOffset + 7, be64(5 * PAGE + 1));
    expectFormatError(() => parse(b), { file: FILE, offset: ram.entryOffset + 7, detail: /RAM block pc.ram: length 20481 is not a multiple of the page size 4096/ });
  });
});

describe("bad classic input", () => {
  const head = () => new ClassicBuilder().header().configuration("pc-i440fx-9.2").start(2, "ram", 0, 4).memSize([{ name: "pc.ram", length: 4 * PAGE }]);

  test("a page record naming a block the list does not have", () => {
    const c = head().page("pc.ram", 0, 1).mark("rec").page("nosuch", 1, 2).eos().footer(2).eof();
    expectFormatError(() => parse(c.bytes()), { file: FILE, offset: c.at("rec"), detail: /page record names RAM block "nosuch", which the block list does not have/ });
  });

  test("CONTINUE before any block was named", () => {
    const c = head().mark("rec").zero(null, 0).eos().footer(2).eof();
    expectFormatError(() => parse(c.bytes()), { file: FILE, offset: c.at("rec"), detail: /page record continues a block, but no block was named before/ });
  });

  test("a page past the end of its block", () => {
    const c = head().mark("rec").zero("pc.ram", 4).eos().footer(2).eof();
    expectFormatError(() => parse(c.bytes()), { file: FILE, offset: c.at("rec"), detail: /page at 0x4000 is outside RAM block pc.ram \(16384 bytes\)/ });
  });

  test("XBZRLE and HOOK records are refused", () => {
    const c = head().mark("rec").flags(0x040).eos();
    expectFormatError(() => parse(c.bytes()), { file: FILE, offset: c.at("rec"), detail: /unsupported RAM flags 0x040 in a classic page record/ });
    const c2 = head().page("pc.ram", 0, 1).mark("rec").flags(0x1000 | 0x080 | 0x020).eos();
    expectFormatError(() => parse(c2.bytes()), { file: FILE, offset: c2.at("rec"), detail: /unsupported RAM flags 0x0a0/ });
  });

  test("page data cut short", () => {
    const b = head().page("pc.ram", 0, 1).bytes();
    const cut = b.subarray(0, b.length - 100);
    expectFormatError(() => parse(cut), { file: FILE, offset: cut.length - (PAGE - 100), detail: /file ends 3996 bytes into the data of page 0 of pc.ram \(4096 bytes expected\); the file is truncated/ });
  });

  test("a device section with neither footers nor a trailer cannot be stepped over", () => {
    const c = new ClassicBuilder().header().configuration("m").start(2, "ram", 0, 4).memSize([]).eos().mark("full").full(3, "dev", 0, 1).raw(new Uint8Array(10)).eof();
    expectFormatError(() => parse(c.bytes()), { file: FILE, offset: c.at("full"), detail: /cannot find the end of FULL section dev: the stream has no section footers and the trailer does not describe it/ });
  });

  test("a device section whose footer never comes", () => {
    const c = new ClassicBuilder().header().configuration("m").start(2, "ram", 0, 4).memSize([]).eos().footer(2).mark("full").full(3, "dev", 0, 1).raw(new Uint8Array(10)).eof();
    expectFormatError(() => parse(c.bytes()), { file: FILE, offset: c.at("full"), detail: /cannot find the end of FULL section dev \(id 3\): no footer follows it; the file is truncated or corrupt/ });
  });

  test("a stream without footers and without device sections parses", () => {
    const b = head().page("pc.ram", 3, 9).eos().end(2).eos().eof().bytes();
    const i = parse(b);
    expect(i.footers).toBe(false);
    expect(i.blocks[0]).toMatchObject({ present: 1, zero: 0, absent: 3 });
    expect(i.sections.map((s) => s.type)).toEqual(["START", "END"]);
  });
});
