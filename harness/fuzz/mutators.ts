// The mutators: one entry per kind of damage, with its weight (how often a step picks it) and what it does
// to the case's Mutation. Steps are drawn from this table in order of weight, so its order and weights are
// part of what makes a campaign replay: change them and every case's mutation changes.
import { MiB, PAGE } from "../units.ts";
import { be, byteValueFor, extremeFor, near, show } from "./extremes.ts";
import { mutateManifest } from "./manifest-mutators.ts";
import type { Mutation } from "./mutation.ts";
import type { Rng } from "./rng.ts";
import { seedBytes, type Field, type Seed } from "./seed.ts";

/** What a mutator works on: the seed, the case's randomness, the mutation so far and the file's size after it. */
export interface MutationContext {
  readonly seed: Seed;
  readonly r: Rng;
  readonly m: Mutation;
  /** The seed's fields that hold numbers. */
  readonly numeric: Field[];
  size: number;
}

export interface Mutator {
  name: string;
  /** How often a step picks this mutator, for this seed (0: never). */
  weight(seed: Seed): number;
  /** Adds its damage to `c.m`; false when it has nothing to damage in this seed (the step is drawn again). */
  apply(c: MutationContext): boolean;
}

export const MUTATORS: readonly Mutator[] = [
  { name: "extreme", weight: () => 30, apply: setExtreme },
  { name: "flip", weight: () => 18, apply: flipBit },
  { name: "byte", weight: () => 10, apply: setByte },
  { name: "truncate", weight: () => 14, apply: truncate },
  { name: "extend", weight: () => 3, apply: extend },
  { name: "bitmap", weight: () => 7, apply: damageBitmap },
  { name: "json", weight: (seed) => (seed.trailer ? 8 : 0), apply: damageTrailer },
  { name: "page", weight: () => 4, apply: flipPageByte },
  { name: "manifest", weight: (seed) => (seed.manifestText ? 6 : 0), apply: damageManifest },
];

const patch = (c: MutationContext, at: number, bytes: Uint8Array, step: string): true => {
  c.m.patches.push({ at, bytes });
  c.m.steps.push(step);
  return true;
};

const oldByte = (c: MutationContext, at: number) => seedBytes(c.seed, at, 1)[0] ?? 0;

/** A numeric field set to an extreme value (see extremes.ts). */
function setExtreme(c: MutationContext): boolean {
  const f = c.r.pick(c.numeric);
  const w = f.kind === "name-len" ? 1 : f.width;
  const v = w === 1 ? byteValueFor(c.seed, f, c.r) : extremeFor(c.seed, f, c.r, c.size);
  return patch(c, f.at, be(v, w), `set ${f.label} @${f.at} (${w} bytes) to ${show(v & ((1n << BigInt(8 * w)) - 1n))}`);
}

/** One bit flipped in a field, or a few bytes either side of it. */
function flipBit(c: MutationContext): boolean {
  const { r } = c;
  const f = r.pick(c.seed.fields);
  const at = r.chance(0.8) ? f.at + r.int(0, f.width - 1) : near(f, r);
  const bit = r.int(0, 7);
  return patch(c, at, Uint8Array.of(oldByte(c, at) ^ (1 << bit)), `flip bit ${bit} @${at} (${f.label})`);
}

/** A byte near a field set to a boundary value (or a random one). */
function setByte(c: MutationContext): boolean {
  const { r } = c;
  const f = r.pick(c.seed.fields);
  const at = near(f, r);
  const v = r.pick([0x00, 0xff, 0x7f, 0x80, 0x7e, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x10, r.int(0, 255)]);
  return patch(c, at, Uint8Array.of(v), `set byte @${at} to 0x${v.toString(16)} (near ${f.label})`);
}

/** The file cut short: near a field, anywhere, at small or page-aligned sizes, or by a few bytes. */
function truncate(c: MutationContext): boolean {
  const { r, seed } = c;
  const to = r.weighted<() => number>([
    [6, () => near(r.pick(seed.fields), r)],
    [2, () => r.int(0, seed.size)],
    [1, () => r.pick([0, 1, 4, 8, 9, 12, PAGE - 1, PAGE, PAGE + 1, MiB, MiB + 1])],
    [1, () => seed.size - r.int(1, 8)],
    [1, () => Math.floor(r.int(0, seed.size) / PAGE) * PAGE],
  ])();
  c.size = Math.max(0, Math.min(to, seed.size - 1));
  c.m.size = c.size;
  c.m.steps.push(`truncate to ${c.size}`);
  return true;
}

/** The file made longer (zeros after its end). */
function extend(c: MutationContext): boolean {
  c.size = c.seed.size + c.r.pick([1, 7, 8, PAGE - 1, PAGE, PAGE + 1, MiB]);
  c.m.size = c.size;
  c.m.steps.push(`extend to ${c.size}`);
  return true;
}

/** A mapped-ram bitmap filled, cleared, given a bit past the block's last page, or one byte set. */
function damageBitmap(c: MutationContext): boolean {
  const { r } = c;
  const blocks = c.seed.info.blocks.filter((b) => b.mapped);
  if (blocks.length === 0) return false; // classic: no bitmap
  const b = r.pick(blocks);
  const mp = b.mapped!;
  const kind = r.int(0, 4);
  if (kind === 0) return patch(c, mp.bitmapOffset, new Uint8Array(mp.bitmapSize).fill(0xff), `fill bitmap of ${b.name} with 0xff`); // the tail bits past the last page included
  if (kind === 2) return patch(c, mp.bitmapOffset, new Uint8Array(mp.bitmapSize), `clear bitmap of ${b.name}`);
  if (kind === 1) {
    const bit = b.pages + r.int(0, Math.max(0, mp.bitmapSize * 8 - b.pages - 1));
    if (bit >= mp.bitmapSize * 8) return false;
    const at = mp.bitmapOffset + (bit >> 3);
    return patch(c, at, Uint8Array.of(oldByte(c, at) | (1 << (bit & 7))), `set bitmap bit ${bit} of ${b.name} (past its ${b.pages} pages)`);
  }
  const at = mp.bitmapOffset + r.int(0, mp.bitmapSize - 1);
  const v = r.int(0, 255);
  return patch(c, at, Uint8Array.of(v), `set bitmap byte @${at} of ${b.name} to 0x${v.toString(16)}`);
}

const JSON_VALUES = ["0", "-1", "1", "4096", "0.5", "1e308", "-1e308", "4294967296", "9007199254740991", "9007199254740993", "18446744073709551616", "null", "true", '"8"', "[]", "{}", "[null]", '{"size": 1}'];
const JSON_KEYS = ['"fields"', '"subsections"', '"size"', '"array_len"', '"vmsd_name"', '"devices"', '"instance_id"', '"name"'];
const JSON_DOCUMENTS = ["{}", "[]", "null", '{"devices": null}', '{"devices": [null]}', '{"devices": [{"name": "timer", "instance_id": 0, "fields": [null]}]}', ""];

/** The trailer rewritten (the file cut after it): a value changed, its JSON cut, a key renamed or the JSON replaced. */
function damageTrailer(c: MutationContext): boolean {
  const { r } = c;
  const t = c.seed.trailer!;
  const { json, how } = damagedJson(t.json, r);
  const body = new TextEncoder().encode(json);
  const bytes = new Uint8Array(5 + body.length);
  bytes[0] = 0x06;
  new DataView(bytes.buffer).setUint32(1, r.chance(0.9) ? body.length : r.pick([0, body.length + 1, 2 ** 32 - 1]));
  bytes.set(body, 5);
  c.m.tail = { at: t.at, bytes };
  c.size = t.at + bytes.length;
  c.m.steps.push(how);
  return true;
}

function damagedJson(json: string, r: Rng): { json: string; how: string } {
  const values = [...json.matchAll(/(?<=: )(-?\d+|"[^"]*"|\[\]|\{\})/g)];
  const kind = r.int(0, 5);
  if (kind <= 2 && values.length) {
    const hit = r.pick(values);
    const v = r.pick(JSON_VALUES);
    return { json: json.slice(0, hit.index!) + v + json.slice(hit.index! + hit[0].length), how: `trailer value ${hit[0].slice(0, 24)} at JSON offset ${hit.index} set to ${v}` };
  }
  if (kind === 3) {
    const cut = r.int(0, json.length - 1);
    return { json: json.slice(0, cut), how: `trailer JSON cut to ${cut} characters` };
  }
  if (kind === 4) {
    const key = r.pick(JSON_KEYS);
    return { json: json.split(key).join(r.pick(['"x"', '"fields"', '"size"', '"array_len"'])), how: `trailer key ${key} renamed` };
  }
  const doc = r.pick(JSON_DOCUMENTS);
  return { json: doc, how: `trailer JSON replaced by ${doc || "nothing"}` };
}

/** One byte of a saved page changed (data the manifest, not the parser, must catch). */
function flipPageByte(c: MutationContext): boolean {
  const pages = c.seed.fields.filter((f) => f.kind === "page");
  if (pages.length === 0) return false;
  const f = c.r.pick(pages);
  return patch(c, f.at, Uint8Array.of(oldByte(c, f.at) ^ 0x01), `flip page data byte @${f.at} (${f.label})`);
}

/** FILE.sums damaged (see manifest-mutators.ts). */
function damageManifest(c: MutationContext): boolean {
  c.m.manifest = mutateManifest(c.seed.manifestText!, c.r, c.m.steps);
  return true;
}
