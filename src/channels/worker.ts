// A channel: one Bun Worker doing positional page I/O on its own thread, like one of QEMU's multifd
// threads. It owns no file and no memory of its own beyond a zero page and an optional bounce buffer;
// descriptors and addresses come from the main thread.
import * as libc from "../../ffi/libc.ts";
import { setBit, testBit } from "../format/bitmap.ts";
import { PackError } from "../format/errors.ts";
import { type LoadedPages, loadPages } from "../memory/page-source.ts";
import { hashExtents } from "../integrity/hash.ts";
import { type ChannelSetup, type FromChannel, noStages, type PackedSource, type PrefetchJob, type RestoreJob, type SaveJob, type StageSeconds, type ToChannel } from "./messages.ts";
import { freePackBuffers, packChunk, readStored, storeName, unpackExtents } from "./packed.ts";
import { planRuns, type Run } from "./plan.ts";

declare const self: Worker;

let setup: ChannelSetup | undefined;
let zeroPage: libc.AlignedBuffer | undefined;
let bounce: libc.AlignedBuffer | undefined;
/** Where restore reads the slots of bridged gaps (whose bytes are thrown away): the longest gap bridged. */
let scratch: libc.AlignedBuffer | undefined;

const post = (m: FromChannel, transfer: ArrayBuffer[] = []) => self.postMessage(m, transfer);

// Stage clocks (messages.ts StageSeconds), in milliseconds while a job runs. performance.now() costs
// ~40 ns here (10^7 calls in a loop) and a job reads it about a dozen times per 8 MiB: ~0.5 µs a job,
// ~0.13 ms per 2 GiB, against ~5 ms for one 8 MiB pwrite.
const now = () => performance.now();
let st: StageSeconds = noStages();
/** When this channel's last job ended (or its setup did): the time until the next job starts is idle. */
let lastEnd = 0;

function beginJob(): void {
  const t = now();
  st = noStages();
  st.idle = t - lastEnd;
}

/** Runs fn, its time counted in `stage`. */
function timed<T>(stage: keyof StageSeconds, fn: () => T): T {
  const t = now();
  try {
    return fn();
  } finally {
    st[stage] += now() - t;
  }
}

/** The job's stage times in seconds, for its JobDone; ends the job's clock. */
function endJob(): StageSeconds {
  lastEnd = now();
  const out = noStages();
  for (const k of Object.keys(out) as (keyof StageSeconds)[]) out[k] = st[k] / 1000;
  return out;
}

/** Direct I/O needs aligned buffers, offsets and lengths; checking here turns a kernel EINVAL into a clear error. */
const DIRECT_ALIGN = 4096;

function io(): libc.IoOptions {
  return { path: setup!.path, align: setup!.direct ? DIRECT_ALIGN : undefined };
}

function bounceOf(size: number): libc.AlignedBuffer {
  if (!bounce || bounce.size < size) {
    bounce?.free();
    bounce = new libc.AlignedBuffer(size, DIRECT_ALIGN);
  }
  return bounce;
}

let populateWorks = true;
/**
 * Faults a chunk's pages in with one call. A first touch of shared-memory pages costs ~10 µs a page in
 * a VM, page by page (2.6 s per GiB measured), against ~0.4 s per GiB when populated in bulk.
 */
function populate(addr: number, length: number, advice: number): void {
  if (!populateWorks || addr % 4096 !== 0) return;
  try {
    libc.madvise(addr, length, advice);
  } catch {
    populateWorks = false; // kernels before 5.14 do not know the advice; pages then fault one by one
  }
}

let fallocateWorks = true;
/** Reserves `len` bytes of a fresh target file at `at` into the chunk (see RestoreJob.reserve). */
function reserveRun(r: NonNullable<RestoreJob["reserve"]>, at: number, len: number): void {
  if (!fallocateWorks) return;
  try {
    libc.fallocate(r.fd, 0, r.offset + at, len, r.path);
  } catch (e) {
    // A file system without fallocate still works (memory/region.ts does the same); a full one must stop here.
    if (!(e instanceof libc.SysError && e.code === "EOPNOTSUPP")) throw e;
    fallocateWorks = false;
  }
}

/** Calls fn(first, count) for each maximal range of pages in [0, n) for which pick(page) holds. */
function ranges(n: number, pick: (p: number) => boolean, fn: (first: number, count: number) => void): void {
  for (let p = 0; p < n; ) {
    if (!pick(p)) {
      p++;
      continue;
    }
    const first = p;
    while (p < n && pick(p)) p++;
    fn(first, p - first);
  }
}

/** A chunk of a pack being converted, decoded into the bounce buffer (absent pages zero, marked not existing). */
async function loadPacked(src: PackedSource, job: SaveJob): Promise<LoadedPages> {
  const ps = setup!.pageSize;
  const b = bounceOf(job.pages * ps);
  b.view.fill(0, 0, job.pages * ps);
  const stored = await readStored(src.store, src.extents);
  const has = new Uint8Array(job.pages);
  unpackExtents(src.extents, stored, ps, job.firstPage, src.extentPages, storeName(src.store), (page, count, bytes) => {
    b.view.set(bytes, page * ps);
    has.fill(1, page, page + count);
  });
  return { base: b.ptr, aligned: true, exists: (i) => has[i] === 1 };
}

async function save(job: SaveJob): Promise<void> {
  const { pageSize: ps } = setup!;
  const bitmap = new Uint8Array(job.bitmap);
  const present = new Uint8Array(job.pages);
  let t = now();
  const src = job.source;
  if (src.kind === "memory" && job.zeroDetect) populate(src.addr, job.pages * ps, libc.MADV_POPULATE_READ);
  const { base, aligned, exists, holeBytes } = src.kind === "packed" ? await loadPacked(src, job) : loadPages(src, job.pages, ps, bounceOf);
  st.readSource += now() - t;
  t = now();
  let count = 0;
  for (let i = 0; i < job.pages; i++) {
    if (exists && !exists(i)) continue;
    const nonZero = !job.zeroDetect || libc.memcmp(base + i * ps, zeroPage!.ptr, ps) !== 0;
    if (nonZero) {
      present[i] = 1;
      setBit(bitmap, job.firstPage + i);
      count++;
    }
  }
  if (job.zeroDetect) st.zeroCheck += now() - t;
  const hashes = job.hashExtents ? timed("hash", () => hashExtents(base, job.pages * ps)) : undefined;
  const done = { type: "done" as const, id: job.id, bytes: job.pages * ps, present: count, hashes, holeBytes };
  if (job.to.kind === "pack") {
    const to = job.to;
    const packed = timed("compress", () => packChunk(base, present, ps, job.firstPage, to.extentPages, to.compression));
    post({ ...done, ioBytes: packed.data.byteLength, ioCalls: 0, packed, stages: endJob() }, [packed.data]);
    return;
  }
  const { ioBytes, ioCalls } = writeSlots(job.to.fileOffset, base, aligned, present, job.pages);
  post({ ...done, ioBytes, ioCalls, stages: endJob() });
}

/** Writes a chunk's present pages (and bridged gaps) at their slots of a mapped-ram file. */
function writeSlots(fileOffset: number, base: number, aligned: boolean, present: Uint8Array, pages: number): { ioBytes: number; ioCalls: number } {
  const { fd, pageSize: ps, maxGap } = setup!;
  const runs = planRuns((i) => present[i] === 1, 0, pages, maxGap, pages);
  let t = now();
  let ioBytes = 0;
  for (const r of runs) {
    const len = r.count * ps;
    const off = fileOffset + r.first * ps;
    const src = base + r.first * ps;
    if (aligned) {
      t = now();
      libc.pwriteFull(fd, src, len, off, io());
    } else {
      // Only memory sources are unaligned, and they never use the bounce buffer for loading.
      t = now();
      const b = bounceOf(len);
      b.view.set(libc.viewOf(src, len));
      st.readSource += now() - t;
      t = now();
      libc.pwriteFull(fd, b.ptr, len, off, io());
    }
    st.diskWait += now() - t;
    ioBytes += len;
  }
  return { ioBytes, ioCalls: runs.length };
}

async function restore(job: RestoreJob): Promise<void> {
  if (job.from.kind === "packed") await restorePacked(job, job.from);
  else restoreSlots(job, job.from.fileOffset);
}

/**
 * A chunk from a pack: its stored extents read and decoded, each present page copied to the target. A
 * fresh target's present runs are reserved first and its other pages never touched (they stay holes);
 * a target that may hold old data gets zeros where the pack has no page.
 */
async function restorePacked(job: RestoreJob, from: Extract<RestoreJob["from"], { kind: "packed" }>): Promise<void> {
  const { pageSize: ps } = setup!;
  const bitmap = new Uint8Array(job.bitmap);
  const isSet = (i: number) => testBit(bitmap, job.firstPage + i);
  let t = now();
  const stored = await (fetched.get(job.id) ?? readStored(from.store, from.extents));
  fetched.delete(job.id);
  st.diskWait += now() - t;
  if (job.reserve) timed("faultTarget", () => ranges(job.pages, isSet, (first, count) => reserveRun(job.reserve!, first * ps, count * ps)));
  let present = 0;
  t = now();
  unpackExtents(from.extents, stored, ps, job.firstPage, from.extentPages, storeName(from.store), (page, count, bytes) => {
    for (let i = page; i < page + count; i++) {
      if (!isSet(i)) throw new PackError(`${storeName(from.store)}: block ${job.block}, page ${job.firstPage + i} is in the index but not in the bitmap`);
    }
    libc.memcpy(job.dst + page * ps, libc.addressOf(bytes), count * ps);
    present += count;
  });
  st.compress += now() - t;
  let want = 0;
  for (let i = 0; i < job.pages; i++) if (isSet(i)) want++;
  if (present !== want) throw new PackError(`${storeName(from.store)}: block ${job.block}, pages ${job.firstPage}-${job.firstPage + job.pages - 1}: the bitmap has ${want} pages, the pack's extents ${present}`);
  if (job.zeroAbsent) timed("faultTarget", () => ranges(job.pages, (i) => !isSet(i), (first, count) => libc.memset(job.dst + first * ps, 0, count * ps)));
  const hashes = job.hashExtents ? timed("hash", () => hashExtents(job.dst, job.pages * ps)) : undefined;
  let ioBytes = 0;
  for (const v of stored.values()) ioBytes += v.length;
  post({ type: "done", id: job.id, bytes: job.pages * ps, ioBytes, ioCalls: from.extents.length, present, hashes, stages: endJob() });
}

function restoreSlots(job: RestoreJob, fileOffset: number): void {
  const { fd, pageSize: ps, maxGap } = setup!;
  const bitmap = new Uint8Array(job.bitmap);
  const isSet = (i: number) => testBit(bitmap, job.firstPage + i);
  const runs: Run[] = planRuns(isSet, 0, job.pages, maxGap, job.pages);
  // A target that may hold old data has every page written (present ones read, absent ones zeroed): fault
  // the whole chunk in with one call. A fresh one gets only the pages the file has: reserved and faulted
  // run by run by the read itself when the channel reserves (`reserve`), else faulted in range by range
  // below; its other pages stay unallocated (zero). Faulting whole chunks of a fresh 16 GiB backend with
  // 5% of its pages present got ramsnap killed by the OOM killer (bench/INSTANT.md).
  let t = now();
  if (job.dstAligned && job.zeroAbsent) populate(job.dst, job.pages * ps, libc.MADV_POPULATE_WRITE);
  st.faultTarget += now() - t;
  // Sized for the longest gap planRuns bridges, once: vectors built below point at it.
  scratch ??= new libc.AlignedBuffer(Math.max(1, maxGap) * ps, DIRECT_ALIGN);
  let ioBytes = 0;
  for (const r of runs) {
    const len = r.count * ps;
    const off = fileOffset + r.first * ps;
    const dst = job.dst + r.first * ps;
    if (job.reserve) {
      // A fresh target: only the runs the file holds get memory, reserved before the mapping is touched;
      // the rest stays holes (never-touched RAM, as it was saved). The read's own page pinning faults the
      // run in: a MADV_POPULATE_WRITE first did the same faults once more (bench/matrix-ab/populate.md,
      // 2 GiB, alternated: 4 channels 0.86× dense, 0.85× clustered without it; 1 channel 1.02×, 0.93×;
      // its last minute overlapped another benchmark, so read it as "no slower", not as a gain).
      t = now();
      reserveRun(job.reserve, r.first * ps, len);
      st.faultTarget += now() - t;
    }
    if (job.dstAligned) {
      // Present pages go straight into the target, the slots of a bridged gap into a scratch buffer: a
      // slot's bytes are not a page (QEMU's live saves leave stale data there), and a target page the
      // file lacks is never touched, so a fresh target stays zero (and sparse) at no cost. Zeroing it by
      // hand would cost a first touch per page, ~6 µs each in a VM, more than the whole read.
      const iov: [number, number][] = [];
      for (let i = 0; i < r.count; ) {
        const set = isSet(r.first + i);
        let n = 1;
        while (i + n < r.count && isSet(r.first + i + n) === set) n++;
        // Extract's targets are not faulted in as a whole (their absent pages must stay holes): the
        // present ones are, range by range, with one call each rather than a fault per page.
        if (set && !job.zeroAbsent && !job.reserve) {
          t = now();
          populate(dst + i * ps, n * ps, libc.MADV_POPULATE_WRITE);
          st.faultTarget += now() - t;
        }
        if (!set && n > Math.max(1, maxGap)) throw new Error(`internal: a bridged gap of ${n} pages exceeds the scratch buffer`);
        iov.push([set ? dst + i * ps : scratch.ptr, n * ps]);
        i += n;
      }
      t = now();
      libc.preadvFull(fd, iov, off, io());
      st.diskWait += now() - t;
    } else {
      // An unaligned target cannot take O_DIRECT: through the bounce buffer, copying only present pages.
      const b = bounceOf(len);
      t = now();
      libc.preadFull(fd, b.ptr, len, off, io());
      st.diskWait += now() - t;
      t = now();
      ranges(r.count, (i) => isSet(r.first + i), (first, count) => libc.memcpy(dst + first * ps, b.ptr + first * ps, count * ps));
      st.faultTarget += now() - t;
    }
    ioBytes += len;
  }
  let present = 0;
  for (let i = 0; i < job.pages; i++) if (isSet(i)) present++;
  // A target that held data before must read as zeros wherever the file has no page.
  if (job.zeroAbsent) timed("faultTarget", () => ranges(job.pages, (i) => !isSet(i), (first, count) => libc.memset(job.dst + first * ps, 0, count * ps)));
  const hashes = job.hashExtents ? timed("hash", () => hashExtents(job.dst, job.pages * ps)) : undefined;
  post({ type: "done", id: job.id, bytes: job.pages * ps, ioBytes, ioCalls: runs.length, present, hashes, stages: endJob() });
}

function prefetch(job: PrefetchJob): void {
  const { fd, pageSize: ps, maxGap } = setup!;
  const bitmap = new Uint8Array(job.bitmap);
  const runs = planRuns((i) => testBit(bitmap, job.firstPage + i), 0, job.pages, maxGap, job.pages);
  let ioBytes = 0;
  let present = 0;
  for (const r of runs) {
    const len = r.count * ps;
    const b = bounceOf(len);
    const t = now();
    libc.preadFull(fd, b.ptr, len, job.fileOffset + r.first * ps, io());
    st.diskWait += now() - t;
    ioBytes += len;
  }
  for (let i = 0; i < job.pages; i++) if (testBit(bitmap, job.firstPage + i)) present++;
  post({ type: "done", id: job.id, bytes: job.pages * ps, ioBytes, ioCalls: runs.length, present, stages: endJob() });
}

// Tests only: RAMSNAP_TEST_FAULTS="channel-exit@N" makes a channel exit abruptly on its N-th job.
const exitAt = Number(/channel-exit@(\d+)/.exec(process.env.RAMSNAP_TEST_FAULTS ?? "")?.[1] ?? 0);
let jobsSeen = 0;

/** Stored bytes of an object's extents already asked for, by job (see onmessage). */
const fetched = new Map<number, Promise<Map<number, Uint8Array>>>();

/** The jobs of this channel, one after another. */
let queue: Promise<void> = Promise.resolve();

self.onmessage = (ev: MessageEvent<ToChannel>) => {
  const m = ev.data;
  if ((m.type === "save" || m.type === "restore") && ++jobsSeen === exitAt) process.exit(9);
  if (m.type === "setup") {
    setup = m;
    zeroPage = new libc.AlignedBuffer(m.pageSize, DIRECT_ALIGN);
    zeroPage.view.fill(0);
    lastEnd = now();
    post({ type: "ready", channel: m.channel });
    return;
  }
  if (m.type === "close") {
    queue = queue.then(() => {
      bounce?.free();
      scratch?.free();
      zeroPage?.free();
      freePackBuffers();
      process.exit(0);
    });
    return;
  }
  // A job may wait (a pack's stored bytes read from an object store): the next one starts only after it,
  // since a channel's buffers serve one job at a time. An object's ranges for the job in hand behind it
  // are asked for at once, so the store works while this channel decodes (each GET gets its own buffer).
  if (m.type === "restore" && m.from.kind === "packed" && m.from.store.kind === "s3") {
    const pending = readStored(m.from.store, m.from.extents);
    pending.catch(() => {}); // its job reports the failure
    fetched.set(m.id, pending);
  }
  queue = queue.then(() => runJob(m));
};

async function runJob(m: Exclude<ToChannel, { type: "setup" } | { type: "close" }>): Promise<void> {
  try {
    beginJob();
    if (m.type === "save") await save(m);
    else if (m.type === "restore") await restore(m);
    else prefetch(m);
  } catch (e) {
    const err = e as Error & { code?: string };
    post({ type: "failed", id: m.id, message: err.message ?? String(e), code: err.code, ...(e instanceof PackError ? { pack: true } : {}) });
  }
  if (packedJob(m) && ++packJobs % GC_EVERY_PACK_JOBS === 0) Bun.gc(true);
}

/**
 * A pack's jobs leave garbage the collector is slow to come for: zstd's output and decoded extents (a
 * MiB each), an object's ranges (8 MiB a job). Collected every other job: pack runs to and from the RGW
 * peaked at 294 MiB without it (bench/PACK.md), 234 MiB with it and zstd's trial (bench/PACK-FINAL.md).
 */
const GC_EVERY_PACK_JOBS = 2;
let packJobs = 0;
const packedJob = (m: Exclude<ToChannel, { type: "setup" } | { type: "close" }>): boolean => (m.type === "save" && m.to.kind === "pack") || (m.type === "restore" && m.from.kind === "packed");
