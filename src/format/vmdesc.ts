// The vmdesc JSON trailer, and how ramsnap uses it to step over device sections.
//
// A device (FULL) section's payload carries no length. Two things bound it:
//  1. The trailer describes every FULL section, in stream order, with the bytes each field wrote
//     ("size", per element: an array described once carries "array_len" and wrote size × array_len)
//     and its subsections. A VMState payload is exactly its fields followed by its subsections,
//     each framed as 0x05, a counted name, a be32 version and the subsection's own fields and
//     subsections. So the payload size is computable before the payload is read (`describedSize`).
//  2. The section footer (0x7e + the be32 section id) follows the payload.
// ramsnap trusts rule 1 only when rule 2 confirms it: the footer must sit exactly where the described
// size ends. When the trailer is missing, does not describe the section, or disagrees with the footer,
// ramsnap falls back to scanning for the footer followed by something that parses as the next stream
// element (`scanForFooter`). Payload bytes that happen to look like a footer and a section header could
// fool that scan; the section is then reported with `sizeFrom: "footer-scan"` so the user can tell.
// With neither a trailer nor footers, a device section cannot be stepped over and parsing stops with an
// error naming the section.
import type { ByteSource } from "./bytes.ts";
import { Tag } from "./constants.ts";

export interface Trailer {
  offset: number;
  length: number;
  json: VmdescRoot;
}

export interface VmdescField {
  name?: string;
  /** Bytes of one element. */
  size?: number;
  /** Present for arrays QEMU describes once: the field then wrote size × array_len bytes. */
  array_len?: number;
}

export interface VmdescState {
  vmsd_name?: string;
  fields?: VmdescField[];
  subsections?: VmdescState[];
}

export interface VmdescDevice extends VmdescState {
  name?: string;
  instance_id?: number;
  /** Old-style (non-VMState) handlers describe only their total size. */
  size?: number;
}

export interface VmdescRoot {
  page_size?: number;
  configuration?: unknown;
  devices?: VmdescDevice[];
}

const TAIL_SEARCH = 16 << 20;

/**
 * Finds the trailer at the end of the file: a 0x06 byte, a be32 length that reaches exactly the end of
 * the file, and JSON that parses. Returns null when the file has none.
 */
export function findTrailer(source: ByteSource): Trailer | null {
  const tailLen = Math.min(source.size, TAIL_SEARCH);
  const base = source.size - tailLen;
  const tail = source.readAt(base, tailLen);
  const dv = new DataView(tail.buffer, tail.byteOffset, tail.byteLength);
  for (let i = tail.lastIndexOf(Tag.VmDescription, tail.length - 6); i >= 0; i = i > 0 ? tail.lastIndexOf(Tag.VmDescription, i - 1) : -1) {
    if (dv.getUint32(i + 1) !== tail.length - i - 5 || tail[i + 5] !== 0x7b) continue;
    const json = parseTrailerJson(tail.subarray(i + 5));
    if (json) return { offset: base + i, length: tail.length - i - 5, json };
  }
  return null;
}

export function parseTrailerJson(bytes: Uint8Array): VmdescRoot | null {
  try {
    const v = JSON.parse(new TextDecoder().decode(bytes)) as unknown;
    return v && typeof v === "object" && !Array.isArray(v) ? (v as VmdescRoot) : null;
  } catch {
    return null;
  }
}

/** Payload bytes of a described device or subsection, or null when the description lacks a size. */
export function describedSize(d: VmdescDevice | VmdescState): number | null {
  // The trailer is untrusted JSON: anything not shaped as described means "no usable size".
  const isSize = (v: unknown): v is number => typeof v === "number" && Number.isSafeInteger(v) && v >= 0;
  if (!d || typeof d !== "object") return null;
  if (!d.fields && typeof (d as VmdescDevice).size === "number") return isSize((d as VmdescDevice).size) ? (d as VmdescDevice).size! : null;
  if ((d.fields && !Array.isArray(d.fields)) || (d.subsections && !Array.isArray(d.subsections))) return null;
  let total = 0;
  for (const f of d.fields ?? []) {
    const n = f?.array_len ?? 1;
    if (!f || typeof f !== "object" || !isSize(f.size) || !isSize(n)) return null;
    total += f.size * n;
  }
  for (const s of d.subsections ?? []) {
    if (!s || typeof s !== "object" || typeof s.vmsd_name !== "string") return null;
    const inner = describedSize(s);
    if (inner === null) return null;
    total += 1 + 1 + new TextEncoder().encode(s.vmsd_name).length + 4 + inner;
  }
  return total;
}

/** Bytes that can start the next stream element after a footer. */
const NEXT_TAGS = new Set<number>([Tag.EOF, Tag.SectionStart, Tag.SectionPart, Tag.SectionEnd, Tag.SectionFull, Tag.Command]);

function plausibleNext(b: Uint8Array, at: number): boolean {
  const tag = b[at];
  if (tag === undefined || !NEXT_TAGS.has(tag)) return false;
  if (tag === Tag.EOF) return at + 1 === b.length || b[at + 1] === Tag.VmDescription;
  if (tag !== Tag.SectionStart && tag !== Tag.SectionFull) return true;
  const n = b[at + 5];
  if (n === undefined || n === 0 || at + 6 + n > b.length) return false;
  for (let i = at + 6; i < at + 6 + n; i++) if (b[i]! < 0x20 || b[i]! > 0x7e) return false;
  return true;
}

/**
 * Looks for `0x7e <be32 id>` from `from` on, followed by a plausible next element. Returns the footer's
 * absolute offset, or -1.
 */
export function scanForFooter(source: ByteSource, id: number, from: number): number {
  const footer = new Uint8Array([Tag.SectionFooter, id >>> 24, (id >>> 16) & 0xff, (id >>> 8) & 0xff, id & 0xff]);
  const CHUNK = 1 << 20;
  const LOOKAHEAD = 5 + 6 + 256; // footer, then a section header with a name of up to 255 bytes
  for (let at = from; at < source.size; at += CHUNK) {
    const b = source.readAt(at, CHUNK + LOOKAHEAD);
    for (let i = b.indexOf(Tag.SectionFooter); i >= 0 && i < CHUNK; i = b.indexOf(Tag.SectionFooter, i + 1)) {
      if (footer.every((v, k) => b[i + k] === v) && plausibleNext(b, i + 5)) return at + i;
    }
  }
  return -1;
}

/**
 * The trailer text with its "configuration" member replaced, everything else left byte for byte (QEMU's
 * JSON layout included). Returns null when the trailer does not open with that member.
 */
export function replaceTrailerConfiguration(json: string, configuration: string): string | null {
  const head = '{"configuration": ';
  if (!json.startsWith(head) || json[head.length] !== "{") return null;
  let depth = 0;
  let inString = false;
  for (let i = head.length; i < json.length; i++) {
    const ch = json[i];
    if (inString) {
      if (ch === "\\") i++;
      else if (ch === '"') inString = false;
    } else if (ch === '"') inString = true;
    else if (ch === "{") depth++;
    else if (ch === "}" && --depth === 0) return head + configuration + json.slice(i + 1);
  }
  return null;
}
