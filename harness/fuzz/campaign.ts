// A fuzz campaign over the readers (inspect, verify, restore) on real save files. The modules here:
//   corpus.ts            the seed files, made at run time (QEMU guests' saves and ramsnap's own files)
//   seed.ts, analysis.ts  a seed in memory, and where its structure lives
//   mutators.ts, manifest-mutators.ts, extremes.ts   the damage, one table entry per kind
//   mutation.ts          which seed and which damage case `i` gets: a pure function of (campaign, case)
//   working-copy.ts      the damaged file, patched in place and patched back after each case
//   case-runner.ts, restore-check.ts, snapshot.ts, outcomes.ts   one case, run and checked
//   child.ts             a child process running cases; this file is the parent
//   report.ts            the results as text
//
// Cases run in child processes, one working copy of each seed per child, so thousands of cases a minute
// fit. The parent is the watchdog: a child that stops reporting is killed and the case is a hang; a child
// that dies is a crash; both are recorded and a fresh child goes on after the case.
import { mkdirSync, rmSync } from "node:fs";
import { join } from "node:path";
import { analyzeSeed } from "./analysis.ts";
import { CHILD, type ChildOptions } from "./child.ts";
import { mutationFor, seedOf } from "./mutation.ts";
import type { CaseFailure, Op } from "./outcomes.ts";
import type { SeedSpec } from "./seed.ts";

export interface CampaignOptions {
  seeds: SeedSpec[];
  /** Folder for the children's working copies and targets (fast: /dev/shm). */
  workRoot: string;
  campaign: number;
  cases: number;
  /** Child processes running cases side by side. */
  jobs?: number;
  restoreFraction?: number;
  /** A case taking longer fails as "slow". */
  caseLimitMs?: number;
  /** A child silent for this long is killed and its case is a hang. */
  hangMs?: number;
  selfTest?: string;
  onProgress?: (s: CampaignStats) => void;
}

export interface CampaignStats {
  cases: number;
  seconds: number;
  restores: number;
  /** Per operation, how often each outcome ("ok" or an error class) came out. */
  outcomes: Record<Op, Record<string, number>>;
  failures: CaseFailure[];
  slowestMs: number;
  slowestCase: number;
  respawns: number;
}

/** How one child process ended. */
interface ChildEnd {
  /** The case the child was at: the next one after the last it finished. */
  next: number;
  ready: boolean;
  ended: boolean;
  hung: boolean;
  code: number;
  signal: number | string | null;
  stderr: string;
}

export async function runCampaign(o: CampaignOptions): Promise<CampaignStats> {
  const c = new Campaign(o);
  await Promise.all(Array.from({ length: c.jobs }, (_, k) => c.runJob(k)));
  c.stats.seconds = (performance.now() - c.t0) / 1000;
  return c.stats;
}

class Campaign {
  readonly jobs: number;
  readonly caseLimitMs: number;
  readonly hangMs: number;
  readonly stats: CampaignStats = { cases: 0, seconds: 0, restores: 0, outcomes: { inspect: {}, verify: {}, restore: {} }, failures: [], slowestMs: 0, slowestCase: -1, respawns: 0 };
  readonly t0 = performance.now();
  #lastReport = 0;

  constructor(readonly o: CampaignOptions) {
    this.jobs = o.jobs ?? 2;
    this.caseLimitMs = o.caseLimitMs ?? 5000;
    this.hangMs = o.hangMs ?? this.caseLimitMs + 10_000;
  }

  /** Job `k` runs cases k, k + jobs, ...; a child that hangs or dies costs its case, and a new one goes on. */
  async runJob(k: number): Promise<void> {
    let next = k;
    for (let spawns = 1; next < this.o.cases; spawns++) {
      if (spawns > 50) throw new Error(`fuzz job ${k}: its child died 50 times; giving up`);
      if (spawns > 1) this.stats.respawns++;
      const end = await this.#runChild(k, next);
      if (end.ended && end.code === 0) return;
      this.#recordDeath(end);
      if (!end.ready) throw new Error(`fuzz child could not start: ${end.stderr.trim()}`);
      this.stats.cases++;
      next = end.next + this.jobs;
    }
  }

  /** Starts a child at case `first` of job `k`, counts what it reports, and kills it when it falls silent. */
  async #runChild(k: number, first: number): Promise<ChildEnd> {
    const workDir = join(this.o.workRoot, `job${k}`);
    rmSync(workDir, { recursive: true, force: true });
    mkdirSync(workDir, { recursive: true });
    const childOpts: ChildOptions = { seeds: this.o.seeds, workDir, campaign: this.o.campaign, first, end: this.o.cases, stride: this.jobs, restoreFraction: this.o.restoreFraction ?? 0.1, caseLimitMs: this.caseLimitMs, selfTest: this.o.selfTest };
    const p = Bun.spawn([process.execPath, CHILD, "--child", JSON.stringify(childOpts)], { cwd: workDir, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, RAMSNAP_TEST_FAULTS: "" } });
    const end: ChildEnd = { next: first, ready: false, ended: false, hung: false, code: 0, signal: null, stderr: "" };
    void (async () => {
      const dec = new TextDecoder();
      for await (const c of p.stderr) end.stderr = (end.stderr + dec.decode(c, { stream: true })).slice(-4000);
    })();
    let last = performance.now();
    const timer = setInterval(() => {
      const limit = end.ready ? this.hangMs : Math.max(this.hangMs, 60_000); // starting up takes longer
      if (performance.now() - last > limit) {
        end.hung = true;
        p.kill("SIGKILL");
      }
    }, 100);
    for await (const line of lines(p.stdout)) {
      last = performance.now();
      this.#onLine(line, end);
    }
    end.code = await p.exited;
    end.signal = p.signalCode;
    clearInterval(timer);
    return end;
  }

  #onLine(line: string, end: ChildEnd): void {
    if (line === "R") end.ready = true;
    else if (line === "E") end.ended = true;
    else if (line.startsWith("F ")) this.stats.failures.push(JSON.parse(line.slice(2)));
    else if (line.startsWith("D ")) end.next = this.#onDone(line) + this.jobs;
  }

  /** Counts a "D" line; returns its case number. */
  #onDone(line: string): number {
    const s = this.stats;
    const [, i, ins, ver, res, ms] = line.split(" ");
    const n = Number(i);
    s.cases++;
    for (const [op, v] of [["inspect", ins], ["verify", ver], ["restore", res]] as [Op, string][]) {
      if (v !== "-") s.outcomes[op][v] = (s.outcomes[op][v] ?? 0) + 1;
    }
    if (res !== "-") s.restores++;
    if (Number(ms) > s.slowestMs) {
      s.slowestMs = Number(ms);
      s.slowestCase = n;
    }
    const now = performance.now();
    if (this.o.onProgress && now - this.#lastReport > 2000) {
      this.#lastReport = now;
      s.seconds = (now - this.t0) / 1000;
      this.o.onProgress(s);
    }
    return n;
  }

  /** The child hung or died in case `end.next`: a failure of that case. */
  #recordDeath(end: ChildEnd): void {
    const { seed, steps } = describeCase(this.o, end.next);
    const died = `child exited with ${end.signal ?? `code ${end.code}`}${end.ready ? "" : " before it was ready"}: ${end.stderr.trim().split("\n").slice(-6).join(" | ")}`;
    this.stats.failures.push({ case: end.next, seed, kind: end.hung ? "hang" : "crash", detail: end.hung ? `no answer for ${this.hangMs} ms; killed` : died, steps });
  }
}

/** The lines of a child's stdout, as they come. */
export async function* lines(stream: ReadableStream<Uint8Array>): AsyncGenerator<string> {
  const dec = new TextDecoder();
  let buf = "";
  for await (const chunk of stream) {
    buf += dec.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.indexOf("\n")) >= 0) {
      yield buf.slice(0, nl);
      buf = buf.slice(nl + 1);
    }
  }
}

/** The seed and mutation steps of a case, without running it (for reports of hangs and crashes). */
function describeCase(o: Pick<CampaignOptions, "seeds" | "campaign">, i: number): { seed: string; steps: string[] } {
  try {
    const seeds = o.seeds.map((s, k) => analyzeSeed(s, k));
    const { seed, mutationCase } = seedOf(seeds, o.campaign, i);
    return { seed: seed.name, steps: mutationFor(seed, o.campaign, mutationCase).steps };
  } catch (e) {
    return { seed: "?", steps: [`(could not describe: ${(e as Error).message})`] };
  }
}
