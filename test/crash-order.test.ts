// The order of a save's writes, as the kernel saw them (strace -f of the CLI): a crash at any moment must
// leave either no file at the target name or a complete one. Nothing else proves this: a save that renamed
// before writing its bitmaps, or never fsynced its pages, produces the same bytes once it finishes, so
// every test that reads the finished file passes. The order that makes it crash-safe:
//   1. every page write (channel threads, on the channel descriptor: O_DIRECT with --direct-io) ends, then
//   2. that descriptor is fsynced, and only then
//   3. the main thread writes the bitmaps and the tail ending in EOF, on the main descriptor,
//   4. fsyncs the file, then
//   5. renames the temporary file (.NAME.ramsnap-PID-XXXXXX.tmp, beside the target) to NAME, then
//   6. fsyncs the directory, so the rename itself is durable.
// "A before B" below means A returned before B was entered (see harness/trace.ts).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync } from "node:fs";
import { basename, dirname, join } from "node:path";
import { inspectFile, verify } from "../src/index.ts";
import { requireDirectIo, scratchDir, writeImage } from "../harness/scratch.ts";
import { MiB } from "../harness/units.ts";
import { extentOf, isSync, isWrite, openFlags, requireStrace, temporariesOf, traceRamsnap, type Call, type Traced } from "../harness/trace.ts";

const disk = scratchDir("ramsnap-crash-order"); // save files on ext4, where O_DIRECT is real
const shm = scratchDir("ramsnap-crash-order", "/dev/shm");
const direct = requireDirectIo(disk.path);
const strace = requireStrace();
afterAll(() => {
  disk.cleanup();
  shm.cleanup();
});

// Two blocks, so there are two bitmaps to place; ram0 has zero pages (bitmap bits clear, holes in the file).
const ram0 = join(shm.path, "ram0.img");
const ram1 = join(shm.path, "ram1.img");
beforeAll(() => {
  writeImage(ram0, 12 * MiB, { kind: "scattered", seed: 301, nonZero: 0.5 });
  writeImage(ram1, 4 * MiB, { kind: "dense", seed: 302 });
});

const last = (calls: Call[]) => Math.max(...calls.map((c) => c.end));
const first = (calls: Call[]) => Math.min(...calls.map((c) => c.start));
const show = (c: Call | undefined) => (c ? `${c.tid} ${c.name}(${c.args.join(", ")}) = ${c.ret} [lines ${c.start}-${c.end}]` : "none");

interface SaveTrace {
  t: Traced;
  target: string;
  tmp: string;
  json: { writtenBytes: number; directIo: boolean };
}

async function tracedSave(name: string, extra: string[]): Promise<SaveTrace> {
  const target = join(disk.path, name);
  const t = await traceRamsnap(["save", "-o", target, "--block", `ram0=${ram0}`, "--block", `ram1=${ram1}`, "--channels", "2", "--json", ...extra], {
    traceFile: join(shm.path, `${name}.strace`),
  });
  expect(t.stderr).toBe("");
  expect({ code: t.code, signal: t.signal }).toEqual({ code: 0, signal: null });
  // The temporary file: created (O_EXCL) beside the target by the main thread, named after the target and the pid.
  const creates = t.calls.filter((c) => c.name === "openat" && c.tid === t.pid && c.ret >= 0 && c.path?.startsWith(`${disk.path}/.${name}.`));
  expect(creates.map((c) => c.args[2]!.split("|").filter((f) => ["O_CREAT", "O_EXCL"].includes(f)))[0]).toEqual(["O_CREAT", "O_EXCL"]);
  const tmp = creates[0]!.path!;
  expect(basename(tmp)).toMatch(new RegExp(`^\\.${name.replace(".", "\\.")}\\.ramsnap-${t.pid}-[a-z0-9]+\\.tmp$`));
  return { t, target, tmp, json: JSON.parse(t.stdout) };
}

/** Checks steps 1-6 on a traced save; returns the calls it identified, for further checks. */
function expectCrashSafeOrder({ t, target, tmp, json }: SaveTrace) {
  const { calls, pid } = t;
  const rep = inspectFile(target);
  expect(rep.complete).toBe(true);
  const onFile = (c: Call) => c.path === tmp || c.path === target;

  // Nothing is ever opened for writing under the target's own name: bytes reach it only by the rename.
  const openedTarget = calls.filter((c) => c.name === "openat" && c.args[1] === JSON.stringify(target) && /O_WRONLY|O_RDWR/.test(c.args[2] ?? ""));
  expect(openedTarget.map(show)).toEqual([]);

  const rename = calls.filter((c) => c.name.startsWith("rename") && c.args.some((a) => a === JSON.stringify(target)));
  expect(rename.map((c) => [c.tid, c.ret, c.args.filter((a) => a.startsWith('"'))])).toEqual([[pid, 0, [JSON.stringify(tmp), JSON.stringify(target)]]]);
  const renamed = rename[0]!;
  const before = (c: Call) => c.end < renamed.start;

  // 1. Page writes: by the channel threads, within the blocks' page areas, adding up to the pages written.
  const writes = calls.filter((c) => isWrite(c) && onFile(c) && c.ret > 0);
  const pageWrites = writes.filter((c) => c.tid !== pid);
  expect(pageWrites.length).toBeGreaterThan(0);
  expect(pageWrites.reduce((s, c) => s + c.ret, 0)).toBe(json.writtenBytes);
  for (const c of pageWrites) {
    const { offset, length } = extentOf(c);
    const inBlock = rep.blocks.some((b) => offset >= b.pagesOffset! && offset + length <= b.pagesOffset! + b.length);
    expect(inBlock ? "in a block's pages" : show(c)).toBe("in a block's pages");
  }
  const channelFds = [...new Set(pageWrites.map((c) => c.fd))];
  expect(channelFds).toHaveLength(1); // one descriptor shared by the channels

  // 2. The channel descriptor is fsynced after the last page write returned.
  const pagesSynced = calls.find((c) => isSync(c) && c.fd === channelFds[0] && onFile(c) && c.start > last(pageWrites));
  expect(show(pagesSynced)).toMatch(/ (fsync|fdatasync)\(.* = 0 /);

  // 3. Bitmaps (one write at each block's bitmap offset) and the write holding EOF: the main thread, main
  // descriptor, after that fsync returned.
  const mainWrites = writes.filter((c) => c.tid === pid && openFlags(calls, c).includes("O_CREAT"));
  const mainFd = mainWrites[0]!.fd;
  const bitmapWrites = rep.blocks.map((b) => mainWrites.find((c) => extentOf(c).offset === b.bitmapOffset));
  for (const w of bitmapWrites) expect(show(w)).toMatch(/pwrite/);
  const eofWrite = mainWrites.find((c) => extentOf(c).offset <= rep.eofOffset && rep.eofOffset < extentOf(c).offset + c.ret);
  expect(show(eofWrite)).toMatch(/pwrite/);
  const tailWrites = [...bitmapWrites, eofWrite] as Call[];
  expect(first(tailWrites)).toBeGreaterThan(pagesSynced!.end);

  // 4. The main descriptor is fsynced after the last write of the stream, and before the rename.
  const fileSynced = calls.find((c) => isSync(c) && c.fd === mainFd && onFile(c) && c.start > last(mainWrites.filter(before)));
  expect(show(fileSynced)).toMatch(/ (fsync|fdatasync)\(.* = 0 /);

  // 5. The rename comes after every write and both fsyncs: at that moment the file is complete on disk.
  expect(renamed.start).toBeGreaterThan(last(writes.filter(before)));
  expect(renamed.start).toBeGreaterThan(fileSynced!.end);
  expect(renamed.start).toBeGreaterThan(pagesSynced!.end);
  expect(writes.filter((c) => !before(c)).map(show)).toEqual([]); // nothing written after it

  // 6. The directory holding the target is opened and fsynced after the rename returned.
  const dirFsync = calls.find((c) => c.name === "fsync" && c.path === dirname(target) && c.start > renamed.end);
  expect(show(dirFsync)).toMatch(/ fsync\(.* = 0 /);
  const dirOpen = calls.filter((c) => c.name === "openat" && c.ret === dirFsync!.fd && c.end < dirFsync!.start).at(-1);
  expect(dirOpen?.args[2]).toContain("O_DIRECTORY");

  return { pageWrites, mainWrites, pagesSynced: pagesSynced!, fileSynced: fileSynced!, renamed };
}

describe.skipIf(!strace)("crash order of a save, from its system calls", () => {
  test("buffered: pages, their fsync, bitmaps and EOF, the file's fsync, the rename, the directory's fsync", async () => {
    const s = await tracedSave("buffered.ram", []);
    expect(s.json.directIo).toBe(false);
    const seen = expectCrashSafeOrder(s);
    // Buffered, the channels share the main descriptor: two fsyncs of it, one before the tail, one after.
    expect(seen.pagesSynced).not.toBe(seen.fileSynced);
    expect(verify({ path: s.target, blocks: [{ name: "ram0", path: ram0 }, { name: "ram1", path: ram1 }] }).ok).toBe(true);
    expect(temporariesOf(disk.path, "buffered.ram")).toEqual([]);
  }, 60_000);

  test.skipIf(!direct)("--direct-io: the same order; pages go through a second descriptor, which is the one fsynced before the tail", async () => {
    const s = await tracedSave("direct.ram", ["--direct-io"]);
    expect(s.json.directIo).toBe(true);
    const seen = expectCrashSafeOrder(s);
    expect(seen.pageWrites[0]!.fd).not.toBe(seen.mainWrites[0]!.fd);
    expect(verify({ path: s.target, blocks: [{ name: "ram0", path: ram0 }, { name: "ram1", path: ram1 }] }).ok).toBe(true);
  }, 60_000);

  test("--offset over an existing file: the prefix is copied into the temporary file, never written at the target name", async () => {
    const name = "offset.ram";
    const target = join(disk.path, name);
    await Bun.write(target, new Uint8Array(8192).fill(0x41));
    const s = await tracedSave(name, ["--offset", "8192"]);
    // the order holds for a stream that starts inside the file, too (inspect reads it at its offset)
    expect(inspectFile(target, { offset: 8192 }).complete).toBe(true);
    expect((await Bun.file(target).bytes()).subarray(0, 8192).every((b) => b === 0x41)).toBe(true);
    const writes = s.t.calls.filter((c) => isWrite(c) && c.path === target && c.end < s.t.calls.find((r) => r.name.startsWith("rename"))!.start);
    expect(writes.map(show)).toEqual([]);
    expect(existsSync(s.tmp)).toBe(false);
  }, 60_000);
});
