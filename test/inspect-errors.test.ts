// `ramsnap inspect` as a user runs it: a real process, real files on ext4 under /tmp. A good file prints
// a report; a bad one prints ONE line naming the file and the byte offset, with exit status 1 (2 for a
// wrong option), and never a stack trace.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { ascii, patched, smallMappedRam } from "../harness/streams.ts";

const MAIN = join(import.meta.dir, "..", "src", "cli", "main.ts");
let dir = "";
const path = (name: string) => join(dir, name);

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

async function ramsnap(...args: string[]): Promise<Run> {
  const proc = Bun.spawn([process.execPath, MAIN, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    env: { ...process.env, NO_COLOR: "1", RAMSNAP_DEBUG: "" },
  });
  const [stdout, stderr, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  return { code, stdout, stderr };
}

/** One line on stderr, naming the command, no stack frames. */
function expectOneLine(r: Run): string {
  const lines = r.stderr.split("\n").filter((l) => l !== "");
  expect(lines).toHaveLength(1);
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(lines[0]).toStartWith("ramsnap inspect: ");
  return lines[0]!;
}

const good = smallMappedRam();
const based = smallMappedRam({ base: 4096 });

beforeAll(() => {
  dir = mkdtempSync("/tmp/ramsnap-inspect-");
  writeFileSync(path("good.mig"), good.bytes);
  writeFileSync(path("truncated.mig"), good.bytes.subarray(0, good.layout.blocks[1]!.headerOffset + 10));
  writeFileSync(path("magic.mig"), patched(good.bytes, 0, ascii("JUNK")));
  writeFileSync(path("based.mig"), based.bytes);
});

afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

describe("ramsnap inspect", () => {
  test("a valid file: exit 0, complete, its blocks named", async () => {
    const r = await ramsnap("inspect", path("good.mig"));
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(`${path("good.mig")}: QEMU migration stream v3, mapped-ram, complete`);
    expect(r.stdout).toContain("pc-q35-10.0");
    expect(r.stdout).toMatch(/^\s+pc\.ram\s/m);
    expect(r.stdout).toMatch(/^\s+pc\.bios\s/m);
    expect(r.stdout).toContain("SWITCHOVER_START");
    expect(r.stdout).toContain(`EOF at 0x${(good.layout.end + 36).toString(16)}`);
  });

  test("--json: one object with the blocks and their present counts", async () => {
    const r = await ramsnap("inspect", path("good.mig"), "--json");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.complete).toBe(true);
    expect(report.file).toBe(path("good.mig"));
    expect(report.ramFormat).toBe("mapped-ram");
    expect(report.fileSize).toBe(good.bytes.length);
    expect(report.allocatedBytes).toBeGreaterThan(0);
    expect(report.blocks.map((b: { name: string; pages: number; present: number; absent: number; pagesOffset: number }) => [b.name, b.pages, b.present, b.absent, b.pagesOffset])).toEqual([
      ["pc.ram", 5, 3, 2, 0x100000],
      ["pc.bios", 2, 1, 1, 0x200000],
    ]);
  });

  test("a truncated file: exit 1, one line with the path and the offset", async () => {
    const r = await ramsnap("inspect", path("truncated.mig"));
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    const line = expectOneLine(r);
    const at = good.layout.blocks[1]!.headerOffset + 4;
    expect(line).toContain(path("truncated.mig"));
    expect(line).toContain(`at offset ${at} (0x${at.toString(16)})`);
    expect(line).toContain("the file is truncated");
  });

  test("wrong magic: exit 1, one line saying what was expected", async () => {
    const r = await ramsnap("inspect", path("magic.mig"));
    expect(r.code).toBe(1);
    const line = expectOneLine(r);
    expect(line).toContain(`${path("magic.mig")}: at offset 0 (0x0): not a QEMU migration stream: magic is 0x4a554e4b, expected 0x5145564d`);
  });

  test("a missing file: exit 1, ENOENT and the path", async () => {
    const r = await ramsnap("inspect", path("nope.mig"));
    expect(r.code).toBe(1);
    const line = expectOneLine(r);
    expect(line).toContain("ENOENT");
    expect(line).toContain(path("nope.mig"));
    expect(line).not.toContain("internal error");
  });

  test("an unknown option: exit 2", async () => {
    const r = await ramsnap("inspect", path("good.mig"), "--frobnicate");
    expect(r.code).toBe(2);
    const line = expectOneLine(r);
    expect(line).toContain("unknown option --frobnicate");
    expect(r.stdout).toBe("");
  });

  test("a bad --offset value: exit 2", async () => {
    const r = await ramsnap("inspect", path("good.mig"), "--offset", "lots");
    expect(r.code).toBe(2);
    const line = expectOneLine(r);
    expect(line).toContain("--offset lots is not a size");
  });

  test("--offset 4096 on a stream written at 4096: exit 0", async () => {
    const r = await ramsnap("inspect", path("based.mig"), "--offset", "4096", "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const report = JSON.parse(r.stdout);
    expect(report.offset).toBe(4096); // the key save and --offset use (docs/json.md)
    expect(report.complete).toBe(true);
    expect(report.blocks.map((b: { headerOffset: number; pagesOffset: number }) => [b.headerOffset, b.pagesOffset])).toEqual([
      [0x106f, 0x100000],
      [based.layout.blocks[1]!.headerOffset, 0x200000],
    ]);
  });

  test("--offset 4K in text mode names the offset; without --offset the same file is not a stream", async () => {
    const ok = await ramsnap("inspect", path("based.mig"), "--offset=4K");
    expect(ok.code).toBe(0);
    expect(ok.stdout).toContain("4096 (0x1000)");
    const bad = await ramsnap("inspect", path("based.mig"));
    expect(bad.code).toBe(1);
    expect(expectOneLine(bad)).toContain("at offset 0 (0x0): not a QEMU migration stream: magic is 0x58585858");
  });
});
