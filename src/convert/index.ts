// convert: re-lays a QEMU save file as mapped-ram or classic, and `save --like` (a QEMU file's
// configuration, device sections and trailer with some blocks' pages taken from images). The RAM section
// is written anew; every device section, command and the trailer are copied byte for byte and in order;
// the configuration gains or loses the mapped-ram capability (and the trailer's description follows).
import { gibPerSecond, PageSession, type Progress } from "../channels/session.ts";
import { OptionError } from "../errors.ts";
import type { Compression } from "../format/pack-extent.ts";
import { writeManifestOf } from "../integrity/sums.ts";
import type { BlockSource } from "../memory/sources.ts";
import { checkChannels, checkOffset, DEFAULT_CHANNELS, DEFAULT_MAX_GAP } from "../options.ts";
import { writeClassic } from "./classic.ts";
import { writeMappedRam } from "./mapped-ram.ts";
import { originOf, planConversion, type RamFormat } from "./plan.ts";
import { copiedSections } from "./stream.ts";

export type { RamFormat } from "./plan.ts";

export interface ConvertOptions {
  /** The QEMU save file to read. */
  input: string;
  /** Where the input's stream starts (QEMU's offset=). */
  inputOffset?: number;
  output: string;
  /** Where the output's stream starts; bytes before it are kept. */
  offset?: number;
  to: RamFormat;
  /** Blocks whose pages come from these images instead of the input (save --like). */
  replace?: BlockSource[];
  channels?: number;
  directIo?: boolean;
  maxGap?: number;
  /** Also write OUTPUT.sums (mapped-ram output only). */
  manifest?: boolean;
  /** A pack output's compression (default zstd at DEFAULT_ZSTD_LEVEL). */
  compression?: Compression;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface ConvertResult {
  input: string;
  output: string;
  from: RamFormat;
  to: RamFormat;
  machineType: string | null;
  blocks: { name: string; length: number; pagesWritten: number; from: string }[];
  /** Device sections and commands copied verbatim. */
  copied: number;
  /** The manifest written beside the output, if asked for. */
  manifest?: string;
  /** Temporary files of earlier, killed writes of the output, removed before this one began. */
  staleRemoved?: string[];
  bytesWritten: number;
  seconds: number;
  gibPerSecond: number;
  channels: number;
  directIo: boolean;
}

export async function convert(o: ConvertOptions): Promise<ConvertResult> {
  const t = checkConvertOptions(o);
  await using session = new PageSession({ channels: t.channels, maxGap: o.maxGap ?? DEFAULT_MAX_GAP, onProgress: o.onProgress, signal: o.signal });
  const plan = await planConversion(o, (r) => session.own(r));
  if (plan.pack && o.to === "classic") throw new OptionError(`${o.input} is a pack: convert it --to mapped-ram (then --to classic from that file)`);
  const format = o.to === "pack" ? "pack" : "mapped-ram";
  const output = { path: o.output, offset: t.offset, directIo: t.directIo, manifest: o.manifest, format, compression: o.compression } as const;
  const written = o.to === "classic" ? writeClassic(plan, session, output) : await writeMappedRam(plan, session, output);
  // A pack hashes its own extents: no OUTPUT.sums beside it.
  const manifest = o.manifest && o.to === "mapped-ram" ? writeManifestOf(o.output, t.offset, session.hashes) : undefined;
  const seconds = session.seconds;
  return {
    input: o.input,
    output: o.output,
    from: plan.pack ? "pack" : plan.info.ramFormat!,
    to: o.to,
    machineType: plan.info.machineType,
    blocks: plan.info.blocks.map((b, i) => ({ name: b.name, length: b.length, pagesWritten: written.pages[i]!, from: originOf(plan, b.name) })),
    copied: copiedSections(plan),
    ...(manifest ? { manifest } : {}),
    ...(written.staleRemoved.length ? { staleRemoved: [...written.staleRemoved] } : {}),
    bytesWritten: written.bytesWritten,
    seconds,
    gibPerSecond: gibPerSecond(plan.totalBytes, seconds),
    channels: t.channels,
    directIo: t.directIo,
  };
}

function checkConvertOptions(o: ConvertOptions): { channels: number; directIo: boolean; offset: number } {
  const channels = o.channels ?? DEFAULT_CHANNELS;
  const directIo = o.directIo ?? false;
  const offset = o.offset ?? 0;
  checkChannels(channels, directIo);
  checkOffset(offset);
  if (o.manifest && o.to === "classic") throw new OptionError("--manifest describes mapped-ram files; convert --to mapped-ram to get one");
  return { channels, directIo, offset };
}
