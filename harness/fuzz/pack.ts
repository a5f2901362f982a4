// Fuzzing packs (docs/pack-format.md): seeds made by ramsnap from synthetic RAM, pack-aware damage, and one
// case run and judged. A pack hashes every extent, and its footer hashes the main stream record and the
// index, so the rule is strict:
//   - "raw" damage (bytes changed, cut or added, hashes left as they were): every operation either fails
//     with a clean error or gives exactly the original RAM (restore, extract) and the original image
//     (convert --to mapped-ram). Only bytes no hash covers and no reader needs (reserved ones) may change
//     and still pass.
//   - "forged" damage (the hashes recomputed after the change, so the index, the main stream and the
//     extents' contents reach the checks behind the hashes): every operation either fails cleanly or
//     succeeds, and what succeeds agrees with itself (restore, extract and convert give the same pages).
// Either way: no crash, no hang, no unclean error, no target left behind by a failed operation.
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { convert } from "../../src/convert/index.ts";
import { extract } from "../../src/extract.ts";
import { PackError } from "../../src/format/errors.ts";
import { storedHash } from "../../src/format/pack-extent.ts";
import { decodeFooter, decodeHeader, decodeIndex, encodeFooter, indexEntrySize, type PackExtent, type PackFooter } from "../../src/format/pack.ts";
import { inspectPack } from "../../src/inspect.ts";
import { restore } from "../../src/restore.ts";
import { save } from "../../src/save.ts";
import { verify, verifyPack } from "../../src/verify.ts";
import { writeImage } from "../scratch.ts";
import { MiB, PAGE } from "../units.ts";
import { classify, uncleanDetail } from "./outcomes.ts";
import { Rng } from "./rng.ts";

export interface PackSeedSpec {
  name: string;
  /** The pack. */
  path: string;
  /** The RAM images it was saved from, by block. */
  blocks: { name: string; path: string }[];
  /** The mapped-ram file the pack stands for (convert --to mapped-ram of the pack, checked against save). */
  image: string;
}

/**
 * Seed packs in `dir`: a zstd pack of two blocks (one not a multiple of 1 MiB, with empty extents), the same
 * RAM with --compress none, and a pack of random RAM (raw extents, one block). Small, so a case is quick.
 */
export async function makePackCorpus(dir: string): Promise<PackSeedSpec[]> {
  mkdirSync(dir, { recursive: true });
  const ram0 = join(dir, "ram0.img");
  writeImage(ram0, 4 * MiB, { kind: "scattered", seed: 7101, nonZero: 0.2 });
  const ram1 = join(dir, "ram1.img");
  writeImage(ram1, 3 * MiB + 3 * PAGE, { kind: "clustered", seed: 404, nonZero: 0.5 }); // first 2 MiB zero
  const rnd = join(dir, "random.img");
  const r = new Rng(7103);
  writeFileSync(rnd, new Uint8Array(new Uint32Array((2 * MiB) / 4).map(() => r.u32()).buffer));
  const two = [
    { name: "ram0", path: ram0 },
    { name: "ram1", path: ram1 },
  ];
  const specs: PackSeedSpec[] = [];
  for (const [name, blocks, compression] of [
    ["pack-zstd", two, { kind: "zstd", level: 3 }],
    ["pack-none", two, { kind: "none" }],
    ["pack-random", [{ name: "ram0", path: rnd }], { kind: "zstd", level: 1 }],
  ] as const) {
    const path = join(dir, `${name}.rpk`);
    await save({ path, blocks: [...blocks], compression, channels: 2 });
    const image = join(dir, `${name}.ram`);
    await convert({ input: path, output: image, to: "mapped-ram", channels: 1 });
    specs.push({ name, path, blocks: [...blocks], image });
  }
  return specs;
}

// ---- a seed, analysed ------------------------------------------------------------------------------

export interface PackSeed extends PackSeedSpec {
  index: number;
  bytes: Uint8Array;
  footer: PackFooter;
  entries: PackExtent[];
  entrySize: number;
  /** The RAM of each block, and the image, as they must come back. */
  ram: Uint8Array[];
  imageBytes: Uint8Array;
}

export function analyzePackSeed(s: PackSeedSpec, index: number): PackSeed {
  const bytes = new Uint8Array(readFileSync(s.path));
  const header = decodeHeader(bytes.subarray(0, 64), s.path);
  const footer = decodeFooter(bytes.subarray(bytes.length - 64), bytes.length, header.extentPages, s.path);
  const entries = decodeIndex(bytes.subarray(footer.indexOffset, bytes.length - 64), footer, header.extentPages, s.path);
  return {
    ...s,
    index,
    bytes,
    footer,
    entries,
    entrySize: indexEntrySize(header.extentPages),
    ram: s.blocks.map((b) => new Uint8Array(readFileSync(b.path))),
    imageBytes: new Uint8Array(readFileSync(s.image)),
  };
}

// ---- damage ------------------------------------------------------------------------------------------

export interface PackMutation {
  /** The damaged pack. */
  bytes: Uint8Array;
  steps: string[];
  /** Hashes recomputed after the change: the pages may legitimately differ from the seed's. */
  forged: boolean;
}

type Region = { at: number; width: number; label: string };

/** The pack's fields, each a byte range with a name. */
function fieldsOf(s: PackSeed): Region[] {
  const f = s.bytes.length - 64;
  const out: Region[] = [
    { at: 0, width: 8, label: "header magic" },
    { at: 8, width: 4, label: "header version" },
    { at: 12, width: 4, label: "header page size" },
    { at: 16, width: 4, label: "header extent pages" },
    { at: 20, width: 44, label: "header reserved" },
    { at: f, width: 8, label: "footer magic" },
    { at: f + 8, width: 4, label: "footer version" },
    { at: f + 12, width: 4, label: "footer main encoding" },
    { at: f + 16, width: 8, label: "footer main offset" },
    { at: f + 24, width: 8, label: "footer main stored length" },
    { at: f + 32, width: 8, label: "footer main length" },
    { at: f + 40, width: 8, label: "footer index offset" },
    { at: f + 48, width: 4, label: "footer index entries" },
    { at: f + 52, width: 4, label: "footer reserved" },
    { at: f + 56, width: 8, label: "footer hash" },
    { at: s.footer.mainOffset, width: s.footer.mainStoredLength, label: "main stream record" },
  ];
  for (let i = 0; i < s.entries.length; i++) out.push(...entryFields(s, i));
  for (const e of s.entries) out.push({ at: e.storedOffset, width: e.storedLength, label: `block ${e.block} extent ${e.extent} stored bytes` });
  return out;
}

/** The fields of index entry `i`, as they lie in the pack. */
function entryFields(s: PackSeed, i: number, base = s.footer.indexOffset): Region[] {
  const at = base + i * s.entrySize;
  return [
    { at, width: 4, label: `entry ${i} block` },
    { at: at + 4, width: 4, label: `entry ${i} extent` },
    { at: at + 8, width: 8, label: `entry ${i} stored offset` },
    { at: at + 16, width: 4, label: `entry ${i} stored length` },
    { at: at + 20, width: 1, label: `entry ${i} encoding` },
    { at: at + 21, width: 3, label: `entry ${i} reserved` },
    { at: at + 24, width: 8, label: `entry ${i} hash` },
    { at: at + 32, width: s.entrySize - 32, label: `entry ${i} present bits` },
  ];
}

/** A little-endian value for a field of `width` bytes: an extreme, or one near a size of the pack. */
function valueFor(s: PackSeed, r: Rng, width: number, old: bigint): bigint {
  const max = (1n << BigInt(8 * width)) - 1n;
  const size = BigInt(s.bytes.length);
  const v = r.pick([0n, 1n, 2n, 63n, 64n, 65n, 255n, 256n, 4095n, 4096n, 0xffffn, 0x10000n, 2n ** 31n, 2n ** 32n - 1n, 2n ** 32n, 2n ** 53n, 2n ** 63n, size, size - 64n, size - 65n, old + 1n, old - 1n, old * 2n, old + 4096n, BigInt(r.u32())]);
  return ((v % (max + 1n)) + max + 1n) % (max + 1n);
}

function readLe(b: Uint8Array, at: number, width: number): bigint {
  let v = 0n;
  for (let i = width - 1; i >= 0; i--) v = (v << 8n) | BigInt(b[at + i] ?? 0);
  return v;
}

function writeLe(b: Uint8Array, at: number, width: number, v: bigint): void {
  for (let i = 0; i < width; i++) b[at + i] = Number((v >> BigInt(8 * i)) & 0xffn);
}

/** Recomputes the footer's hash of [mainOffset, footer) (and nothing else). */
function rehashFooter(b: Uint8Array): void {
  const f = b.length - 64;
  const mainOffset = Number(readLe(b, f + 16, 8));
  if (mainOffset > f) return;
  writeLe(b, f + 56, 8, BigInt(`0x${storedHash(b.subarray(mainOffset, f))}`));
}

type Mutator = { name: string; weight: number; forged: boolean; apply(s: PackSeed, r: Rng, b: Uint8Array, steps: string[]): Uint8Array };

const MUTATORS: Mutator[] = [
  {
    name: "flip",
    weight: 20,
    forged: false,
    apply(s, r, b, steps) {
      const f = r.pick(fieldsOf(s));
      const at = f.at + r.int(0, f.width - 1);
      const bit = r.int(0, 7);
      b[at]! ^= 1 << bit;
      steps.push(`flip bit ${bit} @${at} (${f.label})`);
      return b;
    },
  },
  {
    name: "set",
    weight: 14,
    forged: false,
    apply(s, r, b, steps) {
      const f = r.pick(fieldsOf(s).filter((x) => x.width <= 8));
      const v = valueFor(s, r, f.width, readLe(b, f.at, f.width));
      writeLe(b, f.at, f.width, v);
      steps.push(`set ${f.label} @${f.at} to ${v}`);
      return b;
    },
  },
  {
    name: "truncate",
    weight: 12,
    forged: false,
    apply(s, r, b, steps) {
      const marks = [0, 1, 8, 63, 64, 65, s.footer.mainOffset, s.footer.indexOffset, b.length - 64, b.length - 1, ...s.entries.flatMap((e) => [e.storedOffset, e.storedOffset + e.storedLength])];
      const to = Math.max(0, Math.min(b.length - 1, r.chance(0.7) ? r.pick(marks) + r.int(-2, 2) : r.int(0, b.length - 1)));
      steps.push(`truncate to ${to}`);
      return b.slice(0, to);
    },
  },
  {
    name: "extend",
    weight: 4,
    forged: false,
    apply(_s, r, b, steps) {
      const n = r.pick([1, 7, 64, PAGE, 65]);
      const out = new Uint8Array(b.length + n);
      out.set(b);
      if (r.chance(0.5)) out.set(b.subarray(b.length - Math.min(n, 64)), b.length + n - Math.min(n, 64)); // a second footer at the new end
      steps.push(`extend by ${n} bytes`);
      return out;
    },
  },
  {
    name: "forge index",
    weight: 20,
    forged: true,
    apply(s, r, b, steps) {
      const i = r.int(0, s.entries.length - 1);
      const f = r.pick(entryFields(s, i).filter((x) => !x.label.endsWith("hash")));
      if (f.width > 8 || r.chance(0.3)) {
        const at = f.at + r.int(0, f.width - 1);
        const v = r.pick([0, 0xff, 1 << r.int(0, 7), b[at]! ^ (1 << r.int(0, 7))]);
        b[at] = v;
        steps.push(`forged: set byte @${at} (${f.label}) to 0x${v.toString(16)}`);
      } else {
        const other = s.entries[r.int(0, s.entries.length - 1)]!;
        const fromOther = readLe(b, f.at - i * s.entrySize + s.entries.indexOf(other) * s.entrySize, f.width);
        const v = r.chance(0.3) ? fromOther : valueFor(s, r, f.width, readLe(b, f.at, f.width));
        writeLe(b, f.at, f.width, v);
        steps.push(`forged: set ${f.label} @${f.at} to ${v}`);
      }
      rehashFooter(b);
      return b;
    },
  },
  {
    name: "forge swap",
    weight: 6,
    forged: true,
    apply(s, r, b, steps) {
      // Two entries trade their stored bytes (offset, length, encoding, hash): each still checks out.
      const i = r.int(0, s.entries.length - 1);
      const j = r.int(0, s.entries.length - 1);
      const at = (k: number) => s.footer.indexOffset + k * s.entrySize;
      const a = b.slice(at(i) + 8, at(i) + 32);
      b.copyWithin(at(i) + 8, at(j) + 8, at(j) + 32);
      b.set(a, at(j) + 8);
      steps.push(`forged: entries ${i} and ${j} swap their stored bytes`);
      rehashFooter(b);
      return b;
    },
  },
  {
    name: "forge extent",
    weight: 12,
    forged: true,
    apply(s, r, b, steps) {
      // An extent's bytes changed and its hash made to match: the decoder and the size check are next.
      const i = r.int(0, s.entries.length - 1);
      const e = s.entries[i]!;
      const how = r.int(0, 2);
      if (how === 0) {
        const at = e.storedOffset + r.int(0, e.storedLength - 1);
        b[at]! ^= 1 << r.int(0, 7);
        steps.push(`forged: flip a bit @${at} in entry ${i}'s stored bytes`);
      } else if (how === 1) {
        b[at0(s, i) + 20] = e.encoding ^ 1;
        steps.push(`forged: entry ${i}'s encoding set to ${e.encoding ^ 1}`);
      } else {
        // a valid zstd frame of another size in place of the extent (as much as fits)
        const frame = Bun.zstdCompressSync(new Uint8Array(r.pick([0, 1, PAGE - 1, PAGE, 2 * PAGE, 300 * PAGE])));
        const n = Math.min(frame.length, e.storedLength);
        b.set(frame.subarray(0, n), e.storedOffset);
        writeLe(b, at0(s, i) + 16, 4, BigInt(n));
        b[at0(s, i) + 20] = 1;
        steps.push(`forged: entry ${i}'s bytes replaced by a zstd frame of ${frame.length} bytes (${n} kept)`);
      }
      const len = Number(readLe(b, at0(s, i) + 16, 4));
      writeLe(b, at0(s, i) + 24, 8, BigInt(`0x${storedHash(b.subarray(e.storedOffset, e.storedOffset + len))}`));
      rehashFooter(b);
      return b;
    },
  },
  {
    name: "forge main",
    weight: 10,
    forged: true,
    apply(s, r, b, steps) {
      // The main stream record decoded, changed, stored again (zstd or raw), the footer made to fit.
      const f = s.footer;
      const record = Bun.zstdDecompressSync(b.subarray(f.mainOffset, f.mainOffset + f.mainStoredLength));
      const how = r.int(0, 3);
      if (how <= 1) {
        const count = new DataView(record.buffer, record.byteOffset).getUint32(0, true);
        const at = how === 0 ? r.int(0, Math.min(record.length - 1, 4 + 16 * count - 1)) : r.int(0, record.length - 1);
        const v = r.pick([0, 0xff, 0x80, 1, record[at]! ^ (1 << r.int(0, 7))]);
        record[at] = v;
        steps.push(`forged: main stream record byte ${at} (${how === 0 ? "segment table" : "anywhere"}) set to 0x${v.toString(16)}`);
      } else if (how === 2) {
        const at = r.int(0, record.length - 1);
        steps.push(`forged: main stream record cut to ${at} bytes`);
        return withMain(s, b, record.subarray(0, at), r, steps);
      } else {
        steps.push("forged: main stream record unchanged, stored again");
      }
      return withMain(s, b, record, r, steps);
    },
  },
];

const at0 = (s: PackSeed, i: number) => s.footer.indexOffset + i * s.entrySize;

/** The pack with `record` as its main stream (zstd or raw), the index after it and a footer that fits. */
function withMain(s: PackSeed, b: Uint8Array, record: Uint8Array, r: Rng, steps: string[]): Uint8Array {
  const raw = r.chance(0.3);
  const stored = raw ? record : Bun.zstdCompressSync(record);
  if (raw) steps.push("forged: main stream stored raw");
  const f = s.footer;
  const index = b.slice(f.indexOffset, b.length - 64);
  const out = new Uint8Array(f.mainOffset + stored.length + index.length + 64);
  out.set(b.subarray(0, f.mainOffset));
  out.set(stored, f.mainOffset);
  out.set(index, f.mainOffset + stored.length);
  const footer = encodeFooter({ ...f, mainEncoding: raw ? 0 : 1, mainStoredLength: stored.length, mainLength: record.length, indexOffset: f.mainOffset + stored.length });
  out.set(footer, out.length - 64);
  rehashFooter(out);
  return out;
}

/** Case `i`'s damage to `seed`: one to three steps; a negative `i` is the seed unchanged. */
export function packMutationFor(seed: PackSeed, campaign: number, i: number): PackMutation {
  const m: PackMutation = { bytes: seed.bytes.slice(), steps: [], forged: false };
  if (i < 0) return m;
  const r = new Rng(campaign, i, 0x9acc);
  const table = MUTATORS.map((x) => [x.weight, x] as [number, Mutator]);
  const n = r.chance(0.75) ? 1 : r.int(2, 3);
  for (let k = 0; k < n; k++) {
    const mu = r.weighted(table);
    // Forging works on the seed's layout: only as the first step, on the seed's own bytes.
    if (mu.forged && k > 0) continue;
    m.bytes = mu.apply(seed, r, m.bytes, m.steps);
    m.forged ||= mu.forged;
  }
  return m;
}

/** Which seed case `i` uses: the first cases are the seeds unchanged. */
export function packSeedOf(seeds: readonly PackSeed[], campaign: number, i: number): { seed: PackSeed; mutationCase: number } {
  if (i < seeds.length) return { seed: seeds[i]!, mutationCase: -1 };
  return { seed: seeds[new Rng(campaign, i, 0x9acc5).int(0, seeds.length - 1)]!, mutationCase: i };
}

// ---- one case ----------------------------------------------------------------------------------------

export type PackOp = "inspect" | "verify" | "restore" | "extract" | "convert";
export const PACK_OPS: PackOp[] = ["inspect", "verify", "restore", "extract", "convert"];

export interface PackCaseFailure {
  case: number;
  seed: string;
  kind: "unclean-error" | "wrong-bytes" | "left-behind" | "inconsistent" | "baseline" | "slow";
  op?: PackOp;
  detail: string;
  steps: string[];
}

export interface PackCaseResult {
  case: number;
  seed: string;
  forged: boolean;
  outcome: Record<PackOp, string>;
  ms: number;
  failures: PackCaseFailure[];
}

/**
 * Clean errors for packs: the readers' own (outcomes.ts) and PackError. A PackError a channel throws (a
 * corrupt extent, found as the channel reads it) reaches the caller as a ChannelError with the PackError's
 * message and no errno (channels/pool.ts passes on the message only): counted apart, as
 * "ChannelError(pack)", and clean only when the message is one of loadExtent's (format/pack-extent.ts).
 */
export function classifyPack(e: unknown): { cls: string; clean: boolean; message: string } {
  if (e instanceof PackError) return { cls: "PackError", clean: true, message: `${e.name}: ${e.message}` };
  const c = classify(e);
  if (c.cls === "ChannelError" && !c.clean && PACK_EXTENT_MESSAGE.test(c.message)) return { ...c, cls: "ChannelError(pack)", clean: true };
  return c;
}

const PACK_EXTENT_MESSAGE = /^ChannelError: \S+: block \d+, extent \d+ \(stored at \d+, \d+ bytes\): (only \d+ bytes could be read|its bytes do not match their hash|zstd cannot decode it|holds \d+ bytes of pages, its index entry says \d+)/;

const same = (a: Uint8Array, b: Uint8Array) => a.length === b.length && Buffer.compare(a, b) === 0;

/** Runs the five operations on case `i` in `dir` (emptied first) and judges them. */
export async function runPackCase(seeds: PackSeed[], campaign: number, i: number, dir: string, caseLimitMs = 5000): Promise<PackCaseResult> {
  const { seed, mutationCase } = packSeedOf(seeds, campaign, i);
  const m = packMutationFor(seed, campaign, mutationCase);
  const res: PackCaseResult = { case: i, seed: seed.name, forged: m.forged, outcome: { inspect: "-", verify: "-", restore: "-", extract: "-", convert: "-" }, ms: 0, failures: [] };
  const fail = (kind: PackCaseFailure["kind"], detail: string, op?: PackOp) => res.failures.push({ case: i, seed: seed.name, kind, op, detail, steps: m.steps });
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const path = join(dir, "case.rpk");
  writeFileSync(path, m.bytes);
  const t0 = performance.now();
  const attempt = async <T>(op: PackOp, fn: () => Promise<T>): Promise<T | undefined> => {
    try {
      const v = await fn();
      res.outcome[op] = "ok";
      return v;
    } catch (e) {
      const c = classifyPack(e);
      res.outcome[op] = c.cls;
      if (!c.clean) fail("unclean-error", uncleanDetail(e), op);
      else if (c.message.includes("\n")) fail("unclean-error", `a message of several lines: ${JSON.stringify(c.message)}`, op);
      return undefined;
    }
  };

  const report = await attempt("inspect", () => inspectPack(path));
  const v = await attempt("verify", () => verifyPack({ path }));
  // Targets: fresh files, all blocks the seed has.
  const targets = seed.blocks.map((b, k) => ({ name: b.name, path: join(dir, `t${k}.raw`) }));
  const restored = await attempt("restore", () => restore({ path, blocks: targets, channels: 1 + (i % 2) }));
  const exDir = join(dir, "extract");
  const extracted = await attempt("extract", () => extract({ path, dir: exDir, channels: 1 }));
  const out = join(dir, "out.ram");
  const converted = await attempt("convert", () => convert({ input: path, output: out, to: "mapped-ram", channels: 1 }));
  res.ms = performance.now() - t0;

  // Nothing left behind by a failure; nothing stray beside the pack.
  if (!restored) for (const t of targets) if (existsSync(t.path)) fail("left-behind", `restore failed (${res.outcome.restore}) but ${t.path} exists`, "restore");
  if (!extracted && existsSync(exDir)) {
    const left = readdirSync(exDir);
    if (left.length) fail("left-behind", `extract failed (${res.outcome.extract}) but left ${left.join(", ")}`, "extract");
  }
  if (!converted && existsSync(out)) fail("left-behind", `convert failed (${res.outcome.convert}) but ${out} exists`, "convert");
  const stray = readdirSync(dir).filter((n) => n.endsWith(".tmp"));
  if (stray.length) fail("left-behind", `temporary files: ${stray.join(", ")}`);

  // What succeeded.
  const ram = targets.map((t) => (existsSync(t.path) ? new Uint8Array(readFileSync(t.path)) : null));
  if (!m.forged) {
    if (restored) for (const [k, b] of ram.entries()) if (b && !same(b, seed.ram[k]!)) fail("wrong-bytes", `restore: block ${targets[k]!.name} differs from the RAM that was saved`, "restore");
    if (extracted) for (const [k, b] of seed.blocks.entries()) {
      const f = join(exDir, `${b.name}.raw`);
      if (!existsSync(f) || !same(new Uint8Array(readFileSync(f)), seed.ram[k]!)) fail("wrong-bytes", `extract: ${b.name}.raw differs from the RAM that was saved`, "extract");
    }
    if (converted && !same(new Uint8Array(readFileSync(out)), seed.imageBytes)) fail("wrong-bytes", "convert: the mapped-ram file differs from the pack's image", "convert");
    if (v && restored === undefined && res.outcome.restore === "PackError") fail("inconsistent", `verify passed, restore failed: ${res.outcome.restore}`);
  } else {
    // Forged: pages may differ from the seed's, but every reader must see the same ones.
    if (restored && extracted) for (const [k, t] of targets.entries()) {
      const f = join(exDir, `${t.name.replace(/\//g, "_")}.raw`);
      if (existsSync(f) && ram[k] && !same(new Uint8Array(readFileSync(f)), ram[k]!)) fail("inconsistent", `restore and extract disagree on block ${t.name}`);
    }
    if (restored && converted) {
      try {
        const vr = verify({ path: out, blocks: restored.blocks.map((b) => ({ name: b.name, path: b.target })) });
        for (const b of vr.blocks) if (b.differing) fail("inconsistent", `restore and convert disagree on block ${b.name}: ${b.differing} pages`);
      } catch (e) {
        fail("inconsistent", `the converted file does not verify against the restored targets: ${classifyPack(e).message}`);
      }
    }
  }
  if (restored) for (const t of targets) {
    const want = report?.blocks.find((b) => b.name === t.name)?.length;
    if (want !== undefined && existsSync(t.path) && statSync(t.path).size !== want) fail("wrong-bytes", `${t.path} is ${statSync(t.path).size} bytes, block ${t.name} is ${want}`, "restore");
  }
  if (!!report !== !!v && !(res.outcome.verify === "PackError" && report)) fail("inconsistent", `inspect ${res.outcome.inspect}, verify ${res.outcome.verify}`);
  if (mutationCase < 0) for (const op of PACK_OPS) if (res.outcome[op] !== "ok") fail("baseline", `${op} of the unchanged seed: ${res.outcome[op]}`, op);
  if (res.ms > caseLimitMs) fail("slow", `took ${res.ms.toFixed(0)} ms (limit ${caseLimitMs} ms)`);
  return res;
}

/** The pack of case `i`, written to `path` (for a replay through the CLI). */
export function materializePackCase(seeds: PackSeed[], campaign: number, i: number, path: string): PackMutation {
  const { seed, mutationCase } = packSeedOf(seeds, campaign, i);
  const m = packMutationFor(seed, campaign, mutationCase);
  writeFileSync(path, m.bytes);
  return m;
}

export function formatPackFailure(f: PackCaseFailure, campaign: number): string {
  return `case ${f.case} (${f.seed}) ${f.kind}${f.op ? ` in ${f.op}` : ""}: ${f.detail}\n    mutation: ${f.steps.join("; ") || "(none)"}\n    replay: bun harness/fuzz/pack-campaign.ts --seed ${campaign} --case ${f.case}`;
}
