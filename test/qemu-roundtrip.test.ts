// Round trips with real QEMU 10 (issue 4): QEMU saves, ramsnap extracts / converts / re-saves with --like,
// and QEMU loads the result again. Guest RAM is a /dev/shm memory backend, so every check compares the
// guest's bytes directly. QEMU refuses to migrate a guest twice, so every QEMU save gets a fresh guest.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { readFileSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { diff } from "../src/diff.ts";
import { extract, type ExtractResult } from "../src/extract.ts";
import { parseStream } from "../src/format/parse.ts";
import { inspectFile, type InspectReport } from "../src/inspect.ts";
import { MainFile } from "../src/io/main-file.ts";
import { convert } from "../src/convert/index.ts";
import { verify } from "../src/verify.ts";
import { readRange } from "../harness/corrupt.ts";
import {
  type Guest,
  type GuestOptions,
  type MigrateOptions,
  migrateFromFile,
  migrateToFile,
  ramBlocks,
  requireQemu,
  shmBytes,
  startGuest,
  stopAllGuests,
} from "../harness/qemu.ts";
import { syntheticImage, type SyntheticImage } from "../src/memory/synthetic.ts";
import { expectSameBytes, firstDifference, requireDirectIo, scratchDir, type Scratch } from "../harness/scratch.ts";
import { ramsnap } from "../harness/cli.ts";
import { MiB, PAGE } from "../harness/units.ts";

const RAM_MIB = 64;
const RAM_PAGES = (RAM_MIB * MiB) / PAGE;
const VRAM = "0000:00:01.0/vga.vram";
/** Each test starts a few TCG guests; bunfig's timeout does not reach these, so it is given here. */
const qtest = (name: string, fn: () => Promise<void>) => test(name, fn, 60_000);

/** Mostly zero, in long runs: the extracted raw file must stay sparse. */
const SPARSE = syntheticImage(RAM_MIB * MiB, { kind: "clustered", seed: 11, nonZero: 0.1 });
/** Data and zero pages interleaved page by page: many short runs, many bridged gaps. */
const SCATTERED = syntheticImage(RAM_MIB * MiB, { kind: "scattered", seed: 42, nonZero: 0.5 });

const MAPPED: MigrateOptions = { mappedRam: true, multifd: true, channels: 4, directIo: true };
const CLASSIC: MigrateOptions = { mappedRam: false };

// ---- helpers --------------------------------------------------------------------------------------

/** Runs the CLI and expects success; returns its JSON output. */
async function ramsnapJson(...args: string[]): Promise<any> {
  const r = await ramsnap(...args, "--json");
  if (r.code !== 0) throw new Error(`ramsnap ${args.join(" ")} exited ${r.code}: ${r.stderr.trim()}`);
  expect(r.stderr).toBe("");
  return JSON.parse(r.stdout);
}

interface Saved {
  file: string;
  /** Every memory backend's bytes, read after the save completed (the source is paused then). */
  shm: Uint8Array[];
  /** QEMU's own list of RAM blocks ("info ramblock"). */
  qemuBlocks: { name: string; usedLength: number }[];
  /** The final query-migrate reply. */
  info: any;
}

/** Starts a guest, lets QEMU save it to `uri` (default file:FILE), reads its RAM afterwards, stops it. */
async function qemuSave(file: string, guest: Omit<GuestOptions, "ramMiB"> & { ramMiB?: number }, how: MigrateOptions | ((g: Guest) => Promise<any>), uri = `file:${file}`): Promise<Saved> {
  const g = await startGuest({ ramMiB: RAM_MIB, ...guest });
  try {
    // The pattern is what the guest starts with; a paused guest must still hold it when saved.
    if (g.backendIds.length === 1 && g.pattern && !guest.running) expectSameBytes(await shmBytes(g, 0), patternBytes(g.pattern), "guest RAM before the save");
    if (guest.running) await Bun.sleep(300); // let the firmware run and write to RAM
    const info = typeof how === "function" ? await how(g) : (await migrateToFile(g, uri, how)).info;
    const status = await g.qmp.execute<{ status: string }>("query-status");
    expect(status.status).toBe("postmigrate"); // paused: its RAM no longer changes
    const shm = await Promise.all(g.backendIds.map((_, i) => shmBytes(g, i)));
    return { file, shm, qemuBlocks: await ramBlocks(g), info };
  } finally {
    await g.stop();
  }
}

/** Starts a guest with `-incoming defer`, loads `uri` into it and returns each backend's bytes; stops it unless `keep`. */
async function qemuLoad(uri: string, guest: Omit<GuestOptions, "ramMiB" | "incoming"> & { ramMiB?: number }, how: MigrateOptions, keep = false): Promise<{ shm: Uint8Array[]; guest: Guest }> {
  const g = await startGuest({ ramMiB: RAM_MIB, ...guest, incoming: true });
  let ok = false;
  try {
    await migrateFromFile(g, uri, how);
    expect(g.stderr()).not.toContain("Expected vmdescription section");
    const shm = await Promise.all(g.backendIds.map((_, i) => shmBytes(g, i)));
    ok = true;
    return { shm, guest: g };
  } finally {
    if (!keep || !ok) await g.stop();
  }
}

const patternCache = new Map<SyntheticImage, Uint8Array>();
/** All the bytes of a pattern (what a guest started with it holds in RAM). */
function patternBytes(p: SyntheticImage): Uint8Array {
  let b = patternCache.get(p);
  if (!b) {
    b = new Uint8Array(p.sizeBytes);
    p.fill(b, 0);
    patternCache.set(p, b);
  }
  return b;
}

/** Every device section (FULL) with a hash of its payload as it stands in the file. */
function deviceSections(path: string, offset = 0): { idstr: string; instance: number; version: number; size: number; hash: string }[] {
  const r = inspectFile(path, { offset });
  return r.sections
    .filter((s) => s.type === "FULL")
    .map((s) => ({
      idstr: s.idstr!,
      instance: s.instance!,
      version: s.version!,
      size: s.payloadSize,
      hash: Bun.hash(readRange(path, s.payloadOffset, s.payloadSize)).toString(16),
    }));
}

const blockSummary = (r: InspectReport) => r.blocks.map((b) => ({ name: b.name, length: b.length, pages: b.pages, present: b.present }));

/** Allocated bytes of a file (st_blocks). */
const allocated = (path: string) => statSync(path).blocks * 512;

/** Bandwidth-limited live save: slow enough that a running guest dirties pages while RAM is sent. */
function liveSave(uri: string, mappedRam: boolean) {
  return async (g: Guest): Promise<any> => {
    await g.qmp.execute("migrate-set-capabilities", {
      capabilities: [
        { capability: "mapped-ram", state: mappedRam },
        { capability: "multifd", state: false },
      ],
    });
    await g.qmp.execute("migrate-set-parameters", { "max-bandwidth": 32 * MiB });
    await g.qmp.execute("migrate", { uri });
    const deadline = Date.now() + 60_000;
    for (;;) {
      const info = await g.qmp.execute<any>("query-migrate");
      if (info.status === "completed") return info;
      if (info.status === "failed" || info.status === "cancelled") throw new Error(`live save ${info.status}: ${info["error-desc"] ?? ""} ${g.stderr().trim()}`);
      if (Date.now() > deadline) throw new Error(`live save not finished after 60 s (status ${info.status})`);
      await Bun.sleep(10);
    }
  };
}

/** Number of classic page records (a page sent in several passes has several). */
function classicRecords(path: string): number {
  const f = MainFile.openRead(path);
  try {
    let n = 0;
    parseStream(f, { onClassicPage: () => n++ });
    return n;
  } finally {
    f.close();
  }
}

// ---- tests ----------------------------------------------------------------------------------------

describe.skipIf(!requireQemu())("round trips with QEMU 10", () => {
  let scratch: Scratch;
  let dir = "";
  let sparseMapped: Saved; // SPARSE, mapped-ram + multifd + direct-io
  let sparseClassic: Saved; // SPARSE, classic
  let scatteredMapped: Saved; // SCATTERED, mapped-ram + multifd + direct-io
  let scatteredClassic: Saved; // SCATTERED, classic
  let extractedSparse: ExtractResult;
  const path = (name: string) => join(dir, name);

  beforeAll(async () => {
    scratch = scratchDir("ramsnap-roundtrip"); // /tmp: ext4, where O_DIRECT alignment is enforced
    dir = scratch.path;
    expect(requireDirectIo(dir)).toBe(true);
    sparseMapped = await qemuSave(path("sparse-mapped.ram"), { name: "rt-sparse-m", pattern: SPARSE }, MAPPED);
    sparseClassic = await qemuSave(path("sparse-classic.sav"), { name: "rt-sparse-c", pattern: SPARSE }, CLASSIC);
    scatteredMapped = await qemuSave(path("scattered-mapped.ram"), { name: "rt-scat-m", pattern: SCATTERED }, MAPPED);
    scatteredClassic = await qemuSave(path("scattered-classic.sav"), { name: "rt-scat-c", pattern: SCATTERED }, CLASSIC);
  }, 120_000);
  afterAll(async () => {
    await stopAllGuests();
    scratch?.cleanup();
  }, 60_000);

  describe("extract", () => {
    qtest("QEMU mapped-ram + multifd + direct-io save -> extract (library, 4 channels, direct I/O) = guest RAM; blocks.json; sparse", async () => {
      const out = path("x-sparse-mapped");
      const r = await extract({ path: sparseMapped.file, dir: out, channels: 4, directIo: true });
      extractedSparse = r;
      const report = inspectFile(sparseMapped.file);
      expect(r.ramFormat).toBe("mapped-ram");
      // Every block QEMU has, with the file's present counts.
      expect(r.blocks.map((b) => [b.name, b.length])).toEqual(sparseMapped.qemuBlocks.map((b) => [b.name, b.usedLength]));
      expect(r.blocks.map(({ name, length, pages, present }) => ({ name, length, pages, present }))).toEqual(blockSummary(report));
      const ram0 = r.blocks.find((b) => b.name === "ram0")!;
      expect(ram0.present).toBe(SPARSE.nonZeroCount);

      const json = JSON.parse(readFileSync(join(out, "blocks.json"), "utf8"));
      expect(json).toEqual({ source: sparseMapped.file, ramFormat: "mapped-ram", pageSize: PAGE, blocks: r.blocks });
      for (const b of r.blocks) expect(statSync(join(out, b.file)).size).toBe(b.length);
      expect(ram0.file).toBe("ram0.raw");

      const raw = join(out, "ram0.raw");
      expectSameBytes(await Bun.file(raw).bytes(), sparseMapped.shm[0]!, "extracted ram0.raw vs guest RAM");
      // Sparse: the data units (a tenth of the 2 MiB units, on average) are allocated, the long zero runs are holes.
      const size = RAM_MIB * MiB;
      expect(allocated(raw)).toBeLessThan(size / 4);
      expect(allocated(raw)).toBeLessThanOrEqual(ram0.present * PAGE + 2 * MiB);
    });

    qtest("extract via the CLI (4 channels, direct I/O, --json) gives the same files", async () => {
      const out = path("x-cli");
      const j = await ramsnapJson("extract", sparseMapped.file, "-o", out, "--channels", "4", "--direct-io");
      expect(j).toMatchObject({ file: sparseMapped.file, dir: out, ramFormat: "mapped-ram" });
      // the library names each raw file inside the folder; --json gives its absolute path (docs/json.md)
      expect(j.blocks).toEqual(extractedSparse.blocks.map((b) => ({ ...b, file: join(out, b.file) })));
      expectSameBytes(await Bun.file(join(out, "ram0.raw")).bytes(), sparseMapped.shm[0]!, "CLI-extracted ram0.raw vs guest RAM");
      for (const b of extractedSparse.blocks) {
        expectSameBytes(await Bun.file(join(out, b.file)).bytes(), await Bun.file(join(path("x-sparse-mapped"), b.file)).bytes(), `CLI vs library extract of ${b.name}`);
      }
    });

    qtest("extract of QEMU's classic save gives the same bytes, every block, as extract of its mapped-ram save", async () => {
      const out = path("x-sparse-classic");
      const r = await extract({ path: sparseClassic.file, dir: out });
      expect(r.ramFormat).toBe("classic");
      expect(r.blocks.map((b) => b.file)).toEqual(extractedSparse.blocks.map((b) => b.file));
      expect(r.blocks.map(({ name, length, pages, present }) => ({ name, length, pages, present }))).toEqual(blockSummary(inspectFile(sparseClassic.file)));
      expectSameBytes(await Bun.file(join(out, "ram0.raw")).bytes(), sparseClassic.shm[0]!, "ram0.raw from the classic save vs guest RAM");
      for (const b of r.blocks) {
        expectSameBytes(await Bun.file(join(out, b.file)).bytes(), await Bun.file(join(path("x-sparse-mapped"), b.file)).bytes(), `${b.name}: classic vs mapped-ram extract`);
      }
      const json = JSON.parse(readFileSync(join(out, "blocks.json"), "utf8"));
      expect(json.ramFormat).toBe("classic");
      expect(json.blocks).toEqual(r.blocks);
      expect(allocated(join(out, "ram0.raw"))).toBeLessThan((RAM_MIB * MiB) / 4);
    });
  });

  describe("convert", () => {
    qtest("QEMU classic save -> convert --to mapped-ram (CLI, 4 channels, direct I/O) -> QEMU loads it with mapped-ram + multifd + direct-io", async () => {
      const out = path("classic-to-mapped.ram");
      const j = await ramsnapJson("convert", scatteredClassic.file, out, "--to", "mapped-ram", "--channels", "4", "--direct-io");
      expect(j).toMatchObject({ from: "classic", to: "mapped-ram", channels: 4, directIo: true });
      const before = inspectFile(scatteredClassic.file);
      const after = inspectFile(out);
      expect(after).toMatchObject({ complete: true, ramFormat: "mapped-ram", machineType: before.machineType });
      expect(after.capabilities).toContain("mapped-ram");
      expect(blockSummary(after)).toEqual(blockSummary(before));
      expect(deviceSections(out)).toEqual(deviceSections(scatteredClassic.file));

      const { shm } = await qemuLoad(`file:${out}`, { name: "rt-c2m-dst" }, MAPPED);
      expectSameBytes(shm[0]!, scatteredClassic.shm[0]!, "guest RAM after QEMU loaded the converted file");
      expectSameBytes(shm[0]!, patternBytes(SCATTERED), "guest RAM vs the pattern");
    });

    qtest("QEMU mapped-ram save -> convert --to classic (library) -> QEMU loads it without mapped-ram", async () => {
      const out = path("mapped-to-classic.sav");
      const r = await convert({ input: scatteredMapped.file, output: out, to: "classic" });
      expect(r).toMatchObject({ from: "mapped-ram", to: "classic" });
      const before = inspectFile(scatteredMapped.file);
      const after = inspectFile(out);
      expect(after).toMatchObject({ complete: true, ramFormat: "classic", machineType: before.machineType });
      expect(after.capabilities).not.toContain("mapped-ram");
      expect(blockSummary(after)).toEqual(blockSummary(before));
      expect(deviceSections(out)).toEqual(deviceSections(scatteredMapped.file));

      const { shm } = await qemuLoad(`file:${out}`, { name: "rt-m2c-dst" }, CLASSIC);
      expectSameBytes(shm[0]!, scatteredMapped.shm[0]!, "guest RAM after QEMU loaded the classic file");
    });
  });

  qtest("QEMU save -> save --like with an edited RAM image -> QEMU loads the edited image; device state carried over", async () => {
    // The RAM as plain bytes, then edited: zero pages get data, data pages become zero, one byte changes.
    const x = await extract({ path: scatteredMapped.file, dir: path("x-like"), blocks: ["ram0"], channels: 2, directIo: true });
    expect(x.blocks.map((b) => b.name)).toEqual(["ram0"]);
    const image = await Bun.file(path("x-like/ram0.raw")).bytes();
    expectSameBytes(image, scatteredMapped.shm[0]!, "extracted ram0 vs guest RAM");
    const zeroPages: number[] = [];
    const dataPages: number[] = [];
    for (let p = 1000; p < RAM_PAGES && (zeroPages.length < 3 || dataPages.length < 4); p += 97) {
      if (SCATTERED.nonZeroPages[p]) {
        if (dataPages.length < 4) dataPages.push(p);
      } else if (zeroPages.length < 3) zeroPages.push(p);
    }
    const edited = image.slice();
    for (const p of zeroPages) edited.fill(0xa0 + (p & 0xf), p * PAGE, (p + 1) * PAGE);
    for (const p of dataPages.slice(0, 3)) edited.fill(0, p * PAGE, (p + 1) * PAGE);
    const tweaked = dataPages[3]!;
    edited[tweaked * PAGE + 777] = edited[tweaked * PAGE + 777]! ^ 0x5a;
    const editedPath = path("edited-ram0.raw");
    writeFileSync(editedPath, edited);
    const changed = [...zeroPages, ...dataPages].sort((a, b) => a - b);

    const out = path("like.ram");
    const j = await ramsnapJson("save", "--like", scatteredMapped.file, "-o", out, "--block", `ram0=${editedPath}`, "--channels", "4", "--direct-io");
    expect(j.blocks.find((b: any) => b.name === "ram0")).toMatchObject({ from: editedPath, present: SCATTERED.nonZeroCount });

    // Same configuration (machine type, capabilities), same device sections byte for byte, same trailer size.
    const before = inspectFile(scatteredMapped.file);
    const after = inspectFile(out);
    expect(after).toMatchObject({ complete: true, ramFormat: "mapped-ram", machineType: before.machineType, capabilities: before.capabilities });
    expect(after.trailer?.devices).toBe(before.trailer!.devices);
    const devices = deviceSections(out);
    expect(devices.length).toBeGreaterThan(5);
    expect(devices).toEqual(deviceSections(scatteredMapped.file));
    // Only the edited pages differ; the blocks not given keep the QEMU save's pages.
    const d = diff({ a: scatteredMapped.file, b: out });
    expect(d.blocks.filter((b) => b.differing > 0).map((b) => b.name)).toEqual(["ram0"]);
    expect(d.blocks.find((b) => b.name === "ram0")!.ranges).toEqual(changed.map((p) => [p, 1]));
    expect(verify({ path: out, blocks: [{ name: "ram0", path: editedPath }] }).ok).toBe(true);

    const { shm } = await qemuLoad(`file:${out}`, { name: "rt-like-dst" }, MAPPED);
    expectSameBytes(shm[0]!, edited, "guest RAM after loading the save --like file vs the edited image");
  });

  describe("VMs with more than one RAM block", () => {
    qtest("q35 + VGA (vga.vram written by the VGA BIOS): QEMU mapped-ram save -> convert --to classic -> QEMU loads; re-saved RAM = original, every block", async () => {
      const file = path("vga.ram");
      const pattern = syntheticImage(RAM_MIB * MiB, { kind: "clustered", seed: 5, nonZero: 0.3 });
      const saved = await qemuSave(file, { name: "rt-vga", pattern, vga: true, running: true }, async (g) => {
        // Run until the VGA BIOS has put text on the screen (the legacy text window lies in vga.vram).
        const shot = path("vga-text.bin");
        const deadline = Date.now() + 20_000;
        for (;;) {
          await g.qmp.execute("pmemsave", { val: 0xb8000, size: 4000, filename: shot });
          if ((await Bun.file(shot).bytes()).some((b) => b !== 0)) break;
          if (Date.now() > deadline) throw new Error("the VGA BIOS wrote no text within 20 s");
          await Bun.sleep(50);
        }
        return (await migrateToFile(g, `file:${file}`, { mappedRam: true, multifd: true, channels: 2, directIo: true })).info;
      });
      const report = inspectFile(file);
      expect(report.blocks.map((b) => b.name)).toEqual(saved.qemuBlocks.map((b) => b.name));
      expect(report.blocks.map((b) => b.name)).toContain(VRAM);
      expect(report.blocks.find((b) => b.name === VRAM)!.present).toBeGreaterThan(0);

      // extract: the raw vram file holds the text, ram0.raw the guest RAM.
      const x = await extract({ path: file, dir: path("x-vga"), channels: 4, directIo: true });
      const vram = x.blocks.find((b) => b.name === VRAM)!;
      expect(vram.file).toBe("0000:00:01.0_vga.vram.raw");
      expect((await Bun.file(path(`x-vga/${vram.file}`)).bytes()).some((b) => b !== 0)).toBe(true);
      expectSameBytes(await Bun.file(path("x-vga/ram0.raw")).bytes(), saved.shm[0]!, "extracted ram0 of the VGA guest");

      const classic = path("vga.sav");
      const r = await ramsnap("convert", file, classic, "--to", "classic");
      expect(r.stderr).toBe("");
      expect(r.code).toBe(0);
      expect(deviceSections(classic).map((d) => d.idstr)).toContain("0000:00:01.0/vga");
      expect(deviceSections(classic)).toEqual(deviceSections(file));
      const loaded = await qemuLoad(`file:${classic}`, { name: "rt-vga-dst", vga: true }, CLASSIC, true);
      try {
        expectSameBytes(loaded.shm[0]!, saved.shm[0]!, "ram0 after QEMU loaded the converted VGA save");
        // vga.vram and the ROMs are not in shared memory: QEMU saves the loaded guest again, and every block
        // of that save must hold what the original held.
        const again = path("vga-again.ram");
        await migrateToFile(loaded.guest, `file:${again}`, { mappedRam: true });
        const d = diff({ a: file, b: again });
        expect(d.blocks.map((b) => b.name)).toContain(VRAM);
        expect(d.blocks.filter((b) => b.differing > 0).map((b) => `${b.name}: ${b.differing}`)).toEqual([]);
        expect(d).toMatchObject({ same: true, onlyInA: [], onlyInB: [] });
      } finally {
        await loaded.guest.stop();
      }
    });

    qtest("two NUMA backends (m0, m1), QEMU mapped-ram save at file:PATH,offset=4096: inspect/extract/convert with offsets; QEMU loads both", async () => {
      const file = path("numa.ram");
      const prefix = new Uint8Array(4096).fill(0x58);
      writeFileSync(file, prefix);
      const pattern = syntheticImage(RAM_MIB * MiB, { kind: "scattered", seed: 9, nonZero: 0.4 });
      const saved = await qemuSave(file, { name: "rt-numa", pattern, numa: 2 }, MAPPED, `file:${file},offset=4096`);
      expect(saved.shm.length).toBe(2);
      const half = (RAM_MIB * MiB) / 2;
      expectSameBytes(saved.shm[0]!, patternBytes(pattern).subarray(0, half), "m0 vs pattern");
      expectSameBytes(saved.shm[1]!, patternBytes(pattern).subarray(half), "m1 vs pattern");
      expectSameBytes(readRange(file, 0, 4096), prefix, "the bytes before offset= (QEMU keeps them)");

      // inspect --offset (CLI) and the library agree; without the offset there is no stream at 0.
      const i = await ramsnapJson("inspect", file, "--offset", "4096");
      expect(i).toMatchObject({ complete: true, offset: 4096, ramFormat: "mapped-ram" });
      const count = (from: number, to: number) => pattern.nonZeroPages.subarray(from, to).reduce((s, v) => s + v, 0);
      const pagesPerNode = half / PAGE;
      expect(i.blocks.slice(0, 2).map((b: any) => [b.name, b.length, b.present])).toEqual([
        ["m0", half, count(0, pagesPerNode)],
        ["m1", half, count(pagesPerNode, 2 * pagesPerNode)],
      ]);
      expect((await ramsnap("inspect", file)).code).toBe(1);

      // extract --offset (CLI, direct I/O): one raw file per backend.
      const x = path("x-numa");
      const j = await ramsnapJson("extract", file, "-o", x, "--offset", "4096", "--channels", "4", "--direct-io");
      expect(j.blocks.slice(0, 2).map((b: any) => b.file)).toEqual([join(x, "m0.raw"), join(x, "m1.raw")]); // absolute (docs/json.md)
      expectSameBytes(await Bun.file(join(x, "m0.raw")).bytes(), saved.shm[0]!, "extracted m0");
      expectSameBytes(await Bun.file(join(x, "m1.raw")).bytes(), saved.shm[1]!, "extracted m1");

      // convert --offset / --output-offset to classic, into a file with its own prefix, which stays.
      const out = path("numa.sav");
      const outPrefix = new Uint8Array(4096).fill(0x59);
      writeFileSync(out, outPrefix);
      const c = await ramsnap("convert", file, out, "--to", "classic", "--offset", "4096", "--output-offset", "4096");
      expect(c.stderr).toBe("");
      expect(c.code).toBe(0);
      expectSameBytes(readRange(out, 0, 4096), outPrefix, "the output's prefix");
      expect(inspectFile(out, { offset: 4096 })).toMatchObject({ complete: true, ramFormat: "classic", base: 4096 });
      expect(deviceSections(out, 4096)).toEqual(deviceSections(file, 4096));

      const loaded = await qemuLoad(`file:${out},offset=4096`, { name: "rt-numa-dst", numa: 2 }, CLASSIC);
      expectSameBytes(loaded.shm[0]!, saved.shm[0]!, "m0 after QEMU loaded the converted file");
      expectSameBytes(loaded.shm[1]!, saved.shm[1]!, "m1 after QEMU loaded the converted file");

      // And back: classic at offset -> mapped-ram (library, direct I/O) -> QEMU with mapped-ram at the offset.
      const back = path("numa-back.ram");
      writeFileSync(back, prefix);
      await convert({ input: out, inputOffset: 4096, output: back, offset: 4096, to: "mapped-ram", channels: 4, directIo: true });
      expectSameBytes(readRange(back, 0, 4096), prefix, "prefix of the mapped-ram file");
      const loaded2 = await qemuLoad(`file:${back},offset=4096`, { name: "rt-numa-dst2", numa: 2 }, MAPPED);
      expectSameBytes(loaded2.shm[0]!, saved.shm[0]!, "m0 after the classic -> mapped-ram round trip");
      expectSameBytes(loaded2.shm[1]!, saved.shm[1]!, "m1 after the classic -> mapped-ram round trip");
    });
  });

  describe("a guest running during its save (several passes over RAM)", () => {
    qtest("mapped-ram live save -> extract = the source's RAM after the save; convert --to classic -> QEMU loads it", async () => {
      const file = path("live.ram");
      const saved = await qemuSave(file, { name: "rt-live-m", pattern: SCATTERED, running: true }, liveSave(`file:${file}`, true));
      const report = inspectFile(file);
      expect(report.complete).toBe(true);
      expect(report.sections.filter((s) => s.type === "PART" && s.idstr === "ram").length).toBeGreaterThan(0);
      // QEMU sent some pages more than once: they changed while the guest ran.
      expect(saved.info.ram["dirty-sync-count"]).toBeGreaterThanOrEqual(2);
      expect(saved.info.ram.normal).toBeGreaterThan(report.blocks.reduce((s, b) => s + b.present, 0));
      // The firmware ran: the RAM is not the pattern any more.
      expect(firstDifference(saved.shm[0]!, patternBytes(SCATTERED))).not.toBeNull();

      await extract({ path: file, dir: path("x-live"), blocks: ["ram0"], channels: 4, directIo: true });
      expectSameBytes(await Bun.file(path("x-live/ram0.raw")).bytes(), saved.shm[0]!, "extract of the live save vs the source after the save");

      const out = path("live.sav");
      await convert({ input: file, output: out, to: "classic" });
      expect(deviceSections(out)).toEqual(deviceSections(file));
      const { shm } = await qemuLoad(`file:${out}`, { name: "rt-live-m-dst" }, CLASSIC);
      expectSameBytes(shm[0]!, saved.shm[0]!, "guest RAM after loading the converted live save");
    });

    qtest("classic live save (pages sent again) -> convert --to mapped-ram -> QEMU loads it; extract agrees", async () => {
      const file = path("live-c.sav");
      const saved = await qemuSave(file, { name: "rt-live-c", pattern: SCATTERED, running: true }, liveSave(`file:${file}`, false));
      const report = inspectFile(saved.file);
      expect(report.ramFormat).toBe("classic");
      expect(report.sections.filter((s) => s.type === "PART" && s.idstr === "ram").length).toBeGreaterThan(0);
      // More page records than pages: the last record of a page is the one that counts.
      const pages = report.blocks.reduce((s, b) => s + b.pages, 0);
      expect(classicRecords(saved.file)).toBeGreaterThan(pages);

      const x = await extract({ path: saved.file, dir: path("x-live-c"), blocks: ["ram0"] });
      expect(x.ramFormat).toBe("classic");
      expectSameBytes(await Bun.file(path("x-live-c/ram0.raw")).bytes(), saved.shm[0]!, "extract of the classic live save");

      const out = path("live-c.ram");
      await convert({ input: saved.file, output: out, to: "mapped-ram", channels: 4, directIo: true });
      expect(deviceSections(out)).toEqual(deviceSections(saved.file));
      const { shm } = await qemuLoad(`file:${out}`, { name: "rt-live-c-dst" }, MAPPED);
      expectSameBytes(shm[0]!, saved.shm[0]!, "guest RAM after loading the converted classic live save");
    });
  });
});
