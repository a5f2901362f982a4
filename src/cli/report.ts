// How a command shows its result and its progress: JSON for scripts (docs/json.md) or text for people on
// stdout, a progress bar on stderr while the work runs, and Ctrl-C or SIGTERM turned into a clean cancel.
import { resolve } from "node:path";
import { CancelledError } from "../errors.ts";
import { log, result } from "./log.ts";
import { abortOnSigint, type Bar, progressBar } from "./progress.ts";

/** One JSON object on stdout (docs/json.md): for programs, so it is written as is, not through the logger. */
export function printJson(value: unknown): void {
  process.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
}

/** JSON for scripts, or text for people, which goes through the logger like every human line. */
export function print(asJson: boolean | undefined, value: unknown, text: () => string): void {
  if (asJson) printJson(value);
  else result(text());
}

/** docs/json.md: every path in JSON output is absolute, so a script may run it from another folder. */
/** A path made absolute; an object's s3:// URL stays as it is. */
export const abs = (path: string): string => (path.startsWith("s3://") ? path : resolve(path));

export interface ProgressFlags {
  json?: boolean;
  progress?: boolean;
}

/** Whether to draw a bar: --progress decides when given; otherwise a terminal does, and never for --json. */
export function wantsBar(flags: ProgressFlags): boolean | undefined {
  if (flags.progress !== undefined) return flags.progress;
  return flags.json ? false : undefined;
}

/**
 * Runs `run` with a progress bar and a cancel signal tied to Ctrl-C and SIGTERM. A cancelled run is
 * reported with `cancelled`'s message (when given) and the exit status of the signal that stopped it.
 */
export async function withProgress<T>(
  label: string,
  flags: ProgressFlags,
  run: (signal: AbortSignal, bar: Bar) => Promise<T>,
  cancelled?: () => string,
): Promise<T> {
  const bar = progressBar(label, wantsBar(flags));
  const sig = abortOnSigint();
  try {
    return await run(sig.signal, bar);
  } catch (e) {
    bar.done();
    if (e instanceof CancelledError) throw sig.cancelled(cancelled?.() ?? e.message);
    throw e;
  } finally {
    bar.done();
    sig.dispose();
  }
}

/** One line for each temporary file of an earlier, killed save that this one removed. */
export function noteStale(removed: string[] | undefined): void {
  for (const p of removed ?? []) log.info(`removed ${p}, left by an earlier save that was killed`);
}
