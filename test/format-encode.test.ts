// Golden bytes for every piece of the stream ramsnap encodes, checked against the worked example of
// the format notes (§8.2) and QEMU's constants, plus the decode side of the configuration subsections.
import { describe, expect, test } from "bun:test";
import { ByteBuilder, MemorySink, MemorySource, StreamWriter } from "../src/format/bytes.ts";
import { MIG_CMD_SWITCHOVER_START, Tag } from "../src/format/constants.ts";
import {
  describeConfiguration,
  encodeCommand,
  encodeConfiguration,
  encodeEmptyRamSection,
  encodeEos,
  encodeFileHeader,
  encodeFooter,
  encodeMappedRamHeader,
  encodeMemSize,
  encodeSectionContinuation,
  encodeSectionHeader,
  encodeVmdesc,
  type Configuration,
} from "../src/format/encode.ts";
import { machineSendsSwitchover } from "../src/format/mapped-ram-stream.ts";
import { parseStream } from "../src/format/parse.ts";
import { ascii, concat, hex, toHex } from "../harness/streams.ts";

const enc = (f: (b: ByteBuilder) => unknown): Uint8Array => {
  const b = new ByteBuilder();
  f(b);
  return b.finish();
};

/** Bytes 0x08..0x46 of the worked example: configuration section for pc-q35-10.0 with mapped-ram. */
const WORKED_CONFIGURATION = concat(
  hex("07 00 00 00 0b"),
  ascii("pc-q35-10.0"),
  hex("05 1a"),
  ascii("configuration/capabilities"),
  hex("00 00 00 01 00 00 00 01 0a"),
  ascii("mapped-ram"),
);

describe("file header", () => {
  test("is QEVM then version 3", () => {
    expect(toHex(enc(encodeFileHeader))).toBe("51 45 56 4d 00 00 00 03");
  });
});

describe("configuration section", () => {
  test("pc-q35-10.0 with mapped-ram matches the worked example bytes 0x08..0x46", () => {
    expect(WORKED_CONFIGURATION.length).toBe(0x47 - 0x08);
    const got = enc((b) => encodeConfiguration(b, { machineType: "pc-q35-10.0", capabilities: ["mapped-ram"] }));
    expect(toHex(got)).toBe(toHex(WORKED_CONFIGURATION));
  });

  test("capabilities are written in QEMU's enum order, whatever order they are given in", () => {
    const got = enc((b) => encodeConfiguration(b, { machineType: "m", capabilities: ["mapped-ram", "x-ignore-shared"] }));
    const want = concat(hex("07 00 00 00 01"), ascii("m"), hex("05 1a"), ascii("configuration/capabilities"), hex("00 00 00 01 00 00 00 02 0f"), ascii("x-ignore-shared"), hex("0a"), ascii("mapped-ram"));
    expect(toHex(got)).toBe(toHex(want));
  });

  test("no validated capability: no capabilities subsection at all", () => {
    const got = enc((b) => encodeConfiguration(b, { machineType: "pc-q35-9.2", capabilities: [] }));
    expect(toHex(got)).toBe(toHex(concat(hex("07 00 00 00 0a"), ascii("pc-q35-9.2"))));
  });

  test("a capability QEMU does not validate is refused", () => {
    expect(() => enc((b) => encodeConfiguration(b, { machineType: "m", capabilities: ["multifd"] }))).toThrow(/not validated by QEMU: multifd/);
  });

  test("target-page-bits comes first, uuid last, each with subsection version 1", () => {
    const uuid = hex("11111111 2222 3333 4444 555555555555");
    const got = enc((b) => encodeConfiguration(b, { machineType: "virt-10.0", capabilities: ["mapped-ram"], targetPageBits: 12, uuid }));
    const want = concat(
      hex("07 00 00 00 09"),
      ascii("virt-10.0"),
      hex("05 1e"),
      ascii("configuration/target-page-bits"),
      hex("00 00 00 01 00 00 00 0c"),
      hex("05 1a"),
      ascii("configuration/capabilities"),
      hex("00 00 00 01 00 00 00 01 0a"),
      ascii("mapped-ram"),
      hex("05 12"),
      ascii("configuration/uuid"),
      hex("00 00 00 01"),
      uuid,
    );
    expect(toHex(got)).toBe(toHex(want));
  });

  test("a UUID must be 16 bytes", () => {
    expect(() => enc((b) => encodeConfiguration(b, { machineType: "m", capabilities: [], uuid: new Uint8Array(15) }))).toThrow(RangeError);
  });

  test("target-page-bits and uuid subsections decode back to what was encoded", () => {
    const config: Configuration = {
      machineType: "virt-10.0",
      capabilities: ["x-ignore-shared", "mapped-ram"],
      targetPageBits: 14,
      uuid: hex("00112233445566778899aabbccddeeff"),
    };
    // header, configuration, EOF: the smallest stream that parses
    const bytes = concat(enc(encodeFileHeader), enc((b) => encodeConfiguration(b, config)), [Tag.EOF]);
    const info = parseStream(new MemorySource(bytes, "cfg.mig"));
    expect(info.machineType).toBe("virt-10.0");
    expect(info.targetPageBits).toBe(14);
    expect(info.pageSize).toBe(16384);
    expect(info.capabilities).toEqual(["x-ignore-shared", "mapped-ram"]);
    expect(info.uuid).toBe("00112233-4455-6677-8899-aabbccddeeff");
    expect(info.eofOffset).toBe(bytes.length - 1);
    expect(info.ramFormat).toBeNull();
  });

  test("without target-page-bits the page size stays 4096 and there is no uuid", () => {
    const bytes = concat(enc(encodeFileHeader), WORKED_CONFIGURATION, [Tag.EOF]);
    const info = parseStream(new MemorySource(bytes));
    expect(info.targetPageBits).toBeUndefined();
    expect(info.pageSize).toBe(4096);
    expect(info.uuid).toBeUndefined();
    expect(info.capabilities).toEqual(["mapped-ram"]);
  });
});

describe("sections and records", () => {
  test("RAM START header matches the worked example bytes 0x47..0x57 (section id 2)", () => {
    const got = enc((b) => encodeSectionHeader(b, Tag.SectionStart, 2, "ram", 0, 4));
    expect(toHex(got)).toBe("01 00 00 00 02 03 72 61 6d 00 00 00 00 00 00 00 04");
  });

  test("FULL header, PART/END continuation and footer", () => {
    expect(toHex(enc((b) => encodeSectionHeader(b, Tag.SectionFull, 0x01020304, "timer", 7, 2)))).toBe(
      toHex(concat(hex("04 01 02 03 04 05"), ascii("timer"), hex("00 00 00 07 00 00 00 02"))),
    );
    expect(toHex(enc((b) => encodeSectionContinuation(b, Tag.SectionPart, 2)))).toBe("02 00 00 00 02");
    expect(toHex(enc((b) => encodeFooter(b, 0xdeadbeef)))).toBe("7e de ad be ef");
  });

  test("MEM_SIZE word of the worked example: total 0x41040000 | 0x004", () => {
    expect(toHex(enc((b) => encodeMemSize(b, 0x41040000)))).toBe("00 00 00 00 41 04 00 04");
  });

  test("MEM_SIZE keeps totals above 4 GiB exact", () => {
    expect(toHex(enc((b) => encodeMemSize(b, 0x3_0000_0000 + 0x1000)))).toBe("00 00 00 03 00 00 10 04");
  });

  test("EOS is be64 0x10", () => {
    expect(toHex(enc(encodeEos))).toBe("00 00 00 00 00 00 00 10");
  });

  test("MappedRamHeader is 28 packed big-endian bytes (worked example block 1, 0x6f..0x8a)", () => {
    const got = enc((b) => encodeMappedRamHeader(b, { version: 1, pageSize: 0x1000, bitmapOffset: 0x8b, pagesOffset: 0x100000 }));
    expect(got.length).toBe(28);
    expect(toHex(got)).toBe("00 00 00 01 00 00 00 00 00 00 10 00 00 00 00 00 00 00 00 8b 00 00 00 00 00 10 00 00");
  });

  test("MappedRamHeader with offsets above 4 GiB", () => {
    const got = enc((b) => encodeMappedRamHeader(b, { version: 1, pageSize: 0x10000, bitmapOffset: 0x1_2345_6789, pagesOffset: 0x2_0010_0000 }));
    expect(toHex(got)).toBe("00 00 00 01 00 00 00 00 00 01 00 00 00 00 00 01 23 45 67 89 00 00 00 02 00 10 00 00");
  });

  test("SWITCHOVER_START command is 08 00 0b 00 00", () => {
    expect(MIG_CMD_SWITCHOVER_START).toBe(11);
    expect(toHex(enc((b) => encodeCommand(b, MIG_CMD_SWITCHOVER_START)))).toBe("08 00 0b 00 00");
  });

  test("a command with a payload carries its length", () => {
    expect(toHex(enc((b) => encodeCommand(b, 2, hex("00 00 00 05"))))).toBe("08 00 02 00 04 00 00 00 05");
  });

  test("RAM END section is 18 bytes: 03 S EOS 7e S", () => {
    const got = enc((b) => encodeEmptyRamSection(b, Tag.SectionEnd, 2));
    expect(got.length).toBe(18);
    expect(toHex(got)).toBe("03 00 00 00 02 00 00 00 00 00 00 00 10 7e 00 00 00 02");
  });

  test("RAM PART section is the same with type 02", () => {
    expect(toHex(enc((b) => encodeEmptyRamSection(b, Tag.SectionPart, 5)))).toBe("02 00 00 00 05 00 00 00 00 00 00 00 10 7e 00 00 00 05");
  });

  test("vmdesc trailer: 06, be32 length of the UTF-8 JSON, the JSON", () => {
    const got = enc((b) => encodeVmdesc(b, '{"a": "é"}'));
    expect(toHex(got)).toBe(toHex(concat(hex("06 00 00 00 0b"), hex("7b 22 61 22 3a 20 22 c3 a9 22 7d"))));
  });

  test("the configuration description is QEMU-style compact JSON with page_size and no devices", () => {
    const json = describeConfiguration({ machineType: "pc-q35-10.0", capabilities: ["mapped-ram"] }, 4096);
    expect(json).not.toContain("\n");
    expect(json).toStartWith('{"configuration": {"vmsd_name": "configuration", "version": 1, "fields": [');
    const v = JSON.parse(json);
    expect(v.page_size).toBe(4096);
    expect(v.devices).toEqual([]);
    expect(v.configuration.fields[1]).toEqual({ name: "name", type: "buffer", size: 11 });
    expect(v.configuration.subsections[0].vmsd_name).toBe("configuration/capabilities");
    // Verbatim what QEMU 10.0.2 writes for this configuration (read from a real q35 mapped-ram save).
    expect(JSON.stringify(v.configuration)).toBe(
      JSON.stringify(
        JSON.parse(
          '{"vmsd_name": "configuration", "version": 1, "fields": [{"name": "len", "type": "uint32", "size": 4}, {"name": "name", "type": "buffer", "size": 11}], ' +
            '"subsections": [{"vmsd_name": "configuration/capabilities", "version": 1, "fields": [{"name": "caps_count", "type": "uint32", "size": 4}, ' +
            '{"name": "capabilities", "type": "capability", "size": 11}]}]}',
        ),
      ),
    );
    expect(json).toContain('{"name": "capabilities", "type": "capability", "size": 11}]}]}, "page_size": 4096');
    expect(JSON.parse(describeConfiguration({ machineType: "x", capabilities: [] }, 65536)).configuration.subsections).toBeUndefined();
  });
});

describe("ByteBuilder and StreamWriter", () => {
  test("counted strings longer than 255 bytes and unsafe be64 numbers are refused", () => {
    expect(() => new ByteBuilder().str8("x".repeat(256))).toThrow(RangeError);
    expect(new ByteBuilder().str8("x".repeat(255)).length).toBe(256);
    expect(() => new ByteBuilder().be64(2 ** 53)).toThrow(/not a safe integer/);
    expect(toHex(new ByteBuilder().be64(2n ** 63n).finish())).toBe("80 00 00 00 00 00 00 00");
  });

  test("the builder grows past its first buffer without losing bytes", () => {
    const b = new ByteBuilder();
    for (let i = 0; i < 1000; i++) b.be32(i);
    const out = b.finish();
    expect(out.length).toBe(4000);
    expect(new DataView(out.buffer).getUint32(4 * 999)).toBe(999);
    expect(new DataView(out.buffer).getUint32(4 * 300)).toBe(300);
  });

  test("the writer buffers, seeks (flushing first) and leaves holes as zeros", () => {
    const sink = new MemorySink();
    const w = new StreamWriter(sink, 4);
    w.write((b) => b.be32(0x11223344));
    expect(w.position).toBe(8);
    expect(sink.bytes().length).toBe(0); // nothing written yet
    w.seek(16);
    expect(toHex(sink.bytes())).toBe("00 00 00 00 11 22 33 44");
    w.write((b) => b.u8(0xaa));
    w.flush();
    expect(toHex(sink.bytes())).toBe("00 00 00 00 11 22 33 44 00 00 00 00 00 00 00 00 aa");
    expect(w.position).toBe(17);
  });

  test("MemorySink.truncate grows with zeros and shrinks", () => {
    const sink = new MemorySink();
    sink.writeAt(0, hex("01 02 03 04"));
    sink.truncate(2);
    expect(toHex(sink.bytes())).toBe("01 02");
    sink.truncate(5000);
    const b = sink.bytes();
    expect(b.length).toBe(5000);
    expect(b[2]).toBe(0); // the truncated bytes do not come back
    expect(b[4999]).toBe(0);
  });
});

describe("machineSendsSwitchover", () => {
  test.each([
    ["pc-q35-10.0", true],
    ["pc-i440fx-11.2", true],
    ["pc-q35-9.2", false],
    ["virt-8.2", false],
    ["q35", true],
  ])("%s -> %p", (m, want) => {
    expect(machineSendsSwitchover(m)).toBe(want);
  });
});
