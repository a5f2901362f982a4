// Where a source file holds data and where it has holes. A guest's never-touched RAM is holes in its
// memory backend; a save need not read them, only to find zeros. The map is made once per file, by
// walking SEEK_DATA/SEEK_HOLE from start to end: asking per chunk would cost far more, since tmpfs
// answers SEEK_HOLE by walking page by page to the next hole, which in dense RAM is the end of the file.
// The map is taken when the source is opened: like every page of it, a hole must not change while it is
// saved (a running guest is saved through QEMU itself: `ramsnap qemu save`).
import * as libc from "../../ffi/libc.ts";

/** Beyond this many data spans the rest of the file is taken as data (the map stays a few MiB). */
const MAX_SPANS = 1 << 18;
/** A chunk cut into more data ranges than this is read whole: the reads would cost more than the copy. */
const MAX_RANGES_PER_CHUNK = 64;

export interface DataMap {
  /** Data spans as [start, end) byte pairs, sorted, not touching (a span: what SEEK_DATA/SEEK_HOLE find). */
  readonly spans: Float64Array;
  readonly count: number;
  /** Bytes from here on were not mapped and count as data. */
  readonly mappedUpTo: number;
}

/** The file's data spans within [0, length); null when it is all data (or the file system keeps no holes). */
export function mapData(fd: number, path: string, length: number, maxSpans = MAX_SPANS): DataMap | null {
  try {
    return walk(fd, path, length, maxSpans);
  } catch (e) {
    // A file system or device that cannot answer SEEK_DATA is read whole, as if it had no holes.
    if (e instanceof libc.SysError && ["EINVAL", "EOPNOTSUPP", "ENOSYS", "ESPIPE"].includes(e.code)) return null;
    throw e;
  }
}

function walk(fd: number, path: string, length: number, maxSpans: number): DataMap | null {
  let spans = new Float64Array(64);
  let count = 0;
  let at = 0;
  while (at < length) {
    const data = libc.seekData(fd, at, path);
    if (data === null || data >= length) {
      at = length;
      break;
    }
    const hole = Math.min(libc.seekHole(fd, data, path) ?? length, length);
    if (count === 0 && data === 0 && hole >= length) return null;
    if (count === maxSpans) {
      at = data;
      break;
    }
    if (2 * count + 2 > spans.length) {
      const grown = new Float64Array(spans.length * 2);
      grown.set(spans);
      spans = grown;
    }
    spans[2 * count] = data;
    spans[2 * count + 1] = hole;
    count++;
    at = hole;
  }
  return { spans: spans.slice(0, 2 * count), count, mappedUpTo: at };
}

/**
 * The page ranges [first, stop) of the chunk [offset, offset + pages·ps) that hold data, rounded out to
 * whole pages; undefined when the whole chunk must be read (all data, unmapped, or too fragmented).
 */
export function dataPagesOf(map: DataMap, offset: number, pages: number, ps: number): [number, number][] | undefined {
  const end = offset + pages * ps;
  if (end > map.mappedUpTo) return undefined;
  // first span ending after offset
  let lo = 0;
  let hi = map.count;
  while (lo < hi) {
    const mid = (lo + hi) >>> 1;
    if (map.spans[2 * mid + 1]! <= offset) lo = mid + 1;
    else hi = mid;
  }
  const ranges: [number, number][] = [];
  for (let k = lo; k < map.count && map.spans[2 * k]! < end; k++) {
    const first = Math.floor((Math.max(map.spans[2 * k]!, offset) - offset) / ps);
    const stop = Math.ceil((Math.min(map.spans[2 * k + 1]!, end) - offset) / ps);
    if (ranges.length > 0 && ranges[ranges.length - 1]![1] >= first) ranges[ranges.length - 1]![1] = stop;
    else ranges.push([first, stop]);
    if (ranges.length > MAX_RANGES_PER_CHUNK) return undefined;
  }
  if (ranges.length === 1 && ranges[0]![0] === 0 && ranges[0]![1] === pages) return undefined;
  return ranges;
}
