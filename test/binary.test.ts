// The single binary: `bun run build` makes dist/ramsnap, which runs from a folder with no node_modules,
// starts its Worker channels from inside the executable, and inspects what QEMU 10 wrote.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { migrateToFile, ramBlocks, requireQemu, startGuest, stopAllGuests } from "../harness/qemu.ts";
import { isWrite, openFlags, requireStrace, traceRamsnap } from "../harness/trace.ts";

const ROOT = join(import.meta.dir, "..");
let dir = "";
let bin = "";

async function run(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  // From a folder with nothing else in it: no node_modules, no sources.
  const p = Bun.spawn([bin, ...args], { cwd: dir, stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

beforeAll(async () => {
  const build = Bun.spawnSync(["bun", "run", "build"], { cwd: ROOT, stdout: "pipe", stderr: "pipe" });
  if (build.exitCode !== 0) throw new Error(`bun run build failed: ${build.stderr.toString()}`);
  // /tmp is ext4 here: the demo's direct I/O is real.
  dir = mkdtempSync("/tmp/ramsnap-binary-");
  bin = join(dir, "ramsnap");
  copyFileSync(join(ROOT, "dist", "ramsnap"), bin);
  Bun.spawnSync(["chmod", "+x", bin]);
});

afterAll(async () => {
  await stopAllGuests();
  rmSync(dir, { recursive: true, force: true });
});

describe("dist/ramsnap", () => {
  test("--version and --help work from a folder without node_modules", async () => {
    const v = await run("--version");
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const h = await run("--help");
    expect(h.code).toBe(0);
    for (const cmd of ["save", "restore", "inspect", "verify", "extract", "convert", "diff", "doctor", "qemu", "demo"]) expect(h.stdout).toContain(cmd);
  });

  test("demo: the Worker channels start from inside the executable; save, restore and compare with direct I/O", async () => {
    const r = await run("demo", "--size", "64M", "--dir", dir, "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const summary = JSON.parse(r.stdout);
    expect(summary.identical).toBe(true);
    expect(summary.directIo).toBe(true);
    expect(summary.channels).toBe(4);
    expect(summary.save.pagesPresent).toBeGreaterThan(0);
  });

  test("demo --keep: cmp, not the demo's own \"identical\", finds the restored image equal to the source", async () => {
    // The demo judges its round trip itself; a restore bug and a comparison bug together would pass it.
    const r = await run("demo", "--size", "32M", "--dir", dir, "--keep");
    expect(r.code).toBe(0);
    const kept = /^kept (\S+), (\S+) and (\S+)$/m.exec(r.stderr);
    expect(kept).not.toBeNull();
    const [, source, restored, file] = kept!;
    try {
      const cmp = Bun.spawnSync(["cmp", source!, restored!], { stdout: "pipe", stderr: "pipe" });
      expect({ code: cmp.exitCode, out: cmp.stdout.toString() + cmp.stderr.toString() }).toEqual({ code: 0, out: "" });
      // and the comparison is not of two empty files: the source is the 32 MiB image, with data in it
      expect(Bun.file(source!).size).toBe(32 * 1024 * 1024);
      expect(Bun.spawnSync(["cmp", "-s", source!, "/dev/zero", "-n", String(32 * 1024 * 1024)]).exitCode).toBe(1);
      expect(Bun.file(file!).size).toBeGreaterThan(0);
    } finally {
      for (const f of [source!, restored!, file!]) rmSync(dirname(f), { recursive: true, force: true });
    }
  });

  test.skipIf(!requireStrace())("--direct-io from the executable: its channels' page writes are on an O_DIRECT descriptor (strace)", async () => {
    const img = join(dir, "strace.img");
    await Bun.write(img, new Uint8Array(8 * 1024 * 1024).fill(0x61));
    const target = join(dir, "strace.ram");
    const t = await traceRamsnap(["save", "-o", target, "--block", `ram0=${img}`, "--channels", "2", "--direct-io"], { command: [bin], traceFile: join(dir, "save.strace") });
    expect({ code: t.code, stderr: t.stderr }).toEqual({ code: 0, stderr: "" });
    const pageWrites = t.calls.filter((c) => isWrite(c) && c.tid !== t.pid && c.ret > 0 && !!c.path && basename(c.path).startsWith(".strace.ram.ramsnap-"));
    expect(pageWrites.reduce((s, c) => s + c.ret, 0)).toBe(8 * 1024 * 1024);
    expect([...new Set(pageWrites.map((c) => openFlags(t.calls, c).includes("O_DIRECT")))]).toEqual([true]);
  });

  test.skipIf(!requireQemu())("inspect a mapped-ram file QEMU 10 wrote: QEMU's blocks, the pattern's pages", async () => {
    const guest = await startGuest({ name: "binary", ramMiB: 64, pattern: { kind: "scattered", seed: 5, nonZero: 0.3 } });
    try {
      const file = join(dir, "qemu.ram");
      await migrateToFile(guest, `file:${file}`, { mappedRam: true, multifd: true, channels: 2, directIo: true });
      const r = await run("inspect", file, "--json");
      expect(r.code).toBe(0);
      const report = JSON.parse(r.stdout);
      expect(report.complete).toBe(true);
      const blocks = await ramBlocks(guest);
      expect(report.blocks.map((b: { name: string; length: number }) => [b.name, b.length])).toEqual(blocks.map((b) => [b.name, b.usedLength]));
      expect(report.blocks.find((b: { name: string }) => b.name === "ram0").present).toBe(guest.pattern!.nonZeroCount);
      const text = await run("inspect", file);
      expect(text.stdout).toContain("complete");
      expect(text.stdout).toContain("ram0");
    } finally {
      await guest.stop();
    }
  });
});
