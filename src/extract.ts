// extract: one raw file per RAM block, every page at its offset and absent pages left as holes: plain
// RAM, what memory-forensics tools read. mapped-ram files go through the channels with direct I/O (it is
// a restore into fresh files); classic streams hold their pages inline and in order, so they are copied
// in one pass.
import { mkdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { gibPerSecond, type Progress } from "./channels/session.ts";
import { CancelledError, RefusedError } from "./errors.ts";
import { spaceBound } from "./format/layout.ts";
import { fillOf, readPageMap, type PageMap } from "./format/pages.ts";
import type { RamBlockInfo } from "./format/parse.ts";
import { dirSpace } from "./io/filesystem.ts";
import type { MainFile } from "./io/main-file.ts";
import { openStream } from "./savefile/open.ts";
import { mapFileForRead, mapFileForWrite } from "./memory/region.ts";
import { matchBlocks } from "./options.ts";
import { restore } from "./restore.ts";

export interface ExtractOptions {
  path: string;
  offset?: number;
  /** Folder for the raw files and blocks.json (created if needed). */
  dir: string;
  /** Only these blocks (default: all). */
  blocks?: string[];
  channels?: number;
  directIo?: boolean;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface ExtractedBlock {
  name: string;
  /** File name inside the folder. */
  file: string;
  length: number;
  pages: number;
  present: number;
}

export interface ExtractResult {
  file: string;
  dir: string;
  ramFormat: "mapped-ram" | "classic";
  blocks: ExtractedBlock[];
  seconds: number;
  gibPerSecond: number;
}

/** A file name for a block name: QEMU's names hold slashes ("/rom@etc/acpi/tables", "0000:00:01.0/vga.vram"). */
export function blockFileName(name: string, taken: Set<string>): string {
  const base = name.replace(/^\/+/, "").replace(/\//g, "_") || "block";
  let file = `${base}.raw`;
  for (let i = 2; taken.has(file); i++) file = `${base}-${i}.raw`;
  taken.add(file);
  return file;
}

export async function extract(o: ExtractOptions): Promise<ExtractResult> {
  const t0 = performance.now();
  using opened = await openStream(o.path, o.offset ?? 0);
  const input = opened.source;
  const map = readPageMap(input, { base: o.offset ?? 0 });
  const ramFormat = map.info.ramFormat;
  if (ramFormat === null) throw new RefusedError(`${o.path} has no RAM section`);
  const blocks = matchBlocks(o.path, map.info.blocks, o.blocks?.length ? o.blocks : map.info.blocks.filter((b) => !b.shared).map((b) => b.name));
  mkdirSync(o.dir, { recursive: true });
  checkRoom(o.dir, blocks, map.info.pageSize);
  const out = rawFilesFor(blocks);
  try {
    for (const e of out) rmSync(join(o.dir, e.file), { force: true }); // fresh files: absent pages stay holes
    if (ramFormat === "mapped-ram") {
      const targets = out.map((e) => ({ name: e.name, path: join(o.dir, e.file) }));
      await restore({ path: o.path, offset: o.offset, blocks: targets, channels: o.channels, directIo: o.directIo, keepHoles: true, onProgress: o.onProgress, signal: o.signal });
    }
    else copyClassic(input as MainFile, map, out, o);
  } catch (e) {
    for (const x of out) rmSync(join(o.dir, x.file), { force: true });
    throw e;
  }
  writeFileSync(join(o.dir, "blocks.json"), `${JSON.stringify({ source: o.path, ramFormat, pageSize: map.info.pageSize, blocks: out }, null, 2)}\n`);
  const seconds = (performance.now() - t0) / 1000;
  return { file: o.path, dir: o.dir, ramFormat, blocks: out, seconds, gibPerSecond: gibPerSecond(out.reduce((s, b) => s + b.length, 0), seconds) };
}

/**
 * The raw files stay sparse, so their blocks are allocated as pages land; a file system that fills up
 * under a shared mapping answers with SIGBUS, so make sure the pages fit before starting.
 */
function checkRoom(dir: string, blocks: RamBlockInfo[], pageSize: number): void {
  const need = spaceBound(blocks.reduce((s, b) => s + b.present * pageSize, 0), blocks.length);
  const free = dirSpace(dir).freeBytes;
  if (need > free) throw new RefusedError(`${dir} has ${free} bytes free, but the pages to extract take ${need}`);
}

function rawFilesFor(blocks: RamBlockInfo[]): ExtractedBlock[] {
  const taken = new Set<string>();
  return blocks.map((b) => ({ name: b.name, file: blockFileName(b.name, taken), length: b.length, pages: b.pages, present: b.present }));
}

/** Classic pages sit inline in the stream: copy each one's last record from a mapping of the file. */
function copyClassic(input: MainFile, map: PageMap, out: ExtractedBlock[], o: ExtractOptions): void {
  const t0 = performance.now();
  const src = mapFileForRead(input.name);
  const total = out.reduce((s, b) => s + b.length, 0);
  let done = 0;
  try {
    for (const e of out) {
      copyClassicBlock(src.ptr, map.blocks.find((b) => b.info.name === e.name)!, join(o.dir, e.file), o.signal);
      done += e.length;
      o.onProgress?.({ doneBytes: done, totalBytes: total, ioBytes: done, seconds: (performance.now() - t0) / 1000 });
    }
  } finally {
    src.release();
  }
}

function copyClassicBlock(src: number, bp: PageMap["blocks"][number], path: string, signal?: AbortSignal): void {
  const ps = bp.info.length / bp.info.pages;
  const target = mapFileForWrite(path, bp.info.length, "none");
  try {
    for (let p = 0; p < bp.info.pages; p++) {
      if ((p & 4095) === 0 && signal?.aborted) throw new CancelledError();
      const loc = bp.locate(p);
      if (loc >= 0) libc.memcpy(target.ptr + p * ps, src + loc, ps);
      else if (fillOf(loc) !== 0) libc.memset(target.ptr + p * ps, fillOf(loc), ps);
    }
    target.sync();
  } finally {
    target.release();
  }
}
