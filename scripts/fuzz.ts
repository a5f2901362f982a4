#!/usr/bin/env bun
// The long fuzz campaign over inspect, verify and restore (see harness/fuzz/ for what a case is
// and what it checks). The corpus is made fresh (QEMU guests and ramsnap saves) in a scratch folder.
//
//   bun scripts/fuzz.ts --cases 100000 --seed 1            a campaign; exit 1 if anything was found
//   bun scripts/fuzz.ts --cases 100000 --seed 1 --jobs 4   four child processes side by side
//   bun scripts/fuzz.ts --seed 1 --case 4711               replay one case in this process, verbosely
//
// Options: --restore-fraction F (share of cases that also restore; default 0.1), --case-limit MS (a case
// slower than this fails; default 5000), --hang MS (a child silent this long is killed; default 15000),
// --keep (leave the scratch folder), --dir DIR (scratch folder; default a fresh one in /dev/shm), --ram-mib N
// (the QEMU guests' RAM; default 16).
import { mkdtempSync, rmSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { analyzeSeed } from "../harness/fuzz/analysis.ts";
import { runCampaign } from "../harness/fuzz/campaign.ts";
import { CaseRunner } from "../harness/fuzz/case-runner.ts";
import { makeCorpus } from "../harness/fuzz/corpus.ts";
import { mutationFor, seedOf } from "../harness/fuzz/mutation.ts";
import { classify } from "../harness/fuzz/outcomes.ts";
import { formatFailure, formatStats } from "../harness/fuzz/report.ts";

const { values } = parseArgs({
  options: {
    cases: { type: "string", default: "100000" },
    seed: { type: "string", default: "1" },
    jobs: { type: "string", default: "2" },
    "restore-fraction": { type: "string", default: "0.1" },
    "case-limit": { type: "string", default: "5000" },
    hang: { type: "string", default: "15000" },
    case: { type: "string" },
    keep: { type: "boolean", default: false },
    dir: { type: "string" },
    "ram-mib": { type: "string", default: "16" },
    help: { type: "boolean", short: "h" },
  },
});
if (values.help) {
  console.log("usage: bun scripts/fuzz.ts [--cases N] [--seed S] [--jobs J] [--restore-fraction F] [--case-limit MS] [--hang MS] [--case I] [--keep] [--dir DIR] [--ram-mib N]");
  process.exit(0);
}
const num = (name: string, v: string | undefined): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n < 0) {
    console.error(`--${name} must be a non-negative number, got ${v}`);
    process.exit(2);
  }
  return n;
};
const campaign = num("seed", values.seed);
const root = values.dir ?? mkdtempSync(join("/dev/shm", "ramsnap-fuzz-"));
const cleanup = () => {
  if (!values.keep && !values.dir) rmSync(root, { recursive: true, force: true });
};

try {
  const t0 = performance.now();
  process.stderr.write(`making the corpus in ${root} (QEMU guests and ramsnap saves)...\n`);
  const seeds = await makeCorpus(join(root, "corpus"), num("ram-mib", values["ram-mib"]));
  process.stderr.write(`corpus ready in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${seeds.map((s) => s.name).join(", ")}\n`);

  if (values.case !== undefined) {
    // Replay one case here, with stacks.
    const i = num("case", values.case);
    const analyzed = seeds.map((s, k) => analyzeSeed(s, k));
    const { seed, mutationCase } = seedOf(analyzed, campaign, i);
    const m = mutationFor(seed, campaign, mutationCase);
    console.log(`case ${i}: seed ${seed.name}; mutation: ${m.steps.join("; ") || "(none)"}`);
    const runner = new CaseRunner(analyzed, { workDir: join(root, "replay"), campaign, restoreFraction: num("restore-fraction", values["restore-fraction"]), caseLimitMs: num("case-limit", values["case-limit"]) });
    const res = await runner.run(i);
    console.log(`outcome: ${JSON.stringify(res.outcome)} in ${res.ms.toFixed(1)} ms`);
    for (const f of res.failures) console.log(formatFailure(f, campaign));
    process.exitCode = res.failures.length ? 1 : 0;
  } else {
    let reported = 0;
    const stats = await runCampaign({
      seeds,
      workRoot: join(root, "work"),
      campaign,
      cases: num("cases", values.cases),
      jobs: Math.max(1, num("jobs", values.jobs)),
      restoreFraction: num("restore-fraction", values["restore-fraction"]),
      caseLimitMs: num("case-limit", values["case-limit"]),
      hangMs: num("hang", values.hang),
      onProgress: (s) => {
        process.stderr.write(`  ${s.cases} cases, ${(s.cases / s.seconds).toFixed(0)}/s, ${s.failures.length} failures\n`);
        // failures as they come, so a campaign stopped early still tells what it found
        for (const f of s.failures.slice(reported)) process.stderr.write(`  found: ${formatFailure(f, campaign).replace(/\n/g, "\n  ")}\n`);
        reported = s.failures.length;
      },
    });
    console.log(formatStats(stats));
    const shown = new Map<string, number>();
    for (const f of stats.failures) {
      // The same problem tends to show in many cases: print the first few of each kind and op.
      const key = `${f.kind}:${f.op ?? ""}:${f.detail.split("\n")[0]!.replace(/\d+/g, "N").slice(0, 120)}`;
      const n = (shown.get(key) ?? 0) + 1;
      shown.set(key, n);
      if (n <= 3) console.log(formatFailure(f, campaign));
    }
    if (shown.size) console.log(`${shown.size} distinct failure signatures`);
    process.exitCode = stats.failures.length ? 1 : 0;
  }
} catch (e) {
  console.error(`fuzz: ${classify(e).message}`);
  if (e instanceof Error && e.stack) console.error(e.stack);
  process.exitCode = 2;
} finally {
  cleanup();
}
