// Direct I/O shown to happen, judged from outside the process. `directIo: true` in a result is ramsnap's
// own word: channels that quietly did their I/O on the buffered descriptor would still say it, and every
// file they wrote would be byte for byte the same. Three witnesses that do not ask ramsnap:
//   - the system calls (strace -f): every page write or read by a channel thread is on a descriptor
//     opened with O_DIRECT;
//   - /proc/PID/fdinfo mid-save: the process holds an O_DIRECT descriptor on the temporary file;
//   - the page cache (fincore, on ext4 under /tmp): a direct save or restore leaves the file's pages out of
//     it, a buffered one leaves them in. The buffered runs are the control that shows the measure can tell.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { basename, join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { requireDirectIo, sameFiles, scratchDir, writeImage } from "../harness/scratch.ts";
import { MiB } from "../harness/units.ts";
import { extentOf, fdFlags, isRead, isWrite, MAIN, openFlags, pageCacheBytes, requireStrace, traceRamsnap, type Call } from "../harness/trace.ts";
import { ramsnap } from "../harness/cli.ts";

const disk = scratchDir("ramsnap-direct-proof"); // ext4: O_DIRECT bypasses a real page cache here
const shm = scratchDir("ramsnap-direct-proof", "/dev/shm");
const direct = requireDirectIo(disk.path);
const strace = requireStrace();
afterAll(() => {
  disk.cleanup();
  shm.cleanup();
});

const img = join(shm.path, "dense.img");
const SIZE = 64 * MiB;
beforeAll(() => {
  writeImage(img, SIZE, { kind: "dense", seed: 401 });
});

const flagsOf = (calls: Call[], c: Call) => `${c.name} on fd ${c.fd}: ${openFlags(calls, c).includes("O_DIRECT") ? "O_DIRECT" : "buffered"}`;
/**
 * What the main stream (plain descriptor, by design) may leave in the cache: a save writes a few pages of
 * head, bitmaps and tail; a restore's parser reads the head in 1 MiB steps (1 MiB + 4 KiB measured). The
 * pages are 64 MiB, so the two outcomes stay far apart.
 */
const MAIN_STREAM_SLACK = 2 * MiB;

describe.skipIf(!direct || !strace)("the system calls: channels use O_DIRECT descriptors", () => {
  test("save --direct-io: every page write by a channel thread is on a descriptor opened O_DIRECT; buffered: no O_DIRECT open at all", async () => {
    for (const directIo of [true, false]) {
      const target = join(disk.path, `traced-${directIo}.ram`);
      const t = await traceRamsnap(["save", "-o", target, "--block", `ram0=${img}`, "--channels", "2", "--json", ...(directIo ? ["--direct-io"] : [])], {
        traceFile: join(shm.path, "save.strace"),
      });
      expect({ code: t.code, stderr: t.stderr }).toEqual({ code: 0, stderr: "" });
      expect(JSON.parse(t.stdout).directIo).toBe(directIo);
      const tmpName = `.${basename(target)}.ramsnap-`;
      const onFile = (c: Call) => !!c.path && (c.path === target || basename(c.path).startsWith(tmpName));
      const pageWrites = t.calls.filter((c) => isWrite(c) && onFile(c) && c.tid !== t.pid && c.ret > 0);
      expect(pageWrites.reduce((s, c) => s + c.ret, 0)).toBe(SIZE); // dense: every page, once
      const want = `${directIo ? "O_DIRECT" : "buffered"}`;
      expect([...new Set(pageWrites.map((c) => flagsOf(t.calls, c).replace(/ on fd \d+/, "")))]).toEqual([`pwrite64: ${want}`]);
      const directOpens = t.calls.filter((c) => c.name === "openat" && onFile(c) && c.args[2]!.includes("O_DIRECT"));
      expect(directOpens).toHaveLength(directIo ? 1 : 0);
    }
  }, 60_000);

  test("restore --direct-io: every page read by a channel thread is on a descriptor opened O_DIRECT", async () => {
    const file = join(disk.path, "traced-restore.ram");
    expect((await ramsnap("save", "-o", file, "--block", `ram0=${img}`, "--channels", "2")).code).toBe(0);
    for (const directIo of [true, false]) {
      const out = join(shm.path, `restored-${directIo}.img`);
      const t = await traceRamsnap(["restore", file, "--block", `ram0=${out}`, "--channels", "2", ...(directIo ? ["--direct-io"] : [])], { traceFile: join(shm.path, "restore.strace") });
      expect({ code: t.code, stderr: t.stderr }).toEqual({ code: 0, stderr: "" });
      const pageReads = t.calls.filter((c) => isRead(c) && c.path === file && c.tid !== t.pid && c.ret > 0);
      expect(pageReads.reduce((s, c) => s + c.ret, 0)).toBe(SIZE);
      expect([...new Set(pageReads.map((c) => flagsOf(t.calls, c).replace(/^\w+ on fd \d+/, "read")))]).toEqual([`read: ${directIo ? "O_DIRECT" : "buffered"}`]);
      // and the reads land where the pages are: no read of the channel's starts inside the main stream's head
      expect(Math.min(...pageReads.map((c) => extentOf(c).offset)) % 4096).toBe(0);
      expect(await sameFiles(out, img)).toBeNull();
    }
  }, 60_000);
});

describe.skipIf(!direct)("/proc/PID/fdinfo mid-save", () => {
  test("--direct-io: the process holds an O_WRONLY|O_DIRECT descriptor on the temporary file; buffered: none", async () => {
    const big = join(shm.path, "big.img");
    writeImage(big, 256 * MiB, { kind: "dense", seed: 402 });
    for (const directIo of [true, false]) {
      const target = join(disk.path, `fdinfo-${directIo}.ram`);
      const p = Bun.spawn([process.execPath, MAIN, "save", "-o", target, "--block", `ram0=${big}`, "--channels", "1", ...(directIo ? ["--direct-io"] : [])], {
        stdout: "ignore",
        stderr: "pipe",
        stdin: "ignore",
        env: { ...process.env, NO_COLOR: "1" },
      });
      const stop = setTimeout(() => p.kill("SIGKILL"), 60_000);
      // Every descriptor seen on the temporary file while the save ran, polled from outside until it exits.
      const seen = new Set<string>();
      const mine = (path: string) => basename(path).startsWith(`.${basename(target)}.ramsnap-${p.pid}-`);
      while (p.exitCode === null) {
        for (const f of fdFlags(p.pid, mine)) {
          seen.add(`${(f.flags & libc.O_ACCMODE) === libc.O_WRONLY ? "O_WRONLY" : f.flags & libc.O_ACCMODE}${f.flags & libc.O_DIRECT ? "|O_DIRECT" : ""}`);
        }
        await Bun.sleep(1);
      }
      clearTimeout(stop);
      expect({ code: await p.exited, stderr: await new Response(p.stderr).text() }).toEqual({ code: 0, stderr: "" });
      expect([...seen].sort()).toEqual(directIo ? ["O_WRONLY", "O_WRONLY|O_DIRECT"] : ["O_WRONLY"]);
    }
  }, 90_000);
});

describe.skipIf(!direct)("the page cache after a save and a restore (fincore, ext4)", () => {
  test("a direct save leaves the file's pages out of the cache, a buffered one leaves them in", async () => {
    const d = join(disk.path, "cache-direct.ram");
    const b = join(disk.path, "cache-buffered.ram");
    const rd = await ramsnap("save", "-o", d, "--block", `ram0=${img}`, "--channels", "2", "--direct-io", "--json");
    const rb = await ramsnap("save", "-o", b, "--block", `ram0=${img}`, "--channels", "2", "--json");
    expect([rd.code, rb.code]).toEqual([0, 0]);
    expect([JSON.parse(rd.stdout).directIo, JSON.parse(rb.stdout).directIo]).toEqual([true, false]);
    expect(pageCacheBytes(d)).toBeLessThanOrEqual(MAIN_STREAM_SLACK);
    expect(pageCacheBytes(b)).toBeGreaterThanOrEqual(0.9 * SIZE); // the control: the measure sees cached pages
  }, 60_000);

  test("a direct restore of an uncached file leaves it uncached, a buffered one reads it into the cache", async () => {
    const file = join(disk.path, "cache-restore.ram");
    expect((await ramsnap("save", "-o", file, "--block", `ram0=${img}`, "--channels", "2", "--direct-io")).code).toBe(0);
    expect(pageCacheBytes(file)).toBeLessThanOrEqual(MAIN_STREAM_SLACK);
    const outD = join(shm.path, "cache-restored-direct.img");
    const rd = await ramsnap("restore", file, "--block", `ram0=${outD}`, "--channels", "2", "--direct-io");
    expect(rd.code).toBe(0);
    expect(await sameFiles(outD, img)).toBeNull();
    expect(pageCacheBytes(file)).toBeLessThanOrEqual(MAIN_STREAM_SLACK);
    const outB = join(shm.path, "cache-restored-buffered.img");
    expect((await ramsnap("restore", file, "--block", `ram0=${outB}`, "--channels", "2")).code).toBe(0);
    expect(pageCacheBytes(file)).toBeGreaterThanOrEqual(0.9 * SIZE);
  }, 60_000);
});
