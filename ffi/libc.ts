// The only module that calls libc. Every call's result is checked and every number validated before it
// crosses into C: bun:ffi turns NaN into 0 (an offset) or 0x8000000000000000 (a pointer) without a word,
// and returns BigInt for 64-bit results unless told otherwise (see the Bun platform notes).
import { dlopen, FFIType, ptr as bunPtr, read, toArrayBuffer, type Pointer } from "bun:ffi";
import { ArgumentError, ShortIoError, SysError } from "./errors.ts";

export { ArgumentError, LibcError, ShortIoError, SysError, errnoName } from "./errors.ts";

const i64f = FFIType.i64_fast;

const lib = dlopen("libc.so.6", {
  open: { args: ["cstring", "i32", "u32"], returns: "i32" },
  close: { args: ["i32"], returns: "i32" },
  pread: { args: ["i32", "ptr", "u64", "i64"], returns: i64f },
  pwrite: { args: ["i32", "ptr", "u64", "i64"], returns: i64f },
  preadv: { args: ["i32", "ptr", "i32", "i64"], returns: i64f },
  pwritev: { args: ["i32", "ptr", "i32", "i64"], returns: i64f },
  lseek: { args: ["i32", "i64", "i32"], returns: i64f },
  posix_memalign: { args: ["ptr", "u64", "u64"], returns: "i32" },
  free: { args: ["ptr"], returns: "void" },
  mmap: { args: ["ptr", "u64", "i32", "i32", "i32", "i64"], returns: "ptr" },
  munmap: { args: ["ptr", "u64"], returns: "i32" },
  madvise: { args: ["ptr", "u64", "i32"], returns: "i32" },
  msync: { args: ["ptr", "u64", "i32"], returns: "i32" },
  fcntl: { args: ["i32", "i32", "i32"], returns: "i32" },
  ftruncate: { args: ["i32", "i64"], returns: "i32" },
  fallocate: { args: ["i32", "i32", "i64", "i64"], returns: "i32" },
  fsync: { args: ["i32"], returns: "i32" },
  fdatasync: { args: ["i32"], returns: "i32" },
  statx: { args: ["i32", "cstring", "i32", "u32", "ptr"], returns: "i32" },
  fstatfs: { args: ["i32", "ptr"], returns: "i32" },
  memcmp: { args: ["ptr", "ptr", "u64"], returns: "i32" },
  memset: { args: ["ptr", "i32", "u64"], returns: "ptr" },
  memcpy: { args: ["ptr", "ptr", "u64"], returns: "ptr" },
  rename: { args: ["cstring", "cstring"], returns: "i32" },
  unlink: { args: ["cstring"], returns: "i32" },
  __errno_location: { args: [], returns: "ptr" },
  strerror: { args: ["i32"], returns: "cstring" },
});
const c = lib.symbols;

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_ACCMODE = 3;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_APPEND = 0o2000;
export const O_TRUNC = 0o1000;
export const O_DIRECT = 0o40000;
export const O_DIRECTORY = 0o200000;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 1;
export const MAP_PRIVATE = 2;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
export const MADV_SEQUENTIAL = 2;
export const MADV_WILLNEED = 3;
/** Fault pages in ahead of use (Linux 5.14+): one call instead of a fault per page. */
export const MADV_POPULATE_READ = 22;
export const MADV_POPULATE_WRITE = 23;
export const FALLOC_FL_KEEP_SIZE = 1;
export const FALLOC_FL_PUNCH_HOLE = 2;
/** Linux caps one preadv/pwritev at this many vectors (1025 gives EINVAL). */
export const IOV_MAX = 1024;
/** One JS view of native memory can be at most this long (a Bun/JSC limit, not a libc one). */
export const MAX_VIEW_BYTES = 2 ** 32;

const F_GETFL = 3;
const AT_FDCWD = -100;
const AT_EMPTY_PATH = 0x1000;
const STATX_BASIC = 0x7ff;
const STATX_DIOALIGN = 0x2000;

/** Fault hook for tests only: lets a test make the n-th call of a kind fail with a chosen errno. */
export type FaultHook = (call: string, path: string | undefined) => number | undefined;
let faultHook: FaultHook | undefined;
export function setFaultHook(hook: FaultHook | undefined): void {
  faultHook = hook;
}

const ERRNO_BY_NAME: Record<string, number> = { EIO: 5, ENOSPC: 28, EINVAL: 22, EFAULT: 14, ENOMEM: 12, EDQUOT: 122 };

/**
 * RAMSNAP_TEST_FAULTS="pwrite=EIO@3,pread=EIO@2" makes, in every thread, the 3rd pwrite and the 2nd pread
 * fail with that errno: the way tests inject disk faults into the channels (each Worker loads this module
 * and counts its own calls). Never set outside tests.
 */
export function faultsFromEnv(spec: string | undefined): FaultHook | undefined {
  if (!spec) return undefined;
  const rules = spec.split(",").flatMap((r) => {
    const m = /^(\w+)=(E[A-Z]+)@(\d+)$/.exec(r.trim());
    return m && ERRNO_BY_NAME[m[2]!] ? [{ call: m[1]!, errno: ERRNO_BY_NAME[m[2]!]!, at: Number(m[3]) }] : [];
  });
  const counts = new Map<string, number>();
  return (call) => {
    const rule = rules.find((r) => r.call === call);
    if (!rule) return undefined;
    const n = (counts.get(call) ?? 0) + 1;
    counts.set(call, n);
    return n === rule.at ? rule.errno : undefined;
  };
}
faultHook = faultsFromEnv(process.env.RAMSNAP_TEST_FAULTS);

function errno(): number {
  const loc = c.__errno_location();
  return loc ? read.i32(loc, 0) : 0;
}

function fail(call: string, path: string | undefined, e = errno()): never {
  throw new SysError(call, e, path, String(c.strerror(e) ?? "unknown error"));
}

function injected(call: string, path: string | undefined): void {
  const e = faultHook?.(call, path);
  if (e !== undefined) fail(call, path, e);
}

// ---- argument checks -------------------------------------------------------------------------

function count(call: string, what: string, v: number, max = Number.MAX_SAFE_INTEGER): number {
  if (!Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new ArgumentError(call, `${what} must be a whole number from 0 to ${max}, got ${String(v)}`);
  }
  return v;
}

function fdArg(call: string, fd: number): number {
  if (!Number.isSafeInteger(fd) || fd < 0 || fd > 0x7fffffff) throw new ArgumentError(call, `bad descriptor ${String(fd)}`);
  return fd;
}

function pointer(call: string, p: number): number {
  if (!Number.isSafeInteger(p) || p <= 0) throw new ArgumentError(call, `bad pointer ${String(p)}`);
  return p;
}

function aligned(call: string, what: string, v: number, align: number | undefined): void {
  if (align && v % align !== 0) {
    throw new ArgumentError(call, `${what} ${v} is not a multiple of ${align}, as direct I/O requires`);
  }
}

/** Address of a JS view's bytes; refuses empty views (bun's ptr() returns an Error object for them). */
export function addressOf(view: Uint8Array | BigUint64Array | DataView): number {
  if (view.byteLength === 0) throw new ArgumentError("addressOf", "empty view has no address");
  const p = bunPtr(view) as unknown;
  if (typeof p !== "number") throw new ArgumentError("addressOf", "view has no native address");
  return p;
}

/** A zero-copy view of native memory (at most 4 GiB per view). */
export function viewOf(p: number, length: number): Uint8Array {
  pointer("viewOf", p);
  count("viewOf", "length", length, MAX_VIEW_BYTES);
  if (length === 0) return new Uint8Array(0);
  return new Uint8Array(toArrayBuffer(p as never, 0, length));
}

// ---- descriptors -----------------------------------------------------------------------------

export function open(path: string, flags: number, mode = 0o644): number {
  if (typeof path !== "string" || path.length === 0 || path.includes("\0")) throw new ArgumentError("open", `bad path`);
  count("open", "flags", flags, 0x7fffffff);
  count("open", "mode", mode, 0o7777);
  injected("open", path);
  const fd = c.open(path, flags | O_CLOEXEC, mode);
  if (fd < 0) fail("open", path);
  return fd;
}

function pathArg(call: string, path: string): string {
  if (typeof path !== "string" || path.length === 0 || path.includes("\0")) throw new ArgumentError(call, "bad path");
  return path;
}

export function rename(from: string, to: string): void {
  if (c.rename(pathArg("rename", from), pathArg("rename", to)) !== 0) fail("rename", `${from} -> ${to}`);
}

export function unlink(path: string): void {
  if (c.unlink(pathArg("unlink", path)) !== 0) fail("unlink", path);
}

/** Makes a directory entry change (a rename) durable. */
export function fsyncDir(dir: string): void {
  const fd = open(dir, O_RDONLY | O_DIRECTORY);
  try {
    fsync(fd, dir);
  } finally {
    close(fd, dir);
  }
}

export function close(fd: number, path?: string): void {
  if (c.close(fdArg("close", fd)) !== 0) fail("close", path);
}

/** The descriptor's status flags (access mode, O_DIRECT, ...). */
export function getFlags(fd: number, path?: string): number {
  const r = c.fcntl(fdArg("fcntl", fd), F_GETFL, 0);
  if (r < 0) fail("fcntl(F_GETFL)", path);
  return r;
}

export function ftruncate(fd: number, length: number, path?: string): void {
  count("ftruncate", "length", length);
  injected("ftruncate", path);
  if (c.ftruncate(fdArg("ftruncate", fd), length) !== 0) fail("ftruncate", path);
}

export function fallocate(fd: number, mode: number, offset: number, length: number, path?: string): void {
  count("fallocate", "mode", mode, 0xff);
  count("fallocate", "offset", offset);
  count("fallocate", "length", length);
  injected("fallocate", path);
  if (c.fallocate(fdArg("fallocate", fd), mode, offset, length) !== 0) fail("fallocate", path);
}

export function fsync(fd: number, path?: string): void {
  injected("fsync", path);
  if (c.fsync(fdArg("fsync", fd)) !== 0) fail("fsync", path);
}

export function fdatasync(fd: number, path?: string): void {
  injected("fdatasync", path);
  if (c.fdatasync(fdArg("fdatasync", fd)) !== 0) fail("fdatasync", path);
}

// ---- positional I/O ----------------------------------------------------------------------------

export interface IoOptions {
  /** Names the file in errors. */
  path?: string;
  /** With O_DIRECT: pointer, length and offset must be multiples of this. */
  align?: number;
}

function checkIo(call: string, fd: number, p: number, len: number, offset: number, o: IoOptions): void {
  fdArg(call, fd);
  pointer(call, p);
  count(call, "length", len);
  count(call, "offset", offset);
  aligned(call, "buffer address", p, o.align);
  aligned(call, "length", len, o.align);
  aligned(call, "offset", offset, o.align);
}

function result(call: string, r: number | bigint, path: string | undefined): number {
  const n = Number(r);
  if (n < 0) fail(call, path);
  return n;
}

/** One pread; may return fewer bytes than asked (0 at end of file). */
export function pread(fd: number, p: number, len: number, offset: number, o: IoOptions = {}): number {
  checkIo("pread", fd, p, len, offset, o);
  injected("pread", o.path);
  return result("pread", c.pread(fd, p, len, offset), o.path);
}

/** One pwrite; may return fewer bytes than asked. */
export function pwrite(fd: number, p: number, len: number, offset: number, o: IoOptions = {}): number {
  checkIo("pwrite", fd, p, len, offset, o);
  injected("pwrite", o.path);
  return result("pwrite", c.pwrite(fd, p, len, offset), o.path);
}

/** Reads exactly len bytes or throws ShortIoError (end of file) / SysError. */
export function preadFull(fd: number, p: number, len: number, offset: number, o: IoOptions = {}): void {
  checkIo("pread", fd, p, len, offset, o); // a NaN or negative len would otherwise skip the loop and "succeed"
  let done = 0;
  while (done < len) {
    const n = pread(fd, p + done, len - done, offset + done, o);
    // Under O_DIRECT only the end of the file stops a read off the alignment: resuming there would fail.
    if (n === 0 || (o.align && n < len - done && n % o.align !== 0)) throw new ShortIoError("pread", o.path, offset, len, done + n);
    done += n;
  }
}

/** Writes exactly len bytes; a write that makes no progress is reported as ENOSPC's cousin, a ShortIoError. */
export function pwriteFull(fd: number, p: number, len: number, offset: number, o: IoOptions = {}): void {
  checkIo("pwrite", fd, p, len, offset, o); // a NaN or negative len would otherwise skip the loop and "succeed"
  let done = 0;
  while (done < len) {
    const n = pwrite(fd, p + done, len - done, offset + done, o);
    if (n === 0) throw new ShortIoError("pwrite", o.path, offset, len, done);
    done += n;
  }
}

/** An iovec list: pairs of (pointer, length). */
export type IoVec = ReadonlyArray<readonly [ptr: number, len: number]>;

function vectorIo(call: "preadv" | "pwritev", fd: number, iov: IoVec, offset: number, o: IoOptions): number {
  fdArg(call, fd);
  count(call, "offset", offset);
  aligned(call, "offset", offset, o.align);
  if (iov.length === 0 || iov.length > IOV_MAX) throw new ArgumentError(call, `needs 1 to ${IOV_MAX} vectors, got ${iov.length}`);
  const vec = new BigUint64Array(iov.length * 2);
  let total = 0;
  iov.forEach(([p, len], i) => {
    pointer(call, p);
    count(call, "length", len);
    aligned(call, "buffer address", p, o.align);
    aligned(call, "length", len, o.align);
    vec[2 * i] = BigInt(p);
    vec[2 * i + 1] = BigInt(len);
    total += len;
  });
  count(call, "total length", total);
  injected(call, o.path);
  const r = call === "preadv" ? c.preadv(fd, vec, iov.length, offset) : c.pwritev(fd, vec, iov.length, offset);
  return result(call, r, o.path);
}

export function preadv(fd: number, iov: IoVec, offset: number, o: IoOptions = {}): number {
  return vectorIo("preadv", fd, iov, offset, o);
}

export function pwritev(fd: number, iov: IoVec, offset: number, o: IoOptions = {}): number {
  return vectorIo("pwritev", fd, iov, offset, o);
}

/**
 * Fills every vector from consecutive file bytes at `offset`, any number of vectors (IOV_MAX at a time);
 * a short read resumes inside the vector it stopped in, and end of file is a ShortIoError.
 */
export function preadvFull(fd: number, iov: IoVec, offset: number, o: IoOptions = {}): void {
  let expected = 0;
  for (const [, len] of iov) expected += count("preadv", "length", len);
  let rest: [number, number][] = iov.map(([p, len]) => [p, len]);
  let at = offset;
  while (rest.length > 0) {
    const n = vectorIo("preadv", fd, rest.slice(0, IOV_MAX), at, o);
    if (n === 0 || (o.align && n % o.align !== 0 && at + n - offset < expected)) throw new ShortIoError("preadv", o.path, offset, expected, at + n - offset);
    at += n;
    let left = n;
    let k = 0;
    while (k < rest.length && left >= rest[k]![1]) left -= rest[k++]![1];
    rest = rest.slice(k);
    if (left > 0) rest[0] = [rest[0]![0] + left, rest[0]![1] - left];
  }
}

const SEEK_DATA = 3;
const SEEK_HOLE = 4;
const ENXIO = 6;

function seek(call: "lseek(SEEK_DATA)" | "lseek(SEEK_HOLE)", whence: number, fd: number, offset: number, path: string | undefined): number | null {
  fdArg(call, fd);
  count(call, "offset", offset);
  const fault = faultHook?.("lseek", path); // tests: RAMSNAP_TEST_FAULTS="lseek=EIO@1"
  if (fault !== undefined) fail(call, path, fault);
  const n = Number(c.lseek(fd, offset, whence));
  if (n >= 0) return n;
  if (errno() === ENXIO) return null;
  fail(call, path);
}

/**
 * Where the file's next data starts at or after `offset`, or null when only a hole follows up to the end
 * of the file (or `offset` is past it). File systems that do not track holes report the whole file as
 * data. Moves the descriptor's file position, which positional I/O never uses.
 */
export function seekData(fd: number, offset: number, path?: string): number | null {
  return seek("lseek(SEEK_DATA)", SEEK_DATA, fd, offset, path);
}

/** Where the next hole starts at or after `offset` (the end of the file counts as one); null past the end. */
export function seekHole(fd: number, offset: number, path?: string): number | null {
  return seek("lseek(SEEK_HOLE)", SEEK_HOLE, fd, offset, path);
}

// ---- memory ------------------------------------------------------------------------------------

/** Aligned native memory; the caller owns it and must free() it exactly once. */
export function posixMemalign(alignment: number, size: number): number {
  count("posix_memalign", "alignment", alignment);
  count("posix_memalign", "size", size);
  if (alignment < 8 || (alignment & (alignment - 1)) !== 0) {
    throw new ArgumentError("posix_memalign", `alignment ${alignment} is not a power of two of at least 8`);
  }
  if (size === 0) throw new ArgumentError("posix_memalign", "size must be positive");
  const out = new BigUint64Array(1);
  const r = c.posix_memalign(out, alignment, size);
  if (r !== 0) fail("posix_memalign", undefined, r); // returns the error number instead of setting errno
  return Number(out[0]);
}

export function free(p: number): void {
  c.free(pointer("free", p) as Pointer);
}

/** posix_memalign'd memory with a view, freed by free(); freeing twice is a no-op. */
export class AlignedBuffer {
  readonly ptr: number;
  readonly view: Uint8Array;
  #freed = false;
  constructor(
    readonly size: number,
    alignment = 4096,
  ) {
    count("AlignedBuffer", "size", size, MAX_VIEW_BYTES);
    this.ptr = posixMemalign(alignment, size);
    this.view = viewOf(this.ptr, size);
  }
  free(): void {
    if (this.#freed) return;
    this.#freed = true;
    free(this.ptr);
  }
}

export function mmap(length: number, prot: number, flags: number, fd: number, offset: number, path?: string): number {
  count("mmap", "length", length);
  if (length === 0) throw new ArgumentError("mmap", "length must be positive");
  count("mmap", "offset", offset);
  aligned("mmap", "offset", offset, 4096);
  if (!Number.isSafeInteger(fd) || fd < -1) throw new ArgumentError("mmap", `bad descriptor ${fd}`);
  injected("mmap", path);
  const p = c.mmap(null, length, prot, flags, fd, offset) as unknown;
  // MAP_FAILED does not fit a JS number, so it comes back as a BigInt.
  if (typeof p !== "number" || p === 0) fail("mmap", path);
  return p;
}

export function munmap(p: number, length: number): void {
  pointer("munmap", p);
  count("munmap", "length", length);
  if (c.munmap(p, length) !== 0) fail("munmap", undefined);
}

export const MS_SYNC = 4;

/** Writes a shared mapping's dirty pages to its file and waits: a write-back error surfaces here. */
export function msync(p: number, length: number, flags: number, path?: string): void {
  pointer("msync", p);
  count("msync", "length", length);
  injected("msync", path);
  if (c.msync(p, length, flags) !== 0) fail("msync", path);
}

export function madvise(p: number, length: number, advice: number): void {
  pointer("madvise", p);
  count("madvise", "length", length);
  if (c.madvise(p, length, advice) !== 0) fail("madvise", undefined);
}

export function memcmp(a: number, b: number, n: number): number {
  return c.memcmp(pointer("memcmp", a), pointer("memcmp", b), count("memcmp", "length", n));
}

export function memcpy(dst: number, src: number, n: number): void {
  c.memcpy(pointer("memcpy", dst), pointer("memcpy", src), count("memcpy", "length", n));
}

export function memset(p: number, value: number, n: number): void {
  count("memset", "value", value, 255);
  c.memset(pointer("memset", p), value, count("memset", "length", n));
}

// ---- file system facts -------------------------------------------------------------------------

export interface StatxInfo {
  size: number;
  /** Bytes actually allocated (512-byte blocks × 512). */
  allocated: number;
  mode: number;
  blockSize: number;
  /** Direct-I/O alignment the kernel reports; 0 when the file system says nothing (e.g. tmpfs). */
  dioMemAlign: number;
  dioOffsetAlign: number;
  /** Inode number and the device holding it: together they name the file, whatever path reaches it. */
  ino: number;
  devMajor: number;
  devMinor: number;
}

function decodeStatx(buf: Uint8Array): StatxInfo {
  const dv = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const mask = dv.getUint32(0, true);
  const dio = (mask & STATX_DIOALIGN) !== 0;
  return {
    size: Number(dv.getBigUint64(40, true)),
    allocated: Number(dv.getBigUint64(48, true)) * 512,
    mode: dv.getUint16(28, true),
    blockSize: dv.getUint32(4, true),
    dioMemAlign: dio ? dv.getUint32(152, true) : 0,
    dioOffsetAlign: dio ? dv.getUint32(156, true) : 0,
    ino: Number(dv.getBigUint64(32, true)),
    devMajor: dv.getUint32(136, true),
    devMinor: dv.getUint32(140, true),
  };
}

export function statx(path: string): StatxInfo {
  const buf = new Uint8Array(256);
  if (c.statx(AT_FDCWD, path, 0, STATX_BASIC | STATX_DIOALIGN, buf) !== 0) fail("statx", path);
  return decodeStatx(buf);
}

export function fstatx(fd: number, path?: string): StatxInfo {
  const buf = new Uint8Array(256);
  if (c.statx(fdArg("statx", fd), "", AT_EMPTY_PATH, STATX_BASIC | STATX_DIOALIGN, buf) !== 0) fail("statx", path);
  return decodeStatx(buf);
}

export interface StatfsInfo {
  /** The file system's magic number (f_type), e.g. 0xef53 for ext4, 0x01021994 for tmpfs. */
  type: number;
  blockSize: number;
  freeBytes: number;
  totalBytes: number;
}

export function fstatfs(fd: number, path?: string): StatfsInfo {
  const buf = new Uint8Array(120);
  if (c.fstatfs(fdArg("fstatfs", fd), buf) !== 0) fail("fstatfs", path);
  const dv = new DataView(buf.buffer);
  const bsize = Number(dv.getBigInt64(8, true));
  return {
    type: Number(dv.getBigInt64(0, true)),
    blockSize: bsize,
    totalBytes: Number(dv.getBigUint64(16, true)) * bsize,
    freeBytes: Number(dv.getBigUint64(32, true)) * bsize,
  };
}
