// The fuzzer's choices: a deterministic PRNG with the helpers the mutators and the case runner need. A case
// seeds its own Rng from (campaign, case, purpose), so any case replays alone.
/** A small deterministic PRNG (sfc32) with the helpers the mutators need. */
export class Rng {
  #a: number;
  #b: number;
  #c: number;
  #d: number;
  constructor(...seeds: number[]) {
    this.#a = 0x9e3779b9;
    this.#b = 0x243f6a88;
    this.#c = 0xb7e15162;
    this.#d = 1;
    for (const s of seeds) {
      this.#a ^= s >>> 0;
      this.#b ^= Math.floor(s / 2 ** 32) >>> 0;
      for (let i = 0; i < 12; i++) this.u32();
    }
  }
  u32(): number {
    const t = (((this.#a + this.#b) >>> 0) + this.#d) >>> 0;
    this.#d = (this.#d + 1) >>> 0;
    this.#a = this.#b ^ (this.#b >>> 9);
    this.#b = (this.#c + (this.#c << 3)) >>> 0;
    this.#c = ((this.#c << 21) | (this.#c >>> 11)) >>> 0;
    this.#c = (this.#c + t) >>> 0;
    return t;
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

