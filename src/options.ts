// Every rule about options, checked before any I/O: defaults, ranges, and which options go together
// (the counterpart of QEMU's migration/options.c, which keeps policy apart from opening files). Nothing
// here touches a file or a descriptor: opening and proving O_DIRECT is io/direct.ts, handed-over
// descriptors are checked in io/descriptors.ts.
import type { Compression } from "./format/pack-extent.ts";
import { OptionError } from "./errors.ts";
import type { BlockSpec } from "./format/layout.ts";

export const MAX_CHANNELS = 64;
export const DEFAULT_CHANNELS = 4;
/** Pages per channel job: 8 MiB, a multiple of 64 pages so each job owns whole bitmap words. */
export const CHUNK_PAGES = 2048;
/**
 * zstd level of a pack's extents by default. Level 1 keeps a pack save near a mapped-ram save's speed
 * (bench/PACK.md); higher levels trade time for size.
 */
export const DEFAULT_ZSTD_LEVEL = 1;
export const MAX_ZSTD_LEVEL = 19;

/** `--compress zstd[:LEVEL]|none`, as the pack writer takes it. */
export function parseCompression(text: string | undefined): Compression | undefined {
  if (text === undefined) return undefined;
  if (text === "none") return { kind: "none" };
  const m = /^zstd(?::(\d+))?$/.exec(text);
  const level = m ? Number(m[1] ?? DEFAULT_ZSTD_LEVEL) : Number.NaN;
  if (!m || level < 1 || level > MAX_ZSTD_LEVEL) throw new OptionError(`--compress ${text}: say zstd, zstd:LEVEL (1 to ${MAX_ZSTD_LEVEL}) or none`);
  return { kind: "zstd", level };
}
/** Absent pages bridged by one I/O call (see channels/plan.ts): 128 KiB costs less than another call. */
export const DEFAULT_MAX_GAP = 32;

export function checkChannels(channels: number, directIo: boolean): void {
  if (!Number.isInteger(channels) || channels < 0 || channels > MAX_CHANNELS) {
    throw new OptionError(`--channels must be a whole number from 1 to ${MAX_CHANNELS}, got ${channels}`);
  }
  if (channels === 0) {
    throw new OptionError(
      directIo
        ? "--direct-io needs at least one channel: the main descriptor never uses O_DIRECT (its records are small and unaligned)"
        : "--channels must be at least 1",
    );
  }
}

export function checkBlocks(blocks: readonly BlockSpec[], pageSize: number): void {
  if (blocks.length === 0) throw new OptionError("no RAM blocks given (use --block NAME=PATH)");
  const seen = new Set<string>();
  for (const b of blocks) {
    const bytes = new TextEncoder().encode(b.name).length;
    if (bytes === 0 || bytes > 255) throw new OptionError(`block name "${b.name}" must be 1 to 255 bytes`);
    if (seen.has(b.name)) throw new OptionError(`block ${b.name} is given twice`);
    seen.add(b.name);
    if (b.length === 0) throw new OptionError(`block ${b.name} is empty`);
    if (b.length % pageSize !== 0) {
      throw new OptionError(`block ${b.name} is ${b.length} bytes, not a whole number of ${pageSize}-byte pages`);
    }
  }
}

/**
 * The blocks of `file` that `names` name, in the order given: each name once, each one a block the file
 * has. The one rule restore, verify, extract and convert apply to the block names a user gives.
 */
export function matchBlocks<B extends { name: string }>(file: string, blocks: readonly B[], names: readonly string[]): B[] {
  const seen = new Set<string>();
  return names.map((name) => {
    if (seen.has(name)) throw new OptionError(`block ${name} is given twice`);
    seen.add(name);
    const b = blocks.find((x) => x.name === name);
    if (!b) throw new OptionError(`${file} has no RAM block named ${name}; it has ${blocks.map((x) => x.name).join(", ")}`);
    return b;
  });
}

/** A block's pages come from, or go to, a path or a buffer: exactly one of them. */
export function checkOneOf(block: { name: string; path?: string; buffer?: Uint8Array }, what: string): void {
  if (block.buffer && block.path) throw new OptionError(`block ${block.name}: give a path or a buffer, not both`);
  if (!block.buffer && !block.path) throw new OptionError(`block ${block.name}: no ${what} (a path or a buffer)`);
}

export function checkOffset(offset: number): void {
  if (!Number.isSafeInteger(offset) || offset < 0) throw new OptionError(`--offset must be a whole number of bytes, got ${offset}`);
}

/** Parses NAME=PATH as given to --block. */
export function parseBlockArg(arg: string): { name: string; path: string } {
  const i = arg.indexOf("=");
  if (i <= 0 || i === arg.length - 1) throw new OptionError(`--block ${arg}: expected NAME=PATH, e.g. --block ram0=/dev/shm/guest-ram`);
  return { name: arg.slice(0, i), path: arg.slice(i + 1) };
}

export type Access = "write" | "read";

/** Where a save file is and how its pages move: what save, restore, convert and extract share. */
export interface TransferChoice {
  path?: string;
  fd?: number;
  directFd?: number;
  directIo?: boolean;
  channels?: number;
  offset?: number;
  maxGap?: number;
}

export interface Transfer {
  channels: number;
  directIo: boolean;
  offset: number;
  maxGap: number;
}

/**
 * The rules save and restore share: where the file is (a path, or descriptors handed over), how many
 * channels, direct I/O or not, the stream offset. Returns the settled values.
 */
export function checkTransfer(o: TransferChoice, access: Access): Transfer {
  const channels = o.channels ?? DEFAULT_CHANNELS;
  const directIo = o.directIo ?? o.directFd !== undefined;
  const offset = o.offset ?? 0;
  const what = access === "write" ? "an output" : "an input";
  checkChannels(channels, directIo);
  checkOffset(offset);
  if ((o.path === undefined) === (o.fd === undefined)) throw new OptionError(`give either ${what} path or --fd`);
  if (o.directFd !== undefined && o.fd === undefined) {
    throw new OptionError(`--direct-fd goes with --fd (two descriptors on one file); with ${what} path, use --direct-io`);
  }
  if (o.fd !== undefined && directIo && o.directFd === undefined) {
    throw new OptionError("--direct-io with --fd needs --direct-fd: a second descriptor, opened with O_DIRECT");
  }
  if (o.directFd !== undefined && o.directIo === false) throw new OptionError("--direct-fd was given, but direct I/O is off");
  return { channels, directIo, offset, maxGap: o.maxGap ?? DEFAULT_MAX_GAP };
}
