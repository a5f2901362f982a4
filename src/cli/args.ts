// The options commands share, defined once, and their parsing: citty gives strings, and keeps only the
// last of a repeated flag.
import { OptionError } from "../errors.ts";
import { DEFAULT_CHANNELS, MAX_CHANNELS } from "../options.ts";
import { parseSize } from "./text.ts";

/**
 * Options several commands share, each defined once: one description, one range, checked in one place
 * (`checkSharedArgs`, which run.ts applies to every command that uses one of these definitions).
 *
 * --channels is 1 to 64 everywhere, `qemu save|restore` included. A channel is a thread with its own
 * buffer and descriptor (a Worker in ramsnap, a multifd thread in QEMU); past the CPU count and the
 * device's queue depth more of them only contend. QEMU's own limit, 255, is the width of its parameter,
 * not advice, and ramsnap's Workers cost tens of MiB each. One range means a value that works for `save`
 * works for `qemu save`, and the other way round.
 */
export const sharedArgs = {
  channels: {
    type: "string",
    description: `Channels moving pages in parallel (ramsnap's Workers, or QEMU's multifd threads), 1 to ${MAX_CHANNELS}`,
    default: String(DEFAULT_CHANNELS),
    valueHint: "n",
  },
  "direct-io": { type: "boolean", description: "Move pages with O_DIRECT, bypassing the page cache (the file system must support it)" },
  offset: {
    type: "string",
    description: "Where the stream starts in the file, as QEMU's file:PATH,offset= (sizes like 4096, 0x1000, 1M, 1.5G); bytes before it are kept",
    valueHint: "bytes",
  },
  fd: { type: "string", description: "Use this open descriptor (no O_DIRECT) instead of a path, as handed over by a management program", valueHint: "n" },
  json: { type: "boolean", description: "Print one JSON object on stdout instead of text, errors included (docs/json.md)" },
  progress: { type: "boolean", description: "Progress bar on stderr (default: when stderr is a terminal)" },
} as const;

/** The option of every command that can write a pack (save, convert, qemu save). */
export const compressArg = {
  compress: {
    type: "string",
    description: "How a pack's extents are compressed: zstd, zstd:LEVEL (1 to 19; default zstd:1) or none. A pack is written for -o NAME.rpk or s3://BUCKET/KEY",
    valueHint: "zstd[:level]|none",
  },
} as const;

/** The options of every command that moves pages through ramsnap's channels (save, restore). */
export const pageArgs = {
  ...sharedArgs,
  "direct-fd": { type: "string", description: "With --fd: a second descriptor on the same file, opened with O_DIRECT; implies --direct-io", valueHint: "n" },
} as const;

/**
 * Checks every shared option a command defines by `sharedArgs`' own definitions, before the command
 * runs: a command that reads an option its own way (qemu's) still gets the one range and message.
 */
export function checkSharedArgs(defs: Record<string, unknown>, rawArgs: string[]): void {
  for (const [name, def] of Object.entries(defs)) {
    if (def === sharedArgs.channels) for (const v of repeated(rawArgs, name)) intOption(name, v, DEFAULT_CHANNELS, 1, MAX_CHANNELS);
    else if (def === sharedArgs.offset) for (const v of repeated(rawArgs, name)) sizeOption(name, v);
    else if (def === sharedArgs.fd) for (const v of repeated(rawArgs, name)) fdOption(name, v);
  }
}

/** Every value of a repeatable flag (`--block a=1 --block b=2`, or `--block=a=1`). */
export function repeated(rawArgs: string[], flag: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < rawArgs.length; i++) {
    const a = rawArgs[i]!;
    if (a === "--") break;
    if (a === `--${flag}`) {
      const v = rawArgs[i + 1];
      if (v === undefined || v.startsWith("--")) throw new OptionError(`--${flag} needs a value`);
      out.push(v);
      i++;
    } else if (a.startsWith(`--${flag}=`)) out.push(a.slice(flag.length + 3));
  }
  return out;
}

export function intOption(name: string, text: string | undefined, fallback: number, min: number, max: number): number {
  if (text === undefined) return fallback;
  if (!/^\d+$/.test(text.trim())) throw new OptionError(`--${name} must be a whole number from ${min} to ${max}, got "${text}"`);
  const v = Number(text);
  if (v < min || v > max) throw new OptionError(`--${name} must be a whole number from ${min} to ${max}, got ${v}`);
  return v;
}

export function sizeOption(name: string, text: string | undefined): number | undefined {
  if (text === undefined) return undefined;
  const v = parseSize(text);
  if (v === null) throw new OptionError(`--${name} ${text} is not a size (examples: 4096, 0x1000, 4K, 1M, 1.5G)`);
  if (typeof v === "object") throw new OptionError(`--${name} ${text} is not a whole number of bytes`);
  return v;
}

export function fdOption(name: string, text: string | undefined): number | undefined {
  return text === undefined ? undefined : intOption(name, text, 0, 0, 1 << 20);
}

/** The transfer options save, restore, extract and convert share, from citty's strings. */
export function transferArgs(args: { channels?: string; "direct-io"?: boolean; offset?: string; fd?: string; "direct-fd"?: string }): {
  channels: number;
  directIo: boolean | undefined;
  offset: number | undefined;
  fd: number | undefined;
  directFd: number | undefined;
} {
  return {
    channels: intOption("channels", args.channels, DEFAULT_CHANNELS, 1, MAX_CHANNELS),
    directIo: args["direct-io"] || undefined,
    offset: sizeOption("offset", args.offset),
    fd: fdOption("fd", args.fd),
    directFd: fdOption("direct-fd", args["direct-fd"]),
  };
}
