// The single binary: `bun run build` makes dist/ramsnap, which runs from a folder with no node_modules,
// starts its Worker channels from inside the executable, and inspects what QEMU 10 wrote.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { copyFileSync, mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { migrateToFile, ramBlocks, requireQemu, startGuest, stopAllGuests } from "../harness/qemu.ts";

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
