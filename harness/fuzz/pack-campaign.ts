// A pack fuzz campaign (see pack.ts for the damage and the rule): cases run in child processes, as in
// campaign.ts, so a crash or a hang is caught in its case and the campaign goes on. The child is this file
// run as `bun harness/fuzz/pack-campaign.ts --child <options as JSON>`; it reports one line per event:
//   R   ready;   F <json>   a PackCaseFailure;   D <json>   a case done (its PackCaseResult without failures);   E   all done.
// Run on its own, it is the long campaign (the corpus made fresh in /dev/shm):
//   bun harness/fuzz/pack-campaign.ts --cases 20000 --seed 1 [--jobs 2]
//   bun harness/fuzz/pack-campaign.ts --seed 1 --case 4711      replay one case here, with stacks
import { mkdirSync, mkdtempSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { analyzePackSeed, formatPackFailure, makePackCorpus, PACK_OPS, packMutationFor, packSeedOf, type PackCaseFailure, type PackCaseResult, type PackOp, type PackSeedSpec, runPackCase } from "./pack.ts";
import { lines } from "./campaign.ts";

export interface PackCampaignOptions {
  seeds: PackSeedSpec[];
  workRoot: string;
  campaign: number;
  cases: number;
  jobs?: number;
  caseLimitMs?: number;
  hangMs?: number;
  /** Cases start here (the first `seeds.length` cases are the seeds unchanged). */
  first?: number;
}

export interface PackCampaignStats {
  cases: number;
  seconds: number;
  forged: number;
  outcomes: Record<PackOp, Record<string, number>>;
  failures: PackCaseFailure[];
  respawns: number;
  slowestMs: number;
}

interface ChildOptions {
  seeds: PackSeedSpec[];
  workDir: string;
  campaign: number;
  first: number;
  end: number;
  stride: number;
  caseLimitMs: number;
}

export async function runPackCampaign(o: PackCampaignOptions): Promise<PackCampaignStats> {
  const t0 = performance.now();
  const jobs = o.jobs ?? 2;
  const hangMs = o.hangMs ?? (o.caseLimitMs ?? 5000) + 10_000;
  const stats: PackCampaignStats = { cases: 0, seconds: 0, forged: 0, outcomes: Object.fromEntries(PACK_OPS.map((op) => [op, {}])) as PackCampaignStats["outcomes"], failures: [], respawns: 0, slowestMs: 0 };
  const runJob = async (k: number) => {
    let next = (o.first ?? 0) + k;
    for (let spawns = 1; next < o.cases; spawns++) {
      if (spawns > 20) throw new Error(`pack fuzz job ${k}: its child died 20 times; giving up`);
      if (spawns > 1) stats.respawns++;
      const workDir = join(o.workRoot, `job${k}`);
      rmSync(workDir, { recursive: true, force: true });
      mkdirSync(workDir, { recursive: true });
      const child: ChildOptions = { seeds: o.seeds, workDir, campaign: o.campaign, first: next, end: o.cases, stride: jobs, caseLimitMs: o.caseLimitMs ?? 5000 };
      const p = Bun.spawn([process.execPath, import.meta.path, "--child", JSON.stringify(child)], { cwd: workDir, stdout: "pipe", stderr: "pipe", stdin: "ignore", env: { ...process.env, RAMSNAP_TEST_FAULTS: "" } });
      let stderr = "";
      void (async () => {
        const dec = new TextDecoder();
        for await (const c of p.stderr) stderr = (stderr + dec.decode(c, { stream: true })).slice(-4000);
      })();
      let last = performance.now();
      let ready = false;
      let ended = false;
      let hung = false;
      let at = next;
      const timer = setInterval(() => {
        if (performance.now() - last > (ready ? hangMs : Math.max(hangMs, 60_000))) {
          hung = true;
          p.kill("SIGKILL");
        }
      }, 100);
      for await (const line of lines(p.stdout)) {
        last = performance.now();
        if (line === "R") ready = true;
        else if (line === "E") ended = true;
        else if (line.startsWith("F ")) stats.failures.push(JSON.parse(line.slice(2)));
        else if (line.startsWith("D ")) {
          const r = JSON.parse(line.slice(2)) as PackCaseResult;
          stats.cases++;
          if (r.forged) stats.forged++;
          for (const op of PACK_OPS) stats.outcomes[op][r.outcome[op]] = (stats.outcomes[op][r.outcome[op]] ?? 0) + 1;
          stats.slowestMs = Math.max(stats.slowestMs, r.ms);
          at = r.case + jobs;
        }
      }
      const code = await p.exited;
      clearInterval(timer);
      if (ended && code === 0) return;
      if (!ready) throw new Error(`pack fuzz child could not start: ${stderr.trim()}`);
      stats.cases++;
      stats.failures.push({ case: at, seed: "?", kind: hung ? "slow" : "unclean-error", detail: hung ? `hang: no answer for ${hangMs} ms; killed` : `crash: child exited with ${p.signalCode ?? `code ${code}`}: ${stderr.trim().split("\n").slice(-6).join(" | ")}`, steps: [] });
      next = at + jobs;
    }
  };
  await Promise.all(Array.from({ length: jobs }, (_, k) => runJob(k)));
  stats.seconds = (performance.now() - t0) / 1000;
  return stats;
}

export function formatPackStats(s: PackCampaignStats): string {
  const ops = PACK_OPS.map((op) => `  ${op}: ${Object.entries(s.outcomes[op]).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${v}`).join(", ")}`);
  return [`${s.cases} pack cases (${s.forged} forged) in ${s.seconds.toFixed(1)} s; slowest ${s.slowestMs.toFixed(0)} ms; ${s.respawns} child restarts`, ...ops, `  failures: ${s.failures.length}`].join("\n");
}

async function childMain(o: ChildOptions): Promise<void> {
  const out = (line: string) => writeSync(1, `${line}\n`);
  const seeds = o.seeds.map((s, k) => analyzePackSeed(s, k));
  await runPackCase(seeds, o.campaign, 0, join(o.workDir, "warm-up"), 60_000); // Workers start cold once
  out("R");
  for (let i = o.first; i < o.end; i += o.stride) {
    const { failures, ...res } = await runPackCase(seeds, o.campaign, i, join(o.workDir, "case"), o.caseLimitMs);
    for (const f of failures) out(`F ${JSON.stringify(f)}`);
    out(`D ${JSON.stringify(res)}`);
  }
  out("E");
}

async function scriptMain(): Promise<number> {
  const { values } = parseArgs({ options: { cases: { type: "string", default: "20000" }, seed: { type: "string", default: "1" }, jobs: { type: "string", default: "2" }, case: { type: "string" } } });
  const campaign = Number(values.seed);
  const root = mkdtempSync("/dev/shm/ramsnap-pack-fuzz-");
  try {
    const specs = await makePackCorpus(join(root, "corpus"));
    if (values.case !== undefined) {
      const i = Number(values.case);
      const seeds = specs.map((s, k) => analyzePackSeed(s, k));
      const { seed, mutationCase } = packSeedOf(seeds, campaign, i);
      console.log(`case ${i}: seed ${seed.name}; mutation: ${packMutationFor(seed, campaign, mutationCase).steps.join("; ") || "(none)"}`);
      const res = await runPackCase(seeds, campaign, i, join(root, "replay"));
      console.log(`outcome: ${JSON.stringify(res.outcome)} in ${res.ms.toFixed(1)} ms`);
      for (const f of res.failures) console.log(formatPackFailure(f, campaign));
      return res.failures.length ? 1 : 0;
    }
    const stats = await runPackCampaign({ seeds: specs, workRoot: join(root, "work"), campaign, cases: Number(values.cases), jobs: Number(values.jobs) });
    console.log(formatPackStats(stats));
    for (const f of stats.failures) console.log(formatPackFailure(f, campaign));
    return stats.failures.length ? 1 : 0;
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
}

if (import.meta.main) {
  if (process.argv[2] === "--child") await childMain(JSON.parse(process.argv[3]!) as ChildOptions);
  else process.exitCode = await scriptMain();
}
