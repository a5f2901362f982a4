// Following a migration QEMU runs: poll query-migrate (events would need the "events" capability, and a
// buffered event from an earlier migration could pass for this one's end) and report progress.
//
// Stopping early is done by waiting, not by migrate_cancel. QEMU 10.0.2 frees the mapped-ram file bitmap
// (ram_save_cleanup) before it joins the multifd send threads (multifd_send_shutdown), so a cancel that
// lands while a channel is mid-write segfaults QEMU in ramblock_set_file_bmap_atomic, taking the guest
// with it: 2 to 4 cancels in 12 crashed here, with a plain file: URI and no ramsnap involved. QEMU 11.1.3
// still does (2 cancels in 20), so no QEMU version is exempt from the wait. A migration
// that runs to its end never crashes, so `signal` lets it finish and the caller throws the file away;
// `cancelNow` is the explicit, risky migrate_cancel.
import { CancelledError } from "../errors.ts";
import type { QmpClient } from "./qmp.ts";
import { QmpError } from "./qmp.ts";
import { migrationRunning, queryMigrate, type MigrateInfo } from "./guest-state.ts";

export interface MigrationProgress {
  direction: "save" | "restore";
  /** QEMU's migration status: "setup", "active", "device", "completed", ... */
  status: string;
  seconds: number;
  /** Outgoing only (an incoming QEMU reports nothing but its status): guest RAM in all, zero pages included. */
  totalBytes?: number;
  /** RAM not yet dealt with; totalBytes - remainingBytes is done. */
  remainingBytes?: number;
  /** Bytes QEMU has written to the file so far. */
  transferredBytes?: number;
  /** QEMU's current write rate. */
  bytesPerSecond?: number;
  etaSeconds?: number;
}

/** `late`: a stop was asked for, but QEMU had completed the migration (a save's file is whole, a load done). */
export type Outcome = { kind: "completed"; info: MigrateInfo; seconds: number; late?: boolean } | { kind: "failed"; info: MigrateInfo; status: string };

export interface WatchOptions {
  direction: "save" | "restore";
  startedAt: number;
  /** Stop at the next safe point: the migration's end. Throws CancelledError then, whatever the outcome. */
  signal?: AbortSignal;
  /** migrate_cancel at once (QEMU 10.0.2 may crash, see above), then throw CancelledError. */
  cancelNow?: AbortSignal;
  onProgress?: (p: MigrationProgress) => void;
  /** Between polls; the cost of a poll is one QMP round trip (well under a millisecond). */
  pollMs?: number;
}

const DEFAULT_POLL_MS = 20;
/**
 * Polled faster at first: a device-state save or a lazy restore's load ends within tens of milliseconds,
 * and a 20 ms poll would add half of that again on average (an instant restore is judged in milliseconds).
 */
const FIRST_POLL_MS = 2;
const FAST_POLLING_S = 0.2;

/**
 * Resolves when QEMU reports the migration completed, failed or cancelled; throws CancelledError instead
 * if `signal` or `cancelNow` fired, in both cases only once QEMU has stopped touching the file.
 */
export async function watchMigration(qmp: QmpClient, o: WatchOptions): Promise<Outcome> {
  for (;;) {
    if (o.cancelNow?.aborted) {
      await cancelMigration(qmp);
      throw new CancelledError();
    }
    const info = await queryMigrate(qmp);
    const seconds = (performance.now() - o.startedAt) / 1000;
    const status = info.status ?? "none";
    o.onProgress?.(progressOf(o.direction, status, seconds, info));
    const ended = status === "completed" || status === "failed" || status === "cancelled";
    if (status === "completed") return { kind: "completed", info, seconds, ...(o.signal?.aborted ? { late: true } : {}) };
    if (ended && o.signal?.aborted) throw new CancelledError();
    if (ended) return { kind: "failed", info, status };
    await sleepUnlessAborted(o.pollMs ?? (seconds < FAST_POLLING_S ? FIRST_POLL_MS : DEFAULT_POLL_MS), o.cancelNow);
  }
}

/** Waits (bounded) until no migration runs, without cancelling it; the last reply, or null if QEMU is gone. */
export async function settleMigration(qmp: QmpClient, timeoutMs = 120_000): Promise<MigrateInfo | null> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const info = await queryMigrate(qmp).catch(() => null);
    if (!info || !migrationRunning(info) || performance.now() > deadline) return info;
    await Bun.sleep(20);
  }
}

function progressOf(direction: "save" | "restore", status: string, seconds: number, info: MigrateInfo): MigrationProgress {
  const p: MigrationProgress = { direction, status, seconds };
  const ram = info.ram;
  if (!ram) return p;
  p.totalBytes = ram.total;
  p.remainingBytes = status === "completed" ? 0 : ram.remaining;
  p.transferredBytes = ram.transferred;
  p.bytesPerSecond = (ram.mbps * 1e6) / 8;
  const done = ram.total - p.remainingBytes;
  if (done > 0 && seconds > 0) p.etaSeconds = p.remainingBytes / (done / seconds);
  return p;
}

/** migrate_cancel (see the warning above), then waits until QEMU has left every running status. */
async function cancelMigration(qmp: QmpClient, timeoutMs = 15_000): Promise<MigrateInfo | null> {
  try {
    await qmp.execute("migrate_cancel");
  } catch (e) {
    if (!(e instanceof QmpError)) return null; // connection gone: nothing more to do from here
  }
  return settleMigration(qmp, timeoutMs);
}

function sleepUnlessAborted(ms: number, signal: AbortSignal | undefined): Promise<void> {
  if (!signal) return Bun.sleep(ms);
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener("abort", done, { once: true });
  });
}
