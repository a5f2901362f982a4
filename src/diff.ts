// diff: which pages differ between two saves of the same blocks. A page the file does not hold reads as
// zero (that is what a loader leaves in a fresh guest), so two absent pages are equal without reading,
// and a page held by one side only is read once to see whether it is zero.
import * as libc from "../ffi/libc.ts";
import { CancelledError, OptionError } from "./errors.ts";
import { fillOf, readPageMap, type BlockPages } from "./format/pages.ts";
import { MainFile } from "./io/main-file.ts";

export interface DiffOptions {
  a: string;
  b: string;
  aOffset?: number;
  bOffset?: number;
  signal?: AbortSignal;
}

export interface BlockDiff {
  name: string;
  length: number;
  pages: number;
  differing: number;
  /** Differing pages as [first, count] runs. */
  ranges: [number, number][];
}

export interface DiffReport {
  a: string;
  b: string;
  same: boolean;
  blocks: BlockDiff[];
  /** Blocks present in only one file. */
  onlyInA: string[];
  onlyInB: string[];
  /** Page bytes read to decide (not more than needed). */
  bytesRead: number;
}

const WINDOW = 256; // pages read per call where both files store them back to back

/** Reads page bytes for a page location; null for a page that is zero (absent or zero record). */
class PageReader {
  readonly buf: libc.AlignedBuffer;
  bytesRead = 0;
  constructor(
    readonly file: MainFile,
    readonly ps: number,
  ) {
    this.buf = new libc.AlignedBuffer(WINDOW * ps);
  }
  /** Loads `n` pages stored back to back at `loc`; returns the address of the first. */
  load(loc: number, n: number): number {
    libc.preadFull(this.file.fd, this.buf.ptr, n * this.ps, loc, { path: this.file.name });
    this.bytesRead += n * this.ps;
    return this.buf.ptr;
  }
}

function contiguous(bp: BlockPages, p: number, end: number, ps: number): number {
  const loc = bp.locate(p);
  let n = 1;
  while (p + n < end && n < WINDOW && bp.locate(p + n) === loc + n * ps) n++;
  return n;
}

function diffBlock(a: BlockPages, b: BlockPages, ra: PageReader, rb: PageReader, zero: number, fillPage: libc.AlignedBuffer, signal?: AbortSignal): BlockDiff {
  const ps = ra.ps;
  const pages = a.info.pages;
  const d: BlockDiff = { name: a.info.name, length: a.info.length, pages, differing: 0, ranges: [] };
  const mark = (p: number) => {
    d.differing++;
    const last = d.ranges[d.ranges.length - 1];
    if (last && last[0] + last[1] === p) last[1]++;
    else d.ranges.push([p, 1]);
  };
  /** Address of a page's content that is not stored as data (absent or a zero record). */
  const constant = (loc: number): number => {
    const fill = fillOf(loc);
    if (fill === 0) return zero;
    fillPage.view.fill(fill);
    return fillPage.ptr;
  };
  let p = 0;
  while (p < pages) {
    if (signal?.aborted) throw new CancelledError();
    const la = a.locate(p);
    const lb = b.locate(p);
    if (la < 0 && lb < 0) {
      if (fillOf(la) !== fillOf(lb)) mark(p);
      p++;
      continue;
    }
    // Read as many pages as both sides (or the one side holding data) store back to back.
    const na = la >= 0 ? contiguous(a, p, pages, ps) : WINDOW;
    const nb = lb >= 0 ? contiguous(b, p, pages, ps) : WINDOW;
    let n = Math.min(na, nb, pages - p);
    // Keep the run to pages with the same kind of location on each side.
    for (let k = 1; k < n; k++) {
      if ((a.locate(p + k) >= 0) !== la >= 0 || (b.locate(p + k) >= 0) !== lb >= 0) {
        n = k;
        break;
      }
    }
    const pa = la >= 0 ? ra.load(la, n) : constant(la);
    const pb = lb >= 0 ? rb.load(lb, n) : constant(lb);
    for (let k = 0; k < n; k++) {
      const xa = la >= 0 ? pa + k * ps : pa;
      const xb = lb >= 0 ? pb + k * ps : pb;
      if (libc.memcmp(xa, xb, ps) !== 0) mark(p + k);
    }
    p += n;
  }
  return d;
}

export function diff(o: DiffOptions): DiffReport {
  const fa = MainFile.openRead(o.a);
  const fb = MainFile.openRead(o.b);
  const zero = new libc.AlignedBuffer(4096);
  const fillPage = new libc.AlignedBuffer(4096);
  zero.view.fill(0);
  let ra: PageReader | undefined;
  let rb: PageReader | undefined;
  try {
    const ma = readPageMap(fa, { base: o.aOffset ?? 0 });
    const mb = readPageMap(fb, { base: o.bOffset ?? 0 });
    if (ma.info.pageSize !== mb.info.pageSize) throw new OptionError(`${o.a} has ${ma.info.pageSize}-byte pages, ${o.b} ${mb.info.pageSize}-byte pages`);
    ra = new PageReader(fa, ma.info.pageSize);
    rb = new PageReader(fb, mb.info.pageSize);
    const blocks: BlockDiff[] = [];
    for (const a of ma.blocks) {
      const b = mb.blocks.find((x) => x.info.name === a.info.name);
      if (!b) continue;
      if (b.info.length !== a.info.length) {
        throw new OptionError(`block ${a.info.name} is ${a.info.length} bytes in ${o.a} but ${b.info.length} in ${o.b}; diff compares saves of the same blocks`);
      }
      blocks.push(diffBlock(a, b, ra, rb, zero.ptr, fillPage, o.signal));
    }
    const onlyInA = ma.blocks.filter((a) => !mb.blocks.some((b) => b.info.name === a.info.name)).map((x) => x.info.name);
    const onlyInB = mb.blocks.filter((b) => !ma.blocks.some((a) => a.info.name === b.info.name)).map((x) => x.info.name);
    return {
      a: o.a,
      b: o.b,
      same: blocks.every((x) => x.differing === 0) && onlyInA.length === 0 && onlyInB.length === 0,
      blocks,
      onlyInA,
      onlyInB,
      bytesRead: ra.bytesRead + rb.bytesRead,
    };
  } finally {
    ra?.buf.free();
    rb?.buf.free();
    zero.free();
    fillPage.free();
    fa.close();
    fb.close();
  }
}
