// The libc layer against a real ext4 file system under /tmp (tmpfs accepts any O_DIRECT alignment, so
// it could not catch alignment bugs). Arguments that bun:ffi would silently mangle (NaN becomes offset
// 0) must be refused before any call; failures must name the call, the errno and the path.
import { afterAll, afterEach, beforeAll, describe, expect, test } from "bun:test";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { ArgumentError, ShortIoError, SysError } from "../ffi/libc.ts";

let dir = "";
const path = (name: string) => join(dir, name);
const EXT4 = 0xef53;

/** Records every libc call that got past argument checking (the fault hook runs right before the call). */
let calls: string[] = [];

beforeAll(() => {
  dir = mkdtempSync("/tmp/ramsnap-libc-");
});
afterAll(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});
afterEach(() => {
  libc.setFaultHook(undefined);
  calls = [];
});

function recordCalls(): void {
  calls = [];
  libc.setFaultHook((call) => {
    calls.push(call);
    return undefined;
  });
}

function catchError(fn: () => unknown): unknown {
  try {
    fn();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error, got none");
}

/** A 16 KiB file of 'A', opened read-write; the callback gets fd and a 16 KiB aligned buffer of 'B'. */
function withFile<T>(name: string, fn: (fd: number, buf: libc.AlignedBuffer, file: string) => T, flags = 0): T {
  const file = path(name);
  writeFileSync(file, Buffer.alloc(16384, "A"));
  const fd = libc.open(file, libc.O_RDWR | flags);
  const buf = new libc.AlignedBuffer(16384);
  buf.view.fill(0x42);
  try {
    return fn(fd, buf, file);
  } finally {
    buf.free();
    libc.close(fd, file);
  }
}

test("/tmp is ext4 (the O_DIRECT tests below depend on it)", () => {
  const fd = libc.open("/tmp", libc.O_RDONLY);
  try {
    expect(libc.fstatfs(fd, "/tmp").type).toBe(EXT4);
  } finally {
    libc.close(fd);
  }
});

describe("arguments are refused before any call", () => {
  test.each([
    ["NaN offset", 4096, Number.NaN],
    ["negative offset", 4096, -4096],
    ["fractional offset", 4096, 4096.5],
    ["offset past 2^53", 4096, 2 ** 53],
    ["NaN length", Number.NaN, 0],
    ["negative length", -1, 0],
    ["fractional length", 100.25, 0],
  ])("pwrite with a %s", (_what, len, offset) => {
    withFile("args.bin", (fd, buf, file) => {
      recordCalls();
      const e = catchError(() => libc.pwrite(fd, buf.ptr, len, offset, { path: file }));
      expect(e).toBeInstanceOf(ArgumentError);
      expect((e as ArgumentError).call).toBe("pwrite");
      expect((e as Error).message).toMatch(/^pwrite: (offset|length) must be a whole number from 0 to \d+, got /);
      expect(calls).toEqual([]);
      // NaN would have become offset 0 in bun:ffi: the file must be untouched
      expect(readFileSync(file).every((b) => b === 0x41)).toBe(true);
    });
  });

  test.each([
    ["pread", (fd: number, p: number) => libc.pread(fd, p, 4096, Number.NaN)],
    ["preadFull (negative length)", (fd: number, p: number) => libc.preadFull(fd, p, -1, 0)],
    ["preadFull (NaN length)", (fd: number, p: number) => libc.preadFull(fd, p, Number.NaN, 0)],
    ["pwriteFull (NaN length)", (fd: number, p: number) => libc.pwriteFull(fd, p, Number.NaN, 0)],
    ["pwriteFull", (fd: number, p: number) => libc.pwriteFull(fd, p, 4096, 0.5)],
    ["preadv", (fd: number, p: number) => libc.preadv(fd, [[p, Number.NaN]], 0)],
    ["pwritev", (fd: number, p: number) => libc.pwritev(fd, [[p, 4096]], -8)],
    ["ftruncate", (fd: number) => libc.ftruncate(fd, Number.NaN)],
    ["fallocate", (fd: number) => libc.fallocate(fd, 0, 1.5, 4096)],
  ])("%s refuses a bad number", (_name, call) => {
    withFile("args2.bin", (fd, buf, file) => {
      recordCalls();
      expect(() => call(fd, buf.ptr)).toThrow(ArgumentError);
      expect(calls).toEqual([]);
      expect(readFileSync(file).length).toBe(16384);
    });
  });

  test("bad pointers and descriptors", () => {
    recordCalls();
    expect(() => libc.pread(3, Number.NaN, 10, 0)).toThrow(/^pread: bad pointer NaN$/);
    expect(() => libc.pread(3, 0, 10, 0)).toThrow(/bad pointer 0/);
    expect(() => libc.pread(-1, 4096, 10, 0)).toThrow(/bad descriptor -1/);
    expect(() => libc.close(Number.NaN)).toThrow(ArgumentError);
    expect(() => libc.open("", libc.O_RDONLY)).toThrow(/open: bad path/);
    expect(() => libc.open("/tmp/a\0b", libc.O_RDONLY)).toThrow(/open: bad path/);
    expect(() => libc.addressOf(new Uint8Array(0))).toThrow(/empty view has no address/);
    expect(calls).toEqual([]);
  });

  test("vector counts: none, or more than IOV_MAX", () => {
    withFile("iov.bin", (fd, buf) => {
      expect(() => libc.preadv(fd, [], 0)).toThrow(/needs 1 to 1024 vectors, got 0/);
      const many = Array.from({ length: libc.IOV_MAX + 1 }, () => [buf.ptr, 1] as const);
      expect(() => libc.pwritev(fd, many, 0)).toThrow(/got 1025/);
    });
  });
});

describe("alignment with align: 4096", () => {
  test.each([
    ["pointer", 1, 4096, 0, /buffer address \d+ is not a multiple of 4096, as direct I\/O requires/],
    ["length", 0, 4096 + 512, 0, /length 4608 is not a multiple of 4096/],
    ["offset", 0, 4096, 512, /offset 512 is not a multiple of 4096/],
  ])("a misaligned %s is an ArgumentError", (_what, ptrDelta, len, offset, msg) => {
    withFile("align.bin", (fd, buf, file) => {
      recordCalls();
      const e = catchError(() => libc.pwrite(fd, buf.ptr + ptrDelta, len, offset, { path: file, align: 4096 }));
      expect(e).toBeInstanceOf(ArgumentError);
      expect((e as Error).message).toMatch(msg);
      expect(() => libc.pread(fd, buf.ptr + ptrDelta, len, offset, { align: 4096 })).toThrow(ArgumentError);
      expect(calls).toEqual([]);
    });
  });

  test("vectored I/O checks every vector", () => {
    withFile("alignv.bin", (fd, buf) => {
      recordCalls();
      expect(() => libc.pwritev(fd, [[buf.ptr, 4096], [buf.ptr + 4096, 100]], 0, { align: 4096 })).toThrow(/length 100 is not a multiple of 4096/);
      expect(() => libc.preadv(fd, [[buf.ptr + 8, 4096]], 0, { align: 4096 })).toThrow(/buffer address/);
      expect(() => libc.preadv(fd, [[buf.ptr, 4096]], 100, { align: 4096 })).toThrow(/offset 100/);
      expect(calls).toEqual([]);
    });
  });

  test("aligned arguments pass the check and do the I/O", () => {
    withFile("aligned.bin", (fd, buf, file) => {
      expect(libc.pwrite(fd, buf.ptr, 8192, 4096, { path: file, align: 4096 })).toBe(8192);
      const got = readFileSync(file);
      expect(got[4095]).toBe(0x41);
      expect(got[4096]).toBe(0x42);
      expect(got[12287]).toBe(0x42);
      expect(got[12288]).toBe(0x41);
    });
  });
});

describe("O_DIRECT on ext4", () => {
  test("the descriptor's flags show O_DIRECT; a plain one's do not", () => {
    withFile(
      "direct.bin",
      (fd) => {
        expect(libc.getFlags(fd) & libc.O_DIRECT).toBe(libc.O_DIRECT);
        expect(libc.getFlags(fd) & libc.O_ACCMODE).toBe(libc.O_RDWR);
      },
      libc.O_DIRECT,
    );
    withFile("plain.bin", (fd) => {
      expect(libc.getFlags(fd) & libc.O_DIRECT).toBe(0);
    });
  });

  test("a misaligned buffer without the align option reaches the kernel and fails with EINVAL", () => {
    withFile(
      "direct2.bin",
      (fd, buf, file) => {
        const e = catchError(() => libc.pwrite(fd, buf.ptr + 1, 4096, 0, { path: file }));
        expect(e).toBeInstanceOf(SysError);
        const s = e as SysError;
        expect(s.code).toBe("EINVAL");
        expect(s.errno).toBe(22);
        expect(s.call).toBe("pwrite");
        expect(s.message).toBe(`pwrite ${file}: EINVAL (Invalid argument)`);
        // and an aligned write through the same descriptor works
        expect(libc.pwrite(fd, buf.ptr, 4096, 0, { path: file, align: 4096 })).toBe(4096);
      },
      libc.O_DIRECT,
    );
  });

  test("statx reports the direct I/O alignment of a file on /tmp", () => {
    writeFileSync(path("dio.bin"), "x");
    const s = libc.statx(path("dio.bin"));
    for (const a of [s.dioMemAlign, s.dioOffsetAlign]) {
      expect(a).toBeGreaterThanOrEqual(1);
      expect(a).toBeLessThanOrEqual(4096);
      expect(a & (a - 1)).toBe(0); // a power of two
    }
    expect(s.size).toBe(1);
    expect(s.mode & 0o170000).toBe(0o100000); // regular file
    expect(s.blockSize).toBe(4096);
  });
});

describe("errors", () => {
  test("open of a missing path: SysError ENOENT naming the path", () => {
    const missing = path("missing/file.bin");
    const e = catchError(() => libc.open(missing, libc.O_RDONLY));
    expect(e).toBeInstanceOf(SysError);
    const s = e as SysError;
    expect(s.code).toBe("ENOENT");
    expect(s.errno).toBe(2);
    expect(s.path).toBe(missing);
    expect(s.message).toBe(`open ${missing}: ENOENT (No such file or directory)`);
  });

  test("statx of a missing path and close of a closed descriptor", () => {
    expect(() => libc.statx(path("nope"))).toThrow(/^statx .*nope: ENOENT/);
    const fd = libc.open(path("."), libc.O_RDONLY);
    libc.close(fd);
    const e = catchError(() => libc.close(fd, "dir"));
    expect((e as SysError).code).toBe("EBADF");
    expect((e as SysError).message).toBe("close dir: EBADF (Bad file descriptor)");
  });

  test("the fault hook makes a call fail with the chosen errno, naming the path", () => {
    withFile("fault.bin", (fd, buf, file) => {
      libc.setFaultHook((call) => (call === "pwrite" ? 28 : undefined));
      const e = catchError(() => libc.pwriteFull(fd, buf.ptr, 4096, 0, { path: file }));
      expect((e as SysError).code).toBe("ENOSPC");
      expect((e as SysError).message).toStartWith(`pwrite ${file}: ENOSPC (`);
      libc.setFaultHook(undefined);
      libc.pwriteFull(fd, buf.ptr, 4096, 0, { path: file });
    });
  });
});

describe("positional I/O", () => {
  test("pwriteFull then preadFull round trip, above 4 GiB too", () => {
    withFile("rt.bin", (fd, buf, file) => {
      const pattern = Uint8Array.from({ length: 16384 }, (_, i) => (i * 7 + 3) & 0xff);
      buf.view.set(pattern);
      const far = 5 * 2 ** 30 + 4096;
      libc.pwriteFull(fd, buf.ptr, 16384, 8192, { path: file });
      libc.pwriteFull(fd, buf.ptr, 4096, far, { path: file });
      const back = new libc.AlignedBuffer(16384);
      try {
        libc.preadFull(fd, back.ptr, 16384, 8192, { path: file });
        expect(back.view).toEqual(pattern);
        back.view.fill(0);
        libc.preadFull(fd, back.ptr, 4096, far, { path: file });
        expect(back.view.subarray(0, 4096)).toEqual(pattern.subarray(0, 4096));
        expect(libc.fstatx(fd, file).size).toBe(far + 4096);
      } finally {
        back.free();
      }
    });
  });

  test("preadv/pwritev scatter and gather", () => {
    withFile("vec.bin", (fd, buf) => {
      buf.view.subarray(0, 4096).fill(1);
      buf.view.subarray(4096, 8192).fill(2);
      // write the two halves in reverse order
      expect(libc.pwritev(fd, [[buf.ptr + 4096, 4096], [buf.ptr, 4096]], 0)).toBe(8192);
      buf.view.fill(0);
      expect(libc.preadv(fd, [[buf.ptr + 8192, 8192]], 0)).toBe(8192);
      expect(buf.view[8192]).toBe(2);
      expect(buf.view[8192 + 4096]).toBe(1);
    });
  });

  test("preadvFull: more vectors than IOV_MAX, one scratch page taking every other page, with and without O_DIRECT", () => {
    const pages = 2 * libc.IOV_MAX + 50;
    const file = path("vec-full.bin");
    writeFileSync(file, Uint8Array.from({ length: pages * 4096 }, (_, i) => (Math.floor(i / 4096) * 13 + 1) & 0xff));
    for (const flags of [0, libc.O_DIRECT]) {
      const fd = libc.open(file, libc.O_RDONLY | flags);
      const dst = new libc.AlignedBuffer(pages * 4096);
      const scratch = new libc.AlignedBuffer(4096);
      try {
        dst.view.fill(0xee);
        // even pages into their place, odd ones all into the same scratch page: pages vectors in all
        const iov = Array.from({ length: pages }, (_, p) => [p % 2 ? scratch.ptr : dst.ptr + p * 4096, 4096] as const);
        libc.preadvFull(fd, iov, 0, { path: file, align: flags ? 4096 : undefined });
        for (let p = 0; p < pages; p++) expect(dst.view[p * 4096 + 4095]).toBe(p % 2 ? 0xee : (p * 13 + 1) & 0xff);
        expect(scratch.view[0]).toBe(((pages - 1) * 13 + 1) & 0xff); // the last odd page went there last
        const e = catchError(() => libc.preadvFull(fd, [[dst.ptr, 4096], [dst.ptr + 4096, 8192]], (pages - 2) * 4096, { path: file }));
        expect(e).toBeInstanceOf(ShortIoError);
        expect((e as ShortIoError).message).toBe(`preadv ${file}: only 8192 of 12288 bytes at offset ${(pages - 2) * 4096}`);
      } finally {
        dst.free();
        scratch.free();
        libc.close(fd);
      }
    }
  });

  test("seekData/seekHole map a sparse file on ext4 and on tmpfs; past the end is null; bad offsets are refused", () => {
    for (const dir of [path(""), "/dev/shm"]) {
      const file = join(dir, `sparse-${process.pid}.bin`);
      const fd = libc.open(file, libc.O_RDWR | libc.O_CREAT | libc.O_TRUNC, 0o600);
      const page = new libc.AlignedBuffer(4096);
      try {
        page.view.fill(1);
        libc.ftruncate(fd, 1024 * 1024);
        libc.pwriteFull(fd, page.ptr, 4096, 256 * 1024);
        expect(libc.seekData(fd, 0, file)).toBe(256 * 1024);
        expect(libc.seekHole(fd, 256 * 1024, file)).toBe(256 * 1024 + 4096);
        expect(libc.seekData(fd, 256 * 1024 + 4096, file)).toBeNull(); // only a hole up to the end
        expect(libc.seekHole(fd, 512 * 1024, file)).toBe(512 * 1024); // inside a hole
        expect(libc.seekHole(fd, 2 * 1024 * 1024, file)).toBeNull(); // past the end
        expect(() => libc.seekData(fd, Number.NaN, file)).toThrow(ArgumentError);
        expect(() => libc.seekHole(-1, 0, file)).toThrow(ArgumentError);
      } finally {
        page.free();
        libc.close(fd);
        rmSync(file);
      }
    }
  });

  test("preadFull past the end of the file is a ShortIoError with what it got", () => {
    withFile("short.bin", (fd, buf, file) => {
      const e = catchError(() => libc.preadFull(fd, buf.ptr, 8192, 12288, { path: file }));
      expect(e).toBeInstanceOf(ShortIoError);
      const s = e as ShortIoError;
      expect([s.call, s.path, s.offset, s.expected, s.got]).toEqual(["pread", file, 12288, 8192, 4096]);
      expect(s.message).toBe(`pread ${file}: only 4096 of 8192 bytes at offset 12288`);
      // the bytes that were there were read
      expect(buf.view[0]).toBe(0x41);
      expect(libc.pread(fd, buf.ptr, 4096, 16384)).toBe(0);
    });
  });

  test("MainFile-style reads through addressOf a JS array", () => {
    withFile("js.bin", (fd) => {
      const a = new Uint8Array(100);
      expect(libc.pread(fd, libc.addressOf(a), 100, 50)).toBe(100);
      expect(a.every((b) => b === 0x41)).toBe(true);
    });
  });
});

describe("memory", () => {
  test("AlignedBuffer is aligned as asked, sized, zero-copy, and freeing twice is safe", () => {
    for (const alignment of [4096, 65536, 2 * 1024 * 1024]) {
      const b = new libc.AlignedBuffer(12345, alignment);
      expect(b.ptr % alignment).toBe(0);
      expect(b.view.length).toBe(12345);
      libc.memset(b.ptr, 0x5a, 12345);
      expect(b.view[0]).toBe(0x5a);
      expect(b.view[12344]).toBe(0x5a);
      b.free();
      b.free(); // a second glibc free() of the same pointer would abort the process
    }
  });

  test("bad alignments and sizes are refused", () => {
    expect(() => new libc.AlignedBuffer(4096, 3000)).toThrow(/alignment 3000 is not a power of two of at least 8/);
    expect(() => new libc.AlignedBuffer(4096, 4)).toThrow(/not a power of two of at least 8/);
    expect(() => new libc.AlignedBuffer(0)).toThrow(/size must be positive/);
    expect(() => new libc.AlignedBuffer(2 ** 32 + 1)).toThrow(ArgumentError);
    expect(() => libc.viewOf(4096, -1)).toThrow(ArgumentError);
  });

  test("memcmp and memset", () => {
    const a = new libc.AlignedBuffer(4096);
    const b = new libc.AlignedBuffer(4096);
    try {
      libc.memset(a.ptr, 0, 4096);
      libc.memset(b.ptr, 0, 4096);
      expect(libc.memcmp(a.ptr, b.ptr, 4096)).toBe(0);
      b.view[4095] = 1;
      expect(libc.memcmp(a.ptr, b.ptr, 4096)).toBeLessThan(0);
      expect(libc.memcmp(a.ptr, b.ptr, 4095)).toBe(0);
      expect(() => libc.memset(a.ptr, 256, 1)).toThrow(ArgumentError);
    } finally {
      a.free();
      b.free();
    }
  });

  test("anonymous mmap: readable, writable, unmapped", () => {
    const len = 3 * 4096;
    const p = libc.mmap(len, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS, -1, 0);
    expect(p % 4096).toBe(0);
    const v = libc.viewOf(p, len);
    expect(v.every((b) => b === 0)).toBe(true);
    v.fill(7);
    libc.madvise(p, len, libc.MADV_SEQUENTIAL);
    expect(libc.viewOf(p, len)[len - 1]).toBe(7);
    libc.munmap(p, len);
  });

  test("a shared file mapping writes through to the file", () => {
    withFile("map.bin", (fd, _buf, file) => {
      // (pages past the end of the file must not be touched: that is SIGBUS)
      const p = libc.mmap(8192, libc.PROT_READ | libc.PROT_WRITE, libc.MAP_SHARED, fd, 4096, file);
      const v = libc.viewOf(p, 8192);
      expect(v[0]).toBe(0x41); // file offset 4096
      expect(v[8191]).toBe(0x41);
      v[0] = 0x7a;
      libc.munmap(p, 8192);
      expect(readFileSync(file)[4096]).toBe(0x7a);
    });
  });

  test("mmap refuses a misaligned offset and reports failures as SysError", () => {
    expect(() => libc.mmap(4096, libc.PROT_READ, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS, -1, 100)).toThrow(/offset 100 is not a multiple of 4096/);
    expect(() => libc.mmap(0, libc.PROT_READ, libc.MAP_PRIVATE | libc.MAP_ANONYMOUS, -1, 0)).toThrow(/length must be positive/);
    const e = catchError(() => libc.mmap(4096, libc.PROT_READ, libc.MAP_SHARED, 9999, 0, "nofd"));
    expect(e).toBeInstanceOf(SysError);
    expect((e as SysError).code).toBe("EBADF");
    expect(() => libc.munmap(4097, 4096)).toThrow(SysError); // not page aligned: EINVAL
  });
});

describe("file facts", () => {
  test("fstatx of a sparse file: size is apparent, allocation is what was written", () => {
    const file = path("sparse.bin");
    const fd = libc.open(file, libc.O_RDWR | libc.O_CREAT | libc.O_TRUNC, 0o600);
    const buf = new libc.AlignedBuffer(4096);
    try {
      libc.ftruncate(fd, 64 * 1024 * 1024, file);
      const empty = libc.fstatx(fd, file);
      expect(empty.size).toBe(64 * 1024 * 1024);
      expect(empty.allocated).toBe(0);
      buf.view.fill(1);
      libc.pwriteFull(fd, buf.ptr, 4096, 32 * 1024 * 1024, { path: file });
      libc.fdatasync(fd, file);
      const one = libc.fstatx(fd, file);
      expect(one.size).toBe(64 * 1024 * 1024);
      expect(one.allocated).toBeGreaterThanOrEqual(4096);
      expect(one.allocated).toBeLessThan(1024 * 1024);
      libc.fallocate(fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, 32 * 1024 * 1024, 4096, file);
      expect(libc.fstatx(fd, file).allocated).toBe(0);
      libc.fallocate(fd, 0, 0, 1024 * 1024, file);
      expect(libc.fstatx(fd, file).allocated).toBe(1024 * 1024);
      libc.fsync(fd, file);
    } finally {
      buf.free();
      libc.close(fd, file);
    }
  });

  test("fstatfs of /tmp reports sizes", () => {
    const fd = libc.open("/tmp", libc.O_RDONLY);
    try {
      const s = libc.fstatfs(fd);
      expect(s.blockSize).toBeGreaterThanOrEqual(1024);
      expect(s.totalBytes).toBeGreaterThan(s.freeBytes);
      expect(s.freeBytes).toBeGreaterThan(0);
    } finally {
      libc.close(fd);
    }
  });
});
