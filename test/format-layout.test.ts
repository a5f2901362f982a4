// Layout arithmetic against the worked example of the format notes (§4.3, §8.1, §8.2), the offset= case,
// a bitmap that crosses a 1 MiB boundary, and the whole example written and read back through a sparse
// image (1 GiB of RAM, none of it allocated).
import { describe, expect, test } from "bun:test";
import { bitmapSize, blockAt, layoutMappedRam, roundUp, type BlockSpec } from "../src/format/layout.ts";
import { writeMappedRamHead, writeMappedRamTail, type MappedRamPlan } from "../src/format/mapped-ram-stream.ts";
import { parseStream } from "../src/format/parse.ts";
import { SparseImage, ascii, concat, hex, toHex } from "../harness/streams.ts";
import { GiB, KiB, MiB } from "../harness/units.ts";

const WORKED_BLOCKS: BlockSpec[] = [
  { name: "pc.ram", length: 0x40000000 },
  { name: "0000:00:01.0/vga.vram", length: 0x01000000 },
  { name: "pc.bios", length: 0x00040000 },
];
/** The first block entry follows header (8), configuration (63), START header (17) and MEM_SIZE (8). */
const WORKED_FIRST_ENTRY = 0x60;

const workedPlan = (base = 0): MappedRamPlan => ({
  machineType: "pc-q35-10.0",
  blocks: WORKED_BLOCKS,
  pageSize: 4096,
  base,
  ramSectionId: 2,
  switchoverStart: true,
});

describe("bitmap size", () => {
  test.each([
    [0, 0],
    [1, 8],
    [64, 8],
    [65, 16],
    [128, 16],
    [129, 24],
    [262144, 0x8000], // pc.ram 1 GiB
    [4096, 0x200], // vga.vram 16 MiB
    [64 * 1024 * 128, 0x100000], // 32 GiB: exactly 1 MiB of bitmap
  ])("%d pages -> %d bytes (whole 64-bit words)", (pages, bytes) => {
    expect(bitmapSize(pages)).toBe(bytes);
  });

  test("roundUp", () => {
    expect(roundUp(0, MiB)).toBe(0);
    expect(roundUp(1, MiB)).toBe(MiB);
    expect(roundUp(MiB, MiB)).toBe(MiB);
    expect(roundUp(0x808b, MiB)).toBe(0x100000);
    expect(roundUp(0x4_0000_0001, MiB)).toBe(0x4_0010_0000);
  });
});

describe("worked example (§8.1/§8.2)", () => {
  const layout = layoutMappedRam(WORKED_FIRST_ENTRY, WORKED_BLOCKS, 4096);

  test("block 1 pc.ram: header 0x6f, bitmap 0x8b (+0x8000), pages 0x100000", () => {
    expect(layout.blocks[0]).toMatchObject({
      name: "pc.ram",
      entryOffset: 0x60,
      headerOffset: 0x6f,
      bitmapOffset: 0x8b,
      bitmapSize: 0x8000,
      pagesOffset: 0x100000,
      pages: 262144,
    });
  });

  test("block 2 vga.vram: entry 0x40100000, header 0x4010001e, bitmap 0x4010003a (+0x200), pages 0x40200000", () => {
    expect(layout.blocks[1]).toMatchObject({
      entryOffset: 0x40100000,
      headerOffset: 0x4010001e,
      bitmapOffset: 0x4010003a,
      bitmapSize: 0x200,
      pagesOffset: 0x40200000,
      pages: 4096,
    });
  });

  test("block 3 pc.bios: entry 0x41200000, header 0x41200010, bitmap 0x4120002c (+8), pages 0x41300000", () => {
    expect(layout.blocks[2]).toMatchObject({
      entryOffset: 0x41200000,
      headerOffset: 0x41200010,
      bitmapOffset: 0x4120002c,
      bitmapSize: 8,
      pagesOffset: 0x41300000,
      pages: 64,
    });
  });

  test("the stream continues (EOS) at 0x41340000", () => {
    expect(layout.end).toBe(0x41340000);
  });

  test("every pages offset is 1 MiB aligned and every bitmap sits right after its header", () => {
    for (const b of layout.blocks) {
      expect(b.pagesOffset % MiB).toBe(0);
      expect(b.bitmapOffset).toBe(b.headerOffset + 28);
      expect(b.bitmapOffset + b.bitmapSize).toBeLessThanOrEqual(b.pagesOffset);
    }
  });

  test("blockAt counts the name in UTF-8 bytes", () => {
    expect(blockAt(0, { name: "é", length: 4096 }, 4096).headerOffset).toBe(1 + 2 + 8);
  });

  test("a length that is not a multiple of the page size is refused", () => {
    expect(() => layoutMappedRam(0, [{ name: "odd", length: 4096 + 512 }], 4096)).toThrow(/block odd: length 4608 is not a multiple of the page size 4096/);
  });
});

describe("offset= (stream base 0x1000)", () => {
  const at0 = layoutMappedRam(WORKED_FIRST_ENTRY, WORKED_BLOCKS, 4096);
  const at4k = layoutMappedRam(0x1000 + WORKED_FIRST_ENTRY, WORKED_BLOCKS, 4096);

  test("first header at 0x106f, bitmap 0x108b, pages still 0x100000", () => {
    expect(at4k.blocks[0]).toMatchObject({ headerOffset: 0x106f, bitmapOffset: 0x108b, pagesOffset: 0x100000 });
  });

  test("everything from 0x100000 on is where it is with offset 0", () => {
    expect(at4k.blocks.slice(1)).toEqual(at0.blocks.slice(1));
    expect(at4k.end).toBe(at0.end);
  });

  test("the writer puts the magic at 0x1000 and the first header at 0x106f", () => {
    const img = new SparseImage();
    const layout = writeMappedRamHead(img, workedPlan(0x1000));
    expect(layout.blocks[0]!.headerOffset).toBe(0x106f);
    expect(toHex(img.readAt(0x1000, 8))).toBe("51 45 56 4d 00 00 00 03");
    expect(img.readAt(0, 0x1000).every((b) => b === 0)).toBe(true); // the writer never touches the prefix
    expect(toHex(img.readAt(0x106f + 12, 16))).toBe("00 00 00 00 00 00 10 8b 00 00 00 00 00 10 00 00");
  });
});

describe("a bitmap that crosses 1 MiB", () => {
  test("a 32 GiB block has a 1 MiB bitmap, so its pages start at 2 MiB", () => {
    const [b] = layoutMappedRam(WORKED_FIRST_ENTRY, [{ name: "pc.ram", length: 32 * GiB }], 4096).blocks;
    expect(b!.bitmapSize).toBe(MiB);
    expect(b!.bitmapOffset).toBe(0x8b);
    expect(b!.pagesOffset).toBe(2 * MiB);
  });

  test("a 31 GiB block's bitmap still fits below 1 MiB", () => {
    const [b] = layoutMappedRam(WORKED_FIRST_ENTRY, [{ name: "pc.ram", length: 31 * GiB }], 4096).blocks;
    expect(b!.bitmapOffset + b!.bitmapSize).toBeLessThan(MiB);
    expect(b!.pagesOffset).toBe(MiB);
  });

  test("the block after a 40 GiB block starts at its page array's end and rounds again", () => {
    const l = layoutMappedRam(WORKED_FIRST_ENTRY, [{ name: "pc.ram", length: 40 * GiB }, { name: "pc.bios", length: 256 * KiB }], 4096);
    expect(l.blocks[0]!.pagesOffset).toBe(2 * MiB);
    expect(l.blocks[1]!.entryOffset).toBe(2 * MiB + 40 * GiB);
    expect(l.blocks[1]!.pagesOffset).toBe(3 * MiB + 40 * GiB);
    expect(l.end).toBe(3 * MiB + 40 * GiB + 256 * KiB);
  });
});

describe("the worked example written and read back (sparse)", () => {
  const img = new SparseImage("worked.mig");
  const plan = workedPlan();
  const layout = writeMappedRamHead(img, plan);
  const bitmaps = layout.blocks.map((l) => new Uint8Array(l.bitmapSize));
  // pc.bios: pages 0, 1 and 9 present (§8.2's bitmap example); pc.ram: pages 0 and 262143
  bitmaps[2]!.set([0x03, 0x02]);
  bitmaps[0]![0] = 0x01;
  bitmaps[0]![0x7fff] = 0x80;
  writeMappedRamTail(img, plan, layout, bitmaps);

  test("bytes 0x00..0x8a are the worked example's", () => {
    const want = concat(
      hex("51 45 56 4d 00 00 00 03"),
      hex("07 00 00 00 0b"),
      ascii("pc-q35-10.0"),
      hex("05 1a"),
      ascii("configuration/capabilities"),
      hex("00 00 00 01 00 00 00 01 0a"),
      ascii("mapped-ram"),
      hex("01 00 00 00 02 03"),
      ascii("ram"),
      hex("00 00 00 00 00 00 00 04"),
      hex("00 00 00 00 41 04 00 04"),
      hex("06"),
      ascii("pc.ram"),
      hex("00 00 00 00 40 00 00 00"),
      hex("00 00 00 01 00 00 00 00 00 00 10 00 00 00 00 00 00 00 00 8b 00 00 00 00 00 10 00 00"),
    );
    expect(want.length).toBe(0x8b);
    expect(toHex(img.readAt(0, 0x8b))).toBe(toHex(want));
  });

  test("block 2 and block 3 entries sit at 0x40100000 and 0x41200000", () => {
    expect(toHex(img.readAt(0x40100000, 0x3a))).toBe(
      toHex(
        concat(
          hex("15"),
          ascii("0000:00:01.0/vga.vram"),
          hex("00 00 00 00 01 00 00 00"),
          hex("00 00 00 01 00 00 00 00 00 00 10 00 00 00 00 00 40 10 00 3a 00 00 00 00 40 20 00 00"),
        ),
      ),
    );
    expect(toHex(img.readAt(0x41200000, 0x2c))).toBe(
      toHex(concat(hex("07"), ascii("pc.bios"), hex("00 00 00 00 00 04 00 00"), hex("00 00 00 01 00 00 00 00 00 00 10 00 00 00 00 00 41 20 00 2c 00 00 00 00 41 30 00 00"))),
    );
  });

  test("pc.bios bitmap at 0x4120002c is 03 02 00 00 00 00 00 00", () => {
    expect(toHex(img.readAt(0x4120002c, 8))).toBe("03 02 00 00 00 00 00 00");
  });

  test("the tail at 0x41340000: EOS, START footer, SWITCHOVER_START, RAM END, EOF, trailer", () => {
    expect(toHex(img.readAt(0x41340000, 37))).toBe(
      "00 00 00 00 00 00 00 10 7e 00 00 00 02 08 00 0b 00 00 03 00 00 00 02 00 00 00 00 00 00 00 10 7e 00 00 00 02 00",
    );
    expect(img.readAt(0x41340000 + 37, 1)[0]).toBe(0x06);
  });

  test("nothing is written inside the page arrays or the padding", () => {
    for (const e of img.extents) {
      for (const b of layout.blocks) {
        const from = b.bitmapOffset + b.bitmapSize;
        const to = b.pagesOffset + b.length;
        expect(e.offset + e.bytes.length <= from || e.offset >= to).toBe(true);
      }
    }
  });

  test("parsing it gives back the layout, the bitmaps' counts and the tail", () => {
    const info = parseStream(img, { keepBitmaps: true });
    expect(info.ramFormat).toBe("mapped-ram");
    expect(info.ramTotal).toBe(0x41040000);
    expect(info.blocks.map((b) => [b.name, b.mapped!.headerOffset, b.mapped!.bitmapOffset, b.mapped!.pagesOffset, b.present])).toEqual([
      ["pc.ram", 0x6f, 0x8b, 0x100000, 2],
      ["0000:00:01.0/vga.vram", 0x4010001e, 0x4010003a, 0x40200000, 0],
      ["pc.bios", 0x41200010, 0x4120002c, 0x41300000, 3],
    ]);
    expect(info.blocks[2]!.absent).toBe(61);
    expect(info.blocks[2]!.bitmap).toEqual(hex("03 02 00 00 00 00 00 00"));
    expect(info.sections.map((s) => [s.type, s.offset])).toEqual([
      ["START", 0x47],
      ["COMMAND", 0x4134000d],
      ["END", 0x41340012],
    ]);
    expect(info.eofOffset).toBe(0x41340024);
    expect(info.trailer?.offset).toBe(0x41340025);
    expect(info.fileSize).toBe(img.size);
  });
});
