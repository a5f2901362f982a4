// A campaign's child process: runs every `stride`-th case from `first` and reports each on stdout, one line
// per event, for the parent (campaign.ts) to count and to watch:
//   R               ready (the seeds are analysed and one untimed warm-up case ran)
//   F <json>        a CaseFailure
//   D <case> <inspect> <verify> <restore> <ms>   a case done, with each operation's outcome ("-": not run)
//   E               every case done
// Run as `bun harness/fuzz/child.ts --child <ChildOptions as JSON>`.
import { readdirSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { analyzeSeed } from "./analysis.ts";
import { CaseRunner, type RunnerOptions } from "./case-runner.ts";
import type { CaseFailure } from "./outcomes.ts";
import type { SeedSpec } from "./seed.ts";

export interface ChildOptions extends RunnerOptions {
  seeds: SeedSpec[];
  /** Cases first, first + stride, ... below end. */
  first: number;
  end: number;
  stride: number;
}

export const CHILD = import.meta.path;

function fdCount(): number {
  return readdirSync("/proc/self/fd").length;
}

async function childMain(o: ChildOptions): Promise<void> {
  const out = (line: string) => writeSync(1, `${line}\n`);
  const seeds = o.seeds.map((s, k) => analyzeSeed(s, k));
  const runner = new CaseRunner(seeds, o);
  // One untimed run of every operation first: the first restore starts Workers cold and compiles a lot.
  await new CaseRunner([seeds[0]!], { ...o, workDir: join(o.workDir, "warm-up"), selfTest: undefined }).run(0);
  rmSync(join(o.workDir, "warm-up"), { recursive: true, force: true });
  out("R");
  let fds = -1;
  let n = 0;
  for (let i = o.first; i < o.end; i += o.stride) {
    const res = await runner.run(i);
    for (const f of res.failures) out(`F ${JSON.stringify(f)}`);
    out(`D ${i} ${res.outcome.inspect} ${res.outcome.verify} ${res.outcome.restore} ${res.ms.toFixed(1)}`);
    if (++n % 500 === 0) {
      // Descriptors must not pile up over thousands of failed operations.
      Bun.gc(true);
      const now = fdCount();
      if (fds < 0) fds = now;
      else if (now > fds + 32) out(`F ${JSON.stringify({ case: i, seed: res.seed, kind: "leak", detail: `${now - fds} more open descriptors than after 500 cases`, steps: [] } satisfies CaseFailure)}`);
    }
  }
  out("E");
}

if (import.meta.main && process.argv[2] === "--child") {
  await childMain(JSON.parse(process.argv[3]!) as ChildOptions);
}
