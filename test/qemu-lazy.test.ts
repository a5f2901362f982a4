// Instant restore against real QEMU 10: the destination maps the save file as guest RAM copy-on-write
// (the arguments `ramsnap qemu backend-args` prints) and `ramsnap qemu restore --lazy` has QEMU load only
// the device state. Guest memory is read through QEMU (pmemsave), since it is no shm file any more; the
// save file's bytes are hashed before and after the guests wrote their RAM.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { RefusedError } from "../src/errors.ts";
import { readPageMap, PAGE_ABSENT } from "../src/format/pages.ts";
import { inspectFile } from "../src/inspect.ts";
import { MainFile } from "../src/io/main-file.ts";
import { qemuRestore, qemuSave } from "../src/qemu/drive.ts";
import { queryRunState } from "../src/qemu/guest-state.ts";
import { backendArgs } from "../src/qemu/lazy.ts";
import { save } from "../src/save.ts";
import { expectOneLineError, ramsnap, type Run } from "../harness/cli.ts";
import { COUNTER_ADDRESS, guestMemory, migrateToFile, requireQemu, shmBytes, startGuest, stopAllGuests, waitCounterAbove as waitAbove, type Guest, type GuestOptions } from "../harness/qemu.ts";
import { expectSameBytes } from "../harness/scratch.ts";
import { MiB } from "../harness/units.ts";

const QEMU_TEST_MS = 90_000;
const RAM = 64 * MiB;
const expectQemuError = (r: Run, command: string, code: number, pattern: RegExp) => expectOneLineError(r, `qemu ${command}`, code, pattern);

/** The memory arguments backend-args gives, as words for the destination's command line. */
function mapping(file: string, offset = 0): string[] {
  const a = backendArgs(inspectFile(file, { offset }));
  return [...a.blocks.flatMap((b) => ["-object", b.object]), ...a.machine.flatMap((m) => m.split(" "))];
}

/** Guest RAM as QEMU sees it, without the legacy VGA/BIOS window [640 KiB, 1 MiB) that is not plain RAM. */
async function lowMemory(g: Guest, bytes = RAM): Promise<Uint8Array[]> {
  const m = await guestMemory(g, bytes);
  return [m.subarray(0, 0xa0000), m.subarray(0x100000)];
}
const split = (ram: Uint8Array) => [ram.subarray(0, 0xa0000), ram.subarray(0x100000)];

async function counterOf(g: Guest): Promise<number> {
  const m = await guestMemory(g, COUNTER_ADDRESS + 4);
  return new DataView(m.buffer, m.byteOffset).getUint32(COUNTER_ADDRESS, true);
}

/** The counter read through QEMU (a lazily restored guest's RAM is the save file, mapped privately). */
const waitCounterAbove = (g: Guest, value: number) => waitAbove(g, value, counterOf);

const fileHash = async (path: string) => Bun.hash.xxHash3(await Bun.file(path).bytes()).toString(16);

describe.skipIf(!requireQemu())("instant restore: the guest maps the save file (QEMU 10)", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync("/tmp/ramsnap-qemu-lazy-");
  });
  afterAll(async () => {
    await stopAllGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  const counting = (name: string, extra: Partial<GuestOptions> = {}): GuestOptions => ({ name, ramMiB: 64, counter: true, pattern: { seed: 17, kind: "scattered", nonZero: 0.3 }, ...extra });
  const lazyGuest = (name: string, file: string, extra: Partial<GuestOptions> = {}, offset = 0) =>
    startGuest({ name, ramMiB: 64, counter: true, incoming: true, memory: mapping(file, offset), ...extra });

  test(
    "a guest saved by ramsnap: restored with --lazy, memory equal, it counts on after --resume, and the file's bytes never change",
    async () => {
      const file = join(dir, "lazy.ram");
      const src = await startGuest({ ...counting("lazy-src"), running: true });
      try {
        await qemuSave({ qmp: src.qmp, path: file });
        const ram = await shmBytes(src);
        const saved = new DataView(ram.buffer, ram.byteOffset).getUint32(COUNTER_ADDRESS, true);
        const before = await fileHash(file);
        const dst = await lazyGuest("lazy-dst", file);
        try {
          const t0 = performance.now();
          const r = await qemuRestore({ qmp: dst.qmp, path: file, lazy: true });
          expect(r).toMatchObject({ pagesBy: "mapped", vmState: "paused", warnings: [] });
          expect(performance.now() - t0).toBeLessThan(5000);
          const [a, b] = await lowMemory(dst);
          const [x, y] = split(ram);
          expectSameBytes(a!, x!, "guest memory below 640 KiB after the lazy restore");
          expectSameBytes(b!, y!, "guest memory above 1 MiB after the lazy restore");
          await dst.qmp.execute("cont");
          expect(await waitCounterAbove(dst, saved)).toBeGreaterThan(saved);
          expect(await fileHash(file)).toBe(before); // the guest's writes went to its private copy
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
    "a file QEMU saved itself (paused guest, mapped-ram) restored with --lazy: memory equal",
    async () => {
      const file = join(dir, "qemu-saved.ram");
      const src = await startGuest({ ...counting("qsave-src"), running: true });
      try {
        await src.qmp.execute("stop");
        await migrateToFile(src, `file:${file}`, { mappedRam: true, multifd: true, channels: 2 });
        const ram = await shmBytes(src);
        const dst = await lazyGuest("qsave-dst", file);
        try {
          expect((await qemuRestore({ qmp: dst.qmp, path: file, lazy: true })).pagesBy).toBe("mapped");
          const got = await lowMemory(dst);
          for (const [i, part] of split(ram).entries()) expectSameBytes(got[i]!, part, `memory part ${i}`);
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
    "stale bytes in a slot whose bit is clear: --lazy refuses and names the fix; after 'ramsnap scrub' the lazy restore reads that page as zero",
    async () => {
      const file = join(dir, "stale.ram");
      const src = await startGuest({ ...counting("stale-src"), pattern: { seed: 5, kind: "scattered", nonZero: 0.5 } });
      try {
        await qemuSave({ qmp: src.qmp, path: file });
        const ram = await shmBytes(src);
        // What a live save can leave: old bytes in the slot of a page that ended up zero.
        const page = (() => {
          using f = MainFile.openRead(file);
          const ram0 = readPageMap(f).blocks.find((b) => b.info.name === "ram0")!;
          let p = 4096;
          while (ram0.locate(p) !== PAGE_ABSENT) p++;
          return { p, at: ram0.info.mapped!.pagesOffset + p * 4096 };
        })();
        const fd = openSync(file, "r+");
        writeSync(fd, new Uint8Array(4096).fill(0x5a), 0, 4096, page.at);
        closeSync(fd);
        expect(backendArgs(inspectFile(file)).staleSlots).toBe(1);

        const socket = join(dir, "stale.qmp");
        const dst = await lazyGuest("stale-dst", file, { extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
        try {
          const refused = await ramsnap("qemu", "restore", "--qmp", socket, file, "--lazy");
          expectQemuError(refused, "restore", 1, /--lazy: .*stale\.ram has 1 page slots whose bitmap bit is clear but which hold old data .*'ramsnap scrub .*stale\.ram'.*'ramsnap convert .*--to mapped-ram'/);
          expect((await queryRunState(dst.qmp)).status).toBe("inmigrate"); // nothing loaded
        } finally {
          await dst.stop();
        }
        const scrub = await ramsnap("scrub", file);
        expect(scrub.code).toBe(0);
        expect(scrub.stdout).toMatch(/1 slot of ram0 held old data behind clear bitmap bits; cleared/);
        expect(backendArgs(inspectFile(file)).staleSlots).toBe(0);
        const dst2 = await lazyGuest("stale-dst2", file);
        try {
          await qemuRestore({ qmp: dst2.qmp, path: file, lazy: true });
          const got = await guestMemory(dst2, RAM);
          expect(got.subarray(page.at - inspectFile(file).blocks[0]!.pagesOffset!, page.at - inspectFile(file).blocks[0]!.pagesOffset! + 4096).every((v) => v === 0)).toBe(true);
          expectSameBytes(got.subarray(0x100000), ram.subarray(0x100000), "memory above 1 MiB after scrub and lazy restore");
        } finally {
          await dst2.stop();
        }
      } finally {
        await src.stop();
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "a NUMA guest with two backends, and a file saved at offset= by QEMU: both restored with --lazy, memory equal",
    async () => {
      const numaFile = join(dir, "numa.ram");
      const src = await startGuest({ name: "lnuma-src", ramMiB: 128, numa: 2, pattern: { seed: 8, kind: "clustered", nonZero: 0.5 } });
      try {
        await qemuSave({ qmp: src.qmp, path: numaFile });
        const nodes = [await shmBytes(src, 0), await shmBytes(src, 1)];
        const args = backendArgs(inspectFile(numaFile));
        expect(args.machine).toEqual(["-numa node,memdev=m0", "-numa node,memdev=m1"]);
        const dst = await startGuest({ name: "lnuma-dst", ramMiB: 128, incoming: true, memory: mapping(numaFile) });
        try {
          await qemuRestore({ qmp: dst.qmp, path: numaFile, lazy: true });
          const mem = await guestMemory(dst, 128 * MiB);
          expectSameBytes(mem.subarray(0x100000, 64 * MiB), nodes[0]!.subarray(0x100000), "NUMA node 0");
          expectSameBytes(mem.subarray(64 * MiB), nodes[1]!, "NUMA node 1");
        } finally {
          await dst.stop();
        }
        // QEMU writes the stream 4096 bytes into the file (file:PATH,offset=4096); it saves a guest again
        // only once it has run since the last save.
        await src.qmp.execute("cont");
        await src.qmp.execute("stop");
        nodes[1] = await shmBytes(src, 1);
        const atOffset = join(dir, "offset.ram");
        await migrateToFile(src, `file:${atOffset},offset=4096`, { mappedRam: true });
        expect(inspectFile(atOffset, { offset: 4096 }).complete).toBe(true);
        const dst2 = await startGuest({ name: "loff-dst", ramMiB: 128, incoming: true, memory: mapping(atOffset, 4096) });
        try {
          const r = await ramsnap("qemu", "restore", "--qmp", join(dir, "none.qmp"), atOffset, "--lazy", "--offset", "4096");
          // No QEMU at that socket: the CLI took --offset (a usage error would exit 2) and failed on the socket.
          expectQemuError(r, "restore", 1, /none\.qmp/);
          await qemuRestore({ qmp: dst2.qmp, path: atOffset, lazy: true, offset: 4096 });
          const mem = await guestMemory(dst2, 128 * MiB);
          expectSameBytes(mem.subarray(64 * MiB), nodes[1]!, "NUMA node 1 from the file at offset 4096");
        } finally {
          await dst2.stop();
        }
      } finally {
        await src.stop();
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "two clones from one file diverge without seeing each other's writes; a new save renamed over the name leaves them running; writing into the mapped file in place is refused",
    async () => {
      const file = join(dir, "clones.ram");
      const src = await startGuest({ ...counting("clone-src"), running: true });
      try {
        await qemuSave({ qmp: src.qmp, path: file });
        const saved = new DataView((await shmBytes(src)).buffer).getUint32(COUNTER_ADDRESS, true);
        const before = await fileHash(file);
        const [a, b] = await Promise.all([lazyGuest("clone-a", file), lazyGuest("clone-b", file)]);
        try {
          await qemuRestore({ qmp: a.qmp, path: file, lazy: true, resume: true });
          await qemuRestore({ qmp: b.qmp, path: file, lazy: true, resume: true });
          await waitCounterAbove(a, saved);
          await a.qmp.execute("stop");
          const ca = await counterOf(a);
          await Bun.sleep(300);
          await b.qmp.execute("stop");
          const cb = await counterOf(b);
          expect(ca).toBeGreaterThan(saved);
          expect(cb).toBeGreaterThan(ca); // b ran on after a stopped, and a did not see b's writes
          expect(await counterOf(a)).toBe(ca);
          expect(await fileHash(file)).toBe(before);

          // In-place writes into the mapped file are refused, naming the QEMU that maps it.
          expectOneLineError(await ramsnap("scrub", file), "scrub", 1, /clones\.ram is mapped by qemu-system-x86 \(pid \d+\)/);
          const fd = openSync(file, "r+");
          try {
            const e = await save({ fd, blocks: [{ name: "ram0", buffer: new Uint8Array(RAM) }] }).catch((x: unknown) => x);
            expect(e).toBeInstanceOf(RefusedError);
          } finally {
            closeSync(fd);
          }
          expect(await fileHash(file)).toBe(before);

          // A new save under the name renames a new file over it: the clones' mapped inode stays as it was.
          await a.qmp.execute("cont");
          const other = await startGuest({ name: "clone-other", ramMiB: 64, counter: true, pattern: { seed: 1, kind: "dense" } });
          try {
            await qemuSave({ qmp: other.qmp, path: file });
          } finally {
            await other.stop();
          }
          expect(await fileHash(file)).not.toBe(before);
          expect(await waitCounterAbove(a, ca)).toBeGreaterThan(ca); // still running from the old inode
          expect((await queryRunState(a.qmp)).status).toBe("running");
        } finally {
          await Promise.all([a.stop(), b.stop()]);
        }
      } finally {
        await src.stop();
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "refusals: a destination that does not map the file gets the exact arguments; --prefetch without --lazy and --lazy with --pages are usage errors; --prefetch warms the pages after --resume",
    async () => {
      const file = join(dir, "refuse.ram");
      const src = await startGuest({ name: "ref-src", ramMiB: 64, pattern: { seed: 3, kind: "clustered" } });
      try {
        await qemuSave({ qmp: src.qmp, path: file });
        const socket = join(dir, "plain-dst.qmp");
        const plain = await startGuest({ name: "ref-plain", ramMiB: 64, incoming: true, extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
        try {
          const r = await ramsnap("qemu", "restore", "--qmp", socket, file, "--lazy");
          expectQemuError(r, "restore", 1, /--lazy: the destination QEMU cannot map .*refuse\.ram: its backend ram0 maps \/dev\/shm\/.*, not .*refuse\.ram; start it with -object memory-backend-file,id=ram0,size=67108864,mem-path=.*refuse\.ram,offset=1048576,share=off,readonly=on,rom=off -machine memory-backend=ram0/);
          expectQemuError(await ramsnap("qemu", "restore", "--qmp", socket, file, "--prefetch"), "restore", 2, /--prefetch goes with --lazy/);
          expectQemuError(await ramsnap("qemu", "restore", "--qmp", socket, file, "--lazy", "--pages", "qemu"), "restore", 2, /--lazy and --pages do not go together/);
          expect((await queryRunState(plain.qmp)).status).toBe("inmigrate");
        } finally {
          await plain.stop();
        }
        const args = await ramsnap("qemu", "backend-args", file, "--json");
        expect(JSON.parse(args.stdout)).toMatchObject({ blocks: [{ name: "ram0", size: RAM, offset: 1048576 }], machine: ["-machine memory-backend=ram0"], staleSlots: 0 });
        const lazySocket = join(dir, "lazy-dst.qmp");
        const dst = await startGuest({ name: "ref-lazy", ramMiB: 64, incoming: true, memory: mapping(file), extraArgs: ["-qmp", `unix:${lazySocket},server=on,wait=off`] });
        try {
          const ok = await ramsnap("qemu", "restore", "--qmp", lazySocket, file, "--lazy", "--resume", "--prefetch", "--json");
          expect(ok.stderr).toBe("");
          const j = JSON.parse(ok.stdout);
          expect(j).toMatchObject({ pagesBy: "mapped", vmState: "running" });
          expect(j.prefetch.bytes).toBeGreaterThan(0);
        } finally {
          await dst.stop();
        }
      } finally {
        await src.stop();
      }
    },
    QEMU_TEST_MS,
  );
});
