// Re-lays a QEMU save file: `convert` (classic ⇄ mapped-ram) and `save --like` (a QEMU file's
// configuration, device sections and trailer with RAM pages taken from images). The RAM section is
// written anew; every device section, command and the trailer are copied byte for byte and in order;
// the configuration gains or loses the mapped-ram capability (and the trailer's description of it follows).
// What cannot be carried over correctly is refused by name before anything is written.
import { fstatSync, statSync } from "node:fs";
import * as libc from "../ffi/libc.ts";
import { ChannelPool } from "./channels/pool.ts";
import { CancelledError, OptionError } from "./errors.ts";
import { StreamWriter } from "./format/bytes.ts";
import {
  CAP_MAPPED_RAM,
  CAP_X_IGNORE_SHARED,
  MAPPED_RAM_HEADER_VERSION,
  RAM_FLAG_CONTINUE,
  RAM_FLAG_PAGE,
  RAM_FLAG_ZERO,
  RAM_IDSTR,
  RAM_VERSION,
  Tag,
} from "./format/constants.ts";
import {
  type Configuration,
  describeConfiguration,
  describeConfigurationObject,
  encodeConfiguration,
  encodeEos,
  encodeFileHeader,
  encodeFooter,
  encodeMappedRamHeader,
  encodeMemSize,
  encodeSectionContinuation,
  encodeSectionHeader,
  encodeVmdesc,
} from "./format/encode.ts";
import { layoutMappedRam } from "./format/layout.ts";
import { fillOf, PAGE_ABSENT, readPageMap, type BlockPages, type PageMap } from "./format/pages.ts";
import type { SectionInfo } from "./format/parse.ts";
import { replaceTrailerConfiguration } from "./format/vmdesc.ts";
import { MainFile } from "./io/main-file.ts";
import { OutputFile } from "./io/output.ts";
import { loadPages } from "./channels/page-source.ts";
import type { PageSource } from "./channels/messages.ts";
import { checkChannels, checkOffset, DEFAULT_CHANNELS, DEFAULT_MAX_GAP, openDirect } from "./options.ts";
import { openSource, writeManifestFor, type BlockSource, type SourceBlock } from "./save.ts";
import { chunks, gibPerSecond, jobsPerChunk, runJobs, type Chunk, type ExtentHashes, type Progress } from "./transfer.ts";

export type RamFormat = "mapped-ram" | "classic";

export interface RewriteOptions {
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
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface RewriteResult {
  input: string;
  output: string;
  from: RamFormat;
  to: RamFormat;
  machineType: string | null;
  blocks: { name: string; length: number; pagesWritten: number; from: string }[];
  /** Device sections and commands copied verbatim. */
  copied: number;
  bytesWritten: number;
  seconds: number;
  gibPerSecond: number;
  channels: number;
  directIo: boolean;
}

/** Sections and commands the rewrite can carry over; anything else is named and refused. */
function checkCarriable(map: PageMap, name: string): void {
  const { info } = map;
  if (info.ramFormat === null) throw new OptionError(`${name} has no RAM section; there is nothing to re-lay`);
  if (info.capabilities.includes(CAP_X_IGNORE_SHARED)) {
    throw new OptionError(`${name} was saved with x-ignore-shared; its shared blocks cannot be re-laid by ramsnap`);
  }
  for (const s of info.sections) {
    if (s.type === "COMMAND" && s.command !== "SWITCHOVER_START") {
      throw new OptionError(`${name}: command ${s.command} at offset ${s.offset} cannot be carried into a re-laid file`);
    }
    if ((s.type === "START" || s.type === "PART" || s.type === "END") && s.idstr !== RAM_IDSTR) {
      throw new OptionError(`${name}: iterative section "${s.idstr}" (${s.type} at offset ${s.offset}) holds state ramsnap cannot re-lay`);
    }
  }
}

/** Bytes of a section or command as it stands in the file, footer included. */
function extent(s: SectionInfo, footers: boolean): [number, number] {
  const end = s.payloadOffset + s.payloadSize + (s.type !== "COMMAND" && footers ? 5 : 0);
  return [s.offset, end - s.offset];
}

/**
 * Writes a block's non-zero pages as classic records (PAGE, with the block named on the first and
 * CONTINUE after). Returns how many pages it wrote.
 */
function writeClassicPages(w: StreamWriter, name: string, pages: number, ps: number, sourceOf: (c: Chunk) => PageSource, signal?: AbortSignal): number {
  const zero = new libc.AlignedBuffer(ps);
  let buffer: libc.AlignedBuffer | undefined;
  const bounce = (len: number) => (buffer ??= new libc.AlignedBuffer(len));
  zero.view.fill(0);
  let first = true;
  let written = 0;
  try {
    for (const c of chunks(pages, ps, 0)) {
      if (signal?.aborted) throw new CancelledError();
      const { base, exists } = loadPages(sourceOf(c), c.pages, ps, bounce);
      for (let k = 0; k < c.pages; k++) {
        const addr = base + k * ps;
        if ((exists && !exists(k)) || libc.memcmp(addr, zero.ptr, ps) === 0) continue;
        const data = libc.viewOf(addr, ps);
        const word = (c.firstPage + k) * ps + (RAM_FLAG_PAGE | (first ? 0 : RAM_FLAG_CONTINUE));
        w.write((x) => {
          x.be64(word);
          if (first) x.str8(name);
          x.bytes(data);
        });
        first = false;
        written++;
      }
    }
  } finally {
    zero.free();
    buffer?.free();
  }
  return written;
}

export async function rewrite(o: RewriteOptions): Promise<RewriteResult> {
  const t0 = performance.now();
  const channels = o.channels ?? DEFAULT_CHANNELS;
  const directIo = o.directIo ?? false;
  const offset = o.offset ?? 0;
  checkChannels(channels, directIo);
  checkOffset(offset);
  if (o.signal?.aborted) throw new CancelledError();

  const input = MainFile.openRead(o.input);
  const sources = new Map<string, SourceBlock>();
  let out: OutputFile | undefined;
  let directFd: number | undefined;
  let pool: ChannelPool | undefined;
  try {
    // INPUT and OUTPUT must be different files however spelled ("./x", a hard link): the output would take the input's place.
    const inStat = fstatSync(input.fd);
    const outStat = statSync(o.output, { throwIfNoEntry: false });
    if (outStat && outStat.dev === inStat.dev && outStat.ino === inStat.ino) throw new OptionError(`${o.output} is the same file as ${o.input}; write the re-laid file elsewhere`);
    const map = readPageMap(input, { base: o.inputOffset ?? 0 });
    const { info } = map;
    checkCarriable(map, o.input);
    for (const r of o.replace ?? []) {
      const b = info.blocks.find((x) => x.name === r.name);
      if (!b) throw new OptionError(`${o.input} has no RAM block named ${r.name}; it has ${info.blocks.map((x) => x.name).join(", ")}`);
      if (sources.has(r.name)) throw new OptionError(`block ${r.name} is given twice`);
      const src = openSource(r);
      sources.set(r.name, src);
      if (src.length !== b.length) throw new OptionError(`block ${r.name} is ${b.length} bytes in ${o.input}, but ${r.path ?? "the buffer"} holds ${src.length}`);
    }
    const ps = info.pageSize;
    const ramStart = info.sections.find((s) => s.type === "START" && s.idstr === RAM_IDSTR)!;
    const caps = info.capabilities.filter((c) => c !== CAP_MAPPED_RAM);
    if (o.to === "mapped-ram") caps.push(CAP_MAPPED_RAM);
    const config: Configuration = {
      machineType: info.machineType ?? "",
      capabilities: caps,
      ...(info.targetPageBits !== undefined ? { targetPageBits: info.targetPageBits } : {}),
    };
    if (info.machineType === null) throw new OptionError(`${o.input} has no configuration section (a pre-2.x stream); ramsnap cannot re-lay it`);

    /** A chunk's pages: from the replacing image, or from wherever the input holds them. */
    const pageSourceOf = (block: number, c: Chunk): PageSource => {
      const replaced = sources.get(info.blocks[block]!.name);
      if (replaced) return replaced.at(c.byteOffset, c.pages, ps);
      const offsets = new Float64Array(new SharedArrayBuffer(c.pages * 8));
      for (let k = 0; k < c.pages; k++) offsets[k] = map.blocks[block]!.locate(c.firstPage + k);
      return { kind: "pages", fd: input.fd, path: o.input, offsets: offsets.buffer as SharedArrayBuffer };
    };
    const replacedName = (name: string) => o.replace?.find((r) => r.name === name)?.path ?? (sources.has(name) ? "(buffer)" : o.input);

    out = OutputFile.open({ path: o.output }, offset);
    const w = new StreamWriter(out.main, offset);
    const copy = (s: SectionInfo) => {
      const [at, len] = extent(s, info.footers);
      const bytes = input.readAt(at, len);
      w.write((b) => b.bytes(bytes));
    };
    w.write((b) => encodeConfiguration(encodeFileHeader(b), config));
    const before = info.sections.filter((s) => s.offset < ramStart.offset);
    const after = info.sections.filter((s) => s.offset > ramStart.offset);
    for (const s of before) copy(s);
    w.write((b) => encodeMemSize(encodeSectionHeader(b, Tag.SectionStart, ramStart.id!, RAM_IDSTR, 0, RAM_VERSION), info.ramTotal!));

    const blocksOut: RewriteResult["blocks"] = [];
    const hashes: ExtentHashes = new Map();
    if (o.manifest && o.to !== "mapped-ram") throw new OptionError("--manifest describes mapped-ram files; convert --to mapped-ram to get one");
    let bytesWritten = 0;
    if (o.to === "mapped-ram") {
      const layout = layoutMappedRam(w.position, info.blocks, ps);
      for (const l of layout.blocks) {
        w.write((b) => encodeMappedRamHeader(b.str8(l.name).be64(l.length), { version: MAPPED_RAM_HEADER_VERSION, pageSize: ps, bitmapOffset: l.bitmapOffset, pagesOffset: l.pagesOffset }));
        w.seek(l.pagesOffset + l.length);
      }
      w.flush();
      if (directIo) directFd = openDirect(out.writePath!, "write", layout.blocks[0]!.pagesOffset, o.output);
      const bitmaps = layout.blocks.map((l) => new SharedArrayBuffer(l.bitmapSize));
      pool = await ChannelPool.start(channels, { fd: directFd ?? out.main.fd, direct: directIo, path: o.output, pageSize: ps, maxGap: o.maxGap ?? DEFAULT_MAX_GAP });
      const jobs = jobsPerChunk(layout.blocks, ps, (i, c) => ({
        type: "save" as const,
        source: pageSourceOf(i, c),
        fileOffset: c.fileOffset,
        bitmap: bitmaps[i]!,
        firstPage: c.firstPage,
        pages: c.pages,
        zeroDetect: true,
        hashExtents: o.manifest,
        block: i,
      }));
      const total = info.blocks.reduce((s, b) => s + b.length, 0);
      const stats = await runJobs(pool, jobs, total, o.onProgress, o.signal, hashes);
      bytesWritten = stats.ioBytes;
      libc.fsync(directFd ?? out.main.fd, o.output);
      layout.blocks.forEach((l, i) => out!.main.writeAt(l.bitmapOffset, new Uint8Array(bitmaps[i]!)));
      layout.blocks.forEach((l, i) => {
        const bm = new Uint8Array(bitmaps[i]!);
        let n = 0;
        for (let p = 0; p < l.pages; p++) n += (bm[p >> 3]! >> (p & 7)) & 1;
        blocksOut.push({ name: l.name, length: l.length, pagesWritten: n, from: replacedName(l.name) });
      });
      w.seek(layout.end);
    } else {
      for (const b of info.blocks) w.write((x) => x.str8(b.name).be64(b.length));
      const total = info.blocks.reduce((s, b) => s + b.length, 0);
      let done = 0;
      info.blocks.forEach((b, i) => {
        const written = writeClassicPages(w, b.name, b.pages, ps, (c) => pageSourceOf(i, c), o.signal);
        bytesWritten += written * ps;
        done += b.length;
        o.onProgress?.({ doneBytes: done, totalBytes: total, ioBytes: bytesWritten, seconds: (performance.now() - t0) / 1000 });
        blocksOut.push({ name: b.name, length: b.length, pagesWritten: written, from: replacedName(b.name) });
      });
    }

    // The rest of the stream: end of the RAM START, then everything after it in the input's order.
    w.write((b) => encodeFooter(encodeEos(b), ramStart.id!));
    let copied = before.length;
    for (const s of after) {
      if (s.idstr === RAM_IDSTR && s.type === "PART") continue; // nothing left to say: all pages are in place
      if (s.idstr === RAM_IDSTR && s.type === "END") {
        w.write((b) => encodeFooter(encodeEos(encodeSectionContinuation(b, Tag.SectionEnd, s.id!)), s.id!));
        continue;
      }
      copy(s);
      copied++;
    }
    w.write((b) => b.u8(Tag.EOF));
    const description = describeConfigurationObject(config);
    const trailerText = info.trailer ? new TextDecoder().decode(input.readAt(info.trailer.offset + 5, info.trailer.length)) : null;
    const trailer = (trailerText && replaceTrailerConfiguration(trailerText, description)) ?? trailerText ?? describeConfiguration(config, ps);
    w.write((b) => encodeVmdesc(b, trailer));
    w.flush();
    out.commit();
    if (o.manifest) writeManifestFor(o.output, offset, hashes);
    const seconds = (performance.now() - t0) / 1000;
    const total = info.blocks.reduce((s, b) => s + b.length, 0);
    return {
      input: o.input,
      output: o.output,
      from: info.ramFormat!,
      to: o.to,
      machineType: info.machineType,
      blocks: blocksOut,
      copied,
      bytesWritten,
      seconds,
      gibPerSecond: gibPerSecond(total, seconds),
      channels,
      directIo,
    };
  } finally {
    await pool?.close();
    for (const r of sources.values()) r.release();
    if (directFd !== undefined) libc.close(directFd, o.output);
    out?.abandon();
    out?.close();
    input.close();
  }
}
