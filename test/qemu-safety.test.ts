// Nothing lost, nothing silent around `ramsnap qemu save|restore`, against real QEMU 10 and real signals:
// a save over an existing file killed (SIGKILL) or stopped (SIGINT, SIGTERM) at chosen moments leaves the
// previous file byte for byte; what a killed run leaves (a temporary file, an fdset and QEMU's changed
// migration settings) is put right by the next run, which says so; manifests by default and --verify
// before a guest runs; the space estimate with --force; --resume; restore progress in bytes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { readPageMap, PAGE_ABSENT } from "../src/format/pages.ts";
import { inspectFile } from "../src/inspect.ts";
import { MainFile } from "../src/io/main-file.ts";
import { queryRunState } from "../src/qemu/guest-state.ts";
import { expectOneLineError, ramsnap, spawnRamsnap, type Run } from "../harness/cli.ts";
import { requireQemu, startGuestWithSocket, stopAllGuests, type Guest, type GuestOptions } from "../harness/qemu.ts";
import { MiB } from "../harness/units.ts";

const QEMU_TEST_MS = 120_000;
const expectQemuError = (r: Run, command: string, code: number, pattern: RegExp) => expectOneLineError(r, `qemu ${command}`, code, pattern);
const temporaries = (dir: string, name: string) => Array.from(new Bun.Glob(`.${name}.ramsnap-*`).scanSync({ cwd: dir, dot: true }));
const PREVIOUS = "the previous save, which must survive";

async function capsOn(g: Guest): Promise<string[]> {
  const caps = await g.qmp.execute<{ capability: string; state: boolean }[]>("query-migrate-capabilities");
  return caps.filter((c) => c.state).map((c) => c.capability);
}

async function waitMigration(g: Guest, status: string[]): Promise<string> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    const s = (await g.qmp.execute<{ status?: string }>("query-migrate")).status ?? "";
    if (status.includes(s) || Date.now() > deadline) return s;
    await Bun.sleep(5);
  }
}

describe.skipIf(!requireQemu())("qemu save|restore: nothing lost, nothing silent (QEMU 10)", () => {
  let dir = "";
  beforeAll(() => {
    dir = mkdtempSync("/tmp/ramsnap-qemu-safety-");
  });
  afterAll(async () => {
    await stopAllGuests();
    rmSync(dir, { recursive: true, force: true });
  });

  const guestWithSocket = (name: string, opts: Omit<GuestOptions, "name" | "extraArgs">) => startGuestWithSocket(dir, { ...opts, name });

  test(
    "QEMU's path: SIGKILL mid-save leaves the previous file byte for byte; the next run removes the temporary file, the fdset and QEMU's changed settings, and says so",
    async () => {
      // 256 MiB of scattered pages through QEMU's direct-io path takes seconds: room to kill it mid-save.
      const { guest, socket } = await guestWithSocket("kill-qemu", { ramMiB: 256, running: true, pattern: { seed: 4, kind: "scattered" } });
      try {
        const file = join(dir, "killed.ram");
        writeFileSync(file, PREVIOUS);
        const p = spawnRamsnap("qemu", "save", "--qmp", socket, file, "--pages", "qemu", "--channels", "2", "--direct-io");
        expect(await waitMigration(guest, ["active", "completed"])).toBe("active");
        p.kill("SIGKILL");
        await p.exited;
        expect(readFileSync(file, "utf8")).toBe(PREVIOUS);
        expect(temporaries(dir, "killed.ram")).toHaveLength(1); // QEMU still writes into it
        expect(await waitMigration(guest, ["completed", "failed"])).toBe("completed");
        expect(readFileSync(file, "utf8")).toBe(PREVIOUS); // QEMU finished: the name was never given the new file
        expect(await capsOn(guest)).toEqual(expect.arrayContaining(["mapped-ram", "multifd"])); // what the killed run left
        await guest.qmp.execute("cont"); // QEMU keeps a migrated guest paused
        const next = await ramsnap("qemu", "save", "--qmp", socket, file, "--pages", "qemu", "--json");
        expect(next.code).toBe(0);
        const warnings: string[] = JSON.parse(next.stdout).warnings;
        expect(warnings).toEqual(
          expect.arrayContaining([
            expect.stringMatching(/^removed fdset \d+ left by a killed ramsnap \(pid \d+\) and put back the migration settings it had changed$/),
            expect.stringMatching(/^removed .*\.killed\.ram\.ramsnap-\d+-\w+\.tmp, left by an earlier save that was killed$/),
          ]),
        );
        expect(temporaries(dir, "killed.ram")).toEqual([]);
        expect(inspectFile(file).complete).toBe(true);
        expect(await capsOn(guest)).not.toContain("mapped-ram"); // the user's settings (QEMU's defaults), not the killed run's
        expect(await guest.qmp.execute<unknown[]>("query-fdsets")).toEqual([]);
      } finally {
        await guest.stop();
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "ramsnap's path: SIGINT and SIGTERM mid-save say the file was not changed (exit 130, 143) and leave it byte for byte; SIGKILL too, and the next save removes its temporary file",
    async () => {
      const { guest, socket } = await guestWithSocket("signals", { ramMiB: 256, running: true, counter: true, pattern: { seed: 6, kind: "dense" } });
      try {
        const file = join(dir, "signals.ram");
        for (const [signal, code] of [
          ["SIGINT", 130],
          ["SIGTERM", 143],
          ["SIGKILL", null],
        ] as const) {
          writeFileSync(file, PREVIOUS);
          const p = spawnRamsnap("qemu", "save", "--qmp", socket, file, "--channels", "1");
          // Mid-save: the temporary file exists and is growing (the device state is written in milliseconds).
          const deadline = Date.now() + 20_000;
          while (Date.now() < deadline && !temporaries(dir, "signals.ram").some((t) => t.endsWith(".tmp") && !t.includes("devices"))) await Bun.sleep(2);
          p.kill(signal);
          const [stderr, exit] = await Promise.all([new Response(p.stderr).text(), p.exited]);
          expect(readFileSync(file, "utf8")).toBe(PREVIOUS);
          if (code !== null) {
            expect(exit).toBe(code);
            expect(stderr).toContain(`ramsnap qemu save: cancelled; ${file} was not changed, and the guest runs again`);
            expect(temporaries(dir, "signals.ram")).toEqual([]);
            expect((await queryRunState(guest.qmp)).status).toBe("running");
          } else {
            expect(temporaries(dir, "signals.ram").length).toBeGreaterThan(0);
            await guest.qmp.execute("cont");
          }
        }
        const next = await ramsnap("qemu", "save", "--qmp", socket, file, "--keep-running");
        expect(next.code).toBe(0);
        expect(next.stdout).toMatch(/warning: removed .*\.signals\.ram\.ramsnap-\d+-\w+\.tmp, left by an earlier save that was killed/);
        expect(temporaries(dir, "signals.ram")).toEqual([]);
        expect(inspectFile(file).complete).toBe(true);
      } finally {
        await guest.stop();
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "a manifest by default on both paths (none with --no-manifest); restore --verify refuses a corrupted page before the guest can run, on every path",
    async () => {
      const { guest: src, socket } = await guestWithSocket("sums", { ramMiB: 64, pattern: { seed: 12, kind: "scattered" } });
      try {
        const byRamsnap = join(dir, "sums-ramsnap.ram");
        const byQemu = join(dir, "sums-qemu.ram");
        expect((await ramsnap("qemu", "save", "--qmp", socket, byRamsnap)).code).toBe(0);
        await src.qmp.execute("cont");
        await src.qmp.execute("stop");
        expect((await ramsnap("qemu", "save", "--qmp", socket, byQemu, "--pages", "qemu")).code).toBe(0);
        expect(existsSync(`${byRamsnap}.sums`)).toBe(true);
        expect(existsSync(`${byQemu}.sums`)).toBe(true);
        expect((await ramsnap("verify", byQemu)).code).toBe(0); // the manifest QEMU's path wrote holds
        await src.qmp.execute("cont");
        await src.qmp.execute("stop");
        const bare = join(dir, "sums-none.ram");
        expect((await ramsnap("qemu", "save", "--qmp", socket, bare, "--no-manifest")).code).toBe(0);
        expect(existsSync(`${bare}.sums`)).toBe(false);

        for (const [file, pages] of [
          [byRamsnap, "ramsnap"],
          [byQemu, "qemu"],
        ] as const) {
          // one flipped byte in a present page of ram0
          const at = (() => {
            using f = MainFile.openRead(file);
            const ram0 = readPageMap(f).blocks.find((b) => b.info.name === "ram0")!;
            let p = 1000;
            while (ram0.locate(p) === PAGE_ABSENT) p++;
            return ram0.locate(p) + 17;
          })();
          const fd = openSync(file, "r+");
          writeSync(fd, new Uint8Array([0xee]), 0, 1, at);
          closeSync(fd);
          const { guest: dst, socket: dstSocket } = await guestWithSocket(`sums-dst-${pages}`, { ramMiB: 64, incoming: true });
          try {
            const r = await ramsnap("qemu", "restore", "--qmp", dstSocket, file, "--verify", "--pages", pages);
            expectQemuError(r, "restore", 1, /does not match .*\.sums/);
            expect((await queryRunState(dst.qmp)).status).toBe("inmigrate"); // QEMU loaded nothing: no guest to run
          } finally {
            await dst.stop();
          }
        }
      } finally {
        await src.stop();
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "space: a save QEMU would write that cannot fit is refused with the estimate; --force starts it, and it fits when the guest's allocated RAM is mostly zeros",
    async () => {
      const mnt = join(dir, "small");
      mkdirSync(mnt, { recursive: true });
      const m = Bun.spawnSync(["mount", "-t", "tmpfs", "-o", "size=40M", "tmpfs", mnt], { stderr: "pipe" });
      if (m.exitCode !== 0) throw new Error(`mount tmpfs failed (these tests need root): ${m.stderr.toString().trim()}`);
      const { guest, socket } = await guestWithSocket("space", { ramMiB: 64, running: true, pattern: { seed: 2, kind: "scattered", nonZero: 0.02 } });
      try {
        // Every block of the backend allocated, nearly all of it zeros: the estimate must assume the worst.
        expect(Bun.spawnSync(["fallocate", "-l", String(64 * MiB), guest.shmPaths[0]!]).exitCode).toBe(0);
        const file = join(mnt, "vm.ram");
        const refused = await ramsnap("qemu", "save", "--qmp", socket, file, "--pages", "qemu");
        expectQemuError(refused, "save", 1, /vm\.ram: not enough free space: \d+\.\d MiB free on tmpfs, about \d+\.\d MiB needed .*--force starts it anyway/);
        expect(existsSync(file)).toBe(false);
        const forced = await ramsnap("qemu", "save", "--qmp", socket, file, "--pages", "qemu", "--force", "--no-manifest", "--keep-running");
        expect(forced.code).toBe(0);
        expect(forced.stdout).toMatch(/warning: .*vm\.ram: \d+\.\d MiB free on tmpfs may not be enough: up to \d+\.\d MiB if no page of the guest's RAM is zero/);
        expect(inspectFile(file).complete).toBe(true);
      } finally {
        await guest.stop();
        Bun.spawnSync(["umount", "-l", mnt]);
      }
    },
    QEMU_TEST_MS,
  );

  test(
    "restore --resume starts the guest; ramsnap's path shows its progress in bytes moved, with rate and time left",
    async () => {
      const { guest: src } = await guestWithSocket("resume-src", { ramMiB: 128, pattern: { seed: 13, kind: "clustered" } });
      const file = join(dir, "resume.ram");
      try {
        expect((await ramsnap("qemu", "save", "--qmp", join(dir, "resume-src.qmp"), file, "--no-manifest")).code).toBe(0);
        for (const pages of ["ramsnap", "qemu"] as const) {
          const { guest: dst, socket } = await guestWithSocket(`resume-${pages}`, { ramMiB: 128, incoming: true });
          try {
            const r = await ramsnap("qemu", "restore", "--qmp", socket, file, "--resume", "--pages", pages, "--progress");
            expect(r.code).toBe(0);
            expect(r.stdout).toMatch(/the guest is running/);
            expect((await queryRunState(dst.qmp)).status).toBe("running");
            // restoring twice into one QEMU: says what happened, not to start it with -incoming defer (it was)
            expectQemuError(await ramsnap("qemu", "restore", "--qmp", socket, file), "restore", 1, /has already loaded a guest \(its incoming migration completed; the guest is 'running'\): start a new QEMU with -incoming defer to restore again/);
            if (pages === "ramsnap") {
              expect(r.stderr).toMatch(/\rrestore \[[#-]{30}\] +100% {2}[\d.]+ \w*B \/ [\d.]+ \w*B {2}written [\d.]+ \w*B {2}[\d.]+ \w*B\/s {2}ETA \d+s/);
            }
          } finally {
            await dst.stop();
          }
        }
      } finally {
        await src.stop();
      }
    },
    QEMU_TEST_MS,
  );
});
