// Damage to FILE.sums: hashes, sizes and shapes of its JSON, or plain text damage. One entry per kind, drawn
// with equal chance; the order is part of what makes a campaign replay.
import type { Rng } from "./rng.ts";

type Manifest = Record<string, any>;

interface ManifestMutator {
  name: string;
  /** Changes the parsed manifest in place and describes it in `steps`, or returns the whole new text. */
  apply(m: Manifest, r: Rng, steps: string[], text: string): string | undefined;
}

const block = (m: Manifest, r: Rng) => r.pick(m.blocks as any[]);

export const MANIFEST_MUTATORS: readonly ManifestMutator[] = [
  {
    name: "extent hash",
    apply(m, r, steps) {
      const b = block(m, r);
      const e = r.int(0, b.extents.length - 1);
      const h: string = b.extents[e];
      b.extents[e] = (h[0] === "0" ? "1" : "0") + h.slice(1);
      steps.push(`manifest: hash of extent ${e} of ${b.name} changed`);
    },
  },
  {
    name: "main stream hash",
    apply(m, _r, steps) {
      m.mainStream.xxh3 = "0000000000000000";
      steps.push("manifest: main stream hash changed");
    },
  },
  {
    name: "top-level number",
    apply(m, r, steps) {
      const v = r.pick<unknown>([0, -1, 1.5, 2 ** 53, "x", null, 4096]);
      const key = r.pick(["extentBytes", "offset", "version"]);
      m[key] = v;
      steps.push(`manifest: ${key} set to ${JSON.stringify(v)}`);
    },
  },
  {
    name: "blocks",
    apply(m, r, steps) {
      const v = r.pick<unknown>([null, [], {}, 5, "x", [null], [{}], [{ name: "ram0" }], [{ name: 1, length: "x", extents: 3 }]]);
      m.blocks = v;
      steps.push(`manifest: blocks set to ${JSON.stringify(v)}`);
    },
  },
  {
    name: "main stream",
    apply(m, r, steps) {
      const v = r.pick<unknown>([null, {}, 5, { bytes: "x", xxh3: 5 }]);
      m.mainStream = v;
      steps.push(`manifest: mainStream set to ${JSON.stringify(v)}`);
    },
  },
  {
    name: "block length",
    apply(m, r, steps) {
      const b = block(m, r);
      const v = r.pick<unknown>([0, -4096, 2 ** 53, 2 ** 63, 1.5, null, "x", b.length + 4096]);
      b.length = v;
      steps.push(`manifest: length of ${b.name} set to ${JSON.stringify(v)}`);
    },
  },
  {
    name: "extents",
    apply(m, r, steps) {
      const b = block(m, r);
      const v = r.pick<unknown>([[], null, 7, "x", [null], b.extents.slice(1), [...b.extents, "0000000000000000"], Array(10000).fill("0")]);
      b.extents = v;
      steps.push(`manifest: extents of ${b.name} set to ${JSON.stringify(v).slice(0, 40)}`);
    },
  },
  {
    name: "block name",
    apply(m, r, steps) {
      const b = block(m, r);
      b.name = r.pick(["", "nope", "ram0", "pc.bios", "\u0000"]);
      steps.push(`manifest: a block renamed to ${JSON.stringify(b.name)}`);
    },
  },
  {
    name: "cut",
    apply(_m, r, steps, text) {
      const cut = r.int(0, text.length - 1);
      steps.push(`manifest cut to ${cut} characters`);
      return text.slice(0, cut);
    },
  },
  {
    name: "replaced",
    apply(_m, r, steps) {
      const v = r.pick(["", "null", "[]", "{}", "0", '"ramsnap-sums"', "\u0000\u0001"]);
      steps.push(`manifest replaced by ${JSON.stringify(v)}`);
      return v;
    },
  },
];

/** FILE.sums `text` damaged by one of the mutators above; the step is added to `steps`. */
export function mutateManifest(text: string, r: Rng, steps: string[]): string {
  const m = JSON.parse(text) as Manifest;
  const mutator = MANIFEST_MUTATORS[r.int(0, MANIFEST_MUTATORS.length - 1)]!;
  return mutator.apply(m, r, steps, text) ?? JSON.stringify(m);
}
