// One case, run and checked: inspect and verify of the damaged working copy, and on a fraction of cases a
// restore into a scratch target folder. The checks:
//   - every failure is one of the clean error types (outcomes.ts), not a stray TypeError from a Worker;
//   - the case took less than the limit;
//   - nothing but the target files appeared or changed in the scratch folder, the input and its manifest
//     were not touched, a failed restore left no target it created, and every target is exactly as long as
//     the (mutated) file's block list says;
//   - inspect and verify agree on whether the file parses, and what restore wrote verifies against the file
//     page by page;
//   - the unchanged seeds (the first cases) pass inspect, verify and restore.
import { mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { IntegrityError, RefusedError } from "../../src/errors.ts";
import { inspectFile, type InspectReport } from "../../src/inspect.ts";
import { verify } from "../../src/verify.ts";
import { mutationFor, seedOf, type Mutation } from "./mutation.ts";
import { classify, uncleanDetail, type CaseFailure, type CaseResult, type Op } from "./outcomes.ts";
import { restoreCase } from "./restore-check.ts";
import { Rng } from "./rng.ts";
import type { Seed } from "./seed.ts";
import { diffSnapshots, snapshot } from "./snapshot.ts";
import { WorkingCopy } from "./working-copy.ts";

type VerifyResult = ReturnType<typeof verify>;

export interface RunnerOptions {
  workDir: string;
  campaign: number;
  /** Share of cases that also restore. */
  restoreFraction: number;
  caseLimitMs: number;
  /** Tests of the harness: "kind@case" makes that case misbehave on purpose. */
  selfTest?: string;
}

/** One case on its way through the runner. */
export interface Case {
  readonly i: number;
  readonly seed: Seed;
  readonly copy: WorkingCopy;
  readonly m: Mutation;
  /** The case's own randomness for what it runs (apart from its mutation's). */
  readonly r: Rng;
  /** An unchanged seed: every operation must succeed. */
  readonly baseline: boolean;
  readonly res: CaseResult;
  /** The error each operation threw. */
  readonly errors: Partial<Record<Op, unknown>>;
  /** Scratch-folder paths the case may create or change (its restore targets). */
  readonly allowed: Set<string>;
  fail(kind: CaseFailure["kind"], detail: string, op?: Op): void;
}

/** Runs inspect, verify and (on a fraction of cases) restore of one case, and checks what they did. */
export class CaseRunner {
  readonly copies: WorkingCopy[];
  readonly targetDir: string;
  #sinceCheck = 0;

  constructor(
    readonly seeds: Seed[],
    readonly o: RunnerOptions,
  ) {
    this.copies = seeds.map((s) => new WorkingCopy(s, join(o.workDir, `s${s.index}`)));
    this.targetDir = join(o.workDir, "target");
    mkdirSync(this.targetDir, { recursive: true });
  }

  async run(i: number): Promise<CaseResult> {
    const c = this.#caseOf(i);
    c.copy.apply(c.m);
    const t0 = performance.now();
    try {
      await this.#operations(c);
    } finally {
      c.res.ms = performance.now() - t0;
      this.#cleanUp(c.copy);
    }
    if (c.res.ms > this.o.caseLimitMs) c.fail("slow", `took ${c.res.ms.toFixed(0)} ms (limit ${this.o.caseLimitMs} ms)`);
    if (c.res.failures.some((f) => f.kind === "input-changed")) c.copy.rebuild();
    if (++this.#sinceCheck >= 400) {
      this.#sinceCheck = 0;
      for (const w of this.copies) {
        if (!w.matchesSeed()) throw new Error(`fuzz harness: the working copy of ${w.seed.name} no longer matches its seed`);
      }
    }
    return c.res;
  }

  #caseOf(i: number): Case {
    const { seed, mutationCase } = seedOf(this.seeds, this.o.campaign, i);
    const m = mutationFor(seed, this.o.campaign, mutationCase);
    const res: CaseResult = { case: i, seed: seed.name, outcome: { inspect: "-", verify: "-", restore: "-" }, ms: 0, failures: [] };
    return {
      i,
      seed,
      copy: this.copies[seed.index]!,
      m,
      r: new Rng(this.o.campaign, i, 0x7e57),
      baseline: mutationCase < 0,
      res,
      errors: {},
      allowed: new Set(),
      fail: (kind, detail, op) => res.failures.push({ case: i, seed: seed.name, kind, op, detail, steps: m.steps }),
    };
  }

  async #operations(c: Case): Promise<void> {
    const before = snapshot(this.o.workDir);
    const report = await attempt(c, "inspect", () => {
      this.#misbehave(c);
      return inspectFile(c.copy.path);
    });
    const v = await attempt(c, "verify", () => verify({ path: c.copy.path }));
    checkConsistent(c, report, v);
    // Restores are spent mostly on files that still parse (the others fail at the parse inspect already ran).
    const restoreChance = report ? Math.min(1, 2 * this.o.restoreFraction) : this.o.restoreFraction / 2;
    if (c.baseline || c.r.chance(restoreChance)) await restoreCase(c, report, this.targetDir);
    if (c.baseline) checkBaseline(c, v);
    checkFolder(c, diffSnapshots(before, snapshot(this.o.workDir), c.allowed));
  }

  /** The misbehaviour the harness's self-test planted in this case, if any. */
  #misbehave(c: Case): void {
    const [kind, at] = (this.o.selfTest ?? "").split("@");
    if (Number(at) !== c.i) return;
    if (kind === "type-error") (null as any).boom();
    if (kind === "hang") for (;;);
    if (kind === "crash") process.kill(process.pid, "SIGSEGV");
    if (kind === "slow") Bun.sleepSync(this.o.caseLimitMs + 200);
    if (kind === "stray-file") writeFileSync(join(c.copy.dir, "stray"), "x");
  }

  /** Empties the target folder, removes whatever appeared beside the working copy and puts the copy back. */
  #cleanUp(copy: WorkingCopy): void {
    rmSync(this.targetDir, { recursive: true, force: true });
    mkdirSync(this.targetDir);
    for (const e of readdirSync(copy.dir)) if (e !== "case.ram" && e !== "case.ram.sums") rmSync(join(copy.dir, e), { recursive: true, force: true });
    copy.revert();
  }
}

/** Runs one operation, recording its outcome; an unclean error is a failure. */
async function attempt<T>(c: Case, op: Op, fn: () => T | Promise<T>): Promise<T | undefined> {
  try {
    const v = await fn();
    c.res.outcome[op] = "ok";
    return v;
  } catch (e) {
    c.errors[op] = e;
    const cls = classify(e);
    c.res.outcome[op] = cls.cls;
    if (!cls.clean) c.fail("unclean-error", uncleanDetail(e), op);
    return undefined;
  }
}

/** inspect and verify must agree on whether the file parses (verify may also refuse options or find damage). */
function checkConsistent(c: Case, report: InspectReport | undefined, v: VerifyResult | undefined): void {
  const unclean = c.res.failures.some((f) => f.kind === "unclean-error");
  if (unclean || !!report === !!v || c.errors.verify instanceof RefusedError || c.errors.verify instanceof IntegrityError) return;
  c.fail("inconsistent", `inspect ${c.res.outcome.inspect}, verify ${c.res.outcome.verify}: ${classify(c.errors.inspect ?? c.errors.verify).message}`);
}

/** An unchanged seed: inspect and verify succeed, verify says OK, restore succeeds (or refuses a classic file). */
function checkBaseline(c: Case, v: VerifyResult | undefined): void {
  for (const op of ["inspect", "verify"] as Op[]) {
    if (c.res.outcome[op] !== "ok") c.fail("baseline", `${op} of the unchanged seed: ${classify(c.errors[op]).message}`, op);
  }
  // restore reads mapped-ram files only: a classic seed must be refused (a fact of the file: RefusedError)
  const want = c.seed.info.ramFormat === "mapped-ram" ? "ok" : "RefusedError";
  if (c.res.outcome.restore !== want) c.fail("baseline", `restore of the unchanged seed: ${c.res.outcome.restore}, expected ${want}`, "restore");
  if (v && !v.ok) c.fail("baseline", `verify of the unchanged seed says not OK: ${JSON.stringify(v.manifest ?? v.blocks).slice(0, 300)}`, "verify");
}

/** Changes in the scratch folder: to the input, or anywhere else but the targets. */
function checkFolder(c: Case, changes: string[]): void {
  if (!changes.length) return;
  const inputs = changes.filter((x) => x.startsWith(`s${c.seed.index}/case.ram`));
  if (inputs.length) c.fail("input-changed", inputs.join(", "));
  const others = changes.filter((x) => !inputs.includes(x));
  if (others.length) c.fail("wrote-outside", others.join(", "));
}
