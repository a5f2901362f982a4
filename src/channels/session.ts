// One page-mover session: the channels (Workers) and everything a save, restore, convert or extract hands
// them, from start to close. The orchestrators open their save file and RAM sides, give them to the
// session to own, start the channels on the save file's descriptor, run their jobs, and close the session
// in one place (`await using`) whatever happened: the Workers first (jobs already handed out finish, so
// no Worker touches memory being unmapped), then what it owns, newest first.
import { ExtentHashes } from "../integrity/hash.ts";
import { throwIfAborted } from "../errors.ts";
import { type Job, type JobDone, noStages, STAGES, type StageSeconds } from "./messages.ts";
import { ChannelPool } from "./pool.ts";

/** The descriptor channels do their positional I/O on. */
export interface ChannelIo {
  fd: number;
  /** O_DIRECT on `fd` (proven by a probe): buffers, offsets and lengths must be aligned. */
  direct: boolean;
  /** Names the file in messages. */
  name: string;
}

export interface Progress {
  /** Page bytes handled so far (present or not) and in all. */
  doneBytes: number;
  totalBytes: number;
  /** Bytes that went through I/O calls so far. */
  ioBytes: number;
  seconds: number;
}

export interface TransferStats {
  ioBytes: number;
  ioCalls: number;
  present: number;
  /** Save: source bytes skipped as holes (never-touched guest RAM), not read. */
  holeBytes: number;
  /** Seconds in each stage, summed over the channels (see messages.ts StageSeconds). */
  stages: StageSeconds;
  /** Wall seconds from the first job handed out to the last one done. */
  transferSeconds: number;
}

export interface SessionOptions {
  channels: number;
  /** Longest gap of absent pages bridged by one I/O call (see plan.ts). */
  maxGap: number;
  onProgress?: (p: Progress) => void;
  signal?: AbortSignal;
}

export interface Releasable {
  /** May wait (an object store's upload being aborted); the session waits for it. */
  release(): void | Promise<void>;
}

type JobInput = Job extends infer J ? (J extends Job ? Omit<J, "id"> : never) : never;

export class PageSession implements AsyncDisposable {
  /** Extent hashes of the jobs that asked for them, by block index. */
  readonly hashes = new ExtentHashes();
  #owned: Releasable[] = [];
  #pool: ChannelPool | undefined;
  #pageSize = 0;
  readonly #t0 = performance.now();

  constructor(readonly options: SessionOptions) {
    throwIfAborted(options.signal);
  }

  /** Takes `r` into the session's care: released when the session closes. */
  own<T extends Releasable>(r: T): T {
    this.#owned.push(r);
    return r;
  }

  /** Starts the channels on the save file's descriptor, for pages of `pageSize` bytes. */
  async start(io: ChannelIo, pageSize: number): Promise<void> {
    const { channels, maxGap } = this.options;
    this.#pageSize = pageSize;
    this.#pool = await ChannelPool.start(channels, { fd: io.fd, direct: io.direct, path: io.name, pageSize, maxGap });
  }

  /**
   * Runs every job on the channels, reporting progress and gathering hashes; stops on abort or failure.
   * `consume` takes what a job produced (a pack's extents) before its channel gets another job.
   */
  async run(jobs: Iterable<JobInput>, totalBytes: number, consume?: (d: JobDone, job: JobInput) => void | Promise<void>): Promise<TransferStats> {
    const stats: TransferStats = { ioBytes: 0, ioCalls: 0, present: 0, holeBytes: 0, stages: noStages(), transferSeconds: 0 };
    let doneBytes = 0;
    const onDone = (d: JobDone, job: JobInput) => {
      if (d.hashes) this.hashes.add(job.block, job.firstPage * this.#pageSize, d.hashes);
      doneBytes += d.bytes;
      stats.ioBytes += d.ioBytes;
      stats.ioCalls += d.ioCalls;
      stats.present += d.present;
      stats.holeBytes += d.holeBytes ?? 0;
      for (const k of STAGES) stats.stages[k] += d.stages[k];
      this.options.onProgress?.({ doneBytes, totalBytes, ioBytes: stats.ioBytes, seconds: this.seconds });
      return consume?.(d, job);
    };
    const t0 = performance.now();
    await this.#pool!.run(jobs, onDone, this.options.signal);
    stats.transferSeconds = (performance.now() - t0) / 1000;
    return stats;
  }

  /** Seconds since the session began. */
  get seconds(): number {
    return (performance.now() - this.#t0) / 1000;
  }

  async close(): Promise<void> {
    await this.#pool?.close();
    this.#pool = undefined;
    // Everything is released, even after one release fails; then the first failure is raised.
    let first: unknown;
    for (const r of this.#owned.splice(0).reverse()) {
      try {
        await r.release();
      } catch (e) {
        first ??= e;
      }
    }
    if (first !== undefined) throw first;
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

export const gibPerSecond = (bytes: number, seconds: number): number => (seconds > 0 ? bytes / 2 ** 30 / seconds : 0);
