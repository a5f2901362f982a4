// verify, diff and convert's refusals (issue 4), on files QEMU 10 wrote and on hand-built streams. Damage is
// done to copies at exact offsets (harness/corrupt.ts), and each report must name where it was done.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, linkSync, openSync, closeSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { diff } from "../src/diff.ts";
import { OptionError, RefusedError } from "../src/errors.ts";
import { FormatError } from "../src/format/errors.ts";
import { readPageMap } from "../src/format/pages.ts";
import { inspectFile } from "../src/inspect.ts";
import { MainFile } from "../src/io/main-file.ts";
import { convert } from "../src/convert/index.ts";
import { verify } from "../src/verify.ts";
import { clearBit, copy, flipByte, overwrite, readRange, truncatedCopy } from "../harness/corrupt.ts";
import { type MigrateOptions, migrateToFile, requireQemu, shmBytes, startGuest, stopAllGuests } from "../harness/qemu.ts";
import { requireDirectIo, scratchDir, type Scratch } from "../harness/scratch.ts";
import { ClassicBuilder, TIMER_DEVICE, TIMER_PAYLOAD_SIZE } from "../harness/streams.ts";
import { expectOneLineError, ramsnap } from "../harness/cli.ts";
import { syntheticImage } from "../src/memory/synthetic.ts";
import { MiB, PAGE } from "../harness/units.ts";

const RAM_MIB = 64;
const RAM_PAGES = (RAM_MIB * MiB) / PAGE;
const PATTERN = syntheticImage(RAM_MIB * MiB, { kind: "scattered", seed: 77, nonZero: 0.5 });
const qtest = (name: string, fn: () => Promise<void> | void) => test(name, fn, 60_000);

function thrown(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, nothing was thrown");
}

async function rejected(p: Promise<unknown>): Promise<unknown> {
  try {
    await p;
  } catch (e) {
    return e;
  }
  throw new Error("expected a rejection, the promise resolved");
}

const fileHash = async (path: string) => Bun.hash(await Bun.file(path).bytes()).toString(16);

/** Pages of `a` and `b` stored as data (what diff must read, and all it may read). */
function presentPages(path: string): number {
  return inspectFile(path).blocks.reduce((s, b) => s + b.present, 0);
}

/** The first page at or after `from` whose pattern state is `nonZero`. */
function pageAtOrAfter(from: number, nonZero: boolean): number {
  for (let p = from; p < RAM_PAGES; p++) if (!!PATTERN.nonZeroPages[p] === nonZero) return p;
  throw new Error(`no ${nonZero ? "data" : "zero"} page after ${from}`);
}

describe.skipIf(!requireQemu())("verify, diff and convert on QEMU 10 files", () => {
  let scratch: Scratch;
  let dir = "";
  const path = (name: string) => join(dir, name);
  let image = ""; // the guest RAM the saves hold
  let mapped = ""; // QEMU, mapped-ram + multifd + direct-io
  let mapped2 = ""; // QEMU, mapped-ram, a second guest with the same RAM
  let classic = ""; // QEMU, classic
  let changed = ""; // QEMU, mapped-ram, the same RAM with a few pages changed
  let changedRanges: [number, number][] = [];

  /** A fresh guest with PATTERN, `edit` applied to its RAM file while paused, saved by QEMU to `file`. */
  async function qemuSave(file: string, how: MigrateOptions, edit?: (shm: string) => void): Promise<Uint8Array> {
    const g = await startGuest({ name: "files-save", ramMiB: RAM_MIB, pattern: PATTERN });
    try {
      edit?.(g.shmPaths[0]!);
      await migrateToFile(g, `file:${file}`, how);
      return await shmBytes(g);
    } finally {
      await g.stop();
    }
  }

  beforeAll(async () => {
    scratch = scratchDir("ramsnap-files");
    dir = scratch.path;
    expect(requireDirectIo(dir)).toBe(true);
    mapped = path("a.ram");
    mapped2 = path("a2.ram");
    classic = path("a.sav");
    changed = path("b.ram");
    image = path("ram0.img");
    writeFileSync(image, await qemuSave(mapped, { mappedRam: true, multifd: true, channels: 2, directIo: true }));
    await qemuSave(mapped2, { mappedRam: true });
    await qemuSave(classic, { mappedRam: false });
    // b: a run of 4 pages overwritten, a data page zeroed, a zero page given data, one byte of a data page flipped.
    const run = 2000;
    const zeroed = pageAtOrAfter(6000, true);
    const filled = pageAtOrAfter(9000, false);
    const flipped = pageAtOrAfter(12000, true);
    changedRanges = [
      [run, 4],
      [zeroed, 1],
      [filled, 1],
      [flipped, 1],
    ];
    await qemuSave(changed, { mappedRam: true }, (shm) => {
      const fd = openSync(shm, "r+");
      try {
        writeSync(fd, new Uint8Array(4 * PAGE).fill(0xee), 0, 4 * PAGE, run * PAGE);
        writeSync(fd, new Uint8Array(PAGE), 0, PAGE, zeroed * PAGE);
        writeSync(fd, new Uint8Array(PAGE).fill(0x11), 0, PAGE, filled * PAGE);
      } finally {
        closeSync(fd);
      }
      flipByte(shm, flipped * PAGE + 321, 0x01);
    });
  }, 120_000);
  afterAll(async () => {
    await stopAllGuests();
    scratch?.cleanup();
  }, 60_000);

  describe("verify", () => {
    qtest("passes on QEMU's intact files, mapped-ram and classic: structure, and every page against the guest RAM (CLI exit 0)", async () => {
      for (const [file, format] of [
        [mapped, "mapped-ram"],
        [classic, "classic"],
      ] as const) {
        const r = verify({ path: file, blocks: [{ name: "ram0", path: image }] });
        expect(r).toMatchObject({ ok: true, ramFormat: format, trailer: true, warnings: [] });
        expect(r.devices).toBeGreaterThan(5);
        expect(r.blocks.find((b) => b.name === "ram0")).toMatchObject({ image, differing: 0, pages: RAM_PAGES, present: PATTERN.nonZeroCount });
        expect(r.blocks.find((b) => b.name === "ram0")!.first).toBeUndefined();

        const cli = await ramsnap("verify", file, "--block", `ram0=${image}`);
        expect(cli.stderr).toBe("");
        expect(cli.code).toBe(0);
        expect(cli.stdout).toContain(`structure OK (${format}`);
        expect(cli.stdout).toContain(`ram0: all ${RAM_PAGES} pages match ${image}`);
        expect(cli.stdout.trimEnd().endsWith("OK")).toBe(true);
        // Structure only (QEMU writes no manifest): sound, but the pages were not checked, and it says so.
        const bare = await ramsnap("verify", file);
        expect(bare.code).toBe(3);
        expect(bare.stdout.trimEnd().endsWith("structure OK; pages not checked (no manifest, no --block)")).toBe(true);
      }
    });

    qtest("a flipped byte in a present page: the report names that page and 'data differs'; CLI exit 1 (mapped-ram and classic)", async () => {
      const page = pageAtOrAfter(3333, true);
      // mapped-ram: page p sits at pagesOffset + p * page size.
      const ram0 = inspectFile(mapped).blocks.find((b) => b.name === "ram0")!;
      const bad = copy(mapped, path("flip.ram"));
      const at = ram0.pagesOffset! + page * PAGE + 1234;
      flipByte(bad, at);
      // classic: wherever the page's (last) record put its bytes.
      const f = MainFile.openRead(classic);
      const loc = readPageMap(f).blocks.find((b) => b.info.name === "ram0")!.locate(page);
      f.close();
      expect(loc).toBeGreaterThan(0);
      const badClassic = copy(classic, path("flip.sav"));
      flipByte(badClassic, loc + 1234);

      for (const [file, fileOffset] of [
        [bad, ram0.pagesOffset! + page * PAGE],
        [badClassic, loc],
      ] as const) {
        const r = verify({ path: file, blocks: [{ name: "ram0", path: image }] });
        expect(r.ok).toBe(false);
        const v = r.blocks.find((b) => b.name === "ram0")!;
        expect(v.differing).toBe(1);
        expect(v.first).toEqual({ page, offset: page * PAGE, fileOffset, problem: "data differs" });
        // The other blocks were not compared, and say so.
        expect(r.blocks.filter((b) => b.name !== "ram0").every((b) => b.differing === null && b.checkedAgainst.length === 0)).toBe(true);
        expect(r.pagesChecked).toBe("some");

        const cli = await ramsnap("verify", file, "--block", `ram0=${image}`);
        expect(cli.code).toBe(1);
        expect(cli.stderr).toBe("");
        expect(cli.stdout).toContain(`ram0: 1 of ${RAM_PAGES} pages differs from ${image}; first: page ${page} at block offset 0x${(page * PAGE).toString(16)}`);
        expect(cli.stdout).toContain(`(file offset 0x${fileOffset.toString(16)}): data differs`);
        expect(cli.stdout.trimEnd().endsWith("FAILED")).toBe(true);
      }
    });

    qtest("a cleared bitmap bit of a non-zero page: 'absent from the file but not zero in the image'; CLI exit 1", async () => {
      const page = pageAtOrAfter(7777, true);
      const ram0 = inspectFile(mapped).blocks.find((b) => b.name === "ram0")!;
      const bad = copy(mapped, path("bit.ram"));
      expect(clearBit(bad, ram0.bitmapOffset! + (page >> 3), page & 7)).toBe(true);
      // Still a well-formed file: one page fewer present.
      expect(inspectFile(bad).blocks.find((b) => b.name === "ram0")!.present).toBe(ram0.present - 1);

      const r = verify({ path: bad, blocks: [{ name: "ram0", path: image }] });
      expect(r.ok).toBe(false);
      const v = r.blocks.find((b) => b.name === "ram0")!;
      expect(v.differing).toBe(1);
      expect(v.first).toEqual({ page, offset: page * PAGE, fileOffset: null, problem: "absent from the file but not zero in the image" });

      const cli = await ramsnap("verify", bad, "--block", `ram0=${image}`);
      expect(cli.code).toBe(1);
      expect(cli.stdout).toContain(`first: page ${page} at block offset 0x${(page * PAGE).toString(16)}: absent from the file but not zero in the image`);
      expect(cli.stdout.trimEnd().endsWith("FAILED")).toBe(true);
    });

    qtest("a truncated file: a one-line error naming the file and the offset, exit 1 (mapped-ram and classic, cut in pages or in the trailer)", async () => {
      const report = inspectFile(mapped);
      const ram0 = report.blocks.find((b) => b.name === "ram0")!;
      const classicSize = inspectFile(classic).fileSize;
      const cuts = [
        // Inside ram0's page array: the header announces pages past the end.
        { file: truncatedCopy(mapped, path("cut-pages.ram"), ram0.pagesOffset! + 1000 * PAGE), offset: ram0.headerOffset! + 20, detail: /block ram0: page array at \d+ .* lies past the end of the file .*; the file is truncated/ },
        // Inside the trailer (the vmdesc JSON after EOF).
        { file: truncatedCopy(mapped, path("cut-trailer.ram"), report.fileSize - 100), offset: report.trailer!.offset + 5, detail: /file ends \d+ bytes into the trailer JSON .*; the file is truncated/ },
        // Inside a classic page record.
        { file: truncatedCopy(classic, path("cut-pages.sav"), Math.floor(classicSize / 2)), offset: -1, detail: /file ends \d+ bytes into the data of page \d+ of ram0 .*; the file is truncated/ },
      ];
      for (const c of cuts) {
        const e = thrown(() => verify({ path: c.file, blocks: [{ name: "ram0", path: image }] }));
        expect(e).toBeInstanceOf(FormatError);
        const fe = e as FormatError;
        expect(fe.file).toBe(c.file);
        expect(fe.detail).toMatch(c.detail);
        if (c.offset >= 0) expect(fe.offset).toBe(c.offset);
        else expect(fe.offset).toBeLessThan(Math.floor(classicSize / 2));

        const cli = await ramsnap("verify", c.file, "--block", `ram0=${image}`);
        expectOneLineError(cli, "verify", 1, new RegExp(`^ramsnap verify: ${c.file}: at offset ${fe.offset} \\(0x${fe.offset.toString(16)}\\): `));
        expect(cli.stderr).toMatch(c.detail);
      }
    });
  });

  describe("diff", () => {
    qtest("two QEMU saves of the same RAM are the same (exit 0): mapped-ram vs mapped-ram and vs classic; only held pages are read", async () => {
      const r = diff({ a: mapped, b: mapped2 });
      expect(r).toMatchObject({ same: true, onlyInA: [], onlyInB: [] });
      expect(r.blocks.length).toBe(inspectFile(mapped).blocks.length);
      expect(r.blocks.every((b) => b.differing === 0 && b.ranges.length === 0)).toBe(true);
      // Each page one side holds is read once from that side; pages neither holds are not read at all.
      expect(r.bytesRead).toBe((presentPages(mapped) + presentPages(mapped2)) * PAGE);

      expect(diff({ a: mapped, b: classic }).same).toBe(true);
      const cli = await ramsnap("diff", mapped, mapped2);
      expect(cli.stderr).toBe("");
      expect(cli.code).toBe(0);
      expect(cli.stdout).toContain("same RAM");
      expect(cli.stdout).toContain(`ram0: 0 of ${RAM_PAGES} pages differ`);
    });

    qtest("a save with a few changed pages: exactly those pages, as ranges (exit 1)", async () => {
      const r = diff({ a: mapped, b: changed });
      expect(r.same).toBe(false);
      expect(r.blocks.filter((b) => b.differing > 0).map((b) => b.name)).toEqual(["ram0"]);
      const ram0 = r.blocks.find((b) => b.name === "ram0")!;
      expect(ram0.ranges).toEqual(changedRanges);
      expect(ram0.differing).toBe(7);
      expect(r.bytesRead).toBe((presentPages(mapped) + presentPages(changed)) * PAGE);

      const cli = await ramsnap("diff", mapped, changed);
      expect(cli.code).toBe(1);
      expect(cli.stderr).toBe("");
      const [run, zeroed, filled, flipped] = changedRanges.map((x) => x[0]);
      expect(cli.stdout).toContain(`ram0: 7 of ${RAM_PAGES} pages differ: ${run}-${run! + 3}, ${zeroed}, ${filled}, ${flipped}`);
      const j = JSON.parse((await ramsnap("diff", mapped, changed, "--json")).stdout);
      expect(j.blocks.find((b: any) => b.name === "ram0").ranges).toEqual(changedRanges);
    });

    qtest("a page neither file holds is not read: garbage in its slot changes nothing, and bytesRead stays the same", async () => {
      const ram0 = inspectFile(mapped2).blocks.find((b) => b.name === "ram0")!;
      const absent = pageAtOrAfter(4444, false);
      const dirty = copy(mapped2, path("slot-garbage.ram"));
      overwrite(dirty, ram0.pagesOffset! + absent * PAGE, new Uint8Array(PAGE).fill(0xcc));
      expect(readRange(dirty, ram0.pagesOffset! + absent * PAGE, 4)).toEqual(Uint8Array.of(0xcc, 0xcc, 0xcc, 0xcc));
      const r = diff({ a: mapped, b: dirty });
      expect(r.same).toBe(true);
      expect(r.bytesRead).toBe((presentPages(mapped) + presentPages(dirty)) * PAGE);
    });
  });

  describe("convert refuses what it cannot carry", () => {
    /** A classic stream: RAM (two pages), optionally an extra element, a timer device, EOF, trailer. */
    function handBuilt(extra?: { iterative: string } | { command: number }): { bytes: Uint8Array; at: number } {
      const payload = Uint8Array.from({ length: TIMER_PAYLOAD_SIZE }, (_, i) => 0x20 + (i % 0x40));
      const c = new ClassicBuilder().header().configuration("pc-q35-10.0");
      if (extra && "command" in extra) c.mark("extra").command(extra.command, new Uint8Array(16));
      c.start(2, "ram", 0, 4)
        .memSize([{ name: "pc.ram", length: 4 * PAGE }])
        .page("pc.ram", 0, 0x11)
        .page(null, 2, 0x22)
        .eos()
        .footer(2);
      if (extra && "iterative" in extra) c.mark("extra").start(3, extra.iterative, 0, 1).raw(Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)).footer(3);
      c.end(2).eos().footer(2);
      if (extra && "iterative" in extra) c.end(3).raw(Uint8Array.of(9, 9)).footer(3);
      c.full(4, "timer", 0, 2).raw(payload).footer(4).eof().trailer(JSON.stringify({ page_size: PAGE, devices: [TIMER_DEVICE] }));
      return { bytes: c.bytes(), at: extra ? c.at("extra") : -1 };
    }

    qtest("the plain hand-built stream converts both ways (so the refusals below are about the element named)", async () => {
      const input = path("plain.sav");
      writeFileSync(input, handBuilt().bytes);
      for (const to of ["mapped-ram", "classic"] as const) {
        const out = path(`plain-${to}.out`);
        await convert({ input, output: out, to, channels: 1 });
        const r = inspectFile(out);
        expect(r).toMatchObject({ complete: true, ramFormat: to, blocks: [{ name: "pc.ram", present: 2 }] });
        expect(r.sections.filter((s) => s.type === "FULL").map((s) => s.idstr)).toEqual(["timer"]);
      }
    });

    qtest("a non-RAM iterative section: RefusedError naming it and its offset; CLI exit 1; nothing written", async () => {
      const { bytes, at } = handBuilt({ iterative: "block" });
      const input = path("iterative.sav");
      writeFileSync(input, bytes);
      expect(inspectFile(input).sections.some((s) => s.type === "START" && s.idstr === "block")).toBe(true);
      for (const to of ["mapped-ram", "classic"] as const) {
        const out = path(`iterative-${to}.out`);
        const e = await rejected(convert({ input, output: out, to }));
        expect(e).toBeInstanceOf(RefusedError);
        expect((e as Error).message).toBe(`${input}: iterative section "block" (START at offset ${at}) holds state ramsnap cannot re-lay`);
        expect(existsSync(out)).toBe(false);
      }
      const out = path("iterative-cli.out");
      expectOneLineError(await ramsnap("convert", input, out, "--to", "mapped-ram"), "convert", 1, /iterative section "block" \(START at offset \d+\)/);
      expect(existsSync(out)).toBe(false);
    });

    qtest("postcopy and COLO commands: RefusedError naming the command and its offset; CLI exit 1", async () => {
      for (const [command, name] of [
        [3, "POSTCOPY_ADVISE"],
        [4, "POSTCOPY_LISTEN"],
        [5, "POSTCOPY_RUN"],
        [8, "ENABLE_COLO"],
      ] as const) {
        const { bytes, at } = handBuilt({ command });
        const input = path(`cmd-${name}.sav`);
        writeFileSync(input, bytes);
        const out = path(`cmd-${name}.out`);
        const e = await rejected(convert({ input, output: out, to: "mapped-ram" }));
        expect(e).toBeInstanceOf(RefusedError);
        expect((e as Error).message).toBe(`${input}: command ${name} at offset ${at} cannot be carried into a re-laid file`);
        expect(existsSync(out)).toBe(false);
        if (command === 3) expectOneLineError(await ramsnap("convert", input, out, "--to", "classic"), "convert", 1, /command POSTCOPY_ADVISE at offset \d+ cannot be carried/);
      }
    });

    qtest("INPUT == OUTPUT, however spelled (same path, ./, a hard link), and save --like onto its own input: refused, input untouched", async () => {
      const input = copy(mapped, path("self.ram"));
      const hash = await fileHash(input);
      const link = path("self-link.ram");
      linkSync(input, link);
      expectOneLineError(await ramsnap("convert", input, input, "--to", "classic"), "convert", 2, /INPUT and OUTPUT must be different files/);
      for (const other of [`${dir}/./self.ram`, link]) {
        const cli = await ramsnap("convert", input, other, "--to", "classic");
        expectOneLineError(cli, "convert", 2, /same file/);
        expect(await fileHash(input)).toBe(hash);
        const e = await rejected(convert({ input, output: other, to: "mapped-ram" }));
        expect(e).toBeInstanceOf(OptionError);
        expect(await fileHash(input)).toBe(hash);
      }
      expectOneLineError(await ramsnap("save", "--like", input, "-o", input, "--block", `ram0=${image}`), "save", 2, /must be different files/);
      expectOneLineError(await ramsnap("save", "--like", input, "-o", link, "--block", `ram0=${image}`), "save", 2, /same file/);
      expect(await fileHash(input)).toBe(hash);
      expect(verify({ path: input, blocks: [{ name: "ram0", path: image }] }).ok).toBe(true);
    });
  });
});
