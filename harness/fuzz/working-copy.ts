// A seed's working copy: the file a case's operations read, damaged in place before the case and put back
// after it, so thousands of cases a minute need no copy of the whole seed each.
import { closeSync, fstatSync, ftruncateSync, mkdirSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { join } from "node:path";
import { MiB, PAGE } from "../units.ts";
import { mutationFor, type Mutation } from "./mutation.ts";
import { seedBytes, type Seed } from "./seed.ts";

/**
 * A seed's copy in a child's scratch folder, mutated in place for a case and put back after it: only the
 * bytes a mutation touched are written, and only the non-zero pages after a cut.
 */
export class WorkingCopy {
  readonly path: string;
  readonly dir: string;
  #applied: Mutation | null = null;

  constructor(
    readonly seed: Seed,
    dir: string,
  ) {
    this.dir = dir;
    this.path = join(dir, "case.ram");
    mkdirSync(dir, { recursive: true });
    this.rebuild();
  }

  get sums(): string {
    return `${this.path}.sums`;
  }

  /** Writes the seed from scratch (its non-zero pages into a sparse file). */
  rebuild(): void {
    rmSync(this.path, { force: true });
    const fd = openSync(this.path, "w", 0o600);
    try {
      ftruncateSync(fd, this.seed.size);
      this.#copyPages(fd, 0, this.seed.size);
    } finally {
      closeSync(fd);
    }
    if (this.seed.manifestText !== null) writeFileSync(this.sums, this.seed.manifestText);
    else rmSync(this.sums, { force: true });
    this.#applied = null;
  }

  #copyPages(fd: number, from: number, to: number): void {
    for (const p of this.seed.pageList) {
      if (p + PAGE <= from || p >= to) continue;
      const page = this.seed.pages.get(p)!;
      writeSync(fd, page, 0, page.length, p);
    }
  }

  apply(m: Mutation): void {
    if (this.#applied) throw new Error("a mutation is already applied");
    this.#applied = m;
    const fd = openSync(this.path, "r+");
    try {
      if (m.tail) {
        ftruncateSync(fd, m.tail.at);
        writeSync(fd, m.tail.bytes, 0, m.tail.bytes.length, m.tail.at);
      }
      for (const p of m.patches) {
        if (!Number.isSafeInteger(p.at) || p.at < 0) throw new Error(`fuzz harness: a patch at offset ${p.at}`);
        writeSync(fd, p.bytes, 0, p.bytes.length, p.at);
      }
      if (m.size !== undefined) ftruncateSync(fd, m.size);
    } finally {
      closeSync(fd);
    }
    if (m.manifest !== undefined) writeFileSync(this.sums, m.manifest);
  }

  revert(): void {
    const m = this.#applied;
    if (!m) return;
    this.#applied = null;
    const fd = openSync(this.path, "r+");
    try {
      let cut = this.seed.size;
      if (m.tail) cut = Math.min(cut, m.tail.at);
      if (m.size !== undefined) cut = Math.min(cut, m.size);
      ftruncateSync(fd, this.seed.size); // drops anything written past the seed's end
      if (cut < this.seed.size) this.#copyPages(fd, cut, this.seed.size);
      for (const p of m.patches) {
        if (p.at >= cut) continue;
        const orig = seedBytes(this.seed, p.at, p.bytes.length);
        if (orig.length) writeSync(fd, orig, 0, orig.length, p.at);
      }
    } finally {
      closeSync(fd);
    }
    if (m.manifest !== undefined) writeFileSync(this.sums, this.seed.manifestText!);
  }

  /** Whether the working copy is byte for byte the seed (a check of the harness itself). */
  matchesSeed(): boolean {
    const fd = openSync(this.path, "r");
    try {
      if (fstatSync(fd).size !== this.seed.size) return false;
      const buf = Buffer.alloc(4 * MiB);
      for (let at = 0; at < this.seed.size; at += buf.length) {
        const n = readSync(fd, buf, 0, Math.min(buf.length, this.seed.size - at), at);
        if (buf.compare(seedBytes(this.seed, at, n), 0, n, 0, n) !== 0) return false;
      }
    } finally {
      closeSync(fd);
    }
    return this.seed.manifestText === null || readFileSync(this.sums, "utf8") === this.seed.manifestText;
  }
}

/** Writes case `i`'s mutated file into `dir` (with its FILE.sums for seeds with a manifest); returns its path. */
export function materializeCase(seed: Seed, campaign: number, i: number, dir: string): { path: string; mutation: Mutation } {
  const w = new WorkingCopy(seed, dir);
  const m = mutationFor(seed, campaign, i);
  w.apply(m);
  return { path: w.path, mutation: m };
}
