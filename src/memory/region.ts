// Sources and targets of RAM: a span of memory with an address the channels can use directly.
// Files (raw images, /dev/shm guest RAM, hugetlbfs) are mapped shared, so pages move between the
// mapping and the save file without a copy; in-process buffers are used where they are.
import * as libc from "../../ffi/libc.ts";
import { OptionError, RefusedError } from "../errors.ts";
import { refuseIfMappedPrivately } from "../io/mapped-by.ts";

export interface MemoryRegion {
  readonly name: string;
  readonly ptr: number;
  readonly length: number;
  /** The address is page-aligned, so direct I/O can use it without a bounce buffer. */
  readonly aligned: boolean;
  /** The region may hold old data (restore must zero absent pages). */
  readonly mayHoldData: boolean;
  /**
   * Set for a fresh file whose blocks were not reserved up front (see mapFileForWrite "as-written"): a
   * writer reserves each range with fallocate on this descriptor (file offset = offset in the region)
   * before touching it through the mapping, so a full file system is ENOSPC and not SIGBUS.
   */
  readonly reserveFd?: number;
  /** Makes written data durable (a file target's pages reach the disk); errors surface here. */
  sync(): void;
  release(): void;
}

const PAGE = 4096;

function regularOrDevice(path: string, mode: number): void {
  const type = mode & 0o170000;
  if (type !== 0o100000 && type !== 0o060000) throw new OptionError(`${path} is not a regular file or block device`);
}

/** Maps a file read-only, for saving. Its size is the region's length. */
export function mapFileForRead(path: string): MemoryRegion {
  const fd = libc.open(path, libc.O_RDONLY);
  try {
    const st = libc.fstatx(fd, path);
    regularOrDevice(path, st.mode);
    if (st.size === 0) throw new OptionError(`${path} is empty`);
    const ptr = libc.mmap(st.size, libc.PROT_READ, libc.MAP_SHARED, fd, 0, path);
    return { name: path, ptr, length: st.size, aligned: true, mayHoldData: true, sync: () => {}, release: once(() => libc.munmap(ptr, st.size)) };
  } finally {
    libc.close(fd, path);
  }
}

/**
 * A file to read pages from by pread (see channels/messages.ts PageSource for why not a mapping).
 * The descriptor is shared with the channels.
 */
export function openFileSource(path: string): { fd: number; length: number; release: () => void } {
  const fd = libc.open(path, libc.O_RDONLY);
  try {
    const st = libc.fstatx(fd, path);
    regularOrDevice(path, st.mode);
    if (st.size === 0) throw new OptionError(`${path} is empty`);
    return { fd, length: st.size, release: once(() => libc.close(fd, path)) };
  } catch (e) {
    libc.close(fd, path);
    throw e;
  }
}

/**
 * Maps a file for writing, creating it or setting its size to `length` first. A file that is new or
 * was empty reads as zeros, so absent pages need no writing.
 *
 * `reserve` says how the file's blocks are allocated: a page of a shared mapping that the file system
 * cannot back (a full disk) kills the process with SIGBUS when touched, where fallocate fails with a
 * plain ENOSPC before anything is written.
 * - "all": the whole file, up front.
 * - "as-written": a fresh file (new or empty) is left unreserved and the region carries `reserveFd`, on
 *   which its writer reserves each range before touching it (restore's channels, chunk by chunk, in
 *   parallel and only where the save file has pages: handing out fresh memory is the floor of a restore,
 *   2 GiB of /dev/shm take ~0.5 s, so reserving it all up front on one thread delays every channel); a
 *   file that held data is reserved whole, as with "all", since every page of it will be written.
 * - "none" (extract's sparse files): the caller checks the free space itself.
 */
export function mapFileForWrite(path: string, length: number, reserve: "all" | "as-written" | "none" = "all"): MemoryRegion {
  const fd = libc.open(path, libc.O_RDWR | libc.O_CREAT, 0o600);
  try {
    refuseIfMappedPrivately(fd, path);
    const st = libc.fstatx(fd, path);
    regularOrDevice(path, st.mode);
    const isFile = (st.mode & 0o170000) === 0o100000;
    if (isFile && st.size !== length) libc.ftruncate(fd, length, path);
    if (!isFile && st.size < length) throw new OptionError(`${path} holds ${st.size} bytes, but the block needs ${length}`);
    const fresh = isFile && st.size === 0;
    const byWriter = reserve === "as-written" && fresh;
    if (isFile && reserve !== "none" && !byWriter) {
      try {
        libc.fallocate(fd, 0, 0, length, path);
      } catch (e) {
        // A file system without fallocate still works; only a full one must stop us here.
        if (!(e instanceof libc.SysError && e.code === "EOPNOTSUPP")) throw e;
      }
    }
    const ptr = libc.mmap(length, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 0, path);
    if (!byWriter) libc.close(fd, path);
    return {
      name: path,
      ptr,
      length,
      aligned: true,
      mayHoldData: st.size > 0,
      ...(byWriter ? { reserveFd: fd } : {}),
      sync: () => libc.msync(ptr, length, libc.MS_SYNC, path),
      release: once(() => {
        libc.munmap(ptr, length);
        if (byWriter) libc.close(fd, path);
      }),
    };
  } catch (e) {
    libc.close(fd, path);
    throw e;
  }
}

/**
 * Maps `length` bytes of an existing file from `offset` for writing, without creating or resizing it (a
 * live QEMU's memory backend: QEMU maps it too, and a shrink would kill QEMU with SIGBUS). A file whose
 * blocks are all unallocated (a fresh backend) reads as zeros, so absent pages need no writing.
 */
export function mapFilePart(path: string, offset: number, length: number): MemoryRegion {
  const fd = libc.open(path, libc.O_RDWR);
  try {
    refuseIfMappedPrivately(fd, path);
    const st = libc.fstatx(fd, path);
    regularOrDevice(path, st.mode);
    if (st.size < offset + length) throw new RefusedError(`${path} holds ${st.size} bytes, but the block needs ${length} from offset ${offset}`);
    const ptr = libc.mmap(length, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, offset, path);
    return {
      name: path,
      ptr,
      length,
      aligned: true,
      mayHoldData: st.allocated > 0,
      sync: () => libc.msync(ptr, length, libc.MS_SYNC, path),
      release: once(() => libc.munmap(ptr, length)),
    };
  } finally {
    libc.close(fd, path);
  }
}

/** Uses an in-process buffer in place. The caller keeps it alive until the operation ends. */
export function bufferRegion(name: string, buf: Uint8Array): MemoryRegion {
  const ptr = libc.addressOf(buf);
  return { name, ptr, length: buf.length, aligned: ptr % PAGE === 0, mayHoldData: true, sync: () => {}, release: () => {} };
}

function once(fn: () => void): () => void {
  let done = false;
  return () => {
    if (done) return;
    done = true;
    fn();
  };
}
