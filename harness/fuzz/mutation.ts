// What case `i` of a campaign is: which seed it damages and how. Both are pure functions of (campaign, case),
// so any case replays alone (`scripts/fuzz.ts --seed S --case I`).
import { NUMERIC } from "./extremes.ts";
import { MUTATORS, type MutationContext, type Mutator } from "./mutators.ts";
import { Rng } from "./rng.ts";
import type { Seed } from "./seed.ts";

export interface Mutation {
  /** What was done, one entry per step, for reports and reproduction. */
  steps: string[];
  /** Replace everything from `at` to the end of the file with `bytes` (done first). */
  tail?: { at: number; bytes: Uint8Array };
  /** Bytes written in place (after the tail). */
  patches: { at: number; bytes: Uint8Array }[];
  /** Cut or extend the file to this size (done last). */
  size?: number;
  /** Replacement text for FILE.sums (seeds with a manifest). */
  manifest?: string;
}

/**
 * The mutation of case `i` of campaign `campaign` on `seed`: one step (most cases) or two to four, each
 * drawn from the mutator table by weight. A negative `i` is no mutation (see seedOf).
 */
export function mutationFor(seed: Seed, campaign: number, i: number): Mutation {
  const m: Mutation = { steps: [], patches: [] };
  if (i < 0) return m;
  const r = new Rng(campaign, i, 0x5eed);
  const c: MutationContext = { seed, r, m, numeric: seed.fields.filter((f) => NUMERIC.includes(f.kind)), size: seed.size };
  const steps = r.chance(0.7) ? 1 : r.int(2, 4);
  const table = MUTATORS.map((x) => [x.weight(seed), x] as [number, Mutator]);
  for (let s = 0; s < steps; s++) {
    if (!r.weighted(table).apply(c)) s--; // nothing to damage of that kind here: draw the step again
  }
  return m;
}

/** Which seed case `i` uses: the first cases are the seeds unchanged, in order (baselines). */
export function seedOf(seeds: readonly Seed[], campaign: number, i: number): { seed: Seed; mutationCase: number } {
  if (i < seeds.length) return { seed: seeds[i]!, mutationCase: -1 };
  return { seed: seeds[new Rng(campaign, i, 0x5eed5).int(0, seeds.length - 1)]!, mutationCase: i };
}
