// Page slots whose bitmap bit is clear but which hold data. A loader reads a clear bit as "zero page",
// but a guest that maps the file (instant restore) sees the slot's bytes. ramsnap's own files leave such
// slots as holes (or zeros, where a gap was bridged); a file QEMU saved while the guest ran can hold stale
// bytes there: a page written in an early pass that became zero later keeps its old slot. Such slots are
// few and allocated, so SEEK_DATA finds them without reading the page arrays: only pages in data spans
// with a clear bit are read, and only to see whether they are zero.
import * as libc from "../../ffi/libc.ts";
import { testBit } from "../format/bitmap.ts";
import { parseStream, type RamBlockInfo } from "../format/parse.ts";
import { MainFile } from "../io/main-file.ts";
import { refuseIfMappedPrivately } from "../io/mapped-by.ts";
import { mapData } from "../memory/holes.ts";

export interface StaleSlot {
  block: string;
  page: number;
  fileOffset: number;
}

/** Every slot of a clear bit that holds non-zero bytes, in file order. */
export function findStaleSlots(path: string, offset = 0): StaleSlot[] {
  using f = MainFile.openRead(path);
  const info = parseStream(f, { base: offset, keepBitmaps: true });
  const out: StaleSlot[] = [];
  const buf = new libc.AlignedBuffer(READ_PAGES * info.pageSize);
  const zero = new libc.AlignedBuffer(info.pageSize);
  zero.view.fill(0);
  try {
    for (const b of info.blocks) if (b.mapped) out.push(...staleIn(f, b, info.pageSize, buf, zero.ptr));
  } finally {
    buf.free();
    zero.free();
  }
  return out;
}

/** Clear-bit pages read per call: a bridged gap or a run of stale pages comes in one read. */
const READ_PAGES = 256;

function staleIn(f: MainFile, b: RamBlockInfo, ps: number, buf: libc.AlignedBuffer, zero: number): StaleSlot[] {
  const base = b.mapped!.pagesOffset;
  const map = mapData(f.fd, f.name, Math.min(f.size, base + b.length));
  const out: StaleSlot[] = [];
  const clear = (p: number) => !testBit(b.bitmap!, p);
  // No map: the file system keeps no holes (or the file is all data); every clear slot is read.
  const spans: [number, number][] = map ? Array.from({ length: map.count }, (_, k) => [map.spans[2 * k]!, map.spans[2 * k + 1]!]) : [[base, base + b.length]];
  for (const [start, end] of spans) {
    const stop = Math.min(b.pages, Math.ceil((end - base) / ps));
    for (let p = Math.max(0, Math.floor((start - base) / ps)); p < stop; ) {
      if (!clear(p)) {
        p++;
        continue;
      }
      let n = 1;
      while (p + n < stop && n < READ_PAGES && clear(p + n)) n++;
      libc.preadFull(f.fd, buf.ptr, n * ps, base + p * ps, { path: f.name });
      for (let k = 0; k < n; k++) if (libc.memcmp(buf.ptr + k * ps, zero, ps) !== 0) out.push({ block: b.name, page: p + k, fileOffset: base + (p + k) * ps });
      p += n;
    }
  }
  return out;
}

/**
 * Clears stale slots in place: each becomes a hole (fallocate PUNCH_HOLE, the file keeps its size), or
 * zeros where the file system cannot punch holes. Refused while a process maps the file privately (a
 * lazily restored guest whose pages not yet copied would change under it).
 */
export function clearStaleSlots(path: string, slots: readonly StaleSlot[], pageSize: number): void {
  const fd = libc.open(path, libc.O_WRONLY);
  try {
    // Checked even with nothing to clear: a command that writes in place says so the same way every time.
    refuseIfMappedPrivately(fd, path);
    if (slots.length === 0) return;
    const zeros = new libc.AlignedBuffer(pageSize);
    zeros.view.fill(0);
    try {
      for (const s of slots) punchOrZero(fd, path, s.fileOffset, pageSize, zeros.ptr);
    } finally {
      zeros.free();
    }
    libc.fsync(fd, path);
  } finally {
    libc.close(fd, path);
  }
}

let punchWorks = true;
function punchOrZero(fd: number, path: string, offset: number, length: number, zeros: number): void {
  if (punchWorks) {
    try {
      libc.fallocate(fd, libc.FALLOC_FL_PUNCH_HOLE | libc.FALLOC_FL_KEEP_SIZE, offset, length, path);
      return;
    } catch (e) {
      if (!(e instanceof libc.SysError && e.code === "EOPNOTSUPP")) throw e;
      punchWorks = false;
    }
  }
  libc.pwriteFull(fd, zeros, length, offset, { path });
}
