// The channel pool: N Workers fed page-chunk jobs from one queue. Each Worker keeps two jobs in hand
// so it never waits for the main thread between calls. Workers are created per operation and always
// closed, on success and on failure.
import { CancelledError, ChannelError } from "../errors.ts";
import { PackError } from "../format/errors.ts";
import type { ChannelSetup, FromChannel, Job, JobDone, ToChannel } from "./messages.ts";

const IN_FLIGHT = 2;

// In the compiled binary every entry point sits in one virtual tree rooted at src/ (the entries' common
// folder) and this code runs as part of the main entry, so the Worker is found from the root; from
// sources it sits beside this file. `bun run build` lists src/channels/worker.ts as the second entry.
const WORKER_URL = (Bun as { isStandaloneExecutable?: boolean }).isStandaloneExecutable
  ? new URL("./channels/worker.ts", import.meta.url).href
  : new URL("./worker.ts", import.meta.url).href;
const CLOSE_TIMEOUT_MS = 30_000;

type JobInput = Job extends infer J ? (J extends Job ? Omit<J, "id"> : never) : never;

/** `fn()`; if it throws, `onError` gets the error and the result is null. */
function attempt<T>(fn: () => T, onError: (e: Error) => void): T | null {
  try {
    return fn();
  } catch (e) {
    onError(e as Error);
    return null;
  }
}

export class ChannelPool {
  #workers: Worker[] = [];
  /** Workers whose thread has ended; they will never send "close" again. */
  #exited = new Set<Worker>();
  #closed = false;

  private constructor() {}

  static async start(count: number, setup: Omit<ChannelSetup, "type" | "channel">): Promise<ChannelPool> {
    const pool = new ChannelPool();
    try {
      await Promise.all(
        Array.from({ length: count }, (_, channel) => {
          const w = new Worker(WORKER_URL);
          pool.#workers.push(w);
          w.addEventListener("close", () => pool.#exited.add(w));
          return new Promise<void>((resolve, reject) => {
            w.onmessage = (ev: MessageEvent<FromChannel>) => (ev.data.type === "ready" ? resolve() : reject(new ChannelError(`channel ${channel} did not start`)));
            w.onerror = (ev) => reject(new ChannelError(`channel ${channel} failed to start: ${ev.message}`));
            w.postMessage({ type: "setup", channel, ...setup } satisfies ToChannel);
          });
        }),
      );
    } catch (e) {
      await pool.close();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.#workers.length;
  }

  /**
   * Runs every job; resolves when all are done, rejects on the first failure or on abort (after the
   * jobs already handed out have finished, so no Worker is left touching memory the caller frees).
   */
  /**
   * `onDone` may return a promise (a pack's extents being appended to its output): the channel that did the
   * job gets no new one until it settles, which bounds the memory in flight by the channels' jobs.
   */
  run<J extends JobInput>(jobs: Iterable<J>, onDone: (d: JobDone, job: J) => void | Promise<void>, signal?: AbortSignal): Promise<void> {
    const inHand = new Map<number, J>();
    const iter = jobs[Symbol.iterator]();
    let nextId = 0;
    const held = this.#workers.map(() => 0); // jobs each Worker has in hand
    const outstandingTotal = () => held.reduce((a, b) => a + b, 0);
    let failure: Error | undefined;
    let exhausted = false;
    let consuming = 0; // onDone promises not settled yet
    return new Promise<void>((resolve, reject) => {
      const exits: [Worker, (ev: Event) => void][] = [];
      const settle = () => {
        if (outstandingTotal() > 0 || consuming > 0) return;
        for (const w of this.#workers) w.onmessage = w.onerror = null;
        for (const [w, onExit] of exits) w.removeEventListener("close", onExit);
        signal?.removeEventListener("abort", onAbort);
        if (failure) reject(failure);
        else if (exhausted) resolve();
      };
      const feed = (w: Worker, channel: number) => {
        if (failure || exhausted) return;
        const n = iter.next();
        if (n.done) {
          exhausted = true;
          return;
        }
        held[channel]!++;
        const id = nextId++;
        inHand.set(id, n.value);
        w.postMessage({ ...n.value, id } as ToChannel);
      };
      const fail = (e: Error) => {
        failure ??= e;
        settle();
      };
      const onAbort = () => fail(new CancelledError());
      if (signal?.aborted) return reject(new CancelledError());
      signal?.addEventListener("abort", onAbort);
      this.#workers.forEach((w, channel) => {
        w.onmessage = (ev: MessageEvent<FromChannel>) => {
          const m = ev.data;
          if (m.type === "ready") return;
          held[channel]!--;
          if (m.type === "failed") fail(m.pack ? new PackError(m.message) : new ChannelError(m.message, m.code));
          else {
            const job = inHand.get(m.id)!;
            inHand.delete(m.id);
            const next = () => {
              feed(w, channel);
              settle();
            };
            // A caller that cannot take the job's result (a pack's append failed) stops the run.
            const consumed = failure ? undefined : attempt(() => onDone(m, job), fail);
            if (consumed === null) return;
            if (!consumed) return next();
            consuming++;
            consumed.finally(() => consuming--).then(next, fail);
          }
        };
        w.onerror = (ev) => {
          // An uncaught error ends the Worker: its jobs will never report back.
          held[channel] = 0;
          fail(new ChannelError(`channel ${channel} crashed: ${ev.message}`));
        };
        // A Worker that exits (killed, or process.exit in native code's wake) takes its jobs with it.
        const onExit = (ev: Event) => {
          held[channel] = 0;
          fail(new ChannelError(`channel ${channel} stopped unexpectedly (exit code ${(ev as CloseEvent).code ?? "?"}) with jobs in hand`));
        };
        w.addEventListener("close", onExit);
        exits.push([w, onExit]);
        for (let i = 0; i < IN_FLIGHT; i++) feed(w, channel);
      });
      settle();
    });
  }

  /** Asks every Worker to free its buffers and exit; terminates any that does not within the timeout. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    await Promise.all(
      this.#workers.map(
        (w) =>
          new Promise<void>((resolve) => {
            if (this.#exited.has(w)) return resolve();
            const timer = setTimeout(() => {
              w.terminate();
              resolve();
            }, CLOSE_TIMEOUT_MS);
            w.addEventListener("close", () => {
              clearTimeout(timer);
              resolve();
            });
            try {
              w.postMessage({ type: "close" } satisfies ToChannel);
            } catch {
              w.terminate();
            }
          }),
      ),
    );
    this.#workers = [];
  }
}
