// Human-facing messages on stderr (errors, warnings, notes), through consola: one logger for the whole CLI,
// so a later reporter (colours on a terminal, JSON lines for --json) is one change here. The reporter
// writes the plain line and nothing else: error lines are "ramsnap CMD: message" exactly, which scripts
// and tests match, and piped output carries no colour codes.
import { createConsola, type ConsolaReporter } from "consola";

const plainLine: ConsolaReporter = {
  log: (entry) => {
    process.stderr.write(`${entry.args.map(String).join(" ")}\n`);
  },
};

/** Level 3 (info) whatever std-env thinks of the environment: consola would drop to warn under a test runner. */
export const log = createConsola({ level: 3, reporters: [plainLine] });
