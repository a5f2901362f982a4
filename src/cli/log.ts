// Every human-facing line of the CLI goes through one consola logger: results (`log.log`, on stdout, so
// `ramsnap inspect f > report.txt` keeps just the report) and messages (info, warnings, errors, on stderr,
// so they never mix into a result a script reads). JSON for scripts is not human-facing and is written
// directly (report.ts). Two reporters: on a terminal, errors and warnings are coloured; piped, lines are
// written exactly as given, with no colour codes, because scripts and tests match "ramsnap CMD: message".
import { createConsola, type ConsolaReporter, type LogObject } from "consola";
import { colors } from "consola/utils";

const text = (entry: LogObject): string => entry.args.map(String).join(" ");
const isResult = (entry: LogObject): boolean => entry.type === "log";

const plainReporter: ConsolaReporter = {
  log: (entry) => {
    (isResult(entry) ? process.stdout : process.stderr).write(`${text(entry)}\n`);
  },
};

const terminalReporter: ConsolaReporter = {
  log: (entry) => {
    if (isResult(entry)) return void process.stdout.write(`${text(entry)}\n`);
    const paint = entry.type === "error" || entry.type === "fatal" ? colors.red : entry.type === "warn" ? colors.yellow : (s: string) => s;
    process.stderr.write(`${paint(text(entry))}\n`);
  },
};

/** Colour only for a person at a terminal who has not asked for none (https://no-color.org). */
const colourful = process.stderr.isTTY === true && !process.env.NO_COLOR;

/**
 * Level 3 (info) whatever std-env thinks of the environment: consola would drop to warn under a test
 * runner. No throttling: consola folds repeated identical lines by default, and a report's lines may repeat.
 */
export const log = createConsola({ level: 3, throttle: 0, reporters: [colourful ? terminalReporter : plainReporter] });

/** A result for people on stdout (the text form of what --json prints); `text` may end with a newline. */
export function result(text: string): void {
  log.log(text.replace(/\n$/, ""));
}
