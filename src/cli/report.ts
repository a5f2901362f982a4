// How a command shows its result and its progress: JSON for scripts or text for people on stdout, a
// progress bar on stderr while the work runs, and Ctrl-C turned into a clean cancel.
import { abortOnSigint, progressBar } from "./progress.ts";

export function print(asJson: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(asJson ? `${JSON.stringify(value, null, 2)}\n` : text());
}

/** Runs `run` with a progress bar (never with --json) and a cancel signal tied to Ctrl-C and SIGTERM. */
export async function withProgress<T>(label: string, json: boolean | undefined, run: (signal: AbortSignal, bar: ReturnType<typeof progressBar>) => Promise<T>): Promise<T> {
  const bar = progressBar(label, json ? false : undefined);
  const sig = abortOnSigint();
  try {
    return await run(sig.signal, bar);
  } finally {
    bar.done();
    sig.dispose();
  }
}
