// A campaign's results as text: the outcome counts, and each failure with its mutation and the command that
// replays it.
import type { CampaignStats } from "./campaign.ts";
import type { CaseFailure, Op } from "./outcomes.ts";

export function formatStats(s: CampaignStats): string {
  const ops = (["inspect", "verify", "restore"] as Op[]).map((op) => {
    const parts = Object.entries(s.outcomes[op])
      .sort((a, b) => b[1] - a[1])
      .map(([k, v]) => `${k} ${v}`);
    return `  ${op}: ${parts.join(", ") || "(not run)"}`;
  });
  return [
    `${s.cases} cases in ${s.seconds.toFixed(1)} s (${(s.cases / Math.max(s.seconds, 1e-9)).toFixed(0)} cases/s), ${s.restores} with restore; slowest case ${s.slowestCase} took ${s.slowestMs.toFixed(0)} ms; ${s.respawns} child restarts`,
    ...ops,
    `  failures: ${s.failures.length}`,
  ].join("\n");
}

export function formatFailure(f: CaseFailure, campaign: number): string {
  return `case ${f.case} (${f.seed}) ${f.kind}${f.op ? ` in ${f.op}` : ""}: ${f.detail}\n    mutation: ${f.steps.join("; ") || "(none)"}\n    replay: bun scripts/fuzz.ts --seed ${campaign} --case ${f.case}`;
}
