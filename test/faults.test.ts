// Faults during a save or restore (issue 6): a full file system (a real, size-limited tmpfs), EIO (the
// test-only fault hook in the libc layer: RAMSNAP_TEST_FAULTS, read by every thread at start), a channel
// Worker dying mid-job, the source file shrinking under a save, and kill -9 at random moments. Each must
// end in a clean error (one line from the CLI, a typed error from the library), with the Workers stopped
// (the process exits; a later call in the same process works), no complete-looking output at the target
// name (absent, or exactly the file that was there before), no temporary files (unless kill -9), and a
// non-zero exit.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, rmdirSync, rmSync, truncateSync, writeFileSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { ChannelError } from "../src/errors.ts";
import { inspectFile } from "../src/inspect.ts";
import { restore } from "../src/restore.ts";
import { save } from "../src/save.ts";
import { verify } from "../src/verify.ts";
import { requireDirectIo, scratchDir, writeImage } from "../harness/scratch.ts";
import { MiB } from "../harness/units.ts";
import { withoutProgress } from "../harness/cli.ts";

const MAIN = `${import.meta.dir}/../src/cli/main.ts`;
const ROOT = `${import.meta.dir}/..`;
const disk = scratchDir("ramsnap-faults");
const shm = scratchDir("ramsnap-faults", "/dev/shm");
const direct = requireDirectIo(disk.path);
const mounts: string[] = [];
afterAll(async () => {
  libc.setFaultHook(undefined);
  for (const m of mounts.reverse()) await Bun.spawn(["umount", m]).exited;
  disk.cleanup();
  shm.cleanup();
});

interface Run {
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  ms: number;
}

function env(faults?: string): Record<string, string> {
  const e: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: "1" };
  delete e.RAMSNAP_DEBUG;
  delete e.RAMSNAP_TEST_FAULTS;
  if (faults) e.RAMSNAP_TEST_FAULTS = faults;
  return e;
}

/** Runs the CLI; a process still running after `timeoutMs` is killed (and the test fails on its signal). */
async function ramsnap(args: string[], o: { faults?: string; timeoutMs?: number } = {}): Promise<Run> {
  const t0 = performance.now();
  // These tests look at the save file alone: its manifest (written by default) would be one more file.
  if (args[0] === "save") args = [...args, "--no-manifest"];
  const p = Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: env(o.faults) });
  const timer = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs ?? 30_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code: p.signalCode ? null : code, signal: p.signalCode ? String(p.signalCode) : null, stdout, stderr, ms: performance.now() - t0 };
}

/** A failure as a user sees it: the process ended by itself with exit 1, one line on stderr, no stack. */
function expectOneLineError(r: Run, command: string, pattern: RegExp): void {
  expect({ signal: r.signal, code: r.code, stdout: r.stdout }).toEqual({ signal: null, code: 1, stdout: "" });
  expect(r.stderr.endsWith("\n")).toBe(true);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr.startsWith(`ramsnap ${command}: `)).toBe(true);
  expect(r.stderr).not.toContain("    at ");
  expect(r.stderr).not.toContain("internal error");
  expect(r.stderr).toMatch(pattern);
}

/** A save's temporary files beside `target` (`.NAME.ramsnap-PID-XXXX.tmp`). */
function temporaries(target: string): string[] {
  const base = basename(target);
  return readdirSync(dirname(target)).filter((n) => n.startsWith(`.${base}.ramsnap-`) && n.endsWith(".tmp"));
}

const re = (s: string) => new RegExp(s.replace(/[.*+?^${}()|[\]\\]/g, "\\$&"));
const sameBytes = async (path: string, bytes: Uint8Array) => Buffer.from(await Bun.file(path).bytes()).equals(Buffer.from(bytes));

/** Mounts a tmpfs of `size` on a fresh folder; null (after a loud warning) when that is impossible outside CI. */
async function mountTmpfs(size: string): Promise<string | null> {
  const dir = join(disk.path, `tmpfs-${mounts.length}`);
  mkdirSync(dir);
  const p = Bun.spawn(["mount", "-t", "tmpfs", "-o", `size=${size}`, "tmpfs", dir], { stdout: "pipe", stderr: "pipe" });
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  if (code === 0) {
    mounts.push(dir);
    return dir;
  }
  rmdirSync(dir);
  const text = `cannot mount a ${size} tmpfs (${err.trim() || `exit ${code}`}): the ENOSPC tests need root`;
  if (process.env.CI) throw new Error(`${text}; CI never skips them`);
  process.stderr.write(`\n${"!".repeat(100)}\n!!! ${text}: SKIPPED\n${"!".repeat(100)}\n\n`);
  return null;
}

/** Runs a TypeScript snippet in a fresh process with RAMSNAP_TEST_FAULTS set from its start (Workers read it when they load). */
async function library(code: string, faults: string): Promise<Run> {
  const file = join(shm.path, `lib-${Math.random().toString(36).slice(2, 8)}.ts`);
  writeFileSync(file, code.replaceAll("@ROOT@", ROOT));
  const t0 = performance.now();
  const p = Bun.spawn([process.execPath, file], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env: env(faults) });
  const timer = setTimeout(() => p.kill("SIGKILL"), 30_000);
  const [stdout, stderr, exit] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  return { code: p.signalCode ? null : exit, signal: p.signalCode ? String(p.signalCode) : null, stdout, stderr, ms: performance.now() - t0 };
}

// Images: 64 MiB of data pages (8 channel jobs, one write each), a small one for saves that must work, and
// a 4 MiB one whose save is the "previous complete file" some tests put at the target name first.
const dense = join(shm.path, "dense64.img");
const small = join(shm.path, "small.img");
const previousImg = join(shm.path, "previous.img");
beforeAll(() => {
  writeImage(dense, 64 * MiB, { kind: "dense", seed: 71 });
  writeImage(small, 4 * MiB, { kind: "scattered", seed: 72, nonZero: 0.5 });
  writeImage(previousImg, 4 * MiB, { kind: "dense", seed: 73 });
});

/** Puts a complete save of `previousImg` at `target` and returns its bytes. */
async function previousFile(target: string): Promise<Uint8Array> {
  const r = await ramsnap(["save", "-o", target, "--block", `ram0=${previousImg}`, "--channels", "1"]);
  expect(r.code).toBe(0);
  return Bun.file(target).bytes();
}

describe("ENOSPC: a save to a full, size-limited file system", () => {
  let dir: string | null = null;
  beforeAll(async () => {
    dir = await mountTmpfs("24M");
  });

  for (const directIo of [false, true]) {
    const mode = directIo ? "--direct-io" : "buffered";
    test(`${mode}: one line naming the file and ENOSPC; no new file, the previous one untouched, no temporaries`, async () => {
      if (!dir) return;
      const fresh = join(dir, `fresh-${directIo}.ram`);
      const existing = join(dir, `existing-${directIo}.ram`);
      const before = await previousFile(existing);
      for (const target of [fresh, existing]) {
        const r = await ramsnap(["save", "-o", target, "--block", `ram0=${dense}`, "--channels", "2", ...(directIo ? ["--direct-io"] : [])]);
        expectOneLineError(r, "save", new RegExp(`${re(target).source}: ENOSPC`));
        expect(temporaries(target)).toEqual([]);
      }
      expect(existsSync(fresh)).toBe(false);
      expect(await sameBytes(existing, before)).toBe(true);
      expect(readdirSync(dir)).toEqual([basename(existing)]);
      rmSync(existing);
    });
  }

  test("a pack (--compress none, 64 MiB into 24 MiB): one line naming the pack and ENOSPC; the previous pack untouched, no temporaries", async () => {
    if (!dir) return;
    const existing = join(dir, "existing.rpk");
    expect((await ramsnap(["save", "-o", existing, "--block", `ram0=${previousImg}`])).code).toBe(0);
    const before = await Bun.file(existing).bytes();
    const r = await ramsnap(["save", "-o", existing, "--block", `ram0=${dense}`, "--compress", "none"]);
    expectOneLineError(r, "save", new RegExp(`${re(existing).source}: ENOSPC`));
    expect(await sameBytes(existing, before)).toBe(true);
    expect(readdirSync(dir)).toEqual([basename(existing)]);
    rmSync(existing);
  });

  test("library: save rejects with a typed ENOSPC error; a later save to the same place works", async () => {
    if (!dir) return;
    const target = join(dir, "lib.ram");
    const e = await save({ path: target, blocks: [{ name: "ram0", path: dense }], channels: 2 }).then(
      () => null,
      (x: unknown) => x,
    );
    // From a channel: pages are the only writes that can fill the disk here. A SysError would be the main
    // thread failing later on the bitmaps, with the same message, after a channel swallowed its ENOSPC.
    expect(e).toBeInstanceOf(ChannelError);
    expect((e as { code?: string }).code).toBe("ENOSPC");
    expect((e as Error).message).toBe(`pwrite ${target}: ENOSPC (No space left on device)`);
    expect(readdirSync(dir)).toEqual([]);
    const ok = await save({ path: target, blocks: [{ name: "ram0", path: small }], channels: 2 });
    expect(ok.file).toBe(target);
    expect(verify({ path: target, blocks: [{ name: "ram0", path: small }] }).ok).toBe(true);
    rmSync(target);
  });
});

describe("ENOSPC: a restore into a full, size-limited file system", () => {
  let dir: string | null = null;
  beforeAll(async () => {
    dir = await mountTmpfs("24M");
  });

  // A fresh target's memory is reserved by the channels run by run, before the mapping is touched: the
  // 64 MiB image cannot fit in 24 MiB, and the channel that hits the limit must fail with ENOSPC (a page
  // of a shared mapping the file system cannot back would be SIGBUS instead).
  test("a fresh target: one line naming the target and ENOSPC from a channel, no SIGBUS; the target is removed", async () => {
    if (!dir) return;
    const file = join(disk.path, "enospc-restore.ram");
    expect((await ramsnap(["save", "-o", file, "--block", `ram0=${dense}`, "--channels", "2"])).code).toBe(0);
    const out = join(dir, "fresh.out");
    const r = await ramsnap(["restore", file, "--block", `ram0=${out}`, "--channels", "2", ...(direct ? ["--direct-io"] : [])]);
    expectOneLineError(r, "restore", new RegExp(`fallocate ${re(out).source}: ENOSPC`));
    expect(existsSync(out)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
    // From a channel, as the library sees it: the main thread reserved nothing up front.
    const e = await restore({ path: file, blocks: [{ name: "ram0", path: out }], channels: 2 }).then(
      () => null,
      (x: unknown) => x,
    );
    expect(e).toBeInstanceOf(ChannelError);
    expect((e as { code?: string }).code).toBe("ENOSPC");
    expect(readdirSync(dir)).toEqual([]);
    rmSync(file);
  });
});

describe("EIO from the disk (RAMSNAP_TEST_FAULTS)", () => {
  test("save: EIO on a channel's 3rd write mid-save, and on the main stream's 1st; nothing left at the target", async () => {
    for (const faults of ["pwrite=EIO@3", "pwrite=EIO@1"]) {
      const target = join(disk.path, `eio-save-${faults.at(-1)}.ram`);
      const r = await ramsnap(["save", "-o", target, "--block", `ram0=${dense}`, "--channels", "1"], { faults });
      expectOneLineError(r, "save", new RegExp(`pwrite ${re(target).source}: EIO`));
      expect(existsSync(target)).toBe(false);
      expect(temporaries(target)).toEqual([]);
    }
  });

  test("a pack: EIO on an append mid-save leaves the previous pack exactly as it was, and no temporary (never a pack whose offsets are off)", async () => {
    const target = join(disk.path, "eio-existing.rpk");
    expect((await ramsnap(["save", "-o", target, "--block", `ram0=${previousImg}`])).code).toBe(0);
    const before = await Bun.file(target).bytes();
    // A pack's bytes are appended by the main thread: its 1st write is the header, the 3rd a chunk's extents.
    for (const faults of ["pwrite=EIO@3", "pwrite=EIO@1"]) {
      const r = await ramsnap(["save", "-o", target, "--block", `ram0=${dense}`, "--channels", "2"], { faults });
      expectOneLineError(r, "save", new RegExp(`${re(target).source}: EIO`));
      expect(await sameBytes(target, before)).toBe(true);
      expect(temporaries(target)).toEqual([]);
    }
  });

  test.skipIf(!direct)("save --direct-io over a complete file: EIO mid-save leaves that file exactly as it was", async () => {
    const target = join(disk.path, "eio-existing.ram");
    const before = await previousFile(target);
    const r = await ramsnap(["save", "-o", target, "--block", `ram0=${dense}`, "--channels", "2", "--direct-io"], { faults: "pwrite=EIO@2" });
    expectOneLineError(r, "save", /EIO/);
    expect(await sameBytes(target, before)).toBe(true);
    expect(temporaries(target)).toEqual([]);
  });

  test("restore: EIO reading pages (a channel) or the stream (the main thread); the target it created is removed", async () => {
    const file = join(disk.path, "eio-restore.ram");
    expect((await ramsnap(["save", "-o", file, "--block", `ram0=${dense}`, "--channels", "1"])).code).toBe(0);
    // The channel reads a chunk's pages with preadv (gaps into a scratch buffer), the main thread with pread.
    for (const faults of ["preadv=EIO@6", "preadv=EIO@1", "pread=EIO@2", "pread=EIO@1"]) {
      const out = join(shm.path, `eio-${faults.replace(/\W/g, "-")}.out`);
      const r = await ramsnap(["restore", file, "--block", `ram0=${out}`, "--channels", "1"], { faults });
      expectOneLineError(r, "restore", new RegExp(`${faults.split("=")[0]} ${re(file).source}: EIO`));
      expect(existsSync(out)).toBe(false);
    }
    // with a target that existed before: it stays (its content is undefined after a failed restore)
    const kept = join(shm.path, "eio-kept.out");
    writeFileSync(kept, "old");
    expectOneLineError(await ramsnap(["restore", file, "--block", `ram0=${kept}`, "--channels", "1"], { faults: "preadv=EIO@6" }), "restore", /EIO/);
    expect(existsSync(kept)).toBe(true);
  });

  test("verify: EIO while comparing pages", async () => {
    const file = join(disk.path, "eio-verify.ram");
    expect((await ramsnap(["save", "-o", file, "--block", `ram0=${dense}`, "--channels", "1"])).code).toBe(0);
    expect((await ramsnap(["verify", file, "--block", `ram0=${dense}`])).code).toBe(0);
    for (const faults of ["pread=EIO@2", "pread=EIO@8"]) {
      expectOneLineError(await ramsnap(["verify", file, "--block", `ram0=${dense}`], { faults }), "verify", new RegExp(`pread ${re(file).source}: EIO`));
    }
  });

  test("library, main thread: EIO on fsync (a write-back error) rejects the save with a SysError; the next save works", async () => {
    const target = join(disk.path, "eio-fsync.ram");
    libc.setFaultHook((call) => (call === "fsync" ? 5 : undefined));
    let e: unknown;
    try {
      e = await save({ path: target, blocks: [{ name: "ram0", path: small }], channels: 2 }).then(
        () => null,
        (x: unknown) => x,
      );
    } finally {
      libc.setFaultHook(undefined);
    }
    expect(e).toBeInstanceOf(libc.SysError);
    expect((e as libc.SysError).code).toBe("EIO");
    expect((e as Error).message).toBe(`fsync ${target}: EIO (Input/output error)`);
    expect(existsSync(target)).toBe(false);
    expect(temporaries(target)).toEqual([]);
    await save({ path: target, blocks: [{ name: "ram0", path: small }], channels: 2 });
    expect(inspectFile(target).complete).toBe(true);
  });

  test("library, in the channels: the save rejects with a ChannelError carrying EIO; a later save in the same process works, and it exits", async () => {
    const target = join(disk.path, "eio-lib.ram");
    const r = await library(
      `import { save } from "@ROOT@/src/save.ts";
       import { ChannelError } from "@ROOT@/src/errors.ts";
       import { setFaultHook } from "@ROOT@/ffi/libc.ts";
       import { existsSync } from "node:fs";
       setFaultHook(undefined); // faults in the channels only (each Worker reads RAMSNAP_TEST_FAULTS itself)
       const e = await save({ path: ${JSON.stringify(target)}, blocks: [{ name: "ram0", path: ${JSON.stringify(dense)} }], channels: 1 }).then(() => null, (x) => x);
       console.log(JSON.stringify({ channelError: e instanceof ChannelError, code: e?.code, message: e?.message, exists: existsSync(${JSON.stringify(target)}) }));
       // each channel's 3rd write fails: a save of one 4 MiB job per channel makes only one
       const ok = await save({ path: ${JSON.stringify(target)}, blocks: [{ name: "ram0", path: ${JSON.stringify(small)} }], channels: 1 });
       console.log(JSON.stringify({ saved: ok.file }));`,
      "pwrite=EIO@3",
    );
    expect(r.stderr).toBe("");
    expect({ signal: r.signal, code: r.code }).toEqual({ signal: null, code: 0 });
    const [failed, saved] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(failed).toEqual({ channelError: true, code: "EIO", message: `pwrite ${target}: EIO (Input/output error)`, exists: false });
    expect(saved).toEqual({ saved: target });
    expect(verify({ path: target, blocks: [{ name: "ram0", path: small }] }).ok).toBe(true);
  });
});

describe("a channel Worker dies mid-job (RAMSNAP_TEST_FAULTS=channel-exit@2)", () => {
  test("save fails promptly, naming the channel; no file, no temporaries", async () => {
    const target = join(disk.path, "exit.ram");
    const r = await ramsnap(["save", "-o", target, "--block", `ram0=${dense}`, "--channels", "2"], { faults: "channel-exit@2", timeoutMs: 20_000 });
    expectOneLineError(r, "save", /channel \d stopped unexpectedly \(exit code 9\) with jobs in hand/);
    expect(r.ms).toBeLessThan(10_000);
    expect(existsSync(target)).toBe(false);
    expect(temporaries(target)).toEqual([]);
  });

  test("restore fails promptly, naming the channel; the target it created is removed", async () => {
    const file = join(disk.path, "exit-restore.ram");
    expect((await ramsnap(["save", "-o", file, "--block", `ram0=${dense}`, "--channels", "2"])).code).toBe(0);
    const out = join(shm.path, "exit.out");
    const r = await ramsnap(["restore", file, "--block", `ram0=${out}`, "--channels", "2"], { faults: "channel-exit@2", timeoutMs: 20_000 });
    expectOneLineError(r, "restore", /channel \d stopped unexpectedly \(exit code 9\) with jobs in hand/);
    expect(r.ms).toBeLessThan(10_000);
    expect(existsSync(out)).toBe(false);
  });

  test("library: the save rejects with a ChannelError; a later save in the same process works, and it exits", async () => {
    const target = join(disk.path, "exit-lib.ram");
    const r = await library(
      `import { save } from "@ROOT@/src/save.ts";
       import { ChannelError } from "@ROOT@/src/errors.ts";
       const e = await save({ path: ${JSON.stringify(target)}, blocks: [{ name: "ram0", path: ${JSON.stringify(dense)} }], channels: 2 }).then(() => null, (x) => x);
       console.log(JSON.stringify({ channelError: e instanceof ChannelError, message: e?.message }));
       // a channel dies on its 2nd job: a save of a single job works
       const ok = await save({ path: ${JSON.stringify(target)}, blocks: [{ name: "ram0", path: ${JSON.stringify(small)} }], channels: 2 });
       console.log(JSON.stringify({ saved: ok.file }));`,
      "channel-exit@2",
    );
    expect(r.stderr).toBe("");
    expect({ signal: r.signal, code: r.code }).toEqual({ signal: null, code: 0 });
    const [failed, saved] = r.stdout.trim().split("\n").map((l) => JSON.parse(l));
    expect(failed.channelError).toBe(true);
    expect(failed.message).toMatch(/^channel \d stopped unexpectedly/);
    expect(saved).toEqual({ saved: target });
    expect(inspectFile(target).complete).toBe(true);
  });
});

describe("the source shrinks during a save", () => {
  test("truncated to half when the progress bar first draws: a clean error saying so, no SIGBUS, no file", async () => {
    const source = join(shm.path, "shrinking.img");
    writeImage(source, 512 * MiB, { kind: "dense", seed: 74 });
    const target = join(disk.path, "shrink.ram");
    const p = Bun.spawn([process.execPath, MAIN, "save", "-o", target, "--block", `ram0=${source}`, "--channels", "1", "--progress"], {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
      env: env(),
    });
    const timer = setTimeout(() => p.kill("SIGKILL"), 60_000);
    const reader = p.stderr.getReader();
    const chunks: Uint8Array[] = [];
    const first = await reader.read();
    expect(first.done).toBe(false); // the bar drew: pages are moving
    chunks.push(first.value!);
    truncateSync(source, 256 * MiB);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const [code, stdout] = await Promise.all([p.exited, new Response(p.stdout).text()]);
    clearTimeout(timer);
    rmSync(source);
    const stderr = new TextDecoder().decode(Buffer.concat(chunks));
    expect({ signal: p.signalCode ?? null, code, stdout }).toEqual({ signal: null, code: 1, stdout: "" });
    // what remains after the progress bar's lines is one line
    const text = withoutProgress(stderr);
    expect(text.trimEnd().split("\n")).toHaveLength(1);
    expect(text).toMatch(new RegExp(`^ramsnap save: ${re(source).source} ends before offset \\d+: the source shrank during the save\\n$`));
    expect(existsSync(target)).toBe(false);
    expect(temporaries(target)).toEqual([]);
  }, 60_000);
});

describe("kill -9 at random moments of a save", () => {
  test("never a complete-looking file at the target name; a previous complete file stays byte for byte", async () => {
    const source = join(shm.path, "kill.img");
    writeImage(source, 256 * MiB, { kind: "clustered", seed: 75, nonZero: 0.8 });
    const args = (target: string) => ["save", "-o", target, "--block", `ram0=${source}`, "--channels", "2", "--progress", "--no-manifest"];
    // how long a whole save takes here, process start to exit (the shorter of two, one after the other)
    let D = Number.POSITIVE_INFINITY;
    for (const k of [0, 1]) {
      const r = await ramsnap(args(join(disk.path, `kill-timing-${k}.ram`)));
      expect(r.code).toBe(0);
      D = Math.min(D, r.ms);
    }
    // seeded, so a failure names moments that can be tried again
    let s = 0x9e3779b9;
    const rand = () => (s = (Math.imul(s ^ (s >>> 15), 0x2c1b3c6d) + 0x6d2b79f5) >>> 0) / 2 ** 32;
    // Moments by the clock from spawn (the first two land before any file exists: bun is still starting);
    // by the temporary file, once it exists (a fraction of the time the save has left, so they land
    // mid-save on a fast machine and a slow one alike); and by the progress bar, at 90 % and when it first
    // shows 100 % (every page written; the fsync, bitmaps, EOF and rename are all that is left).
    const moments: ({ ms: number } | { percent: number } | { afterTmp: number })[] = [
      { ms: 0 },
      { ms: 0.02 * D },
      { afterTmp: 0 },
      { afterTmp: 0.05 + 0.2 * rand() },
      { afterTmp: 0.25 + 0.2 * rand() },
      { afterTmp: 0.45 + 0.15 * rand() }, // at most 60 % of the rest of D / 2: a run twice as fast as D still gets killed mid-save
      { percent: 90 },
      { percent: 100 },
      { ms: (0.9 + 0.1 * rand()) * D },
    ];
    const log: string[] = [];
    let killed = 0;
    /** Kills that left the temporary file behind: they landed while the save was writing it. */
    let midSave = 0;
    for (const [k, when] of moments.entries()) {
      const target = join(disk.path, `kill-${k}.ram`);
      const before = k % 2 === 1 ? await previousFile(target) : null;
      const p = Bun.spawn([process.execPath, MAIN, ...args(target)], { stdout: "ignore", stderr: "pipe", stdin: "ignore", env: env() });
      const stop = setTimeout(() => p.kill("SIGKILL"), 30_000);
      const t0 = performance.now();
      if ("ms" in when) {
        if (when.ms > 0) await Bun.sleep(when.ms);
        p.kill("SIGKILL");
      } else if ("afterTmp" in when) {
        while (temporaries(target).length === 0 && p.exitCode === null) await Bun.sleep(1);
        // Against half of D: a save can run twice as fast as the calibration run (a warm cache; it did in CI),
        // and a kill meant for mid-save must not come after the save has finished.
        await Bun.sleep(when.afterTmp * Math.max(0, D / 2 - (performance.now() - t0)));
        p.kill("SIGKILL");
      } else {
        const dec = new TextDecoder();
        let seen = "";
        for await (const chunk of p.stderr) {
          seen += dec.decode(chunk, { stream: true });
          const pcts = [...seen.matchAll(/(\d+)%/g)].map((m) => Number(m[1]));
          if (pcts.some((x) => x >= when.percent)) {
            p.kill("SIGKILL");
            break;
          }
        }
      }
      const code = await p.exited;
      clearTimeout(stop);
      const wasKilled = p.signalCode === "SIGKILL";
      // A kill in the last moments can land after the rename, before the process exits: then the target
      // must be the new save, whole. Anything else at the target name than the previous file is that case.
      const afterRename = wasKilled && existsSync(target) && !(before && (await sameBytes(target, before)));
      const leftTmp = wasKilled && temporaries(target).length > 0;
      if (leftTmp) midSave++;
      const what = "ms" in when ? `${when.ms.toFixed(0)} ms` : "afterTmp" in when ? `${(100 * when.afterTmp).toFixed(0)}% of the rest after the temporary file appeared` : `${when.percent}%`;
      log.push(`${what}: ${wasKilled ? (afterRename ? "killed after the rename" : leftTmp ? "killed mid-save" : "killed") : `had exited ${code}`}${before ? ", over a previous file" : ""}`);
      // a kill timed by the temporary file's appearance lands while it exists, and leaves it behind
      if ("afterTmp" in when) expect(`${what}: ${leftTmp ? "mid-save" : "not mid-save"}`).toBe(`${what}: mid-save`);
      if (afterRename) {
        expect(verify({ path: target, blocks: [{ name: "ram0", path: source }] }).ok).toBe(true);
      } else if (wasKilled) {
        killed++;
        if (before) expect(await sameBytes(target, before)).toBe(true);
        else expect(existsSync(target)).toBe(false);
      } else {
        // it finished first: then the file is the new, complete one
        expect(code).toBe(0);
        expect(verify({ path: target, blocks: [{ name: "ram0", path: source }] }).ok).toBe(true);
      }
      // a file at the target name is either the previous one (complete, verified) or the finished save
      if (existsSync(target)) {
        // 3: the structure is sound; with no manifest and no image, its pages cannot be checked
        expect((await ramsnap(["verify", target])).code).toBe(3);
        expect(inspectFile(target).blocks[0]!.length).toBe(wasKilled && !afterRename ? 4 * MiB : 256 * MiB);
      }
      // kill -9 leaves the temporary file (nothing can remove it); it never took the target's name
      for (const t of temporaries(target)) rmSync(join(disk.path, t));
    }
    console.log(`save of 256 MiB: ${D.toFixed(0)} ms; kill -9 at ${log.join("; ")}`);
    expect(killed).toBeGreaterThanOrEqual(5);
    // Kills that landed before any file existed prove little: at least the four timed by the temporary
    // file and the one at 90 % must have hit a save in progress.
    expect(midSave).toBeGreaterThanOrEqual(5);
    rmSync(source);
  }, 90_000);
});
