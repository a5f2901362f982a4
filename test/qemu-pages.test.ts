// `ramsnap qemu save|restore` where ramsnap's channels move the guest's pages and QEMU only its device
// state (src/qemu/ramsnap-pages.ts), against real QEMU 10: a guest that keeps writing RAM (a boot sector
// counting forever) saved and restored through that path, RAM compared byte for byte through the /dev/shm
// memory backends, the guest carrying on after `cont`; the file loaded by plain QEMU; a file QEMU wrote
// itself restored through it; NUMA and VGA guests; the fallback to QEMU's own path, and every refusal.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inspectFile } from "../src/inspect.ts";
import { qemuRestore, qemuSave } from "../src/qemu/drive.ts";
import { queryRunState } from "../src/qemu/guest-state.ts";
import { expectOneLineError, ramsnap, type Run } from "../harness/cli.ts";
import { migrateFromFile, migrateToFile, readCounter, requireQemu, waitCounterAbove, shmBytes, startGuest, stopAllGuests, type Guest, type GuestOptions } from "../harness/qemu.ts";
import { expectSameBytes } from "../harness/scratch.ts";
import { MiB } from "../harness/units.ts";

const QEMU_TEST_MS = 90_000;

const expectQemuError = (r: Run, command: string, code: number, pattern: RegExp) => expectOneLineError(r, `qemu ${command}`, code, pattern);

/** Bytes QEMU itself wrote in its last migration (query-migrate's ram.transferred). */
async function qemuTransferred(g: Guest): Promise<number> {
  const info = await g.qmp.execute<{ ram?: { transferred: number } }>("query-migrate");
  return info.ram?.transferred ?? 0;
}

async function allShm(g: Guest): Promise<Uint8Array[]> {
  return Promise.all(g.shmPaths.map((_, i) => shmBytes(g, i)));
}

describe.skipIf(!requireQemu())("ramsnap moves the pages, QEMU the device state (QEMU 10)", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync("/tmp/ramsnap-qemu-pages-");
  });
  afterAll(async () => {
    await stopAllGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  const counting = (name: string, extra: Partial<GuestOptions> = {}): GuestOptions => ({ name, ramMiB: 64, counter: true, pattern: { seed: 11, kind: "scattered", nonZero: 0.3 }, ...extra });

  test(
    "a running guest that keeps writing RAM: saved by ramsnap's channels (QEMU writes only device state), restored the same way into a fresh QEMU, RAM identical, and it counts on after cont",
    async () => {
      const file = join(dir, "counting.ram");
      const src = await startGuest({ ...counting("count-src"), running: true });
      // The destination's backend holds other data: pages the file lacks must come out zero there too.
      const dst = await startGuest({ ...counting("count-dst", { pattern: { seed: 99, kind: "dense" } }), incoming: true });
      try {
        // the boot sector is running: the counter moves
        const c0 = await readCounter(src);
        await Bun.sleep(300);
        expect(await readCounter(src)).toBeGreaterThan(c0);

        const saved = await qemuSave({ qmp: src.qmp, path: file, channels: 4, directIo: true, verify: true });
        expect(saved).toMatchObject({ pagesBy: "ramsnap", wasRunning: true, vmState: "postmigrate", directIo: true, channels: 4, warnings: [] });
        expect(saved.pagesWhy).toMatch(/every memory backend is a shared file \(ram0\)/);
        // Judged from outside ramsnap: QEMU's own counters say it wrote only the device state and small blocks.
        expect(await qemuTransferred(src)).toBeLessThan(4 * MiB);
        const savedCounter = await readCounter(src);
        await Bun.sleep(200);
        expect(await readCounter(src)).toBe(savedCounter); // paused for the save, as libvirt does
        const ram = await shmBytes(src);

        // One standard mapped-ram file: no x-ignore-shared, every block's pages in it.
        const r = inspectFile(file);
        expect(r.complete).toBe(true);
        expect(r.ramFormat).toBe("mapped-ram");
        expect(r.capabilities).toEqual(["mapped-ram"]);
        expect(r.blocks.map((b) => b.name)).toContain("ram0");
        expect(r.blocks.find((b) => b.name === "pc.bios")!.present).toBeGreaterThan(0);

        const restored = await qemuRestore({ qmp: dst.qmp, path: file, channels: 4, directIo: true });
        expect(restored).toMatchObject({ pagesBy: "ramsnap", vmState: "paused", warnings: [] });
        expectSameBytes(await shmBytes(dst), ram, "destination RAM after the ramsnap-pages restore");
        expect(await readCounter(dst)).toBe(savedCounter);
        // QEMU loaded no page of ram0 (its bitmap was clear in the stream it read): ram.transferred is small.
        await dst.qmp.execute("cont");
        expect(await waitCounterAbove(dst, savedCounter)).toBeGreaterThan(savedCounter);
        expect((await queryRunState(dst.qmp)).status).toBe("running");
        for (const g of [src, dst]) expect(await g.qmp.execute<unknown[]>("query-fdsets")).toEqual([]);
        expect(readdirTemporaries(dir)).toEqual([]);
      } finally {
        await Promise.all([src.stop(), dst.stop()]);
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "plain QEMU loads the file on its own (mapped-ram on, nothing else) with RAM identical; a file QEMU wrote itself restores through ramsnap's path",
    async () => {
      const socket = join(dir, "plain.qmp");
      const src = await startGuest({ ...counting("plain-src"), running: true, extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
      const file = join(dir, "plain.ram");
      const qemuFile = join(dir, "qemu-wrote.ram");
      try {
        const cli = await ramsnap("qemu", "save", "--qmp", socket, file, "--pages", "ramsnap", "--progress", "--channels", "2");
        expect(cli.code).toBe(0);
        // progress from ramsnap's own counters: bytes of RAM done of 64 MiB, bytes written, rate
        expect(cli.stderr).toMatch(/\rsave \[[#-]{30}\] +\d+% {2}[\d.]+ \w*B \/ 64\.\d MiB {2}written [\d.]+ \w*B {2}[\d.]+ \w*B\/s {2}ETA (\d+s|\?)\x1b\[K/);
        expect(cli.stdout).toMatch(/\npages moved by ramsnap's channels: every memory backend is a shared file \(ram0\)\n$/);
        const ram = await shmBytes(src);
        const plain = await startGuest({ ...counting("plain-dst", { pattern: undefined }), incoming: true });
        try {
          await migrateFromFile(plain, `file:${file}`, { mappedRam: true });
          expectSameBytes(await shmBytes(plain), ram, "RAM that plain QEMU loaded from ramsnap's file");
        } finally {
          await plain.stop();
        }
        // QEMU's own mapped-ram save of the same (paused) guest, restored with ramsnap moving the pages.
        await src.qmp.execute("cont");
        await src.qmp.execute("stop");
        const again = await shmBytes(src);
        await migrateToFile(src, `file:${qemuFile}`, { mappedRam: true, multifd: true, channels: 2 });
        const dst = await startGuest({ ...counting("qemu-dst", { pattern: undefined }), incoming: true });
        try {
          const r = await qemuRestore({ qmp: dst.qmp, path: qemuFile, channels: 2 });
          expect(r.pagesBy).toBe("ramsnap");
          expectSameBytes(await shmBytes(dst), again, "RAM restored by ramsnap from the file QEMU wrote");
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
    "two NUMA backends and a VGA device: both backends moved by ramsnap, vga.vram by QEMU, every block identical",
    async () => {
      const opts: GuestOptions = { name: "numa", ramMiB: 128, numa: 2, vga: true, pattern: { seed: 21, kind: "clustered", nonZero: 0.5 } };
      const src = await startGuest({ ...opts, name: "numa-src" });
      const dst = await startGuest({ ...opts, name: "numa-dst", pattern: undefined, incoming: true });
      const file = join(dir, "numa.ram");
      try {
        const saved = await qemuSave({ qmp: src.qmp, path: file, channels: 2 });
        expect(saved.pagesBy).toBe("ramsnap");
        expect(saved.pagesWhy).toContain("(m0, m1)");
        expect(inspectFile(file).blocks.map((b) => b.name)).toEqual(expect.arrayContaining(["m0", "m1", "0000:00:01.0/vga.vram"]));
        const before = await allShm(src);
        const r = await qemuRestore({ qmp: dst.qmp, path: file, channels: 2 });
        expect(r.pagesBy).toBe("ramsnap");
        const after = await allShm(dst);
        for (const [i, b] of before.entries()) expectSameBytes(after[i]!, b, `NUMA backend m${i}`);
      } finally {
        await Promise.all([src.stop(), dst.stop()]);
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "guests ramsnap cannot reach fall back to QEMU's path and say why; --pages ramsnap on them is refused in one line",
    async () => {
      const socket = join(dir, "anon.qmp");
      const anon = await startGuest({ name: "anon", ramMiB: 64, backing: "anonymous", extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
      const privSocket = join(dir, "priv.qmp");
      const priv = await startGuest({ name: "priv", ramMiB: 64, backing: "private", extraArgs: ["-qmp", `unix:${privSocket},server=on,wait=off`] });
      try {
        const refused = join(dir, "anon-refused.ram");
        expectQemuError(await ramsnap("qemu", "save", "--qmp", socket, refused, "--pages", "ramsnap"), "save", 1, /--pages ramsnap: backend ram0 is memory-backend-ram, not a file ramsnap can reach; use --pages auto/);
        expect(existsSync(refused)).toBe(false);
        const r = await ramsnap("qemu", "save", "--qmp", socket, join(dir, "anon.ram"), "--json");
        expect(r.code).toBe(0);
        expect(JSON.parse(r.stdout)).toMatchObject({ pagesBy: "qemu", pagesWhy: "backend ram0 is memory-backend-ram, not a file ramsnap can reach" });
        const text = await ramsnap("qemu", "save", "--qmp", privSocket, join(dir, "priv.ram"));
        expect(text.code).toBe(0);
        expect(text.stdout).toMatch(/pages moved by QEMU: backend ram0 is private \(share=off\)/);
      } finally {
        await Promise.all([anon.stop(), priv.stop()]);
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "restore with --pages ramsnap into a destination whose backend is private is refused before anything is written",
    async () => {
      const src = await startGuest({ name: "rpriv-src", ramMiB: 64, pattern: { seed: 9, kind: "scattered" } });
      const socket = join(dir, "rpriv.qmp");
      const dst = await startGuest({ name: "rpriv-dst", ramMiB: 64, incoming: true, backing: "private", extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
      const file = join(dir, "rpriv.ram");
      try {
        await qemuSave({ qmp: src.qmp, path: file });
        const shmBefore = await shmBytes(dst);
        expectQemuError(await ramsnap("qemu", "restore", "--qmp", socket, file, "--pages", "ramsnap"), "restore", 1, /--pages ramsnap: backend ram0 is private \(share=off\)/);
        expectSameBytes(await shmBytes(dst), shmBefore, "the destination's backend file, untouched");
        expect((await queryRunState(dst.qmp)).status).toBe("inmigrate");
        // auto: QEMU loads it, and the guest's RAM is the file's
        const r = await qemuRestore({ qmp: dst.qmp, path: file });
        expect(r.pagesBy).toBe("qemu");
      } finally {
        await Promise.all([src.stop(), dst.stop()]);
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "--live keeps a running guest running and lets QEMU move the pages; --live with --pages ramsnap is a usage error",
    async () => {
      const socket = join(dir, "live.qmp");
      const g = await startGuest({ ...counting("live"), running: true, extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
      try {
        expectQemuError(await ramsnap("qemu", "save", "--qmp", socket, join(dir, "live-x.ram"), "--live", "--pages", "ramsnap"), "save", 2, /--live and --pages ramsnap do not go together/);
        const r = await ramsnap("qemu", "save", "--qmp", socket, join(dir, "live.ram"), "--live", "--keep-running", "--json");
        expect(r.stderr).toBe("");
        expect(JSON.parse(r.stdout)).toMatchObject({ pagesBy: "qemu", vmState: "running" });
        expect(inspectFile(join(dir, "live.ram")).complete).toBe(true);
      } finally {
        await g.stop();
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "a full disk on ramsnap's path: one line naming ENOSPC, the previous save byte for byte intact, no temporaries, the guest runs again",
    async () => {
      const mnt = join(dir, "small");
      mkdirSync(mnt, { recursive: true });
      const m = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=24M", "tmpfs", mnt], { stderr: "pipe" });
      if (m.exitCode !== 0) throw new Error(`mount tmpfs failed (these tests need root): ${m.stderr.toString().trim()}`);
      const socket = join(dir, "full.qmp");
      const g = await startGuest({ name: "full", ramMiB: 64, running: true, counter: true, pattern: { seed: 3, kind: "dense" }, extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
      try {
        const file = join(mnt, "vm.ram");
        writeFileSync(file, "the previous save");
        const r = await ramsnap("qemu", "save", "--qmp", socket, file);
        expectQemuError(r, "save", 1, /vm\.ram: ENOSPC/);
        expect(readFileSync(file, "utf8")).toBe("the previous save");
        expect(readdirTemporaries(mnt)).toEqual([]);
        expect((await queryRunState(g.qmp)).status).toBe("running");
      } finally {
        await g.stop();
        Bun.spawnSync(["umount", "-l", mnt]);
      }
    },
    QEMU_TEST_MS,
  );
});

/** ramsnap's temporary files in a folder (.NAME.ramsnap-PID-…). */
function readdirTemporaries(folder: string): string[] {
  return Array.from(new Bun.Glob(".*ramsnap-*").scanSync({ cwd: folder, dot: true }));
}
