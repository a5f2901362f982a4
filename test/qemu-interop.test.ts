// Real QEMU 10 is the judge: ramsnap reads what QEMU writes (mapped-ram and classic), and QEMU loads
// what ramsnap writes. Guest RAM is a /dev/shm memory backend, so bytes are compared directly.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { inspectFile } from "../src/inspect.ts";
import { restore } from "../src/restore.ts";
import { save } from "../src/save.ts";
import { migrateFromFile, migrateToFile, ramBlocks, requireQemu, shmBytes, startGuest, stopAllGuests, type Guest } from "../harness/qemu.ts";
import { expectSameBytes } from "../harness/scratch.ts";

const RAM_MIB = 64;

/** The pages of `ram` that are non-zero, as the pattern says; checked against the bytes too. */
function nonZeroPagesOf(g: Guest): number {
  return g.pattern!.nonZeroCount;
}

describe.skipIf(!requireQemu())("interoperability with QEMU 10", () => {
  let dir = "";
  let source: Guest;
  let ram: Uint8Array;
  const PATTERN = { kind: "scattered", seed: 42, nonZero: 0.6 } as const;
  /** QEMU refuses a second migration of a guest, so each QEMU save gets a fresh guest with the same RAM. */
  async function qemuSave(file: string, opts: Parameters<typeof migrateToFile>[2]): Promise<void> {
    const g = await startGuest({ name: "interop-save", ramMiB: RAM_MIB, pattern: PATTERN });
    try {
      await migrateToFile(g, `file:${file}`, opts);
    } finally {
      await g.stop();
    }
  }
  beforeAll(async () => {
    // ext4: O_DIRECT alignment mistakes show here, not on tmpfs.
    dir = mkdtempSync("/tmp/ramsnap-interop-");
    source = await startGuest({ name: "interop-src", ramMiB: RAM_MIB, pattern: PATTERN });
    ram = await shmBytes(source);
  });
  afterAll(async () => {
    await stopAllGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  test("inspect reads QEMU's mapped-ram + multifd + direct-io file: QEMU's blocks, the pattern's pages", async () => {
    const file = join(dir, "qemu-mapped.ram");
    await qemuSave(file, { mappedRam: true, multifd: true, channels: 2, directIo: true });
    const report = inspectFile(file);
    expect(report.complete).toBe(true);
    expect(report.ramFormat).toBe("mapped-ram");
    expect(report.machineType).toBe(source.machineType);
    expect(report.capabilities).toContain("mapped-ram");
    const qemuBlocks = await ramBlocks(source);
    expect(report.blocks.map((b) => [b.name, b.length])).toEqual(qemuBlocks.map((b) => [b.name, b.usedLength]));
    const ram0 = report.blocks.find((b) => b.name === "ram0")!;
    expect(ram0.present).toBe(nonZeroPagesOf(source));
    expect(ram0.absent).toBe(ram0.pages - nonZeroPagesOf(source));
    // Every device section was stepped over by the trailer's description, confirmed by its footer.
    const full = report.sections.filter((s) => s.type === "FULL");
    expect(full.length).toBeGreaterThan(5);
    expect(full.filter((s) => s.sizeFrom !== "vmdesc").map((s) => s.idstr)).toEqual([]);
    expect(report.trailer?.devices).toBe(full.length);
  });

  test("inspect reads QEMU's classic file: same blocks, present pages = non-zero pages", async () => {
    const file = join(dir, "qemu-classic.ram");
    await qemuSave(file, { mappedRam: false });
    const report = inspectFile(file);
    expect(report.complete).toBe(true);
    expect(report.ramFormat).toBe("classic");
    const qemuBlocks = await ramBlocks(source);
    expect(report.blocks.map((b) => [b.name, b.length])).toEqual(qemuBlocks.map((b) => [b.name, b.usedLength]));
    const ram0 = report.blocks.find((b) => b.name === "ram0")!;
    expect(ram0.present).toBe(nonZeroPagesOf(source));
    expect(ram0.present + ram0.zero + ram0.absent).toBe(ram0.pages);
  });

  test("ramsnap restores QEMU's mapped-ram file byte for byte (4 channels, direct I/O)", async () => {
    const file = join(dir, "qemu-for-restore.ram");
    await qemuSave(file, { mappedRam: true, multifd: true, channels: 4, directIo: true });
    const target = join(dir, "restored.raw");
    const r = await restore({ path: file, blocks: [{ name: "ram0", path: target }], channels: 4, directIo: true });
    expect(r.skipped.length).toBeGreaterThan(0); // the ROM blocks
    expectSameBytes(await Bun.file(target).bytes(), ram, "restored ram0");
  });

  for (const [channels, directIo] of [
    [4, true],
    [1, false],
  ] as const) {
    test(`QEMU loads a file ramsnap wrote (${channels} channel(s), direct I/O ${directIo ? "on" : "off"}); guest RAM equals the image`, async () => {
      const file = join(dir, `ramsnap-${channels}-${directIo}.ram`);
      await save({ path: file, blocks: [{ name: "ram0", path: source.shmPaths[0]! }], channels, directIo, machineType: source.machineType });
      const target = await startGuest({ name: "interop-dst", ramMiB: RAM_MIB, incoming: true });
      try {
        await migrateFromFile(target, `file:${file}`, { mappedRam: true, multifd: true, channels: 2, directIo: true });
        expect(target.stderr()).not.toContain("Expected vmdescription section");
        expectSameBytes(await shmBytes(target), ram, "guest RAM after QEMU loaded ramsnap's file");
      } finally {
        await target.stop();
      }
    });
  }

  test("QEMU loads a ramsnap file written at offset= into a file with a prefix", async () => {
    const file = join(dir, "ramsnap-offset.ram");
    const prefix = new Uint8Array(4096).fill(0x58);
    await Bun.write(file, prefix);
    await save({ path: file, blocks: [{ name: "ram0", path: source.shmPaths[0]! }], offset: 4096, channels: 2, directIo: true, machineType: source.machineType });
    expect(Buffer.from((await Bun.file(file).bytes()).subarray(0, 4096)).equals(Buffer.from(prefix))).toBe(true);
    const target = await startGuest({ name: "interop-off", ramMiB: RAM_MIB, incoming: true });
    try {
      await migrateFromFile(target, `file:${file},offset=4096`, { mappedRam: true, multifd: true, channels: 2, directIo: true });
      expectSameBytes(await shmBytes(target), ram, "guest RAM after loading at offset 4096");
    } finally {
      await target.stop();
    }
  });
});
