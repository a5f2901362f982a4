// `ramsnap qemu save|restore` against real QEMU 10: a running TCG guest saved through an fdset (SCM_RIGHTS)
// and loaded into a fresh QEMU, guest RAM compared byte for byte through the /dev/shm memory backends, and
// every error a user will meet, as the user meets it (one line, an exit code).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { inspectFile } from "../src/inspect.ts";
import { qemuRestore, qemuSave } from "../src/qemu/drive.ts";
import { QemuTooOldError } from "../src/qemu/errors.ts";
import { CancelledError } from "../src/errors.ts";
import { parseRamBlocks, queryRunState } from "../src/qemu/guest-state.ts";
import { checkQemuVersion, versionText } from "../src/qemu/version.ts";
import { sendWithFds, connectUnix } from "../ffi/socket.ts";
import { ArgumentError, SysError } from "../ffi/errors.ts";
import { ramBlocks, requireQemu, shmBytes, startGuest, startGuestWithSocket, stopAllGuests, type Guest, type GuestOptions } from "../harness/qemu.ts";
import { expectOneLineError, ramsnap, spawnRamsnap, type Run } from "../harness/cli.ts";
import { expectSameBytes } from "../harness/scratch.ts";
import { MiB } from "../harness/units.ts";

// Guests boot under TCG on a machine shared with other work: give each QEMU test room.
const QEMU_TEST_MS = 60_000;

// ---- pure parts -------------------------------------------------------------------------------------------

describe("version gate", () => {
  const v = (major: number, minor: number, micro = 0) => ({ major, minor, micro });

  test("QEMU older than 9.0 is refused for any mapped-ram use, naming both versions", () => {
    for (const old of [v(8, 2, 5), v(7, 2), v(2, 12)]) {
      expect(() => checkQemuVersion(old, { directIo: false })).toThrow(QemuTooOldError);
    }
    expect(() => checkQemuVersion(v(8, 2, 5), { directIo: false })).toThrow(
      "QEMU 8.2.5 is too old: mapped-ram files (saving and loading) need QEMU 9.0 or newer",
    );
  });

  test("QEMU 9.0 works without --direct-io and is refused with it, with the way out", () => {
    expect(() => checkQemuVersion(v(9, 0, 2), { directIo: false })).not.toThrow();
    expect(() => checkQemuVersion(v(9, 0, 2), { directIo: true })).toThrow(
      "QEMU 9.0.2 is too old for --direct-io (it needs QEMU 9.1 or newer): run without --direct-io, or upgrade QEMU",
    );
  });

  test("QEMU 9.1, 9.2, 10.0 and 11.0 pass with --direct-io", () => {
    for (const ok of [v(9, 1), v(9, 2, 3), v(10, 0, 2), v(11, 0)]) expect(() => checkQemuVersion(ok, { directIo: true })).not.toThrow();
  });

  test("a version that is not numbers is refused, not taken for new", () => {
    expect(() => checkQemuVersion({ major: Number.NaN, minor: 0, micro: 0 }, { directIo: false })).toThrow("cannot read");
  });
});

describe("ffi/socket arguments are checked before C sees them", () => {
  test("connectUnix: over-long path, NUL, missing socket", () => {
    expect(() => connectUnix(`/tmp/${"x".repeat(120)}`)).toThrow(ArgumentError);
    expect(() => connectUnix("/tmp/a\0b")).toThrow(ArgumentError);
    const missing = (() => {
      try {
        connectUnix("/tmp/ramsnap-no-such-dir/qmp.sock");
      } catch (e) {
        return e;
      }
    })();
    expect(missing).toBeInstanceOf(SysError);
    expect((missing as SysError).code).toBe("ENOENT");
  });

  test("sendWithFds: NaN descriptors, no data, no descriptors, too many", () => {
    const data = new Uint8Array([1]);
    expect(() => sendWithFds(Number.NaN, data, [0])).toThrow(ArgumentError);
    expect(() => sendWithFds(0, data, [Number.NaN])).toThrow(ArgumentError);
    expect(() => sendWithFds(0, new Uint8Array(0), [0])).toThrow(ArgumentError);
    expect(() => sendWithFds(0, data, [])).toThrow(ArgumentError);
    expect(() => sendWithFds(0, data, Array(254).fill(0))).toThrow(ArgumentError);
  });
});

test("parseRamBlocks reads `info ramblock` (PSize is two words)", () => {
  const text =
    "              Block Name    PSize              Offset               Used              Total                HVA  RO\r\n" +
    "                    ram0    4 KiB  0x0000000000000000 0x0000000008000000 0x0000000008000000 0x00007f0000000000  rw\r\n" +
    "                 pc.bios    4 KiB  0x0000000008000000 0x0000000000040000 0x0000000000040000 0x00007f1000000000  ro\r\n";
  expect(parseRamBlocks(text)).toEqual([
    { name: "ram0", usedLength: 0x8000000, maxLength: 0x8000000 },
    { name: "pc.bios", usedLength: 0x40000, maxLength: 0x40000 },
  ]);
  expect(() => parseRamBlocks("nonsense")).toThrow("info ramblock");
});

// ---- against QEMU 10 --------------------------------------------------------------------------------------

/** A failure as a user sees it, from `ramsnap qemu COMMAND`. */
const expectQemuError = (r: Run, command: string, code: number, pattern: RegExp) => expectOneLineError(r, `qemu ${command}`, code, pattern);

const fdsets = (g: Guest) => g.qmp.execute<unknown[]>("query-fdsets");

async function migrationCapabilitiesOn(g: Guest): Promise<string[]> {
  const caps = await g.qmp.execute<{ capability: string; state: boolean }[]>("query-migrate-capabilities");
  return caps.filter((c) => c.state).map((c) => c.capability);
}

function mount(args: string[], dir: string): () => void {
  mkdirSync(dir, { recursive: true });
  const r = Bun.spawnSync(["mount", ...args, dir], { stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`mount ${args.join(" ")} ${dir} failed (these tests need root): ${r.stderr.toString().trim()}`);
  return () => {
    Bun.spawnSync(["umount", "-l", dir]);
    rmSync(dir, { recursive: true, force: true });
  };
}

describe.skipIf(!requireQemu())("ramsnap qemu save|restore with QEMU 10", () => {
  // ext4 under /tmp: QEMU's O_DIRECT writes meet real alignment rules there, not tmpfs's anything-goes.
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync("/tmp/ramsnap-qemu-drive-");
  }, QEMU_TEST_MS);
  afterAll(async () => {
    await stopAllGuests();
    rmSync(dir, { recursive: true, force: true });
  }, QEMU_TEST_MS);

  const guestWithCliSocket = (name: string, opts: Omit<GuestOptions, "extraArgs" | "name">, extra: string[] = []) => startGuestWithSocket(dir, { ...opts, name }, extra);

  for (const [channels, directIo] of [
    [2, true],
    [2, false],
    [4, true],
    [4, false],
  ] as const) {
    test(`running guest saved with ${channels} channels, direct-io ${directIo ? "on" : "off"}, restored into a fresh QEMU: RAM identical, no fdset left`, async () => {
      const file = join(dir, `drive-${channels}-${directIo}.ram`);
      const src = await startGuest({ name: "drive-src", ramMiB: 64, running: true, pattern: { seed: channels * 10 + Number(directIo), kind: "scattered" } });
      const dst = await startGuest({ name: "drive-dst", ramMiB: 64, incoming: true });
      try {
        expect((await queryRunState(src.qmp)).running).toBe(true);
        const saved = await qemuSave({ qmp: src.qmp, path: file, channels, directIo, verify: true, pages: "qemu" });
        expect(saved).toMatchObject({ channels, directIo, wasRunning: true, vmState: "postmigrate", warnings: [] });
        expect(saved.fdset).toMatchObject({ descriptors: directIo ? 2 : 1, removed: true });
        expect(saved.verified?.blocks.map((b) => [b.name, b.length])).toEqual((await ramBlocks(src)).map((b) => [b.name, b.usedLength]));
        expect(await fdsets(src)).toEqual([]);
        expect(await migrationCapabilitiesOn(src)).toEqual([]); // mapped-ram and multifd put back
        // The guest ran until the save paused it: its RAM now is what the file must hold.
        const ram = await shmBytes(src);

        const restored = await qemuRestore({ qmp: dst.qmp, path: file, channels, directIo, pages: "qemu" });
        expect(restored).toMatchObject({ channels, directIo, machineType: src.machineType, vmState: "paused", warnings: [] });
        expect(restored.fdset).toMatchObject({ descriptors: directIo ? 2 : 1, removed: true });
        expect(await fdsets(dst)).toEqual([]);
        expectSameBytes(await shmBytes(dst), ram, "destination RAM after the restore");
      } finally {
        await Promise.all([src.stop(), dst.stop()]);
      }
    }, QEMU_TEST_MS);
  }

  test("CLI: save --keep-running --verify --json, save again paused, restore --json: exit 0, RAM identical", async () => {
    const { guest: src, socket } = await guestWithCliSocket("cli-src", { ramMiB: 64, running: true, pattern: { seed: 5, kind: "clustered" } });
    const { guest: dst, socket: dstSocket } = await guestWithCliSocket("cli-dst", { ramMiB: 64, incoming: true });
    try {
      const first = await ramsnap("qemu", "save", "--qmp", socket, join(dir, "cli-1.ram"), "--channels", "2", "--direct-io", "--keep-running", "--verify", "--json", "--pages", "qemu");
      expect(first.stderr).toBe("");
      expect(first.code).toBe(0);
      const j = JSON.parse(first.stdout);
      // The version QMP reports: 10.0 or 11.1, whichever RAMSNAP_QEMU chose (harness/qemu-binary.ts).
      expect(j).toMatchObject({ qmp: socket, qemuVersion: versionText(src.qmp.greeting.version.qemu), channels: 2, directIo: true, wasRunning: true, vmState: "running" });
      expect(j.fdset).toMatchObject({ descriptors: 2, removed: true });
      expect(j.verified.complete).toBe(true);
      expect(j.ramBytes).toBeGreaterThan(64 * MiB);
      expect((await queryRunState(src.qmp)).status).toBe("running");

      // Resumed, the guest can be saved again; this time it stays paused, so its RAM can be compared.
      const file = join(dir, "cli-2.ram");
      const second = await ramsnap("qemu", "save", "--qmp", socket, file, "--channels", "4", "--progress", "--pages", "qemu");
      // --progress draws on stderr even when it is not a terminal: query-migrate's numbers, redrawn in place.
      expect(second.stderr).toMatch(/\rsave \[[#-]{30}\] +\d+% {2}[\d.]+ \w*B \/ 64\.\d MiB {2}written [\d.]+ \w*B {2}[\d.]+ \w*B\/s {2}ETA (\d+s|\?)\x1b\[K/);
      expect(second.stderr.endsWith("\r\x1b[K")).toBe(true); // and is wiped before the summary
      expect(second.code).toBe(0);
      expect(second.stdout).toMatch(/^saved the guest at .* in [\d.]+ s: .* 4 channels, buffered I\/O; the guest is left paused \(postmigrate\)\npages moved by QEMU: --pages qemu\n$/);
      expect(inspectFile(file).complete).toBe(true);
      const ram = await shmBytes(src);

      const restored = await ramsnap("qemu", "restore", "--qmp", dstSocket, file, "--channels", "2", "--direct-io", "--json", "--pages", "qemu");
      expect(restored.stderr).toBe("");
      expect(restored.code).toBe(0);
      expect(JSON.parse(restored.stdout)).toMatchObject({ file, channels: 2, directIo: true, vmState: "paused", fdset: { descriptors: 2, removed: true } });
      expectSameBytes(await shmBytes(dst), ram, "destination RAM after the CLI restore");
      expect(await fdsets(src)).toEqual([]);
      expect(await fdsets(dst)).toEqual([]);
    } finally {
      await Promise.all([src.stop(), dst.stop()]);
    }
  }, QEMU_TEST_MS);

  // QEMU 10.0.2 segfaults on about one migrate_cancel in five of a mapped-ram multifd save (see
  // src/qemu/migration-watch.ts), so Ctrl-C lets QEMU finish and then throws the file away.
  test("Ctrl-C during a save QEMU writes: exit 130, QEMU left to finish (never crashed), the completed save kept (never a partial file), no fdset, the guest runs again", async () => {
    // 256 MiB through QEMU's direct-io path (single-page writes on a scattered pattern) takes seconds.
    const { guest, socket } = await guestWithCliSocket("cli-cancel", { ramMiB: 256, running: true, pattern: { seed: 9, kind: "scattered" } });
    try {
      const file = join(dir, "cancelled.ram");
      const p = spawnRamsnap("qemu", "save", "--qmp", socket, file, "--channels", "2", "--direct-io", "--pages", "qemu");
      const deadline = Date.now() + 20_000;
      let status = "";
      while (Date.now() < deadline) {
        status = (await guest.qmp.execute<{ status?: string }>("query-migrate")).status ?? "";
        if (status === "active" || status === "completed" || p.exitCode !== null) break;
        await Bun.sleep(5);
      }
      expect(status).toBe("active");
      p.kill("SIGINT");
      const [stderr, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
      expect(code).toBe(130);
      expect(stderr.split("\n")).toEqual([
        expect.stringMatching(/^\r?stopping: a running QEMU migration cannot be cancelled safely .* Ctrl-C again cancels at once, at that risk/),
        `ramsnap qemu save: cancelled too late: QEMU had completed the save, and ${file} holds it; the guest runs again`,
        "",
      ]);
      expect(inspectFile(file).complete).toBe(true);
      expect(Array.from(new Bun.Glob(".cancelled.ram.ramsnap-*").scanSync({ cwd: dir, dot: true }))).toEqual([]);
      expect((await guest.qmp.execute<{ status: string }>("query-migrate")).status).toBe("completed");
      expect(await fdsets(guest)).toEqual([]);
      expect((await queryRunState(guest.qmp)).status).toBe("running");
    } finally {
      await guest.stop();
    }
  }, QEMU_TEST_MS);

  describe("errors a user meets: one line, QEMU untouched", () => {
    let guest: Guest;
    let socket = "";
    let hmpSocket = "";
    beforeAll(async () => {
      hmpSocket = join(dir, "errors-hmp.sock");
      ({ guest, socket } = await guestWithCliSocket("errors", { ramMiB: 64, running: true, pattern: { seed: 3, kind: "scattered" } }, [
        "-monitor",
        `unix:${hmpSocket},server=on,wait=off`,
      ]));
      // A good file of this 64 MiB guest, for the restore errors.
      await qemuSave({ qmp: guest.qmp, path: goodFile(), keepRunning: true });
    }, QEMU_TEST_MS);
    const goodFile = () => join(dir, "errors-good.ram");
    afterAll(async () => {
      await guest?.stop();
    }, QEMU_TEST_MS);

    /** After a refused or failed save the guest runs as before, with no fdset and its migration settings as they were. */
    async function expectGuestUntouched(): Promise<void> {
      expect((await queryRunState(guest.qmp)).status).toBe("running");
      expect(await fdsets(guest)).toEqual([]);
      expect(await migrationCapabilitiesOn(guest)).toEqual([]);
    }

    test("stopped before QEMU starts (an aborted signal): nothing created, nothing changed", async () => {
      const file = join(dir, "never.ram");
      await expect(qemuSave({ qmp: guest.qmp, path: file, directIo: true, signal: AbortSignal.abort() })).rejects.toThrow(CancelledError);
      expect(existsSync(file)).toBe(false);
      await expectGuestUntouched();
    }, QEMU_TEST_MS);

    test("QMP socket missing", async () => {
      const r = await ramsnap("qemu", "save", "--qmp", join(dir, "no-such.qmp"), join(dir, "x.ram"));
      expectQemuError(r, "save", 1, /QMP socket .*no-such\.qmp does not exist$/m);
    }, QEMU_TEST_MS);

    test("not a QMP socket: a plain file, and QEMU's human monitor", async () => {
      const plain = join(dir, "plain-file");
      writeFileSync(plain, "hello");
      expectQemuError(await ramsnap("qemu", "save", "--qmp", plain, join(dir, "x.ram")), "save", 1, /plain-file is not a QMP socket \(not a unix socket at all\)/);
      expectQemuError(await ramsnap("qemu", "restore", "--qmp", hmpSocket, join(dir, "x.ram")), "restore", 1, /errors-hmp\.sock is not a QMP socket \(it sent "QEMU .* monitor/);
      expect(existsSync(join(dir, "x.ram"))).toBe(false);
    }, QEMU_TEST_MS);

    test("a migration already running", async () => {
      // A classic migration throttled to 64 KiB/s stays "active" for minutes.
      await guest.qmp.execute("migrate-set-parameters", { "max-bandwidth": 65536 });
      await guest.qmp.execute("migrate", { uri: `file:${join(dir, "slow.mig")}` });
      try {
        const file = join(dir, "busy.ram");
        const r = await ramsnap("qemu", "save", "--qmp", socket, file, "--direct-io");
        expectQemuError(r, "save", 1, /a migration is already running on QEMU at .* \(status 'active'\): wait for it to end, or stop it with the QMP command migrate_cancel$/m);
        expect(existsSync(file)).toBe(false);
        expect((await guest.qmp.execute<{ status: string }>("query-migrate")).status).toBe("active"); // left alone
      } finally {
        await guest.qmp.execute("migrate_cancel");
        while ((await guest.qmp.execute<{ status: string }>("query-migrate")).status !== "cancelled") await Bun.sleep(10);
        await guest.qmp.execute("migrate-set-parameters", { "max-bandwidth": 128 * MiB });
      }
      await expectGuestUntouched();
    }, QEMU_TEST_MS);

    test("a file system without O_DIRECT (ramfs): the hint to drop --direct-io, no file left", async () => {
      const mnt = join(dir, "ramfs");
      const unmount = mount(["-t", "ramfs", "ramfs"], mnt);
      try {
        const file = join(mnt, "vm.ram");
        const r = await ramsnap("qemu", "save", "--qmp", socket, file, "--direct-io");
        expectQemuError(r, "save", 1, /vm\.ram: ramfs does not accept direct I\/O \(O_DIRECT\); run without --direct-io/);
        expect(existsSync(file)).toBe(false);
        await expectGuestUntouched();
      } finally {
        unmount();
      }
    }, QEMU_TEST_MS);

    // A channel hitting ENOSPC makes QEMU 10.0.2 segfault about half the time (the cancel race of
    // migration-watch.ts), so ramsnap refuses before QEMU writes anything.
    test("a full disk (16 MiB tmpfs for a 64 MiB guest): says so before QEMU writes, no file, guest runs on", async () => {
      const mnt = join(dir, "small");
      const unmount = mount(["-t", "tmpfs", "-o", "size=16M", "tmpfs"], mnt);
      try {
        writeFileSync(join(mnt, "other"), new Uint8Array(4 << 20)); // the disk is not empty either
        for (const directIo of [false, true]) {
          const file = join(mnt, `vm-${directIo}.ram`);
          const r = await ramsnap("qemu", "save", "--qmp", socket, file, "--pages", "qemu", ...(directIo ? ["--direct-io"] : []));
          expectQemuError(
            r,
            "save",
            1,
            /vm-(true|false)\.ram: not enough free space: 12\.0 MiB free on tmpfs, about \d+\.\d MiB needed \(the guest's 64\.\d MiB of RAM, \d+\.\d MiB of it possibly non-zero\); ramsnap does not start a save that could fill the disk, because QEMU 10\.0 can crash when it does \(--force starts it anyway\)/,
          );
          expect(existsSync(file)).toBe(false);
          await expectGuestUntouched();
        }
      } finally {
        unmount();
      }
    }, QEMU_TEST_MS);

    test("restore into a QEMU not started with -incoming defer", async () => {
      const r = await ramsnap("qemu", "restore", "--qmp", socket, goodFile());
      expectQemuError(r, "restore", 1, /is not waiting for an incoming migration \(its guest is 'running'\): start the destination QEMU with -incoming defer/);
      await expectGuestUntouched();
    }, QEMU_TEST_MS);

    test("restore of a file whose RAM does not fit the destination, and of a cancelled (partial) file", async () => {
      const file = goodFile();
      const { guest: bigger, socket: biggerSocket } = await guestWithCliSocket("errors-dst", { ramMiB: 128, incoming: true });
      try {
        const r = await ramsnap("qemu", "restore", "--qmp", biggerSocket, file);
        expectQemuError(r, "restore", 1, /RAM block ram0 is 67108864 bytes in .* but 134217728 in the destination QEMU: give it the same memory size$/m);
        const partial = join(dir, "partial.ram");
        writeFileSync(partial, (await Bun.file(file).bytes()).subarray(0, 64 * 1024));
        const p = await ramsnap("qemu", "restore", "--qmp", biggerSocket, partial);
        expectQemuError(p, "restore", 1, /partial\.ram is not a loadable migration file: /);
        expect((await queryRunState(bigger.qmp)).status).toBe("inmigrate"); // still waiting, ready for the right file
        expect(await fdsets(bigger)).toEqual([]);
      } finally {
        await bigger.stop();
      }
    }, QEMU_TEST_MS);
  });
});
