// Packs (docs/pack-format.md) with real QEMU: a running guest saved by `ramsnap qemu save` into a pack
// (ramsnap's channels compress the backend's pages; QEMU writes only device state) and restored into a
// fresh QEMU from it, RAM identical and the guest counting on; QEMU's own mapped-ram save packed and
// unpacked by convert, byte for byte the same file, which QEMU loads; and QEMU's path (a private backend)
// into and out of a pack.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from "node:fs";
import { join } from "node:path";
import { inspectPack } from "../src/inspect.ts";
import { qemuRestore, qemuSave } from "../src/qemu/drive.ts";
import { ramsnap } from "../harness/cli.ts";
import { migrateFromFile, migrateToFile, readCounter, requireQemu, waitCounterAbove, shmBytes, startGuest, stopAllGuests, type GuestOptions } from "../harness/qemu.ts";
import { expectSameBytes } from "../harness/scratch.ts";

const QEMU_TEST_MS = 90_000;

describe.skipIf(!requireQemu())("packs with QEMU 10", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync("/tmp/ramsnap-qemu-pack-");
  });
  afterAll(async () => {
    await stopAllGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  const counting = (name: string, extra: Partial<GuestOptions> = {}): GuestOptions => ({ name, ramMiB: 64, counter: true, pattern: { seed: 21, kind: "clustered", nonZero: 0.4 }, ...extra });

  test(
    "a running guest saved into a pack by ramsnap's channels and restored from it into a fresh QEMU: RAM identical, it counts on after cont; the pack is smaller than the RAM it holds",
    async () => {
      const file = join(dir, "guest.rpk");
      const src = await startGuest({ ...counting("pk-src"), running: true });
      const dst = await startGuest({ ...counting("pk-dst", { pattern: { seed: 5, kind: "dense" } }), incoming: true });
      try {
        const saved = await qemuSave({ qmp: src.qmp, path: file, channels: 4, verify: true });
        expect(saved).toMatchObject({ pagesBy: "ramsnap", wasRunning: true, warnings: [] });
        expect(saved.manifest).toBeUndefined(); // a pack hashes its own extents
        const savedCounter = await readCounter(src);
        const ram = await shmBytes(src);
        const r = await inspectPack(file);
        expect(r.complete).toBe(true);
        expect(r.pack!.storedBytes).toBeLessThan(r.pack!.pageBytes);
        expect(statSync(file).size).toBeLessThan(ram.length);

        const restored = await qemuRestore({ qmp: dst.qmp, path: file, channels: 4 });
        expect(restored).toMatchObject({ pagesBy: "ramsnap", vmState: "paused", warnings: [] });
        expectSameBytes(await shmBytes(dst), ram, "destination RAM after a restore from a pack");
        expect(await readCounter(dst)).toBe(savedCounter);
        await dst.qmp.execute("cont");
        expect(await waitCounterAbove(dst, savedCounter)).toBeGreaterThan(savedCounter);
        expect(readdirSync(dir).filter((f) => f.includes(".tmp") || f.includes("ramsnap-"))).toEqual([]);
      } finally {
        await Promise.all([src.stop(), dst.stop()]);
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "QEMU's mapped-ram save -> pack -> mapped-ram is the same file byte for byte, and QEMU loads it with RAM identical",
    async () => {
      const qemuFile = join(dir, "qemu.ram");
      const packed = join(dir, "qemu.rpk");
      const back = join(dir, "back.ram");
      const src = await startGuest({ name: "conv-src", ramMiB: 64, pattern: { seed: 8, kind: "scattered", nonZero: 0.2 } });
      try {
        await migrateToFile(src, `file:${qemuFile}`, { mappedRam: true, multifd: true, channels: 2 });
        const ram = await shmBytes(src);
        const toPack = await ramsnap("convert", qemuFile, packed, "--to", "pack", "--json");
        expect(toPack.code).toBe(0);
        expect(JSON.parse(toPack.stdout)).toMatchObject({ from: "mapped-ram", to: "pack" });
        const fromPack = await ramsnap("convert", packed, back, "--to", "mapped-ram", "--no-manifest");
        expect(fromPack.code).toBe(0);
        expectSameBytes(new Uint8Array(readFileSync(back)), new Uint8Array(readFileSync(qemuFile)), "mapped-ram file rebuilt from the pack");
        const dst = await startGuest({ name: "conv-dst", ramMiB: 64, incoming: true });
        try {
          await migrateFromFile(dst, `file:${back}`, { mappedRam: true, multifd: true, channels: 2 });
          expectSameBytes(await shmBytes(dst), ram, "RAM QEMU loaded from the unpacked file");
        } finally {
          await dst.stop();
        }
      } finally {
        await src.stop();
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "QEMU's path (a private backend): qemu save into a pack, qemu restore from it; --lazy from a pack is refused",
    async () => {
      const file = join(dir, "private.rpk");
      const src = await startGuest({ name: "priv-src", ramMiB: 64, backing: "private", pattern: { seed: 3, kind: "clustered", nonZero: 0.3 } });
      const dst = await startGuest({ name: "priv-dst", ramMiB: 64, backing: "private", incoming: true });
      try {
        const saved = await qemuSave({ qmp: src.qmp, path: file, channels: 2 });
        expect(saved.pagesBy).toBe("qemu");
        expect((await inspectPack(file)).complete).toBe(true);
        await expect(qemuRestore({ qmp: dst.qmp, path: file, lazy: true })).rejects.toThrow(/--lazy maps a mapped-ram file as guest RAM; .*private\.rpk is a pack/);
        const restored = await qemuRestore({ qmp: dst.qmp, path: file, channels: 2 });
        expect(restored.pagesBy).toBe("qemu");
        expect(readdirSync(dir).filter((f) => f.includes("ramsnap-") || f.endsWith(".tmp"))).toEqual([]);
      } finally {
        await Promise.all([src.stop(), dst.stop()]);
      }
    },
    QEMU_TEST_MS,
  );
});
