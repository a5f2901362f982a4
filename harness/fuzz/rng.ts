// The fuzzer's choices: integers, picks and weighted picks drawn from the project's one PRNG
// (src/memory/synthetic.ts). A case seeds its own Rng from (campaign, case, purpose), so any case replays
// alone.
import { rng } from "../../src/memory/synthetic.ts";

export class Rng {
  readonly #next: () => number;
  constructor(...seeds: number[]) {
    this.#next = rng(...seeds);
  }
  u32(): number {
    return this.#next();
  }
  /** [0, 1) */
  float(): number {
    return this.u32() / 2 ** 32;
  }
  /** Integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + Math.floor(this.float() * (hi - lo + 1));
  }
  chance(p: number): boolean {
    return this.float() < p;
  }
  pick<T>(xs: readonly T[]): T {
    if (xs.length === 0) throw new Error("pick from an empty list");
    return xs[Math.floor(this.float() * xs.length)]!;
  }
  /** Picks by weight: [[weight, value], ...]. */
  weighted<T>(xs: readonly [number, T][]): T {
    const total = xs.reduce((s, [w]) => s + w, 0);
    let x = this.float() * total;
    for (const [w, v] of xs) {
      if ((x -= w) < 0) return v;
    }
    return xs[xs.length - 1]![1];
  }
}
