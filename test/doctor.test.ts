// `ramsnap doctor` on the file systems it has to tell apart, measured on real mounts: ext4 under /tmp
// (O_DIRECT with a statx alignment), tmpfs (/dev/shm and a small size-limited mount), and ramfs, which
// refuses O_DIRECT. Mounting needs root; without it CI fails and a developer's run warns and skips.
import { afterAll, describe, expect, test } from "bun:test";
import { mkdirSync, readdirSync, rmdirSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { doctor } from "../src/doctor.ts";
import { RefusedError } from "../src/errors.ts";
import { requireDirectIo, scratchDir } from "../harness/scratch.ts";
import { ramsnap } from "../harness/cli.ts";
import { GiB, MiB } from "../harness/units.ts";

const disk = scratchDir("ramsnap-doctor");
const direct = requireDirectIo(disk.path);



/** Mounts a file system of `type` on a fresh folder under the scratch dir; null (after a loud warning) when not root, outside CI. */
async function mount(type: "tmpfs" | "ramfs", options?: string): Promise<string | null> {
  const dir = join(disk.path, `${type}-${Math.random().toString(36).slice(2, 8)}`);
  mkdirSync(dir);
  const p = Bun.spawn(["mount", "-t", type, ...(options ? ["-o", options] : []), type, dir], { stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code === 0) {
    mounts.push(dir);
    return dir;
  }
  rmdirSync(dir);
  const text = `cannot mount ${type} (${err.trim() || `exit ${code}`}): doctor tests on ${type} need root`;
  if (process.env.CI) throw new Error(`${text}; CI never skips them`);
  process.stderr.write(`\n${"!".repeat(100)}\n!!! ${text}: SKIPPED\n${"!".repeat(100)}\n\n`);
  return null;
}
const mounts: string[] = [];

afterAll(async () => {
  for (const m of mounts.reverse()) await Bun.spawn(["umount", m]).exited;
  disk.cleanup();
});

/** doctor writes one scratch file to probe O_DIRECT and must remove it, whatever the probe found. */
function expectNoScratchFiles(dir: string): void {
  expect(readdirSync(dir).filter((n) => n.startsWith(".ramsnap-doctor-"))).toEqual([]);
}

describe("doctor", () => {
  test.skipIf(!direct)("ext4 under /tmp: O_DIRECT accepted with the statx alignment; recommends --direct-io", async () => {
    const r = doctor(disk.path);
    expect(r.filesystem).toBe("ext4");
    expect(r.dir).toBe(disk.path);
    expect(r.directIo.accepted).toBe(true);
    expect(r.directIo.error).toBeUndefined();
    expect(r.directIo.memAlign).toBeGreaterThan(0);
    expect(r.directIo.offsetAlign).toBeGreaterThan(0);
    expect(r.recommendation.directIo).toBe(true);
    expect(r.recommendation.reasons.join("\n")).toMatch(/direct I\/O keeps a large save out of the page cache/);
    expectNoScratchFiles(disk.path);

    const cli = await ramsnap("doctor", disk.path);
    expect(cli.stderr).toBe("");
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/file system\s+ext4/);
    expect(cli.stdout).toMatch(new RegExp(`direct I/O\\s+accepted; alignment ${r.directIo.memAlign} bytes of memory, ${r.directIo.offsetAlign} of offset \\(statx\\)`));
    expect(cli.stdout).toMatch(/^recommended: --channels \d+ --direct-io$/m);
    expectNoScratchFiles(disk.path);
  });

  test("tmpfs (/dev/shm): recommends buffered I/O and says why", async () => {
    const r = doctor("/dev/shm");
    expect(r.filesystem).toBe("tmpfs");
    expect(r.recommendation.directIo).toBe(false);
    const why = r.recommendation.reasons.join("\n");
    // Linux 6.6+ tmpfs takes O_DIRECT but gains nothing from it; before 6.6 it refuses it
    if (r.directIo.accepted) expect(why).toMatch(/tmpfs keeps files in memory: there is no page cache to bypass/);
    else expect(why).toMatch(/tmpfs refused O_DIRECT here/);
    expectNoScratchFiles("/dev/shm");

    const cli = await ramsnap("doctor", "/dev/shm");
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/^recommended: --channels \d+$/m); // no --direct-io
    expect(cli.stdout).toMatch(/because tmpfs /);
  });

  test("ramfs refuses O_DIRECT (EINVAL): recommends buffered I/O", async () => {
    const dir = await mount("ramfs");
    if (!dir) return;
    const r = doctor(dir);
    expect(r.filesystem).toBe("ramfs");
    expect(r.directIo).toMatchObject({ accepted: false, error: "EINVAL" });
    expect(r.recommendation.directIo).toBe(false);
    expect(r.recommendation.reasons.join("\n")).toMatch(/ramfs refused O_DIRECT here \(EINVAL\): save with buffered I\/O/);
    expectNoScratchFiles(dir);

    const cli = await ramsnap("doctor", dir);
    expect(cli.code).toBe(0);
    expect(cli.stdout).toMatch(/direct I\/O\s+refused \(EINVAL\)/);
    expect(cli.stdout).toMatch(/^recommended: --channels \d+$/m);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("--size larger than the free space of a small tmpfs: NOT ENOUGH", async () => {
    const dir = await mount("tmpfs", "size=24M");
    if (!dir) return;
    const cli = await ramsnap("doctor", dir, "--size", "64M");
    expect(cli.code).toBe(1); // a save would fail part way: a script must not read this as fine
    expect(cli.stdout).toMatch(/free space\s+24\.0 MiB of 24\.0 MiB; a save of 64\.0 MiB needs up to [\d.]+ MiB \(NOT ENOUGH\)/);
    expect(cli.stdout).toMatch(/^warning: only \d+ bytes free; a save of this image may need up to \d+$/m);

    const r = doctor(dir, 64 * MiB);
    expect(r.enoughSpace).toBe(false);
    expect(r.neededBytes).toBeGreaterThan(r.freeBytes);

    // and a size that fits (with doctor's allowance for headers and padding) is not flagged
    const fits = await ramsnap("doctor", dir, "--size", "4M");
    expect(fits.code).toBe(0);
    expect(fits.stdout).not.toContain("NOT ENOUGH");
    expect(fits.stdout).not.toContain("warning:");
    expect(readdirSync(dir)).toEqual([]);
  });

  test("--json: the report's shape", async () => {
    const cli = await ramsnap("doctor", disk.path, "--size", "1G", "--json");
    expect(cli.stderr).toBe("");
    expect(cli.code).toBe(0);
    const j = JSON.parse(cli.stdout);
    expect(Object.keys(j).sort()).toEqual(
      ["path", "dir", "filesystem", "mountPoint", "mountOptions", "kernel", "directIoProbe", "freeBytes", "filesystemBytes", "imageBytes", "neededBytes", "enoughSpace", "cgroupMemoryLimit", "cpus", "recommendation", "staleTemporaries", "warnings"].sort(),
    );
    // (a copy: bun 1.4.5's toMatchObject writes its asymmetric matchers into the object it checks)
    expect(structuredClone(j)).toMatchObject({
      path: disk.path,
      dir: disk.path,
      filesystem: expect.any(String),
      kernel: expect.stringMatching(/^\d+\.\d+/),
      directIoProbe: { accepted: expect.any(Boolean), memAlign: expect.any(Number), offsetAlign: expect.any(Number), misaligned512Works: expect.any(Boolean) },
      freeBytes: expect.any(Number),
      filesystemBytes: expect.any(Number),
      imageBytes: GiB,
      neededBytes: expect.any(Number),
      enoughSpace: expect.any(Boolean),
      cpus: expect.any(Number),
      recommendation: { channels: expect.any(Number), directIo: expect.any(Boolean), reasons: expect.any(Array) },
      warnings: expect.any(Array),
    });
    expect(j.neededBytes).toBeGreaterThanOrEqual(GiB);
    expect(j.recommendation.channels).toBeGreaterThanOrEqual(1);
    expect(j.recommendation.reasons.length).toBeGreaterThan(0);
    expect(j.cgroupMemoryLimit === null || typeof j.cgroupMemoryLimit === "number").toBe(true);
    expectNoScratchFiles(disk.path);
  });

  test("a missing directory: one-line error, non-zero exit, nothing created", async () => {
    const missing = join(disk.path, "no-such-dir", "deeper");
    const cli = await ramsnap("doctor", missing);
    expect(cli.code).not.toBe(0);
    expect(cli.stdout).toBe("");
    expect(cli.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(cli.stderr).toMatch(/^ramsnap doctor: .*no-such-dir\/deeper does not exist/);
    expect(cli.stderr).not.toContain("    at ");
    expect(() => doctor(missing)).toThrow(RefusedError);
    expect(readdirSync(disk.path).filter((n) => n.startsWith("no-such-dir"))).toEqual([]);
  });

  test("a wrong --size: one-line error, exit 2", async () => {
    const cli = await ramsnap("doctor", disk.path, "--size", "lots");
    expect(cli.code).toBe(2);
    expect(cli.stderr.trimEnd().split("\n")).toHaveLength(1);
    expect(cli.stderr).toMatch(/^ramsnap doctor: --size lots is not a size/);
  });
});

describe("leftovers", () => {
  test("doctor lists ramsnap's temporary files whose writer is gone, not those of a live one, and says so", () => {
    const dir = join(disk.path, "leftovers");
    mkdirSync(dir, { recursive: true });
    // pid 2^22 + 1 is above Linux's pid_max (4194304): no process has it
    const dead = join(dir, ".vm.ram.ramsnap-4194305-abc123.tmp");
    const live = join(dir, `.vm.ram.ramsnap-${process.pid}-def456.tmp`);
    writeFileSync(dead, "x");
    writeFileSync(live, "y");
    const r = doctor(dir);
    expect(r.staleTemporaries).toEqual([dead]);
    expect(r.warnings).toContain(`${dead} is a temporary file of a save that was killed; the next save of that file removes it (or delete it)`);
  });

  test("a save removes the temporary file an earlier, killed save of the same file left, and says so in one line", async () => {
    const dir = join(disk.path, "resave");
    mkdirSync(dir, { recursive: true });
    const img = join(dir, "img.raw");
    writeFileSync(img, new Uint8Array(MiB).fill(7));
    const target = join(dir, "vm.ram");
    const dead = join(dir, ".vm.ram.ramsnap-4194305-abc123.tmp");
    writeFileSync(dead, "half a save");
    const r = await ramsnap("save", "-o", target, "--block", `ram0=${img}`);
    expect(r.code).toBe(0);
    expect(r.stderr).toBe(`removed ${dead}, left by an earlier save that was killed\n`);
    expect(readdirSync(dir).sort()).toEqual(["img.raw", "vm.ram", "vm.ram.sums"]);
  });
});
