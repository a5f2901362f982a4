// Re-lays a QEMU save file: `convert` (classic ⇄ mapped-ram) and `save --like` (a QEMU file's
// configuration, device sections and trailer with RAM pages taken from images). The RAM section is
// written anew; every device section, command and the trailer are copied byte for byte and in order;
// the configuration gains or loses the mapped-ram capability (and the trailer's description of it follows).
// What cannot be carried over correctly is refused by name before anything is written.
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
import { bufferRegion, mapFileForRead, type MemoryRegion } from "./memory/region.ts";
import { checkChannels, checkOffset, DEFAULT_CHANNELS, DEFAULT_MAX_GAP, openDirect } from "./options.ts";
import type { BlockSource } from "./save.ts";
import { chunks, gibPerSecond, runJobs, type Progress } from "./transfer.ts";

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

export async function rewrite(o: RewriteOptions): Promise<RewriteResult> {
  const t0 = performance.now();
  const channels = o.channels ?? DEFAULT_CHANNELS;
  const directIo = o.directIo ?? false;
  const offset = o.offset ?? 0;
  checkChannels(channels, directIo);
  checkOffset(offset);
  if (o.signal?.aborted) throw new CancelledError();

  const input = MainFile.openRead(o.input);
  const regions = new Map<string, MemoryRegion>();
  const fillPages = new Map<number, libc.AlignedBuffer>();
  let inMap: { ptr: number; length: number } | undefined;
  let out: OutputFile | undefined;
  let directFd: number | undefined;
  let pool: ChannelPool | undefined;
  let finished = false;
  try {
    const map = readPageMap(input, { base: o.inputOffset ?? 0 });
    const { info } = map;
    checkCarriable(map, o.input);
    for (const r of o.replace ?? []) {
      const b = info.blocks.find((x) => x.name === r.name);
      if (!b) throw new OptionError(`${o.input} has no RAM block named ${r.name}; it has ${info.blocks.map((x) => x.name).join(", ")}`);
      if (regions.has(r.name)) throw new OptionError(`block ${r.name} is given twice`);
      const region = r.buffer ? bufferRegion(r.name, r.buffer) : r.path ? mapFileForRead(r.path) : undefined;
      if (!region) throw new OptionError(`block ${r.name}: no source (a path or a buffer)`);
      regions.set(r.name, region);
      if (region.length !== b.length) throw new OptionError(`block ${r.name} is ${b.length} bytes in ${o.input}, but ${region.name} holds ${region.length}`);
    }
    if (input.size > 0) inMap = { ptr: libc.mmap(input.size, libc.PROT_READ, libc.MAP_SHARED, input.fd, 0, o.input), length: input.size };
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

    /** Address of page p's bytes for a job, or -1 when the file says nothing (or zero) about it. */
    const pageAddress = (b: BlockPages, p: number): number => {
      const loc = b.locate(p);
      if (loc >= 0) return inMap!.ptr + loc;
      if (fillOf(loc) === 0) return -1;
      // An obsolete zero record with a non-zero fill byte: point at a page of that byte.
      const fill = fillOf(loc);
      let page = fillPages.get(fill);
      if (!page) {
        page = new libc.AlignedBuffer(ps);
        page.view.fill(fill);
        fillPages.set(fill, page);
      }
      return page.ptr;
    };

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
    let bytesWritten = 0;
    if (o.to === "mapped-ram") {
      const layout = layoutMappedRam(w.position, info.blocks, ps);
      for (const l of layout.blocks) {
        w.write((b) => encodeMappedRamHeader(b.str8(l.name).be64(l.length), { version: MAPPED_RAM_HEADER_VERSION, pageSize: ps, bitmapOffset: l.bitmapOffset, pagesOffset: l.pagesOffset }));
        w.seek(l.pagesOffset + l.length);
      }
      w.flush();
      if (directIo) directFd = openDirect(o.output, "write", layout.blocks[0]!.pagesOffset);
      const bitmaps = layout.blocks.map((l) => new SharedArrayBuffer(l.bitmapSize));
      pool = await ChannelPool.start(channels, { fd: directFd ?? out.main.fd, direct: directIo, path: o.output, pageSize: ps, maxGap: o.maxGap ?? DEFAULT_MAX_GAP });
      const jobs = layout.blocks.flatMap((l, i) => {
        const region = regions.get(l.name);
        const pages = map.blocks[i]!;
        return Array.from(chunks({ memory: region?.ptr ?? 0, aligned: region?.aligned ?? true, fileOffset: l.pagesOffset, bitmap: bitmaps[i]!, pages: l.pages }, ps), (c) => {
          const job = { type: "save" as const, src: c.memory, srcAligned: c.aligned, fileOffset: c.fileOffset, bitmap: c.bitmap, firstPage: c.firstPage, pages: c.pages, zeroDetect: true };
          if (region) return job;
          const addrs = new Float64Array(new SharedArrayBuffer(c.pages * 8));
          for (let k = 0; k < c.pages; k++) addrs[k] = pageAddress(pages, c.firstPage + k);
          return { ...job, src: 0, srcPages: addrs.buffer as SharedArrayBuffer };
        });
      });
      const total = info.blocks.reduce((s, b) => s + b.length, 0);
      const stats = await runJobs(pool, jobs, total, o.onProgress, o.signal);
      bytesWritten = stats.ioBytes;
      libc.fsync(directFd ?? out.main.fd, o.output);
      layout.blocks.forEach((l, i) => out!.main.writeAt(l.bitmapOffset, new Uint8Array(bitmaps[i]!)));
      layout.blocks.forEach((l, i) => {
        const bm = new Uint8Array(bitmaps[i]!);
        let n = 0;
        for (let p = 0; p < l.pages; p++) n += (bm[p >> 3]! >> (p & 7)) & 1;
        blocksOut.push({ name: l.name, length: l.length, pagesWritten: n, from: regions.get(l.name)?.name ?? o.input });
      });
      w.seek(layout.end);
    } else {
      for (const b of info.blocks) w.write((x) => x.str8(b.name).be64(b.length));
      const zero = new libc.AlignedBuffer(ps);
      zero.view.fill(0);
      try {
        let done = 0;
        const total = info.blocks.reduce((s, b) => s + b.length, 0);
        info.blocks.forEach((b, i) => {
          const region = regions.get(b.name);
          const pages = map.blocks[i]!;
          let first = true;
          let written = 0;
          for (let p = 0; p < b.pages; p++) {
            if (o.signal?.aborted) throw new CancelledError();
            let addr: number;
            if (region) {
              addr = region.ptr + p * ps;
              if (libc.memcmp(addr, zero.ptr, ps) === 0) continue;
            } else {
              const loc = pages.locate(p);
              if (loc < 0 && fillOf(loc) === 0) continue;
              if (loc < 0) {
                // A non-zero fill stays a zero record with its fill byte, as QEMU wrote it.
                const flags = RAM_FLAG_ZERO | (first ? 0 : RAM_FLAG_CONTINUE);
                w.write((x) => {
                  x.be64(p * ps + flags);
                  if (first) x.str8(b.name);
                  x.u8(fillOf(loc));
                });
                first = false;
                continue;
              }
              addr = inMap!.ptr + loc;
            }
            const flags = RAM_FLAG_PAGE | (first ? 0 : RAM_FLAG_CONTINUE);
            const data = libc.viewOf(addr, ps);
            w.write((x) => {
              x.be64(p * ps + flags);
              if (first) x.str8(b.name);
              x.bytes(data);
            });
            first = false;
            written++;
          }
          bytesWritten += written * ps;
          done += b.length;
          o.onProgress?.({ doneBytes: done, totalBytes: total, ioBytes: bytesWritten, seconds: (performance.now() - t0) / 1000 });
          blocksOut.push({ name: b.name, length: b.length, pagesWritten: written, from: region?.name ?? o.input });
        });
      } finally {
        zero.free();
      }
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
    libc.fsync(out.main.fd, o.output);
    finished = true;
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
    for (const r of regions.values()) r.release();
    for (const p of fillPages.values()) p.free();
    if (inMap) libc.munmap(inMap.ptr, inMap.length);
    if (directFd !== undefined) libc.close(directFd, o.output);
    if (!finished) out?.abandon();
    out?.close();
    input.close();
  }
}
