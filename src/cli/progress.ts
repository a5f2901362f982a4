// Progress on stderr (cli-progress) and interruption (Ctrl-C, SIGTERM) for the commands that move pages.
import cliProgress from "cli-progress";
import type { Progress } from "../channels/session.ts";
import { CancelledError } from "../errors.ts";
import { bytes } from "./text.ts";

export interface Bar {
  update: (p: Progress) => void;
  done: () => void;
}

/**
 * A bar redrawn in place on a terminal. `enabled` (from --progress) forces it on a pipe too, where
 * cli-progress writes one plain line a second instead (a log keeps a readable trace, with no colour or
 * cursor codes); by default it shows only when stderr is a terminal, so piped output stays clean.
 * It starts at the first report, when the total is known and pages are moving.
 */
export function progressBar(label: string, enabled = process.stderr.isTTY === true): Bar {
  if (!enabled) return { update: () => {}, done: () => {} };
  const bar = new cliProgress.SingleBar({
    format: `${label} [{bar}] {percentage}%  {done} / {all}  {rate} GiB/s  ETA {eta}s`,
    barCompleteChar: "#",
    barIncompleteChar: "-",
    barsize: 30,
    hideCursor: true,
    clearOnComplete: true,
    noTTYOutput: true,
    notTTYSchedule: 1000,
    stream: process.stderr,
  });
  let started = false;
  const payload = (p: Progress) => ({
    done: bytes(p.doneBytes),
    all: bytes(p.totalBytes),
    rate: (p.seconds > 0 ? p.doneBytes / p.seconds / 2 ** 30 : 0).toFixed(2),
  });
  return {
    update: (p) => {
      if (!started) {
        bar.start(p.totalBytes, p.doneBytes, payload(p));
        started = true;
      } else bar.update(p.doneBytes, payload(p));
    },
    done: () => {
      if (started) bar.stop();
      started = false;
    },
  };
}

const SIGNAL_STATUS = { SIGINT: 130, SIGTERM: 143 } as const;
type Interrupt = keyof typeof SIGNAL_STATUS;

export interface Interruption {
  signal: AbortSignal;
  /** The CancelledError to report for an operation the signal stopped, with the signal's exit status. */
  cancelled(message?: string): CancelledError;
  dispose(): void;
}

/**
 * Aborts on the first Ctrl-C or SIGTERM (the operation then cleans up and reports it, exit 130 or 143);
 * a second one exits at once with the same rule.
 */
export function abortOnSigint(): Interruption {
  const ac = new AbortController();
  let received: Interrupt = "SIGINT";
  const handlers = (Object.keys(SIGNAL_STATUS) as Interrupt[]).map((name) => {
    const handler = () => {
      if (ac.signal.aborted) process.exit(SIGNAL_STATUS[name]);
      received = name;
      ac.abort();
    };
    process.on(name, handler);
    return [name, handler] as const;
  });
  return {
    signal: ac.signal,
    cancelled: (message = "cancelled") => new CancelledError(message, SIGNAL_STATUS[received]),
    dispose: () => {
      for (const [name, handler] of handlers) process.off(name, handler);
    },
  };
}
