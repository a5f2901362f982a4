// `ramsnap diff`: which pages differ between two saves.
import { defineCommand } from "citty";
import { refusePack } from "../savefile/open.ts";
import { diff, type DiffReport } from "../diff.ts";
import { sharedArgs } from "./args.ts";
import { abs, print } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, plural } from "./text.ts";

/** docs/json.md's diff object: `a` and `b` are the two files, absolute; page bytes read are `readBytes`, as in restore. */
export const diffJson = ({ bytesRead, ...r }: DiffReport) => ({ ...r, a: abs(r.a), b: abs(r.b), readBytes: bytesRead });

export const diffCommand = defineCommand({
  meta: { name: "diff", description: "Which pages differ between two saves of the same RAM blocks" },
  args: {
    a: { type: "positional", description: "First save file", required: true },
    b: { type: "positional", description: "Second save file", required: true },
    json: sharedArgs.json,
  },
  run({ args }) {
    for (const f of [args.a, args.b]) refusePack(f, "diff");
    const r = diff({ a: args.a, b: args.b });
    print(args.json, diffJson(r), () => renderDiff(r));
    if (!r.same) process.exitCode = 1;
  },
});
EXAMPLES.set(
  diffCommand,
  `  ramsnap diff monday.ram tuesday.ram
  ramsnap diff a.ram b.ram --json | jq '.blocks[] | {name, differing}'

A page a file does not hold counts as zero. Exit status 0 when the saves hold the same RAM, 1 when not.`,
);

export function renderDiff(r: DiffReport): string {
  const lines = [`${r.a} vs ${r.b}: ${r.same ? "same RAM" : "RAM differs"} (${bytes(r.bytesRead)} of pages read)`];
  for (const b of r.blocks) {
    const shown = b.ranges.slice(0, 8).map(([p, n]) => (n === 1 ? `${p}` : `${p}-${p + n - 1}`));
    const more = b.ranges.length > 8 ? `, ... (${plural(b.ranges.length, "range")})` : "";
    lines.push(`  ${b.name}: ${b.differing} of ${plural(b.pages, "page")} ${b.differing === 1 ? "differs" : "differ"}${b.differing ? `: ${shown.join(", ")}${more}` : ""}`);
  }
  if (r.onlyInA.length) lines.push(`  only in ${r.a}: ${r.onlyInA.join(", ")}`);
  if (r.onlyInB.length) lines.push(`  only in ${r.b}: ${r.onlyInB.join(", ")}`);
  return `${lines.join("\n")}\n`;
}
