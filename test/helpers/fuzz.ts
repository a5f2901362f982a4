// Test helper: a fuzzer for the readers (inspect, verify, restore) over real save files.
//
// The corpus is made at run time (`makeCorpus`): small QEMU guests saved mapped-ram and classic, and files
// ramsnap wrote (a plain save, one with a manifest, a `save --like` of the QEMU file, a classic conversion).
// `analyzeSeed` walks each seed with the parser and lists where its structure lives (magic, configuration,
// section headers and footers, RAM block entries, MappedRamHeader fields, bitmaps, classic page records,
// EOF, the trailer and the numbers in its JSON). `mutationFor(seed, campaign seed, case)` picks, from those
// positions only, bit flips, byte sets, truncations and lengths/offsets set to extremes; it is a pure
// function of its arguments, so any case replays alone (`scripts/fuzz.ts --seed S --case I`).
//
// Cases run in child processes (this file run as a script with --child), one working copy of each seed
// patched in place and patched back after the case, so thousands of cases a minute fit. The parent
// (`runCampaign`) is the watchdog: a child that stops reporting is killed and the case is a hang; a child
// that dies is a crash; both are recorded and a fresh child goes on after the case. Inside a child each case
// runs inspect and verify, and on a fraction of cases restore into a scratch target folder, then checks:
//   - every failure is one of the clean error types (FormatError, OptionError, IntegrityError, ChannelError,
//     SysError, ShortIoError) and a ChannelError carries an errno or a short-I/O message, not a stray
//     TypeError from a Worker;
//   - the case took less than the limit;
//   - nothing but the target files appeared or changed in the scratch folder, the input and its manifest
//     were not touched, a failed restore left no target it created, and every target is exactly as long as
//     the (mutated) file's block list says;
//   - inspect and verify agree on whether the file parses, and what restore wrote verifies against the file
//     page by page.
import { closeSync, existsSync, fstatSync, ftruncateSync, mkdirSync, openSync, readdirSync, readFileSync, readSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { ArgumentError, ShortIoError, SysError } from "../../ffi/libc.ts";
import { ChannelError } from "../../src/channels/pool.ts";
import { IntegrityError, OptionError } from "../../src/errors.ts";
import { FormatError } from "../../src/format/errors.ts";
import { parseStream, type StreamInfo } from "../../src/format/parse.ts";
import { inspectFile, type InspectReport } from "../../src/inspect.ts";
import { MainFile } from "../../src/io/main-file.ts";
import { restore } from "../../src/restore.ts";
import { verify } from "../../src/verify.ts";

const PAGE = 4096;
const MiB = 1 << 20;

// ---- randomness ----------------------------------------------------------------------------------

/** A small deterministic PRNG (sfc32) with the helpers the mutators need. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(...seeds: number[]) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = 1;
    for (const s of seeds) {
      this.#a ^= s >>> 0;
      this.#b ^= Math.floor(s / 2 ** 32) >>> 0;
      for (let i = 0; i < 12; i++) this.u32();
    }
  }
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
  }
  /** [0, 1) */
  float(): number {
    return this.u32() / 2 ** 32;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error("pick from an empty list");
    return xs[Math.floor(this.float() * xs.length)]!;
  }
  /** Picks by weight: [[weight, value], ...]. */
  weighted<T>(xs: readonly [number, T][]): T {
    const total = xs.reduce((s, [w]) => s + w, 0);
    let x = this.float() * total;
    for (const [w, v] of xs) {
      if ((x -= w) < 0) return v;
    }
    return xs[xs.length - 1]![1];
  }
}

// ---- seeds ---------------------------------------------------------------------------------------

export interface SeedSpec {
  /** Short name, e.g. "qemu-mapped". */
  name: string;
  path: string;
  /** Whether FILE.sums lies beside it. */
  manifest: boolean;
}

export type FieldKind =
  | "magic"
  | "version"
  | "length"
  | "offset"
  | "id"
  | "count"
  | "tag"
  | "ram-word"
  | "name-len"
  | "name"
  | "bitmap"
  | "page"
  | "payload"
  | "eof"
  | "json";

/** A place in a seed where structure lives: `width` bytes at `at` (big-endian numbers for widths 2, 4 and 8). */
export interface Field {
  at: number;
  width: number;
  kind: FieldKind;
  label: string;
}

/** A seed file with what the fuzzer knows about it. Its bytes are kept sparsely: only non-zero pages. */
export interface Seed extends SeedSpec {
  index: number;
  size: number;
  info: StreamInfo;
  fields: Field[];
  /** Offsets of the seed's non-zero 4 KiB pages, ascending, and their bytes. */
  pages: Map<number, Uint8Array>;
  pageList: number[];
  trailer: { at: number; json: string } | null;
  manifestText: string | null;
}

/** Bytes [at, at + len) of the seed as it is on disk (zeros where it has holes or zero pages). */
export function seedBytes(seed: Seed, at: number, len: number): Uint8Array {
  const out = new Uint8Array(Math.max(0, Math.min(len, seed.size - at)));
  for (let p = Math.floor(at / PAGE) * PAGE; p < at + out.length; p += PAGE) {
    const page = seed.pages.get(p);
    if (!page) continue;
    const from = Math.max(at, p);
    const to = Math.min(at + out.length, p + PAGE);
    out.set(page.subarray(from - p, to - p), from - at);
  }
  return out;
}

function readBe(seed: Seed, f: Field): bigint {
  const b = seedBytes(seed, f.at, f.width);
  let v = 0n;
  for (const x of b) v = (v << 8n) | BigInt(x);
  return v;
}

/** Reads a whole seed sparsely: only its non-zero pages are kept. */
function loadPages(path: string): { size: number; pages: Map<number, Uint8Array> } {
  const fd = openSync(path, "r");
  try {
    const size = fstatSync(fd).size;
    const pages = new Map<number, Uint8Array>();
    const buf = Buffer.alloc(4 * MiB);
    const zero = Buffer.alloc(PAGE);
    for (let at = 0; at < size; at += buf.length) {
      const n = readSync(fd, buf, 0, Math.min(buf.length, size - at), at);
      for (let k = 0; k < n; k += PAGE) {
        const page = buf.subarray(k, Math.min(n, k + PAGE));
        if (zero.compare(page, 0, page.length, 0, page.length) !== 0) pages.set(at + k, new Uint8Array(page));
      }
    }
    return { size, pages };
  } finally {
    closeSync(fd);
  }
}

/** Lists where the structure of a seed lives (see the file's header comment). */
export function analyzeSeed(spec: SeedSpec, index: number): Seed {
  const { size, pages } = loadPages(spec.path);
  const file = MainFile.openRead(spec.path);
  let info: StreamInfo;
  try {
    info = parseStream(file, { keepBitmaps: true });
  } finally {
    file.close();
  }
  const seed: Seed = {
    ...spec,
    index,
    size,
    info,
    fields: [],
    pages,
    pageList: [...pages.keys()].sort((a, b) => a - b),
    trailer: null,
    manifestText: spec.manifest ? readFileSync(`${spec.path}.sums`, "utf8") : null,
  };
  const fields = seed.fields;
  const add = (at: number, width: number, kind: FieldKind, label: string) => {
    if (at >= 0 && at + width <= size) fields.push({ at, width, kind, label });
  };
  const u8 = (at: number) => seedBytes(seed, at, 1)[0] ?? 0;
  const be32 = (at: number) => Number(readBe(seed, { at, width: 4, kind: "count", label: "" }));

  add(0, 4, "magic", "magic");
  add(4, 4, "version", "stream version");
  // configuration: 0x07, be32 name length, name, then subsections (0x05, str8 name, be32 version, value)
  if (u8(8) === 0x07) {
    add(8, 1, "tag", "configuration tag");
    add(9, 4, "length", "machine type length");
    const n = be32(9);
    add(13, n, "name", "machine type");
    let p = 13 + n;
    while (u8(p) === 0x05 && p < size) {
      add(p, 1, "tag", "subsection tag");
      const len = u8(p + 1);
      add(p + 1, 1, "name-len", "subsection name length");
      const name = new TextDecoder().decode(seedBytes(seed, p + 2, len));
      add(p + 2, len, "name", `subsection ${name}`);
      add(p + 2 + len, 4, "version", `subsection ${name} version`);
      p += 6 + len;
      if (name.endsWith("target-page-bits")) {
        add(p, 4, "count", "target page bits");
        p += 4;
      } else if (name.endsWith("capabilities")) {
        add(p, 4, "count", "capability count");
        const count = be32(p);
        p += 4;
        for (let i = 0; i < count && i < 64; i++) {
          const cl = u8(p);
          add(p, 1, "name-len", `capability ${i} length`);
          add(p + 1, cl, "name", `capability ${i}`);
          p += 1 + cl;
        }
      } else if (name.endsWith("uuid")) {
        add(p, 16, "payload", "uuid");
        p += 16;
      } else break;
    }
  }
  const ramWords = (from: number, label: string) => {
    // classic page records: be64 (address | flags), [str8 block], then a fill byte (ZERO) or a page (PAGE)
    let p = from;
    let recorded = 0;
    for (let n = 0; n < 1_000_000 && p + 8 <= size; n++) {
      const word = readBe(seed, { at: p, width: 8, kind: "ram-word", label: "" });
      const flags = Number(word & 0xfffn);
      const keep = recorded < 40 || n % 97 === 0;
      if (keep) {
        add(p, 8, "ram-word", `${label} record ${n}`);
        recorded++;
      }
      p += 8;
      if (flags & 0x10) break; // EOS
      if (flags & 0x200) continue; // MULTIFD_FLUSH
      if (!(flags & 0x20)) {
        if (keep) add(p, 1, "name-len", `${label} record ${n} block name length`);
        p += 1 + u8(p);
      }
      if (flags & 0x02) {
        if (keep) add(p, 1, "payload", `${label} record ${n} fill byte`);
        p += 1;
      } else if (flags & 0x08) {
        if (keep) add(p + (n % PAGE), 1, "page", `${label} record ${n} page byte`);
        p += PAGE;
      } else break;
    }
  };
  for (const s of info.sections) {
    const what = s.type === "COMMAND" ? `command ${s.command}` : `${s.type} ${s.idstr ?? s.id}`;
    add(s.offset, 1, "tag", `${what} tag`);
    if (s.type === "COMMAND") {
      add(s.offset + 1, 2, "id", `${what} id`);
      add(s.offset + 3, 2, "length", `${what} length`);
      continue;
    }
    add(s.offset + 1, 4, "id", `${what} section id`);
    if (s.type === "START" || s.type === "FULL") {
      const n = u8(s.offset + 5);
      add(s.offset + 5, 1, "name-len", `${what} name length`);
      add(s.offset + 6, n, "name", `${what} name`);
      add(s.offset + 6 + n, 4, "id", `${what} instance`);
      add(s.offset + 10 + n, 4, "version", `${what} version`);
    }
    if (info.footers) {
      const f = s.payloadOffset + s.payloadSize;
      add(f, 1, "tag", `${what} footer tag`);
      add(f + 1, 4, "id", `${what} footer id`);
    }
    if (s.type === "FULL" && s.payloadSize > 0) {
      add(s.payloadOffset, Math.min(8, s.payloadSize), "payload", `${what} payload start`);
      add(s.payloadOffset + s.payloadSize - 1, 1, "payload", `${what} payload end`);
    }
    if (s.idstr === "ram") {
      if (s.type === "START") add(s.payloadOffset, 8, "ram-word", "RAM MEM_SIZE word");
      else if (info.ramFormat === "mapped-ram") add(s.payloadOffset, 8, "ram-word", `RAM ${s.type} EOS word`);
      else ramWords(s.payloadOffset, `RAM ${s.type}`);
    }
  }
  for (const b of info.blocks) {
    const n = u8(b.entryOffset);
    add(b.entryOffset, 1, "name-len", `block ${b.name} name length`);
    add(b.entryOffset + 1, n, "name", `block ${b.name} name`);
    add(b.entryOffset + 1 + n, 8, "length", `block ${b.name} length`);
    const m = b.mapped;
    if (m) {
      add(m.headerOffset, 4, "version", `block ${b.name} mapped-ram header version`);
      add(m.headerOffset + 4, 8, "length", `block ${b.name} header page size`);
      add(m.headerOffset + 12, 8, "offset", `block ${b.name} bitmap offset`);
      add(m.headerOffset + 20, 8, "offset", `block ${b.name} pages offset`);
      add(m.bitmapOffset, 1, "bitmap", `block ${b.name} bitmap first byte`);
      add(m.bitmapOffset + m.bitmapSize - 1, 1, "bitmap", `block ${b.name} bitmap last byte`);
      add(m.bitmapOffset + ((b.pages - 1) >> 3), 1, "bitmap", `block ${b.name} bitmap byte of the last page`);
      const bm = b.bitmap!;
      const set: number[] = [];
      for (let i = 0; i < bm.length && set.length < 8; i++) if (bm[i]) set.push(i);
      for (const i of set) add(m.bitmapOffset + i, 1, "bitmap", `block ${b.name} bitmap byte ${i}`);
      // a few present pages, and the end of the page array (where the next entry or EOS follows)
      for (let i = 0, seen = 0; i < b.pages && seen < 4; i++) {
        if ((bm[i >> 3]! >> (i & 7)) & 1) {
          add(m.pagesOffset + i * PAGE + ((i * 131) % PAGE), 1, "page", `block ${b.name} page ${i}`);
          seen++;
        }
      }
      add(m.pagesOffset + b.length, 8, "ram-word", `word after block ${b.name}'s page array`);
    }
  }
  if (info.ramFormat === "classic" && info.blocks.length > 0) {
    const last = info.blocks[info.blocks.length - 1]!;
    ramWords(last.entryOffset + 1 + u8(last.entryOffset) + 8 + (last.gpa !== undefined ? 8 : 0), "RAM START");
  }
  if (info.eofOffset >= 0) add(info.eofOffset, 1, "eof", "EOF");
  if (info.trailer) {
    const t = info.trailer;
    add(t.offset, 1, "tag", "trailer tag");
    add(t.offset + 1, 4, "length", "trailer length");
    const json = new TextDecoder().decode(seedBytes(seed, t.offset + 5, t.length));
    seed.trailer = { at: t.offset, json };
    for (const m of json.matchAll(/[{}[\]:,"]/g)) if (m.index! % 7 === 0) add(t.offset + 5 + m.index!, 1, "json", "trailer JSON punctuation");
    add(t.offset + 5, 1, "json", "trailer JSON start");
    add(t.offset + 5 + t.length - 1, 1, "json", "trailer JSON end");
  }
  return seed;
}

// ---- mutations -----------------------------------------------------------------------------------

export interface Mutation {
  /** What was done, one entry per step, for reports and reproduction. */
  steps: string[];
  /** Replace everything from `at` to the end of the file with `bytes` (done first). */
  tail?: { at: number; bytes: Uint8Array };
  /** Bytes written in place (after the tail). */
  patches: { at: number; bytes: Uint8Array }[];
  /** Cut or extend the file to this size (done last). */
  size?: number;
  /** Replacement text for FILE.sums (seeds with a manifest). */
  manifest?: string;
}

const U64 = (1n << 64n) - 1n;
const ABSOLUTE: bigint[] = [
  0n, 1n, 2n, 0x7fn, 0xffn, 4095n, 4096n, 4097n, 0x7fffn, 0xffffn, 0x10000n, 2n ** 31n - 1n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n,
  2n ** 32n + 4096n, 2n ** 40n, 2n ** 44n, 2n ** 48n, 2n ** 52n, 2n ** 53n - 1n, 2n ** 53n, 2n ** 53n + 4096n, 2n ** 62n, 2n ** 63n,
  2n ** 63n + 4096n, U64 - 4095n, U64,
];
const FLAG_VALUES = [0x0, 0x1, 0x2, 0x4, 0x8, 0x10, 0x20, 0x22, 0x28, 0x40, 0x80, 0x100, 0x200, 0x3ff, 0xfff];
const JSON_VALUES = ["0", "-1", "1", "4096", "0.5", "1e308", "-1e308", "4294967296", "9007199254740991", "9007199254740993", "18446744073709551616", "null", "true", '"8"', "[]", "{}", "[null]", '{"size": 1}'];

function be(v: bigint, width: number): Uint8Array {
  const out = new Uint8Array(width);
  let x = v & ((1n << BigInt(8 * width)) - 1n);
  for (let i = width - 1; i >= 0; i--) {
    out[i] = Number(x & 0xffn);
    x >>= 8n;
  }
  return out;
}

const show = (v: bigint) => (v > 4096n ? `0x${v.toString(16)}` : String(v));

/** An extreme value for a numeric field: absolute extremes, or relative to the file size and the old value. */
function extremeFor(seed: Seed, f: Field, r: Rng, size: number): bigint {
  const old = readBe(seed, f);
  const S = BigInt(size);
  if (f.kind === "ram-word") {
    const flags = old & 0xfffn;
    const addr = old & ~0xfffn;
    return r.weighted<() => bigint>([
      [3, () => addr | BigInt(r.pick(FLAG_VALUES))],
      [2, () => addr | (flags ^ (1n << BigInt(r.int(0, 11))))],
      [3, () => (r.pick(ABSOLUTE) & ~0xfffn) | flags],
      [1, () => ((addr + BigInt(r.pick([-4096, 4096, 2 ** 32, 2 ** 20]))) & U64) | flags],
      [1, () => r.pick(ABSOLUTE)],
    ])();
  }
  const rel = [S - 1n, S, S + 1n, S - 4096n, S + 4096n, old - 1n, old + 1n, old - 4096n, old + 4096n, old * 2n, old + 2n ** 32n, old ^ 0x80n, old / 2n];
  return r.chance(0.55) ? r.pick(ABSOLUTE) : r.pick(rel) & U64;
}

const NUMERIC: FieldKind[] = ["magic", "version", "length", "offset", "id", "count", "ram-word", "name-len"];

/** A position near `f`: inside it, or a few bytes either side (never before the file: a write there lands at 0). */
function near(f: Field, r: Rng): number {
  return Math.max(0, f.at + r.int(-3, f.width + 3));
}

/**
 * The mutation of case `i` of campaign `campaign` on `seed`. Cases below the number of seeds are the
 * seeds unchanged (baselines: every operation must succeed on them).
 */
export function mutationFor(seed: Seed, campaign: number, i: number): Mutation {
  const m: Mutation = { steps: [], patches: [] };
  if (i < 0) return m;
  const r = new Rng(campaign, i, 0x5eed);
  let size = seed.size;
  const steps = r.chance(0.7) ? 1 : r.int(2, 4);
  const numeric = seed.fields.filter((f) => NUMERIC.includes(f.kind));
  for (let s = 0; s < steps; s++) {
    const op = r.weighted<string>([
      [30, "extreme"],
      [18, "flip"],
      [10, "byte"],
      [14, "truncate"],
      [3, "extend"],
      [7, "bitmap"],
      [seed.trailer ? 8 : 0, "json"],
      [4, "page"],
      [seed.manifestText ? 6 : 0, "manifest"],
    ]);
    switch (op) {
      case "extreme": {
        const f = r.pick(numeric);
        const w = f.kind === "name-len" ? 1 : f.width;
        const v = w === 1 ? BigInt(r.pick([0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, Number(readBe(seed, f)) + 1, Number(readBe(seed, f)) - 1]) & 0xff) : extremeFor(seed, f, r, size);
        m.patches.push({ at: f.at, bytes: be(v, w) });
        m.steps.push(`set ${f.label} @${f.at} (${w} bytes) to ${show(v & ((1n << BigInt(8 * w)) - 1n))}`);
        break;
      }
      case "flip": {
        const f = r.pick(seed.fields);
        const at = r.chance(0.8) ? f.at + r.int(0, f.width - 1) : near(f, r);
        const bit = r.int(0, 7);
        const old = seedBytes(seed, at, 1)[0] ?? 0;
        m.patches.push({ at, bytes: Uint8Array.of(old ^ (1 << bit)) });
        m.steps.push(`flip bit ${bit} @${at} (${f.label})`);
        break;
      }
      case "byte": {
        const f = r.pick(seed.fields);
        const at = near(f, r);
        const v = r.pick([0x00, 0xff, 0x7f, 0x80, 0x7e, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x10, r.int(0, 255)]);
        m.patches.push({ at, bytes: Uint8Array.of(v) });
        m.steps.push(`set byte @${at} to 0x${v.toString(16)} (near ${f.label})`);
        break;
      }
      case "truncate": {
        const to = r.weighted<() => number>([
          [6, () => near(r.pick(seed.fields), r)],
          [2, () => r.int(0, seed.size)],
          [1, () => r.pick([0, 1, 4, 8, 9, 12, PAGE - 1, PAGE, PAGE + 1, MiB, MiB + 1])],
          [1, () => seed.size - r.int(1, 8)],
          [1, () => Math.floor(r.int(0, seed.size) / PAGE) * PAGE],
        ])();
        size = Math.max(0, Math.min(to, seed.size - 1));
        m.size = size;
        m.steps.push(`truncate to ${size}`);
        break;
      }
      case "extend": {
        size = seed.size + r.pick([1, 7, 8, PAGE - 1, PAGE, PAGE + 1, MiB]);
        m.size = size;
        m.steps.push(`extend to ${size}`);
        break;
      }
      case "bitmap": {
        const blocks = seed.info.blocks.filter((b) => b.mapped);
        if (blocks.length === 0) {
          s--; // classic: no bitmap; pick another step
          continue;
        }
        const b = r.pick(blocks);
        const mp = b.mapped!;
        const kind = r.int(0, 4);
        if (kind === 0) {
          // every bit set, the tail bits past the last page included
          m.patches.push({ at: mp.bitmapOffset, bytes: new Uint8Array(mp.bitmapSize).fill(0xff) });
          m.steps.push(`fill bitmap of ${b.name} with 0xff`);
        } else if (kind === 1) {
          const bit = b.pages + r.int(0, Math.max(0, mp.bitmapSize * 8 - b.pages - 1));
          if (bit >= mp.bitmapSize * 8) {
            s--;
            continue;
          }
          const at = mp.bitmapOffset + (bit >> 3);
          m.patches.push({ at, bytes: Uint8Array.of((seedBytes(seed, at, 1)[0] ?? 0) | (1 << (bit & 7))) });
          m.steps.push(`set bitmap bit ${bit} of ${b.name} (past its ${b.pages} pages)`);
        } else if (kind === 2) {
          m.patches.push({ at: mp.bitmapOffset, bytes: new Uint8Array(mp.bitmapSize) });
          m.steps.push(`clear bitmap of ${b.name}`);
        } else {
          const at = mp.bitmapOffset + r.int(0, mp.bitmapSize - 1);
          const v = r.int(0, 255);
          m.patches.push({ at, bytes: Uint8Array.of(v) });
          m.steps.push(`set bitmap byte @${at} of ${b.name} to 0x${v.toString(16)}`);
        }
        break;
      }
      case "json": {
        const t = seed.trailer!;
        const nums = [...t.json.matchAll(/(?<=: )(-?\d+|"[^"]*"|\[\]|\{\})/g)];
        let json = t.json;
        let how: string;
        const kind = r.int(0, 5);
        if (kind <= 2 && nums.length) {
          const hit = r.pick(nums);
          const v = r.pick(JSON_VALUES);
          json = json.slice(0, hit.index!) + v + json.slice(hit.index! + hit[0].length);
          how = `trailer value ${hit[0].slice(0, 24)} at JSON offset ${hit.index} set to ${v}`;
        } else if (kind === 3) {
          const cut = r.int(0, json.length - 1);
          json = json.slice(0, cut);
          how = `trailer JSON cut to ${cut} characters`;
        } else if (kind === 4) {
          const key = r.pick(['"fields"', '"subsections"', '"size"', '"array_len"', '"vmsd_name"', '"devices"', '"instance_id"', '"name"']);
          json = json.split(key).join(r.pick(['"x"', '"fields"', '"size"', '"array_len"']));
          how = `trailer key ${key} renamed`;
        } else {
          json = r.pick(["{}", "[]", "null", '{"devices": null}', '{"devices": [null]}', '{"devices": [{"name": "timer", "instance_id": 0, "fields": [null]}]}', ""]);
          how = `trailer JSON replaced by ${json || "nothing"}`;
        }
        const body = new TextEncoder().encode(json);
        const bytes = new Uint8Array(5 + body.length);
        bytes[0] = 0x06;
        new DataView(bytes.buffer).setUint32(1, r.chance(0.9) ? body.length : r.pick([0, body.length + 1, 2 ** 32 - 1]));
        bytes.set(body, 5);
        m.tail = { at: t.at, bytes };
        size = t.at + bytes.length;
        m.steps.push(how);
        break;
      }
      case "page": {
        const pages = seed.fields.filter((f) => f.kind === "page");
        if (pages.length === 0) {
          s--;
          continue;
        }
        const f = r.pick(pages);
        const old = seedBytes(seed, f.at, 1)[0] ?? 0;
        m.patches.push({ at: f.at, bytes: Uint8Array.of(old ^ 0x01) });
        m.steps.push(`flip page data byte @${f.at} (${f.label})`);
        break;
      }
      case "manifest": {
        m.manifest = mutateManifest(seed.manifestText!, r, m.steps);
        break;
      }
    }
  }
  return m;
}

/** Damage to FILE.sums: hashes, sizes, shapes, or plain text damage. */
function mutateManifest(text: string, r: Rng, steps: string[]): string {
  const m = JSON.parse(text) as Record<string, any>;
  const kind = r.int(0, 9);
  const blk = () => r.pick(m.blocks as any[]);
  switch (kind) {
    case 0: {
      const b = blk();
      const e = r.int(0, b.extents.length - 1);
      const h: string = b.extents[e];
      b.extents[e] = (h[0] === "0" ? "1" : "0") + h.slice(1);
      steps.push(`manifest: hash of extent ${e} of ${b.name} changed`);
      break;
    }
    case 1:
      m.mainStream.xxh3 = "0000000000000000";
      steps.push("manifest: main stream hash changed");
      break;
    case 2: {
      const v = r.pick<unknown>([0, -1, 1.5, 2 ** 53, "x", null, 4096]);
      const key = r.pick(["extentBytes", "offset", "version"]);
      m[key] = v;
      steps.push(`manifest: ${key} set to ${JSON.stringify(v)}`);
      break;
    }
    case 3: {
      const v = r.pick<unknown>([null, [], {}, 5, "x", [null], [{}], [{ name: "ram0" }], [{ name: 1, length: "x", extents: 3 }]]);
      m.blocks = v;
      steps.push(`manifest: blocks set to ${JSON.stringify(v)}`);
      break;
    }
    case 4: {
      const v = r.pick<unknown>([null, {}, 5, { bytes: "x", xxh3: 5 }]);
      m.mainStream = v;
      steps.push(`manifest: mainStream set to ${JSON.stringify(v)}`);
      break;
    }
    case 5: {
      const b = blk();
      const v = r.pick<unknown>([0, -4096, 2 ** 53, 2 ** 63, 1.5, null, "x", b.length + 4096]);
      b.length = v;
      steps.push(`manifest: length of ${b.name} set to ${JSON.stringify(v)}`);
      break;
    }
    case 6: {
      const b = blk();
      const v = r.pick<unknown>([[], null, 7, "x", [null], b.extents.slice(1), [...b.extents, "0000000000000000"], Array(10000).fill("0")]);
      b.extents = v;
      steps.push(`manifest: extents of ${b.name} set to ${JSON.stringify(v).slice(0, 40)}`);
      break;
    }
    case 7: {
      const b = blk();
      b.name = r.pick(["", "nope", "ram0", "pc.bios", "\u0000"]);
      steps.push(`manifest: a block renamed to ${JSON.stringify(b.name)}`);
      break;
    }
    case 8: {
      const cut = r.int(0, text.length - 1);
      steps.push(`manifest cut to ${cut} characters`);
      return text.slice(0, cut);
    }
    default: {
      const v = r.pick(["", "null", "[]", "{}", "0", '"ramsnap-sums"', "\u0000\u0001"]);
      steps.push(`manifest replaced by ${JSON.stringify(v)}`);
      return v;
    }
  }
  return JSON.stringify(m);
}

// ---- working copies ------------------------------------------------------------------------------

/**
 * A seed's copy in a child's scratch folder, mutated in place for a case and put back after it: only the
 * bytes a mutation touched are written, and only the non-zero pages after a cut.
 */
export class WorkingCopy {
  readonly path: string;
  readonly dir: string;
  #applied: Mutation | null = null;

  constructor(
    readonly seed: Seed,
    dir: string,
  ) {
    this.dir = dir;
    this.path = join(dir, "case.ram");
    mkdirSync(dir, { recursive: true });
    this.rebuild();
  }

  get sums(): string {
    return `${this.path}.sums`;
  }

  /** Writes the seed from scratch (its non-zero pages into a sparse file). */
  rebuild(): void {
    rmSync(this.path, { force: true });
    const fd = openSync(this.path, "w", 0o600);
    try {
      ftruncateSync(fd, this.seed.size);
      this.#copyPages(fd, 0, this.seed.size);
    } finally {
      closeSync(fd);
    }
    if (this.seed.manifestText !== null) writeFileSync(this.sums, this.seed.manifestText);
    else rmSync(this.sums, { force: true });
    this.#applied = null;
  }

  #copyPages(fd: number, from: number, to: number): void {
    for (const p of this.seed.pageList) {
      if (p + PAGE <= from || p >= to) continue;
      const page = this.seed.pages.get(p)!;
      writeSync(fd, page, 0, page.length, p);
    }
  }

  apply(m: Mutation): void {
    if (this.#applied) throw new Error("a mutation is already applied");
    this.#applied = m;
    const fd = openSync(this.path, "r+");
    try {
      if (m.tail) {
        ftruncateSync(fd, m.tail.at);
        writeSync(fd, m.tail.bytes, 0, m.tail.bytes.length, m.tail.at);
      }
      for (const p of m.patches) {
        if (!Number.isSafeInteger(p.at) || p.at < 0) throw new Error(`fuzz harness: a patch at offset ${p.at}`);
        writeSync(fd, p.bytes, 0, p.bytes.length, p.at);
      }
      if (m.size !== undefined) ftruncateSync(fd, m.size);
    } finally {
      closeSync(fd);
    }
    if (m.manifest !== undefined) writeFileSync(this.sums, m.manifest);
  }

  revert(): void {
    const m = this.#applied;
    if (!m) return;
    this.#applied = null;
    const fd = openSync(this.path, "r+");
    try {
      let cut = this.seed.size;
      if (m.tail) cut = Math.min(cut, m.tail.at);
      if (m.size !== undefined) cut = Math.min(cut, m.size);
      ftruncateSync(fd, this.seed.size); // drops anything written past the seed's end
      if (cut < this.seed.size) this.#copyPages(fd, cut, this.seed.size);
      for (const p of m.patches) {
        if (p.at >= cut) continue;
        const orig = seedBytes(this.seed, p.at, p.bytes.length);
        if (orig.length) writeSync(fd, orig, 0, orig.length, p.at);
      }
    } finally {
      closeSync(fd);
    }
    if (m.manifest !== undefined) writeFileSync(this.sums, this.seed.manifestText!);
  }

  /** Whether the working copy is byte for byte the seed (a check of the harness itself). */
  matchesSeed(): boolean {
    const fd = openSync(this.path, "r");
    try {
      if (fstatSync(fd).size !== this.seed.size) return false;
      const buf = Buffer.alloc(4 * MiB);
      for (let at = 0; at < this.seed.size; at += buf.length) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, this.seed.size - at), at);
        if (buf.compare(seedBytes(this.seed, at, n), 0, n, 0, n) !== 0) return false;
      }
    } finally {
      closeSync(fd);
    }
    return this.seed.manifestText === null || readFileSync(this.sums, "utf8") === this.seed.manifestText;
  }
}

/** Writes case `i`'s mutated file to `dest` (and `dest`.sums for seeds with a manifest). */
export function materializeCase(seed: Seed, campaign: number, i: number, dir: string): { path: string; mutation: Mutation } {
  const w = new WorkingCopy(seed, dir);
  const m = mutationFor(seed, campaign, i);
  w.apply(m);
  return { path: w.path, mutation: m };
}

// ---- running one case ----------------------------------------------------------------------------

export type Op = "inspect" | "verify" | "restore";

/** The error classes a reader may fail with. */
const CLEAN: [string, new (...a: any[]) => Error][] = [
  ["FormatError", FormatError],
  ["OptionError", OptionError],
  ["IntegrityError", IntegrityError],
  ["ChannelError", ChannelError],
  ["SysError", SysError],
  ["ShortIoError", ShortIoError],
];

/**
 * errnos a user can act on: the disk is full or failing, memory or descriptors ran out, a permission or
 * a missing file. Anything else from the kernel while reading a damaged file (EINVAL, EFAULT, EBADF,
 * EOVERFLOW, ...) means an offset, length or address taken from the file reached a system call unchecked:
 * the parser should have refused the file with a FormatError naming what is wrong.
 */
export const ACTIONABLE_ERRNOS = new Set(["ENOSPC", "EDQUOT", "EIO", "ENOMEM", "EMFILE", "ENFILE", "EACCES", "EPERM", "EROFS", "ENOENT", "EFBIG"]);

/**
 * Names an outcome: "ok", a clean error class, or null for an unclean error. A ChannelError is clean only
 * when it wraps an actionable errno, a short read or a channel that stopped: anything else is an error a
 * Worker threw that the pool passed on (a TypeError in a channel looks like a ChannelError from outside).
 * A SysError is clean only with an actionable errno.
 */
export function classify(e: unknown): { cls: string; clean: boolean; message: string } {
  const message = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  if (e instanceof ArgumentError) return { cls: "ArgumentError", clean: false, message };
  for (const [name, C] of CLEAN) {
    if (!(e instanceof C)) continue;
    if (e instanceof ChannelError) {
      const ok = (e.code !== undefined && ACTIONABLE_ERRNOS.has(e.code)) || /only \d+ of \d+ bytes at offset \d+/.test(e.message) || /channel \d+ stopped unexpectedly/.test(e.message);
      return { cls: name, clean: ok, message };
    }
    if (e instanceof SysError) return { cls: name, clean: ACTIONABLE_ERRNOS.has(e.code), message };
    return { cls: name, clean: true, message };
  }
  return { cls: e instanceof Error ? e.constructor.name : typeof e, clean: false, message };
}

export interface CaseFailure {
  case: number;
  seed: string;
  kind: "unclean-error" | "slow" | "hang" | "crash" | "wrote-outside" | "input-changed" | "target" | "inconsistent" | "baseline" | "restore-mismatch" | "leak";
  op?: Op;
  detail: string;
  steps: string[];
}

export interface CaseResult {
  case: number;
  seed: string;
  outcome: Record<Op, string>;
  ms: number;
  failures: CaseFailure[];
}

export interface ChildOptions {
  seeds: SeedSpec[];
  workDir: string;
  campaign: number;
  /** Cases first, first + stride, ... below end. */
  first: number;
  end: number;
  stride: number;
  restoreFraction: number;
  caseLimitMs: number;
  /** Tests of the harness: "kind@case" makes that case misbehave on purpose. */
  selfTest?: string;
}

/** Which seed case `i` uses: the first cases are the seeds unchanged, in order. */
export function seedOf(seeds: readonly Seed[], campaign: number, i: number): { seed: Seed; mutationCase: number } {
  if (i < seeds.length) return { seed: seeds[i]!, mutationCase: -1 };
  return { seed: seeds[new Rng(campaign, i, 0x5eed5).int(0, seeds.length - 1)]!, mutationCase: i };
}

interface Snapshot {
  [name: string]: string;
}

/** Names, sizes and change times of everything under `dir` (recursively), to see what a case touched. */
function snapshot(dir: string, into: Snapshot = {}, prefix = ""): Snapshot {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = `${prefix}${e.name}`;
    const full = join(dir, e.name);
    if (e.isDirectory()) {
      into[`${rel}/`] = "dir";
      snapshot(full, into, `${rel}/`);
    } else {
      const st = statSync(full, { bigint: true });
      into[rel] = `${st.size}:${st.mtimeNs}:${st.ino}`;
    }
  }
  return into;
}

function diffSnapshots(a: Snapshot, b: Snapshot, allowed: Set<string>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (allowed.has(k) || a[k] === b[k]) continue;
    out.push(a[k] === undefined ? `${k} appeared` : b[k] === undefined ? `${k} vanished` : `${k} changed`);
  }
  return out;
}

/** Runs inspect, verify and (on a fraction of cases) restore of one case, and checks what they did. */
export class CaseRunner {
  readonly copies: WorkingCopy[];
  readonly targetDir: string;
  #sinceCheck = 0;

  constructor(
    readonly seeds: Seed[],
    readonly o: Pick<ChildOptions, "workDir" | "campaign" | "restoreFraction" | "caseLimitMs" | "selfTest">,
  ) {
    this.copies = seeds.map((s) => new WorkingCopy(s, join(o.workDir, `s${s.index}`)));
    this.targetDir = join(o.workDir, "target");
    mkdirSync(this.targetDir, { recursive: true });
  }

  async run(i: number): Promise<CaseResult> {
    const { seed, mutationCase } = seedOf(this.seeds, this.o.campaign, i);
    const copy = this.copies[seed.index]!;
    const m = mutationFor(seed, this.o.campaign, mutationCase);
    const r = new Rng(this.o.campaign, i, 0x7e57);
    const baseline = mutationCase < 0;
    const res: CaseResult = { case: i, seed: seed.name, outcome: { inspect: "-", verify: "-", restore: "-" }, ms: 0, failures: [] };
    const fail = (kind: CaseFailure["kind"], detail: string, op?: Op) => res.failures.push({ case: i, seed: seed.name, kind, op, detail, steps: m.steps });
    const [selfKind, selfAt] = (this.o.selfTest ?? "").split("@");
    const selfTest = Number(selfAt) === i ? selfKind : undefined;

    copy.apply(m);
    const t0 = performance.now();
    try {
      const before = snapshot(this.o.workDir);
      const errors: Partial<Record<Op, unknown>> = {};
      const attempt = async <T>(op: Op, fn: () => T | Promise<T>): Promise<T | undefined> => {
        try {
          const v = await fn();
          res.outcome[op] = "ok";
          return v;
        } catch (e) {
          errors[op] = e;
          const c = classify(e);
          res.outcome[op] = c.cls;
          if (!c.clean) fail("unclean-error", `${c.message}${e instanceof Error && e.stack ? `\n${e.stack.split("\n").slice(1, 6).join("\n")}` : ""}`, op);
          return undefined;
        }
      };

      const report = await attempt("inspect", () => {
        if (selfTest === "type-error") (null as any).boom();
        if (selfTest === "hang") for (;;);
        if (selfTest === "crash") process.kill(process.pid, "SIGSEGV");
        if (selfTest === "slow") Bun.sleepSync(this.o.caseLimitMs + 200);
        if (selfTest === "stray-file") writeFileSync(join(copy.dir, "stray"), "x");
        return inspectFile(copy.path);
      });
      const v = await attempt("verify", () => verify({ path: copy.path }));
      const unclean = res.failures.some((f) => f.kind === "unclean-error");
      if (!unclean && !!report !== !!v && !(errors.verify instanceof OptionError) && !(errors.verify instanceof IntegrityError)) {
        fail("inconsistent", `inspect ${res.outcome.inspect}, verify ${res.outcome.verify}: ${classify(errors.inspect ?? errors.verify).message}`);
      }
      const allowed = new Set<string>();
      // Restores are spent mostly on files that still parse (the others fail at the parse inspect already ran).
      const restoreChance = report ? Math.min(1, 2 * this.o.restoreFraction) : this.o.restoreFraction / 2;
      if (baseline || r.chance(restoreChance)) await this.#restore(copy, report, r, res, fail, allowed, baseline);
      if (baseline) {
        for (const op of ["inspect", "verify"] as Op[]) {
          if (res.outcome[op] !== "ok") fail("baseline", `${op} of the unchanged seed: ${classify(errors[op]).message}`, op);
        }
        // restore reads mapped-ram files only: a classic seed must be refused by an OptionError
        const want = seed.info.ramFormat === "mapped-ram" ? "ok" : "OptionError";
        if (res.outcome.restore !== want) fail("baseline", `restore of the unchanged seed: ${res.outcome.restore}, expected ${want}`, "restore");
        if (v && !v.ok) fail("baseline", `verify of the unchanged seed says not OK: ${JSON.stringify(v.manifest ?? v.blocks).slice(0, 300)}`, "verify");
      }
      const after = snapshot(this.o.workDir);
      const changes = diffSnapshots(before, after, allowed);
      if (changes.length) {
        const inputs = changes.filter((c) => c.startsWith(`s${seed.index}/case.ram`));
        if (inputs.length) fail("input-changed", inputs.join(", "));
        const others = changes.filter((c) => !inputs.includes(c));
        if (others.length) fail("wrote-outside", others.join(", "));
      }
    } finally {
      res.ms = performance.now() - t0;
      rmSync(this.targetDir, { recursive: true, force: true });
      mkdirSync(this.targetDir);
      for (const e of readdirSync(copy.dir)) if (e !== "case.ram" && e !== "case.ram.sums") rmSync(join(copy.dir, e), { recursive: true, force: true });
      copy.revert();
    }
    if (res.ms > this.o.caseLimitMs) fail("slow", `took ${res.ms.toFixed(0)} ms (limit ${this.o.caseLimitMs} ms)`);
    if (res.failures.some((f) => f.kind === "input-changed")) copy.rebuild();
    if (++this.#sinceCheck >= 400) {
      this.#sinceCheck = 0;
      for (const c of this.copies) {
        if (!c.matchesSeed()) throw new Error(`fuzz harness: the working copy of ${c.seed.name} no longer matches its seed`);
      }
    }
    return res;
  }

  async #restore(copy: WorkingCopy, report: InspectReport | undefined, r: Rng, res: CaseResult, fail: (k: CaseFailure["kind"], d: string, op?: Op) => void, allowed: Set<string>, baseline: boolean): Promise<void> {
    const blocks = report?.blocks.filter((b) => !b.shared) ?? [];
    let chosen: { name: string; length: number | null }[];
    if (!report || blocks.length === 0) chosen = [{ name: copy.seed.info.blocks[0]?.name ?? "ram0", length: null }];
    else if (baseline || r.chance(0.6)) chosen = blocks.map((b) => ({ name: b.name, length: b.length }));
    else {
      const b = r.pick(blocks);
      chosen = [{ name: b.name, length: b.length }];
    }
    const targets = chosen.map((b, k) => ({ ...b, path: join(this.targetDir, `t${k}.raw`), preexisting: null as number | null }));
    for (const t of targets) {
      allowed.add(`target/${t.path.slice(this.targetDir.length + 1)}`);
      if (!baseline && r.chance(0.1)) {
        t.preexisting = r.pick([0, PAGE, MiB + 3 * PAGE]);
        const fd = openSync(t.path, "w");
        if (t.preexisting) writeSync(fd, new Uint8Array(t.preexisting).fill(0xa5), 0, t.preexisting, 0);
        closeSync(fd);
      }
    }
    const manifest = existsSync(copy.sums);
    const opts = {
      path: copy.path,
      blocks: targets.map((t) => ({ name: t.name, path: t.path })),
      channels: baseline ? 2 : r.int(1, 3),
      directIo: !baseline && r.chance(0.4),
      maxGap: r.pick([0, 1, 32, 4096]),
      keepHoles: r.chance(0.2),
      verify: baseline ? manifest : r.chance(manifest ? 0.6 : 0.05),
    };
    let ok = false;
    try {
      await restore(opts);
      ok = true;
      res.outcome.restore = "ok";
    } catch (e) {
      const c = classify(e);
      res.outcome.restore = c.cls;
      if (!c.clean) fail("unclean-error", `${c.message}${e instanceof Error && e.stack ? `\n${e.stack.split("\n").slice(1, 6).join("\n")}` : ""}`, "restore");
    }
    for (const t of targets) {
      const st = statSync(t.path, { throwIfNoEntry: false });
      if (ok) {
        if (!st) fail("target", `restore succeeded but ${t.path} does not exist`, "restore");
        else if (t.length !== null && st.size !== t.length) fail("target", `${t.path} is ${st.size} bytes; the file's block ${t.name} is ${t.length}`, "restore");
      } else if (t.preexisting === null && st) {
        fail("target", `restore failed (${res.outcome.restore}) but left ${t.path} (${st.size} bytes), which it created`, "restore");
      } else if (st && t.length !== null && st.size !== t.length && st.size !== t.preexisting) {
        fail("target", `after a failed restore ${t.path} is ${st.size} bytes: neither its old size ${t.preexisting} nor the block's ${t.length}`, "restore");
      } else if (st && t.length === null && st.size !== t.preexisting) {
        fail("target", `after a failed restore of an unreadable file, ${t.path} is ${st.size} bytes (was ${t.preexisting})`, "restore");
      }
    }
    if (ok && report?.ramFormat === "mapped-ram") {
      // What restore wrote must be what the file holds, page by page.
      try {
        const v = verify({ path: copy.path, blocks: targets.map((t) => ({ name: t.name, path: t.path })), manifest: undefined });
        for (const b of v.blocks) {
          if (b.image && b.differing) fail("restore-mismatch", `${b.name}: ${b.differing} pages differ from the file; first ${JSON.stringify(b.first)}`, "restore");
        }
      } catch (e) {
        if (!(e instanceof OptionError)) fail("restore-mismatch", `verify of the restored targets failed: ${classify(e).message}`, "restore");
      }
    }
  }
}

// ---- child process -------------------------------------------------------------------------------

function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

async function childMain(o: ChildOptions): Promise<void> {
  const out = (line: string) => writeSync(1, `${line}\n`);
  const seeds = o.seeds.map((s, k) => analyzeSeed(s, k));
  const runner = new CaseRunner(seeds, o);
  // One untimed run of every operation first: the first restore starts Workers cold and compiles a lot.
  await new CaseRunner([seeds[0]!], { ...o, workDir: join(o.workDir, "warm-up"), selfTest: undefined }).run(0);
  rmSync(join(o.workDir, "warm-up"), { recursive: true, force: true });
  out("R");
  let fds = -1;
  let n = 0;
  for (let i = o.first; i < o.end; i += o.stride) {
    const res = await runner.run(i);
    for (const f of res.failures) out(`F ${JSON.stringify(f)}`);
    out(`D ${i} ${res.outcome.inspect} ${res.outcome.verify} ${res.outcome.restore} ${res.ms.toFixed(1)}`);
    if (++n % 500 === 0) {
      // Descriptors must not pile up over thousands of failed operations.
      Bun.gc(true);
      const now = fdCount();
      if (fds < 0) fds = now;
      else if (now > fds + 32) out(`F ${JSON.stringify({ case: i, seed: res.seed, kind: "leak", detail: `${now - fds} more open descriptors than after 500 cases`, steps: [] } satisfies CaseFailure)}`);
    }
  }
  out("E");
}

// ---- the campaign (parent) -----------------------------------------------------------------------

export interface CampaignOptions {
  seeds: SeedSpec[];
  /** Folder for the children's working copies and targets (fast: /dev/shm). */
  workRoot: string;
  campaign: number;
  cases: number;
  /** Child processes running cases side by side. */
  jobs?: number;
  restoreFraction?: number;
  /** A case taking longer fails as "slow". */
  caseLimitMs?: number;
  /** A child silent for this long is killed and its case is a hang. */
  hangMs?: number;
  selfTest?: string;
  onProgress?: (s: CampaignStats) => void;
}

export interface CampaignStats {
  cases: number;
  seconds: number;
  restores: number;
  /** Per operation, how often each outcome ("ok" or an error class) came out. */
  outcomes: Record<Op, Record<string, number>>;
  failures: CaseFailure[];
  slowestMs: number;
  slowestCase: number;
  respawns: number;
}

const SELF = import.meta.path;

export async function runCampaign(o: CampaignOptions): Promise<CampaignStats> {
  const jobs = o.jobs ?? 2;
  const caseLimitMs = o.caseLimitMs ?? 5000;
  const hangMs = o.hangMs ?? caseLimitMs + 10_000;
  const stats: CampaignStats = { cases: 0, seconds: 0, restores: 0, outcomes: { inspect: {}, verify: {}, restore: {} }, failures: [], slowestMs: 0, slowestCase: -1, respawns: 0 };
  const t0 = performance.now();
  let lastReport = 0;

  const runChild = async (k: number): Promise<void> => {
    let next = k; // the next case this job has to run
    let spawns = 0;
    while (next < o.cases) {
      if (++spawns > 50) throw new Error(`fuzz job ${k}: its child died 50 times; giving up`);
      if (spawns > 1) stats.respawns++;
      const workDir = join(o.workRoot, `job${k}`);
      rmSync(workDir, { recursive: true, force: true });
      mkdirSync(workDir, { recursive: true });
      const childOpts: ChildOptions = { seeds: o.seeds, workDir, campaign: o.campaign, first: next, end: o.cases, stride: jobs, restoreFraction: o.restoreFraction ?? 0.1, caseLimitMs, selfTest: o.selfTest };
      const p = Bun.spawn([process.execPath, SELF, "--child", JSON.stringify(childOpts)], { cwd: workDir, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, RAMSNAP_TEST_FAULTS: "" } });
      let stderr = "";
      void (async () => {
        const dec = new TextDecoder();
        for await (const c of p.stderr) stderr = (stderr + dec.decode(c, { stream: true })).slice(-4000);
      })();
      let ready = false;
      let last = performance.now();
      let hung = false;
      let ended = false;
      const timer = setInterval(() => {
        const limit = ready ? hangMs : Math.max(hangMs, 60_000);
        if (performance.now() - last > limit) {
          hung = true;
          p.kill("SIGKILL");
        }
      }, 100);
      const dec = new TextDecoder();
      let buf = "";
      for await (const chunk of p.stdout) {
        buf += dec.decode(chunk, { stream: true });
        let nl: number;
        while ((nl = buf.indexOf("\n")) >= 0) {
          const line = buf.slice(0, nl);
          buf = buf.slice(nl + 1);
          last = performance.now();
          if (line === "R") ready = true;
          else if (line === "E") ended = true;
          else if (line.startsWith("F ")) stats.failures.push(JSON.parse(line.slice(2)));
          else if (line.startsWith("D ")) {
            const [, i, ins, ver, res, ms] = line.split(" ");
            const n = Number(i);
            next = n + jobs;
            stats.cases++;
            for (const [op, v] of [["inspect", ins], ["verify", ver], ["restore", res]] as [Op, string][]) {
              if (v === "-") continue;
              stats.outcomes[op][v] = (stats.outcomes[op][v] ?? 0) + 1;
            }
            if (res !== "-") stats.restores++;
            if (Number(ms) > stats.slowestMs) {
              stats.slowestMs = Number(ms);
              stats.slowestCase = n;
            }
            const now = performance.now();
            if (o.onProgress && now - lastReport > 2000) {
              lastReport = now;
              stats.seconds = (now - t0) / 1000;
              o.onProgress(stats);
            }
          }
        }
      }
      const code = await p.exited;
      clearInterval(timer);
      if (ended && code === 0) break;
      // The child hung or died in case `next`: record it, and carry on after it.
      const steps = describeCase(o, next);
      const signal = p.signalCode;
      stats.failures.push({
        case: next,
        seed: steps.seed,
        kind: hung ? "hang" : "crash",
        detail: hung ? `no answer for ${hangMs} ms; killed` : `child exited with ${signal ?? `code ${code}`}${ready ? "" : " before it was ready"}: ${stderr.trim().split("\n").slice(-6).join(" | ")}`,
        steps: steps.steps,
      });
      if (!ready) throw new Error(`fuzz child could not start: ${stderr.trim()}`);
      stats.cases++;
      next += jobs;
    }
  };
  await Promise.all(Array.from({ length: jobs }, (_, k) => runChild(k)));
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}

/** The seed and mutation steps of a case, without running it (for reports of hangs and crashes). */
function describeCase(o: Pick<CampaignOptions, "seeds" | "campaign">, i: number): { seed: string; steps: string[] } {
  try {
    const seeds = o.seeds.map((s, k) => analyzeSeed(s, k));
    const { seed, mutationCase } = seedOf(seeds, o.campaign, i);
    return { seed: seed.name, steps: mutationFor(seed, o.campaign, mutationCase).steps };
  } catch (e) {
    return { seed: "?", steps: [`(could not describe: ${(e as Error).message})`] };
  }
}

export function formatStats(s: CampaignStats): string {
  const ops = (["inspect", "verify", "restore"] as Op[]).map((op) => {
    const parts = Object.entries(s.outcomes[op])
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`);
    return `  ${op}: ${parts.join(", ") || "(not run)"}`;
  });
  return [
    `${s.cases} cases in ${s.seconds.toFixed(1)} s (${(s.cases / Math.max(s.seconds, 1e-9)).toFixed(0)} cases/s), ${s.restores} with restore; slowest case ${s.slowestCase} took ${s.slowestMs.toFixed(0)} ms; ${s.respawns} child restarts`,
    ...ops,
    `  failures: ${s.failures.length}`,
  ].join("\n");
}

export function formatFailure(f: CaseFailure, campaign: number): string {
  return `case ${f.case} (${f.seed}) ${f.kind}${f.op ? ` in ${f.op}` : ""}: ${f.detail}\n    mutation: ${f.steps.join("; ") || "(none)"}\n    replay: bun scripts/fuzz.ts --seed ${campaign} --case ${f.case}`;
}

// ---- the corpus ----------------------------------------------------------------------------------

/**
 * Makes the seed files in `dir`: two QEMU saves of a small guest whose RAM is mostly zero (mapped-ram with
 * multifd, and classic), and ramsnap's own files: a save of a 32 MiB mostly-zero image (four channel jobs),
 * a save of the guest's RAM and a short second block with a manifest, `save --like` of the QEMU file with a
 * manifest, and a classic conversion of the QEMU file.
 *
 * The guest is 16 MiB by default: a parse of a file with device sections reads up to 16 MiB at its end to
 * find the trailer, and that read is most of a case's time, so the files stay below that.
 */
export async function makeCorpus(dir: string, ramMiB = 16): Promise<SeedSpec[]> {
  // Loaded here, not at the top: children never start guests (the QEMU helper starts a janitor on import).
  const q = await import("./qemu.ts");
  const { save } = await import("../../src/save.ts");
  const { rewrite } = await import("../../src/rewrite.ts");
  mkdirSync(dir, { recursive: true });
  const pattern = q.makePattern(ramMiB * MiB, { seed: 2024, kind: "clustered", nonZeroFraction: 0.05 });
  const ram = join(dir, "ram0.img");
  const specs: SeedSpec[] = [];
  for (const [name, file, how] of [
    ["qemu-mapped", "qemu-mapped.ram", { mappedRam: true, multifd: true, channels: 2 }],
    ["qemu-classic", "qemu-classic.sav", { mappedRam: false }],
  ] as const) {
    const g = await q.startGuest({ name: "fuzz-seed", ramMiB, pattern });
    try {
      await q.migrateToFile(g, `file:${join(dir, file)}`, how);
      if (!existsSync(ram)) writeFileSync(ram, await q.shmBytes(g));
    } finally {
      await g.stop();
    }
    specs.push({ name, path: join(dir, file), manifest: false });
  }
  const small = join(dir, "small.img");
  const smallBytes = new Uint8Array(2 * MiB + 5 * PAGE);
  for (let p = 0; p < smallBytes.length; p += 3 * PAGE) smallBytes.fill((p / PAGE) & 0xff | 1, p, p + 64);
  writeFileSync(small, smallBytes);
  const big = join(dir, "big.img");
  const { writeImage } = await import("./scratch.ts");
  writeImage(big, 32 * MiB, { kind: "clustered", seed: 2025, nonZero: 0.15 });
  await save({ path: join(dir, "ramsnap.ram"), blocks: [{ name: "ram0", path: big }], channels: 2 });
  specs.push({ name: "ramsnap", path: join(dir, "ramsnap.ram"), manifest: false });
  await save({ path: join(dir, "ramsnap-sums.ram"), blocks: [{ name: "ram0", path: ram }, { name: "extra", path: small }], channels: 2, manifest: true });
  specs.push({ name: "ramsnap-sums", path: join(dir, "ramsnap-sums.ram"), manifest: true });
  await rewrite({ input: specs[0]!.path, output: join(dir, "ramsnap-like.ram"), to: "mapped-ram", replace: [{ name: "ram0", path: ram }], channels: 2, manifest: true });
  specs.push({ name: "ramsnap-like", path: join(dir, "ramsnap-like.ram"), manifest: true });
  await rewrite({ input: specs[0]!.path, output: join(dir, "ramsnap-classic.sav"), to: "classic", channels: 1 });
  specs.push({ name: "ramsnap-classic", path: join(dir, "ramsnap-classic.sav"), manifest: false });
  return specs;
}

if (import.meta.main && process.argv[2] === "--child") {
  await childMain(JSON.parse(process.argv[3]!) as ChildOptions);
}
