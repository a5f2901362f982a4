// Every option and descriptor rule (src/options.ts, the checks at the top of save() and restore(), the
// CLI's argument parsers), each with the message the user sees, and the proof that nothing was written.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import * as libc from "../ffi/libc.ts";
import { CancelledError, OptionError, RefusedError, inspectFile, restore, save } from "../src/index.ts";
import type { RestoreOptions } from "../src/restore.ts";
import type { SaveOptions } from "../src/save.ts";
import { checkBlocks, checkChannels, checkOffset, MAX_CHANNELS, parseBlockArg } from "../src/options.ts";
import { checkDescriptors } from "../src/io/descriptors.ts";
import { openDirect } from "../src/io/direct.ts";
import { filesystemName } from "../src/io/filesystem.ts";
import { fdOption, intOption, repeated, sizeOption } from "../src/cli/args.ts";
import { readBytes, requireDirectIo, sameFiles, scratchDir, writeFilled, writeImage } from "../harness/scratch.ts";
import { MiB, PAGE } from "../harness/units.ts";

const disk = scratchDir("ramsnap-options");
const shm = scratchDir("ramsnap-options", "/dev/shm");
const direct = requireDirectIo(disk.path);
afterAll(() => {
  disk.cleanup();
  shm.cleanup();
});

let serial = 0;
const onDisk = (name: string) => `${disk.path}/${++serial}-${name}`;

const img = `${shm.path}/img.raw`;
writeImage(img, 2 * MiB, { kind: "scattered", seed: 7, nonZero: 0.5 });
const saved = `${disk.path}/saved.ram`;
beforeAll(async () => {
  await save({ path: saved, blocks: [{ name: "ram0", path: img }], channels: 1 });
});

/** Runs fn, which must fail with an OptionError whose message is exactly `message` (or matches it). */
const refused = (fn: () => unknown, message: string | RegExp) => optionError(fn, message, RefusedError);

async function optionError(fn: () => unknown, message: string | RegExp, type: new (...a: never[]) => Error = OptionError): Promise<void> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(type);
  if (typeof message === "string") expect((err as Error).message).toBe(message);
  else expect((err as Error).message).toMatch(message);
}

/** A save with these options must fail with `message` and leave no output file behind. */
async function saveRefused(o: Partial<SaveOptions>, message: string | RegExp): Promise<void> {
  const path = "fd" in o ? undefined : onDisk("refused.ram");
  await optionError(() => save({ path, blocks: [{ name: "ram0", path: img }], ...o }), message);
  if (path) expect(existsSync(path)).toBe(false);
}

/** A restore with these options must fail with `message` and leave its target untouched. */
async function restoreRefused(o: Partial<RestoreOptions>, message: string | RegExp, type: new (...a: never[]) => Error = OptionError): Promise<void> {
  const target = `${shm.path}/${++serial}-target.raw`;
  await optionError(() => restore({ path: "fd" in o ? undefined : saved, blocks: [{ name: "ram0", path: target }], ...o }), message, type);
  expect(existsSync(target)).toBe(false);
}

describe("channels", () => {
  test("0 channels with direct I/O: the main descriptor never uses O_DIRECT", async () => {
    const msg = "--direct-io needs at least one channel: the main descriptor never uses O_DIRECT (its records are small and unaligned)";
    expect(() => checkChannels(0, true)).toThrow(msg);
    await saveRefused({ channels: 0, directIo: true }, msg);
    await restoreRefused({ channels: 0, directIo: true }, msg);
  });

  test("0 channels without direct I/O", async () => {
    expect(() => checkChannels(0, false)).toThrow("--channels must be at least 1");
    await saveRefused({ channels: 0 }, "--channels must be at least 1");
    await restoreRefused({ channels: 0 }, "--channels must be at least 1");
  });

  test("more than 64, negative, fractional or NaN", async () => {
    for (const n of [65, 1000, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      const msg = `--channels must be a whole number from 1 to ${MAX_CHANNELS}, got ${n}`;
      expect(() => checkChannels(n, false)).toThrow(msg);
      expect(() => checkChannels(n, true)).toThrow(msg);
    }
    await saveRefused({ channels: 65 }, "--channels must be a whole number from 1 to 64, got 65");
    await restoreRefused({ channels: 2.5 }, "--channels must be a whole number from 1 to 64, got 2.5");
  });

  test("1 and 64 are accepted", () => {
    expect(() => checkChannels(1, true)).not.toThrow();
    expect(() => checkChannels(64, false)).not.toThrow();
  });
});

describe("blocks", () => {
  test("no blocks at all", async () => {
    expect(() => checkBlocks([], PAGE)).toThrow("no RAM blocks given (use --block NAME=PATH)");
    await saveRefused({ blocks: [] }, "no RAM blocks given (use --block NAME=PATH)");
  });

  test("a block that is not a whole number of pages (buffer and file)", async () => {
    expect(() => checkBlocks([{ name: "a", length: PAGE + 1 }], PAGE)).toThrow("block a is 4097 bytes, not a whole number of 4096-byte pages");
    await saveRefused({ blocks: [{ name: "a", buffer: new Uint8Array(PAGE + 1) }] }, "block a is 4097 bytes, not a whole number of 4096-byte pages");
    const odd = `${shm.path}/odd.raw`;
    writeFileSync(odd, new Uint8Array(5000).fill(1));
    await saveRefused({ blocks: [{ name: "b", path: odd }] }, "block b is 5000 bytes, not a whole number of 4096-byte pages");
  });

  test("an empty block (buffer, file)", async () => {
    expect(() => checkBlocks([{ name: "a", length: 0 }], PAGE)).toThrow("block a is empty");
    await saveRefused({ blocks: [{ name: "a", buffer: new Uint8Array(0) }] }, "block a is empty");
    const empty = `${shm.path}/empty.raw`;
    writeFileSync(empty, "");
    await saveRefused({ blocks: [{ name: "a", path: empty }] }, `${empty} is empty`);
  });

  test("a source that is neither a regular file nor a block device", async () => {
    await saveRefused({ blocks: [{ name: "a", path: "/dev/null" }] }, "/dev/null is not a regular file or block device");
    await saveRefused({ blocks: [{ name: "a", path: shm.path }] }, `${shm.path} is not a regular file or block device`);
  });

  test("duplicate names", async () => {
    expect(() => checkBlocks([{ name: "a", length: PAGE }, { name: "a", length: PAGE }], PAGE)).toThrow("block a is given twice");
    await saveRefused({ blocks: [{ name: "ram0", path: img }, { name: "ram0", path: img }] }, "block ram0 is given twice");
  });

  test("names of 0 or more than 255 bytes (counted in UTF-8 bytes, not characters)", async () => {
    const long = "é".repeat(128); // 128 characters, 256 bytes
    expect(() => checkBlocks([{ name: long, length: PAGE }], PAGE)).toThrow(`block name "${long}" must be 1 to 255 bytes`);
    expect(() => checkBlocks([{ name: "", length: PAGE }], PAGE)).toThrow(`block name "" must be 1 to 255 bytes`);
    await saveRefused({ blocks: [{ name: "x".repeat(256), path: img }] }, `block name "${"x".repeat(256)}" must be 1 to 255 bytes`);
    expect(() => checkBlocks([{ name: "x".repeat(255), length: PAGE }], PAGE)).not.toThrow();
  });

  test("a 255-byte name is saved and read back", async () => {
    const name = `${"x".repeat(250) + "ééé".slice(0, 2)}y`; // 250 + 4 + 1 bytes
    expect(new TextEncoder().encode(name).length).toBe(255);
    const file = onDisk("longname.ram");
    await save({ path: file, blocks: [{ name, path: img }], channels: 1 });
    expect(inspectFile(file).blocks.map((b) => b.name)).toEqual([name]);
    const out = `${shm.path}/longname.out`;
    await restore({ path: file, blocks: [{ name, path: out }], channels: 1 });
    expect(await sameFiles(img, out)).toBeNull();
  });

  test("a source given as both path and buffer, or neither", async () => {
    await saveRefused({ blocks: [{ name: "a", path: img, buffer: new Uint8Array(PAGE) }] }, "block a: give a path or a buffer, not both");
    await saveRefused({ blocks: [{ name: "a" }] }, "block a: no source (a path or a buffer)");
  });

  test("--block NAME=PATH", () => {
    for (const bad of ["ram0", "=x", "ram0=", "="]) {
      expect(() => parseBlockArg(bad)).toThrow(new OptionError(`--block ${bad}: expected NAME=PATH, e.g. --block ram0=/dev/shm/guest-ram`));
    }
    expect(parseBlockArg("ram0=/dev/shm/a=b")).toEqual({ name: "ram0", path: "/dev/shm/a=b" });
    expect(parseBlockArg("/rom@etc/acpi/tables=t.raw")).toEqual({ name: "/rom@etc/acpi/tables", path: "t.raw" });
  });
});

describe("offset", () => {
  test("negative, NaN, fractional, infinite or past 2^53", async () => {
    for (const v of [-1, Number.NaN, 1.5, Number.POSITIVE_INFINITY, 2 ** 53]) {
      expect(() => checkOffset(v)).toThrow(`--offset must be a whole number of bytes, got ${v}`);
    }
    await saveRefused({ offset: -1 }, "--offset must be a whole number of bytes, got -1");
    await saveRefused({ offset: Number.NaN }, "--offset must be a whole number of bytes, got NaN");
    await restoreRefused({ offset: -4096 }, "--offset must be a whole number of bytes, got -4096");
    await restoreRefused({ offset: Number.NaN }, "--offset must be a whole number of bytes, got NaN");
    expect(() => checkOffset(0)).not.toThrow();
  });
});

describe("output and input", () => {
  test("both a path and --fd, or neither", async () => {
    const fd = libc.open(onDisk("both.ram"), libc.O_WRONLY | libc.O_CREAT, 0o600);
    try {
      await optionError(() => save({ path: onDisk("x.ram"), fd, blocks: [{ name: "ram0", path: img }] }), "give either an output path or --fd");
      await optionError(() => save({ blocks: [{ name: "ram0", path: img }] }), "give either an output path or --fd");
      await optionError(() => restore({ path: saved, fd, blocks: [{ name: "ram0", path: onDisk("t") }] }), "give either an input path or --fd");
      await optionError(() => restore({ blocks: [{ name: "ram0", path: onDisk("t") }] }), "give either an input path or --fd");
    } finally {
      libc.close(fd);
    }
  });

  test("an already aborted signal", async () => {
    const file = onDisk("aborted.ram");
    await expect(save({ path: file, blocks: [{ name: "ram0", path: img }], signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    await expect(restore({ path: saved, blocks: [{ name: "ram0", path: onDisk("t") }], signal: AbortSignal.abort() })).rejects.toBeInstanceOf(CancelledError);
    expect(existsSync(file)).toBe(false);
  });
});

describe("descriptors (--fd, --direct-fd)", () => {
  const opened: number[] = [];
  const open = (path: string, flags: number) => {
    const fd = libc.open(path, flags, 0o600);
    opened.push(fd);
    return fd;
  };
  afterAll(() => {
    for (const fd of opened) libc.close(fd);
  });
  const out = `${disk.path}/fd-target.ram`;
  const content = new Uint8Array(3 * PAGE).fill(0x42);
  beforeAll(() => writeFileSync(out, content));
  /** The refused save did not touch the file behind the descriptors. */
  const untouched = () => expect(readFileSync(out).equals(content)).toBe(true);

  test("--fd with O_DIRECT is refused for the main stream", async () => {
    const fd = open(out, libc.O_WRONLY | libc.O_DIRECT);
    const msg = `--fd ${fd} has O_DIRECT; the main stream needs a descriptor without it (pass the O_DIRECT one as --direct-fd)`;
    expect(() => checkDescriptors(fd, undefined, "write")).toThrow(msg);
    await saveRefused({ fd }, msg);
    await saveRefused({ fd, directIo: false }, msg);
    const rfd = open(saved, libc.O_RDONLY | libc.O_DIRECT);
    await restoreRefused({ fd: rfd }, `--fd ${rfd} has O_DIRECT; the main stream needs a descriptor without it (pass the O_DIRECT one as --direct-fd)`);
    untouched();
  });

  test("--direct-fd without O_DIRECT", async () => {
    const fd = open(out, libc.O_WRONLY);
    const dfd = open(out, libc.O_WRONLY);
    await saveRefused({ fd, directFd: dfd }, `--direct-fd ${dfd} was opened without O_DIRECT`);
    const rfd = open(saved, libc.O_RDONLY);
    const rdfd = open(saved, libc.O_RDONLY);
    await restoreRefused({ fd: rfd, directFd: rdfd }, `--direct-fd ${rdfd} was opened without O_DIRECT`);
    untouched();
  });

  test("an --fd opened for appending (a shell's >>) is refused: pwrite would ignore every offset", async () => {
    const fd = open(out, libc.O_WRONLY | libc.O_APPEND);
    await saveRefused({ fd }, `--fd ${fd} was opened for appending (O_APPEND, a shell's >>), which makes every write land at the end of the file; open it without (e.g. ${fd}<>FILE)`);
    untouched();
  });

  test("a read-only --fd for save, a write-only one for restore", async () => {
    const ro = open(out, libc.O_RDONLY);
    await saveRefused({ fd: ro }, `--fd ${ro} is not open for writing`);
    const wo = open(saved, libc.O_WRONLY);
    await restoreRefused({ fd: wo }, `--fd ${wo} is not open for reading`);
    const rfd = open(saved, libc.O_RDONLY);
    const wdirect = open(saved, libc.O_WRONLY | libc.O_DIRECT);
    await restoreRefused({ fd: rfd, directFd: wdirect }, `--direct-fd ${wdirect} is not open for reading`);
    const wfd = open(out, libc.O_WRONLY);
    const rdirect = open(out, libc.O_RDONLY | libc.O_DIRECT);
    await saveRefused({ fd: wfd, directFd: rdirect }, `--direct-fd ${rdirect} is not open for writing`);
    untouched();
    expect(inspectFile(saved).complete).toBe(true);
  });

  test("--fd equal to --direct-fd", async () => {
    const fd = open(out, libc.O_RDWR);
    await saveRefused({ fd, directFd: fd }, "--fd and --direct-fd must be two different descriptors");
    await restoreRefused({ fd, directFd: fd }, "--fd and --direct-fd must be two different descriptors");
    untouched();
  });

  test("--direct-io with --fd but no --direct-fd", async () => {
    const fd = open(out, libc.O_RDWR);
    const msg = "--direct-io with --fd needs --direct-fd: a second descriptor, opened with O_DIRECT";
    await saveRefused({ fd, directIo: true }, msg);
    await restoreRefused({ fd, directIo: true }, msg);
    untouched();
  });

  test("--direct-fd while direct I/O is switched off", async () => {
    const fd = open(out, libc.O_WRONLY);
    const dfd = open(out, libc.O_WRONLY | libc.O_DIRECT);
    await saveRefused({ fd, directFd: dfd, directIo: false }, "--direct-fd was given, but direct I/O is off");
    const rfd = open(saved, libc.O_RDONLY);
    const rdfd = open(saved, libc.O_RDONLY | libc.O_DIRECT);
    await restoreRefused({ fd: rfd, directFd: rdfd, directIo: false }, "--direct-fd was given, but direct I/O is off");
    untouched();
  });

  test("--direct-fd with a path instead of --fd (it could be any file)", async () => {
    const other = open(onDisk("other.ram"), libc.O_WRONLY | libc.O_CREAT | libc.O_DIRECT);
    await saveRefused({ directFd: other }, "--direct-fd goes with --fd (two descriptors on one file); with an output path, use --direct-io");
    const rother = open(saved, libc.O_RDONLY | libc.O_DIRECT);
    await restoreRefused({ directFd: rother }, "--direct-fd goes with --fd (two descriptors on one file); with an input path, use --direct-io");
  });

  test("a closed or never-opened descriptor number", async () => {
    const closed = libc.open(out, libc.O_WRONLY);
    libc.close(closed);
    await saveRefused({ fd: closed }, `--fd ${closed} is not an open descriptor (EBADF)`);
    await saveRefused({ fd: 99999 }, "--fd 99999 is not an open descriptor (EBADF)");
    await restoreRefused({ fd: 99999 }, "--fd 99999 is not an open descriptor (EBADF)");
    const fd = open(out, libc.O_WRONLY);
    await saveRefused({ fd, directFd: 99998 }, "--direct-fd 99998 is not an open descriptor (EBADF)");
    untouched();
  });

  test("descriptors that pass every check are accepted (the rules are not too strict)", () => {
    const fd = open(out, libc.O_RDWR);
    const dfd = open(out, libc.O_RDWR | libc.O_DIRECT);
    expect(() => checkDescriptors(fd, dfd, "write")).not.toThrow();
    expect(() => checkDescriptors(fd, dfd, "read")).not.toThrow();
    expect(() => checkDescriptors(fd, undefined, "read")).not.toThrow();
  });
});

describe("restore targets", () => {
  test("no targets, a target twice, path and buffer, neither", async () => {
    await optionError(() => restore({ path: saved, blocks: [] }), "no targets given (use --block NAME=PATH)");
    const t = `${shm.path}/twice.raw`;
    await optionError(
      () =>
        restore({
          path: saved,
          blocks: [
            { name: "ram0", path: t },
            { name: "ram0", path: t },
          ],
        }),
      "block ram0 is given twice",
    );
    expect(existsSync(t)).toBe(false);
    await restoreRefused({ blocks: [{ name: "ram0", path: t, buffer: new Uint8Array(2 * MiB) }] }, "block ram0: give a path or a buffer, not both");
    await restoreRefused({ blocks: [{ name: "ram0" }] }, "block ram0: no target (a path or a buffer)");
    expect(existsSync(t)).toBe(false);
  });

  test("a stream without RAM and a classic stream are refused by name (RefusedError: a fact of the file)", async () => {
    const header = [0x51, 0x45, 0x56, 0x4d, 0, 0, 0, 3]; // "QEVM", version 3
    const noRam = onDisk("noram.mig");
    writeFileSync(noRam, new Uint8Array([...header, 0x00])); // EOF at once
    await restoreRefused({ path: noRam }, `${noRam} is a stream without RAM; restore reads mapped-ram files`, RefusedError);
    // a classic RAM START section: MEM_SIZE 4096, block pc.ram of 4096 bytes, EOS; then EOF
    const name = (s: string) => [s.length, ...Buffer.from(s)];
    const classic = onDisk("classic.mig");
    writeFileSync(
      classic,
      new Uint8Array([...header, 0x01, 0, 0, 0, 2, ...name("ram"), 0, 0, 0, 0, 0, 0, 0, 4, 0, 0, 0, 0, 0, 0, 0x10, 0x04, ...name("pc.ram"), 0, 0, 0, 0, 0, 0, 0x10, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x00]),
    );
    expect(inspectFile(classic).ramFormat).toBe("classic");
    await restoreRefused({ path: classic, blocks: [{ name: "pc.ram", path: `${shm.path}/classic.out` }] }, `${classic} is a classic (not mapped-ram) stream; restore reads mapped-ram files (ramsnap extract reads both, or convert it --to mapped-ram)`, RefusedError);
    expect(existsSync(`${shm.path}/classic.out`)).toBe(false);
  });
});

// ---- a file system that refuses O_DIRECT ---------------------------------------------------------
// ramfs refuses open(O_DIRECT) with EINVAL on this kernel (tmpfs has taken it since 6.6), so a small
// ramfs mount is a real file system without direct I/O. Mounting needs root; CI runs as root.

function mountRamfs(dir: string): boolean {
  mkdirSync(dir, { recursive: true });
  const r = Bun.spawnSync(["mount", "-t", "ramfs", "-o", "mode=0700", "ramfs", dir], { stderr: "pipe" });
  if (r.exitCode === 0) return true;
  const why = `cannot mount ramfs on ${dir} (${r.stderr.toString().trim() || `exit ${r.exitCode}`}): the no-O_DIRECT file system tests need root`;
  if (process.env.CI) throw new Error(`${why}; CI never skips them`);
  process.stderr.write(`\n${"!".repeat(100)}\n!!! ${why}; SKIPPED\n${"!".repeat(100)}\n\n`);
  return false;
}

describe("a file system without O_DIRECT (ramfs)", () => {
  const mnt = `${disk.path}/ramfs`;
  const mounted = mountRamfs(mnt);
  afterAll(() => {
    if (mounted) Bun.spawnSync(["umount", mnt]);
  });
  const fsMessage = (file: string) => `${file}: ramfs does not accept direct I/O (O_DIRECT); run without --direct-io`;

  test.skipIf(!mounted)("it really refuses O_DIRECT, and is named", () => {
    const fd = libc.open(`${mnt}/probe`, libc.O_WRONLY | libc.O_CREAT, 0o600);
    try {
      expect(filesystemName(fd, mnt)).toBe("ramfs");
    } finally {
      libc.close(fd);
    }
    let err: unknown;
    try {
      libc.close(libc.open(`${mnt}/probe`, libc.O_WRONLY | libc.O_DIRECT));
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(libc.SysError);
    expect((err as libc.SysError).code).toBe("EINVAL");
  });

  test.skipIf(!mounted)("openDirect names the file system and the way out", () => {
    const file = `${mnt}/plain`;
    writeFileSync(file, new Uint8Array(2 * MiB));
    expect(() => openDirect(file, "write", MiB)).toThrow(new RefusedError(fsMessage(file)));
    expect(() => openDirect(file, "read", MiB)).toThrow(new RefusedError(fsMessage(file)));
  });

  test.skipIf(!mounted)("save --direct-io there: RefusedError (a fact of the file system, exit 1), and the file it created is removed", async () => {
    const file = `${mnt}/save.ram`;
    await refused(() => save({ path: file, blocks: [{ name: "ram0", path: img }], directIo: true }), fsMessage(file));
    expect(existsSync(file)).toBe(false);
    // without direct I/O the same save works
    await save({ path: file, blocks: [{ name: "ram0", path: img }], channels: 2 });
    expect(inspectFile(file).complete).toBe(true);
  });

  test.skipIf(!mounted)("restore --direct-io from there: RefusedError before any target is created or changed", async () => {
    const file = `${mnt}/restore.ram`;
    await save({ path: file, blocks: [{ name: "ram0", path: img }], channels: 1 });
    const fresh = `${shm.path}/ramfs-fresh.raw`;
    await refused(() => restore({ path: file, blocks: [{ name: "ram0", path: fresh }], directIo: true }), fsMessage(file));
    expect(existsSync(fresh)).toBe(false);
    const old = `${shm.path}/ramfs-old.raw`;
    await writeFilled(old, 3 * MiB, 0xaa);
    await refused(() => restore({ path: file, blocks: [{ name: "ram0", path: old }], directIo: true }), fsMessage(file));
    const after = await readBytes(old);
    expect(after.length).toBe(3 * MiB);
    expect(after.every((v) => v === 0xaa)).toBe(true);
    // without direct I/O it restores
    await restore({ path: file, blocks: [{ name: "ram0", path: fresh }], channels: 1 });
    expect(await sameFiles(img, fresh)).toBeNull();
  });

  test.skipIf(!mounted)("the CLI says it in one line with exit status 1 (no usage hint: the options were fine)", () => {
    const file = `${mnt}/cli.ram`;
    const r = Bun.spawnSync(["bun", `${import.meta.dir}/../src/cli/main.ts`, "save", "-o", file, "--block", `ram0=${img}`, "--direct-io"], { stdout: "pipe", stderr: "pipe" });
    expect(r.stderr.toString()).toBe(`ramsnap save: ${fsMessage(file)}\n`);
    expect(r.exitCode).toBe(1);
    expect(existsSync(file)).toBe(false);
  });
});

test.skipIf(!direct)("direct I/O on ext4 passes the probe (openDirect is not refusing everything)", () => {
  const file = onDisk("probe.ram");
  writeFileSync(file, new Uint8Array(2 * MiB));
  const fd = openDirect(file, "write", MiB);
  try {
    expect(libc.getFlags(fd) & libc.O_DIRECT).toBe(libc.O_DIRECT);
  } finally {
    libc.close(fd);
  }
});

describe("CLI argument parsing", () => {
  test("whole numbers: --channels, --fd", () => {
    expect(() => intOption("channels", "four", 4, 0, 64)).toThrow(new OptionError('--channels must be a whole number from 0 to 64, got "four"'));
    expect(() => intOption("channels", "1.5", 4, 0, 64)).toThrow(new OptionError('--channels must be a whole number from 0 to 64, got "1.5"'));
    expect(() => intOption("channels", "-1", 4, 0, 64)).toThrow(new OptionError('--channels must be a whole number from 0 to 64, got "-1"'));
    expect(() => intOption("channels", "65", 4, 0, 64)).toThrow(new OptionError("--channels must be a whole number from 0 to 64, got 65"));
    expect(intOption("channels", undefined, 4, 0, 64)).toBe(4);
    expect(intOption("channels", "0", 4, 0, 64)).toBe(0); // left for checkChannels to explain
    expect(() => fdOption("fd", "x")).toThrow(new OptionError('--fd must be a whole number from 0 to 1048576, got "x"'));
    expect(fdOption("fd", "3")).toBe(3);
    expect(fdOption("fd", undefined)).toBeUndefined();
  });

  test("sizes: --offset", () => {
    expect(() => sizeOption("offset", "-5")).toThrow(new OptionError("--offset -5 is not a size (examples: 4096, 0x1000, 4K, 1M, 1.5G)"));
    expect(() => sizeOption("offset", "NaN")).toThrow(new OptionError("--offset NaN is not a size (examples: 4096, 0x1000, 4K, 1M, 1.5G)"));
    expect(sizeOption("offset", "1M")).toBe(MiB);
    expect(sizeOption("offset", "0x1000")).toBe(4096);
  });

  test("repeated --block, and --block without a value", () => {
    expect(repeated(["--block", "a=1", "--block=b=2", "--channels", "2"], "block")).toEqual(["a=1", "b=2"]);
    expect(() => repeated(["--block"], "block")).toThrow(new OptionError("--block needs a value"));
    expect(() => repeated(["--block", "--direct-io"], "block")).toThrow(new OptionError("--block needs a value"));
  });
});
