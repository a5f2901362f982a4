// A one-line progress bar on stderr, drawn only on a terminal (piped output stays clean for scripts).
import type { Progress } from "../channels/session.ts";
import { bytes } from "./text.ts";

export function progressBar(label: string, enabled = process.stderr.isTTY === true): { update: (p: Progress) => void; done: () => void } {
  let last = 0;
  let drawn = false;
  const update = (p: Progress) => {
    const now = performance.now();
    if (!enabled || (now - last < 100 && p.doneBytes < p.totalBytes)) return;
    last = now;
    const frac = p.totalBytes ? p.doneBytes / p.totalBytes : 1;
    const width = 30;
    const fill = Math.round(frac * width);
    const rate = p.seconds > 0 ? p.doneBytes / p.seconds : 0;
    const eta = rate > 0 ? (p.totalBytes - p.doneBytes) / rate : 0;
    const line =
      `${label} [${"#".repeat(fill)}${"-".repeat(width - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%  ` +
      `${bytes(p.doneBytes)} / ${bytes(p.totalBytes)}  ${(rate / 2 ** 30).toFixed(2)} GiB/s  ETA ${eta.toFixed(0)}s`;
    process.stderr.write(`\r${line}\x1b[K`);
    drawn = true;
  };
  const done = () => {
    if (drawn) process.stderr.write("\r\x1b[K");
  };
  return { update, done };
}

/** Aborts on the first Ctrl-C (the operation then cleans up); a second one exits at once. */
export function abortOnSigint(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const handler = () => {
    if (ac.signal.aborted) process.exit(130);
    ac.abort();
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    signal: ac.signal,
    dispose: () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}
