// The data map of a source file (memory/holes.ts): SEEK_DATA/SEEK_HOLE on real sparse files on ext4 and
// tmpfs, and how a chunk's page ranges are cut from it.
import { afterAll, describe, expect, test } from "bun:test";
import * as libc from "../ffi/libc.ts";
import { dataPagesOf, mapData, type DataMap } from "../src/memory/holes.ts";
import { scratchDir } from "../harness/scratch.ts";
import { MiB, PAGE } from "../harness/units.ts";

const disk = scratchDir("ramsnap-holes");
const shm = scratchDir("ramsnap-holes", "/dev/shm");
afterAll(() => {
  disk.cleanup();
  shm.cleanup();
});

/** A sparse file of `size` bytes with data written at each [offset, length). */
function sparseFile(path: string, size: number, data: [number, number][]): number {
  const fd = libc.open(path, libc.O_RDWR | libc.O_CREAT | libc.O_TRUNC, 0o600);
  libc.ftruncate(fd, size);
  for (const [at, len] of data) {
    const b = new Uint8Array(len).fill(0x5a);
    libc.pwriteFull(fd, libc.addressOf(b), len, at);
  }
  return fd;
}

const map = (pairs: [number, number][], mappedUpTo: number): DataMap => ({ spans: Float64Array.from(pairs.flat()), count: pairs.length, mappedUpTo });

describe("mapData on real files", () => {
  for (const [where, dir] of [["ext4", () => disk.path], ["tmpfs", () => shm.path]] as const) {
    test(`${where}: the data spans of a sparse file; null for a file that is all data`, () => {
      const path = `${dir()}/sparse`;
      const fd = sparseFile(path, 16 * MiB, [[0, PAGE], [5 * MiB, 3 * PAGE], [16 * MiB - PAGE, PAGE]]);
      try {
        const m = mapData(fd, path, 16 * MiB)!;
        expect(m.mappedUpTo).toBe(16 * MiB);
        expect([...m.spans]).toEqual([0, PAGE, 5 * MiB, 5 * MiB + 3 * PAGE, 16 * MiB - PAGE, 16 * MiB]);
        // capped: the rest counts as data from where the map stopped
        const capped = mapData(fd, path, 16 * MiB, 2)!;
        expect([capped.count, capped.mappedUpTo]).toEqual([2, 16 * MiB - PAGE]);
      } finally {
        libc.close(fd);
      }
      const full = `${dir()}/full`;
      const fd2 = sparseFile(full, 4 * MiB, [[0, 4 * MiB]]);
      try {
        expect(mapData(fd2, full, 4 * MiB)).toBeNull();
      } finally {
        libc.close(fd2);
      }
      // all holes: no spans, mapped to the end
      const empty = `${dir()}/empty`;
      const fd3 = sparseFile(empty, 4 * MiB, []);
      try {
        expect(mapData(fd3, empty, 4 * MiB)).toEqual({ spans: new Float64Array(0), count: 0, mappedUpTo: 4 * MiB });
      } finally {
        libc.close(fd3);
      }
    });
  }
});

describe("dataPagesOf", () => {
  const ps = PAGE;
  test("ranges relative to the chunk, rounded out to pages, touching ones merged", () => {
    const m = map([[100, 200], [3 * ps + 10, 4 * ps], [4 * ps, 5 * ps], [9 * ps, 20 * ps]], 1 * MiB);
    expect(dataPagesOf(m, 0, 16, ps)).toEqual([[0, 1], [3, 5], [9, 16]]);
    expect(dataPagesOf(m, 8 * ps, 8, ps)).toEqual([[1, 8]]);
    expect(dataPagesOf(m, 1 * ps, 2, ps)).toEqual([]); // all hole
  });

  test("undefined: the whole chunk is data, it lies past the mapped part, or it is too fragmented", () => {
    expect(dataPagesOf(map([[0, 64 * ps]], MiB), 8 * ps, 8, ps)).toBeUndefined();
    expect(dataPagesOf(map([[0, ps]], 16 * ps), 8 * ps, 16, ps)).toBeUndefined();
    const everyOther = Array.from({ length: 100 }, (_, k) => [2 * k * ps, (2 * k + 1) * ps] as [number, number]);
    expect(dataPagesOf(map(everyOther, MiB), 0, 200, ps)).toBeUndefined();
    expect(dataPagesOf(map(everyOther, MiB), 0, 64, ps)).toHaveLength(32); // fewer ranges: worth it
  });
});

describe("a file system that cannot answer SEEK_DATA", () => {
  test("EINVAL or EOPNOTSUPP: no map, the file is read whole; other errors are errors", () => {
    const path = `${shm.path}/no-seek`;
    const fd = sparseFile(path, 4 * MiB, [[0, PAGE]]);
    try {
      for (const [errno, code] of [[22, "EINVAL"], [95, "EOPNOTSUPP"], [5, "EIO"]] as const) {
        libc.setFaultHook((call) => (call === "lseek" ? errno : undefined));
        try {
          if (code === "EIO") expect(() => mapData(fd, path, 4 * MiB)).toThrow(`lseek(SEEK_DATA) ${path}: EIO`);
          else expect(mapData(fd, path, 4 * MiB)).toBeNull();
        } finally {
          libc.setFaultHook(undefined);
        }
      }
      expect(mapData(fd, path, 4 * MiB)!.count).toBe(1);
    } finally {
      libc.close(fd);
    }
  });
});
