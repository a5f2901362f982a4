// Every rule about options and descriptors, checked before any I/O (the counterpart of QEMU's options.c).
import * as libc from "../ffi/libc.ts";
import { OptionError } from "./errors.ts";
import type { BlockSpec } from "./format/layout.ts";

export const MAX_CHANNELS = 64;
export const DEFAULT_CHANNELS = 4;
/** Pages per channel job: 8 MiB, a multiple of 64 pages so each job owns whole bitmap words. */
export const CHUNK_PAGES = 2048;
/** Absent pages bridged by one I/O call (see channels/plan.ts): 128 KiB costs less than another call. */
export const DEFAULT_MAX_GAP = 32;

export function checkChannels(channels: number, directIo: boolean): void {
  if (!Number.isInteger(channels) || channels < 0 || channels > MAX_CHANNELS) {
    throw new OptionError(`--channels must be a whole number from 1 to ${MAX_CHANNELS}, got ${channels}`);
  }
  if (channels === 0) {
    throw new OptionError(
      directIo
        ? "--direct-io needs at least one channel: the main descriptor never uses O_DIRECT (its records are small and unaligned)"
        : "--channels must be at least 1",
    );
  }
}

export function checkBlocks(blocks: readonly BlockSpec[], pageSize: number): void {
  if (blocks.length === 0) throw new OptionError("no RAM blocks given (use --block NAME=PATH)");
  const seen = new Set<string>();
  for (const b of blocks) {
    const bytes = new TextEncoder().encode(b.name).length;
    if (bytes === 0 || bytes > 255) throw new OptionError(`block name "${b.name}" must be 1 to 255 bytes`);
    if (seen.has(b.name)) throw new OptionError(`block ${b.name} is given twice`);
    seen.add(b.name);
    if (b.length === 0) throw new OptionError(`block ${b.name} is empty`);
    if (b.length % pageSize !== 0) {
      throw new OptionError(`block ${b.name} is ${b.length} bytes, not a whole number of ${pageSize}-byte pages`);
    }
  }
}

export function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new OptionError(`--offset must be a whole number of bytes, got ${offset}`);
}

/** Parses NAME=PATH as given to --block. */
export function parseBlockArg(arg: string): { name: string; path: string } {
  const i = arg.indexOf("=");
  if (i <= 0 || i === arg.length - 1) throw new OptionError(`--block ${arg}: expected NAME=PATH, e.g. --block ram0=/dev/shm/guest-ram`);
  return { name: arg.slice(0, i), path: arg.slice(i + 1) };
}

const FS_NAMES: Record<number, string> = {
  0xef53: "ext4",
  0x01021994: "tmpfs",
  0x58465342: "xfs",
  0x9123683e: "btrfs",
  0x6969: "nfs",
  0x65735546: "fuse",
  0x794c7630: "overlayfs",
  0x958458f6: "hugetlbfs",
  0x858458f6: "ramfs",
  0x2fc12fc1: "zfs",
  0x5346544e: "ntfs",
  0x4d44: "vfat",
  0x73717368: "squashfs",
  0x9fa0: "proc",
};

const nameOf = (type: number): string => FS_NAMES[type] ?? `file system type 0x${type.toString(16)}`;

export function filesystemName(fd: number, path: string): string {
  return nameOf(libc.fstatfs(fd, path).type);
}

/** The file system holding directory `dir`: its name and space, from one statfs. */
export function dirSpace(dir: string): { fs: string; freeBytes: number; totalBytes: number } {
  const fd = libc.open(dir, libc.O_RDONLY | libc.O_DIRECTORY);
  try {
    const st = libc.fstatfs(fd, dir);
    return { fs: nameOf(st.type), freeBytes: st.freeBytes, totalBytes: st.totalBytes };
  } finally {
    libc.close(fd, dir);
  }
}

export type Access = "write" | "read";

/**
 * Descriptors handed over by a management program (--fd, --direct-fd). Like QEMU's fdset rule, the
 * main one must not have O_DIRECT (its writes are unaligned) and the direct one must; they must be
 * distinct files objects, not dup()s, since a dup shares the O_DIRECT flag.
 */
export function checkDescriptors(mainFd: number, directFd: number | undefined, access: Access): void {
  const mode = (fd: number, opt: string) => {
    let flags: number;
    try {
      flags = libc.getFlags(fd);
    } catch (e) {
      throw new OptionError(`${opt} ${fd} is not an open descriptor (${(e as libc.SysError).code})`);
    }
    const acc = flags & libc.O_ACCMODE;
    const ok = access === "write" ? acc === libc.O_WRONLY || acc === libc.O_RDWR : acc === libc.O_RDONLY || acc === libc.O_RDWR;
    if (!ok) throw new OptionError(`${opt} ${fd} is not open for ${access === "write" ? "writing" : "reading"}`);
    return flags;
  };
  if ((mode(mainFd, "--fd") & libc.O_DIRECT) !== 0) {
    throw new OptionError(`--fd ${mainFd} has O_DIRECT; the main stream needs a descriptor without it (pass the O_DIRECT one as --direct-fd)`);
  }
  if (directFd === undefined) return;
  if (directFd === mainFd) throw new OptionError("--fd and --direct-fd must be two different descriptors");
  if ((mode(directFd, "--direct-fd") & libc.O_DIRECT) === 0) {
    throw new OptionError(`--direct-fd ${directFd} was opened without O_DIRECT`);
  }
}

/**
 * Opens the path for direct I/O and proves it works with one aligned transfer at `probeOffset`, which
 * must be a page slot whose content does not matter yet (a block's first page). A file system that
 * refuses O_DIRECT gets a message naming it and the way out.
 */
export function openDirect(path: string, access: Access, probeOffset: number, name = path): number {
  let fd: number;
  try {
    fd = libc.open(path, (access === "write" ? libc.O_WRONLY : libc.O_RDONLY) | libc.O_DIRECT);
  } catch (e) {
    if (e instanceof libc.SysError && e.code === "EINVAL") throw directUnsupported(name, path, undefined);
    throw e;
  }
  try {
    probeDirect(fd, name, access, probeOffset, path);
    return fd;
  } catch (e) {
    libc.close(fd, path);
    throw e;
  }
}

/** `name` is what messages call the file; `path` where it is now (a save's temporary file). */
export function probeDirect(fd: number, name: string, access: Access, probeOffset: number, path = name): void {
  const buf = new libc.AlignedBuffer(4096);
  try {
    if (access === "write") {
      buf.view.fill(0);
      libc.pwriteFull(fd, buf.ptr, 4096, probeOffset, { path: name, align: 4096 });
    } else {
      libc.pread(fd, buf.ptr, 4096, probeOffset, { path: name, align: 4096 });
    }
  } catch (e) {
    if (e instanceof libc.SysError && e.code === "EINVAL") throw directUnsupported(name, path, fd);
    throw e;
  } finally {
    buf.free();
  }
}

function directUnsupported(name: string, path: string, fd: number | undefined): OptionError {
  let fs = "its file system";
  try {
    const probe = fd ?? libc.open(path, libc.O_RDONLY);
    fs = filesystemName(probe, path);
    if (fd === undefined) libc.close(probe, path);
  } catch {}
  return new OptionError(`${name}: ${fs} does not accept direct I/O (O_DIRECT); run without --direct-io`);
}

interface TransferChoice {
  path?: string;
  fd?: number;
  directFd?: number;
  directIo?: boolean;
  channels?: number;
  offset?: number;
}

/**
 * The rules save and restore share: where the file is (a path, or descriptors handed over), how many
 * channels, direct I/O or not, the stream offset. Returns the settled values.
 */
export function checkTransfer(o: TransferChoice, access: Access): { channels: number; directIo: boolean; offset: number } {
  const channels = o.channels ?? DEFAULT_CHANNELS;
  const directIo = o.directIo ?? o.directFd !== undefined;
  const offset = o.offset ?? 0;
  const what = access === "write" ? "an output" : "an input";
  checkChannels(channels, directIo);
  checkOffset(offset);
  if ((o.path === undefined) === (o.fd === undefined)) throw new OptionError(`give either ${what} path or --fd`);
  if (o.directFd !== undefined && o.fd === undefined) {
    throw new OptionError(`--direct-fd goes with --fd (two descriptors on one file); with ${what} path, use --direct-io`);
  }
  if (o.fd !== undefined) {
    if (directIo && o.directFd === undefined) throw new OptionError("--direct-io with --fd needs --direct-fd: a second descriptor, opened with O_DIRECT");
    checkDescriptors(o.fd, o.directFd, access);
  }
  if (o.directFd !== undefined && o.directIo === false) throw new OptionError("--direct-fd was given, but direct I/O is off");
  return { channels, directIo, offset };
}
