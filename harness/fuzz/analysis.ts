// Where a seed's structure lives: `analyzeSeed` walks the file with the parser and lists the magic, the
// configuration, section headers and footers, RAM block entries, MappedRamHeader fields, bitmaps, classic page
// records, EOF, the trailer and the numbers in its JSON. The mutators aim at these places only.
//
// The order of the list matters: mutators pick fields by index, so a campaign replays only while the
// order stays the same.
import { readFileSync } from "node:fs";
import { parseStream, type RamBlockInfo, type SectionInfo, type StreamInfo } from "../../src/format/parse.ts";
import { MainFile } from "../../src/io/main-file.ts";
import { PAGE } from "../units.ts";
import { loadPages, readBe, seedBytes, type FieldKind, type Seed, type SeedSpec } from "./seed.ts";

/** Adds fields to a seed (dropping those that would not fit in the file) and reads the numbers they hold. */
class FieldList {
  constructor(readonly seed: Seed) {}
  add(at: number, width: number, kind: FieldKind, label: string): void {
    if (at >= 0 && at + width <= this.seed.size) this.seed.fields.push({ at, width, kind, label });
  }
  u8(at: number): number {
    return seedBytes(this.seed, at, 1)[0] ?? 0;
  }
  be32(at: number): number {
    return Number(readBe(this.seed, at, 4));
  }
}

/** Lists where the structure of a seed lives (see the header comment). */
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
  const f = new FieldList(seed);
  f.add(0, 4, "magic", "magic");
  f.add(4, 4, "version", "stream version");
  configurationFields(f);
  for (const s of info.sections) sectionFields(f, s);
  for (const b of info.blocks) blockFields(f, b);
  if (info.ramFormat === "classic" && info.blocks.length > 0) {
    const last = info.blocks[info.blocks.length - 1]!;
    classicRecordFields(f, last.entryOffset + 1 + f.u8(last.entryOffset) + 8 + (last.gpa !== undefined ? 8 : 0), "RAM START");
  }
  if (info.eofOffset >= 0) f.add(info.eofOffset, 1, "eof", "EOF");
  if (info.trailer) trailerFields(f, info.trailer);
  return seed;
}

/** The configuration: 0x07, be32 name length, name, then subsections (0x05, str8 name, be32 version, value). */
function configurationFields(f: FieldList): void {
  if (f.u8(8) !== 0x07) return;
  f.add(8, 1, "tag", "configuration tag");
  f.add(9, 4, "length", "machine type length");
  const n = f.be32(9);
  f.add(13, n, "name", "machine type");
  let p: number | null = 13 + n;
  while (p !== null && f.u8(p) === 0x05 && p < f.seed.size) {
    f.add(p, 1, "tag", "subsection tag");
    const len = f.u8(p + 1);
    f.add(p + 1, 1, "name-len", "subsection name length");
    const name = new TextDecoder().decode(seedBytes(f.seed, p + 2, len));
    f.add(p + 2, len, "name", `subsection ${name}`);
    f.add(p + 2 + len, 4, "version", `subsection ${name} version`);
    p = subsectionValueFields(f, name, p + 6 + len);
  }
}

/** The value of configuration subsection `name` at `p`; returns where the next one starts, or null for an unknown one. */
function subsectionValueFields(f: FieldList, name: string, p: number): number | null {
  if (name.endsWith("target-page-bits")) {
    f.add(p, 4, "count", "target page bits");
    return p + 4;
  }
  if (name.endsWith("capabilities")) {
    f.add(p, 4, "count", "capability count");
    const count = f.be32(p);
    p += 4;
    for (let i = 0; i < count && i < 64; i++) {
      const cl = f.u8(p);
      f.add(p, 1, "name-len", `capability ${i} length`);
      f.add(p + 1, cl, "name", `capability ${i}`);
      p += 1 + cl;
    }
    return p;
  }
  if (name.endsWith("uuid")) {
    f.add(p, 16, "payload", "uuid");
    return p + 16;
  }
  return null;
}

/** A section's header, footer and payload ends, and the RAM words of the "ram" section. */
function sectionFields(f: FieldList, s: SectionInfo): void {
  const info = f.seed.info;
  const what = s.type === "COMMAND" ? `command ${s.command}` : `${s.type} ${s.idstr ?? s.id}`;
  f.add(s.offset, 1, "tag", `${what} tag`);
  if (s.type === "COMMAND") {
    f.add(s.offset + 1, 2, "id", `${what} id`);
    f.add(s.offset + 3, 2, "length", `${what} length`);
    return;
  }
  f.add(s.offset + 1, 4, "id", `${what} section id`);
  if (s.type === "START" || s.type === "FULL") {
    const n = f.u8(s.offset + 5);
    f.add(s.offset + 5, 1, "name-len", `${what} name length`);
    f.add(s.offset + 6, n, "name", `${what} name`);
    f.add(s.offset + 6 + n, 4, "id", `${what} instance`);
    f.add(s.offset + 10 + n, 4, "version", `${what} version`);
  }
  if (info.footers) {
    const end = s.payloadOffset + s.payloadSize;
    f.add(end, 1, "tag", `${what} footer tag`);
    f.add(end + 1, 4, "id", `${what} footer id`);
  }
  if (s.type === "FULL" && s.payloadSize > 0) {
    f.add(s.payloadOffset, Math.min(8, s.payloadSize), "payload", `${what} payload start`);
    f.add(s.payloadOffset + s.payloadSize - 1, 1, "payload", `${what} payload end`);
  }
  if (s.idstr !== "ram") return;
  if (s.type === "START") f.add(s.payloadOffset, 8, "ram-word", "RAM MEM_SIZE word");
  else if (info.ramFormat === "mapped-ram") f.add(s.payloadOffset, 8, "ram-word", `RAM ${s.type} EOS word`);
  else classicRecordFields(f, s.payloadOffset, `RAM ${s.type}`);
}

/** Classic page records from `from`: be64 (address | flags), [str8 block], then a fill byte (ZERO) or a page (PAGE). */
function classicRecordFields(f: FieldList, from: number, label: string): void {
  let p = from;
  let recorded = 0;
  for (let n = 0; n < 1_000_000 && p + 8 <= f.seed.size; n++) {
    const flags = Number(readBe(f.seed, p, 8) & 0xfffn);
    // the first 40 records, then one in 97: enough to aim at, without a field per page of a big file
    const keep = recorded < 40 || n % 97 === 0;
    if (keep) {
      f.add(p, 8, "ram-word", `${label} record ${n}`);
      recorded++;
    }
    p += 8;
    if (flags & 0x10) break; // EOS
    if (flags & 0x200) continue; // MULTIFD_FLUSH
    if (!(flags & 0x20)) {
      if (keep) f.add(p, 1, "name-len", `${label} record ${n} block name length`);
      p += 1 + f.u8(p);
    }
    if (flags & 0x02) {
      if (keep) f.add(p, 1, "payload", `${label} record ${n} fill byte`);
      p += 1;
    } else if (flags & 0x08) {
      if (keep) f.add(p + (n % PAGE), 1, "page", `${label} record ${n} page byte`);
      p += PAGE;
    } else break;
  }
}

/** A RAM block entry: name and length, and for mapped-ram its header, bitmap ends, set bitmap bytes and a few pages. */
function blockFields(f: FieldList, b: RamBlockInfo): void {
  const n = f.u8(b.entryOffset);
  f.add(b.entryOffset, 1, "name-len", `block ${b.name} name length`);
  f.add(b.entryOffset + 1, n, "name", `block ${b.name} name`);
  f.add(b.entryOffset + 1 + n, 8, "length", `block ${b.name} length`);
  const m = b.mapped;
  if (!m) return;
  f.add(m.headerOffset, 4, "version", `block ${b.name} mapped-ram header version`);
  f.add(m.headerOffset + 4, 8, "length", `block ${b.name} header page size`);
  f.add(m.headerOffset + 12, 8, "offset", `block ${b.name} bitmap offset`);
  f.add(m.headerOffset + 20, 8, "offset", `block ${b.name} pages offset`);
  f.add(m.bitmapOffset, 1, "bitmap", `block ${b.name} bitmap first byte`);
  f.add(m.bitmapOffset + m.bitmapSize - 1, 1, "bitmap", `block ${b.name} bitmap last byte`);
  f.add(m.bitmapOffset + ((b.pages - 1) >> 3), 1, "bitmap", `block ${b.name} bitmap byte of the last page`);
  const bm = b.bitmap!;
  const set: number[] = [];
  for (let i = 0; i < bm.length && set.length < 8; i++) if (bm[i]) set.push(i);
  for (const i of set) f.add(m.bitmapOffset + i, 1, "bitmap", `block ${b.name} bitmap byte ${i}`);
  // a few present pages, and the end of the page array (where the next entry or EOS follows)
  for (let i = 0, seen = 0; i < b.pages && seen < 4; i++) {
    if ((bm[i >> 3]! >> (i & 7)) & 1) {
      f.add(m.pagesOffset + i * PAGE + ((i * 131) % PAGE), 1, "page", `block ${b.name} page ${i}`);
      seen++;
    }
  }
  f.add(m.pagesOffset + b.length, 8, "ram-word", `word after block ${b.name}'s page array`);
}

/** The trailer's tag and length, and punctuation of its JSON (some of it: one in seven characters' worth). */
function trailerFields(f: FieldList, t: NonNullable<StreamInfo["trailer"]>): void {
  f.add(t.offset, 1, "tag", "trailer tag");
  f.add(t.offset + 1, 4, "length", "trailer length");
  const json = new TextDecoder().decode(seedBytes(f.seed, t.offset + 5, t.length));
  f.seed.trailer = { at: t.offset, json };
  for (const m of json.matchAll(/[{}[\]:,"]/g)) if (m.index! % 7 === 0) f.add(t.offset + 5 + m.index!, 1, "json", "trailer JSON punctuation");
  f.add(t.offset + 5, 1, "json", "trailer JSON start");
  f.add(t.offset + 5 + t.length - 1, 1, "json", "trailer JSON end");
}
