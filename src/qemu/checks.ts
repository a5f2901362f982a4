// What is checked before QEMU is asked to migrate: the guest's state, the free space, the file's fit to
// the destination, and (--verify) the written file. Each refusal is one line a user can act on.
import { existsSync } from "node:fs";
import { dirname } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { FormatError } from "../format/errors.ts";
import { spaceBound } from "../format/layout.ts";
import { dirSpace, type DirSpace } from "../io/filesystem.ts";
import { inspectFile, type InspectReport } from "../inspect.ts";
import { QemuDriveError, QemuFileMismatchError, QemuStateError, VerifyError } from "./errors.ts";
import { migrationRunning, queryMigrate, queryRunState, type RamBlock, type RunState } from "./guest-state.ts";
import type { Backend } from "./backends.ts";
import type { QmpClient } from "./qmp.ts";

/** The guest must exist and not be paused after an earlier migration, and no migration may be running. */
export async function checkSavable(qmp: QmpClient, socket: string): Promise<RunState> {
  const before = await queryRunState(qmp);
  if (before.status === "inmigrate") {
    throw new QemuStateError(`QEMU at ${socket} is waiting for an incoming migration (-incoming): it has no guest to save yet; 'ramsnap qemu restore' loads into such a QEMU`);
  }
  if (before.status === "postmigrate") {
    throw new QemuStateError(`the guest at ${socket} is paused after an earlier save or migration, and QEMU will not migrate it again until it runs: resume it with the QMP command cont first`);
  }
  await refuseIfMigrating(qmp, socket);
  return before;
}

/** The destination must be waiting for an incoming migration it has not started. */
export async function checkLoadable(qmp: QmpClient, socket: string): Promise<void> {
  const state = await queryRunState(qmp);
  const previous = await queryMigrate(qmp);
  if (state.status !== "inmigrate") {
    // A QEMU that has already loaded a guest was started with -incoming defer: say what happened instead.
    // An incoming migration reports no RAM statistics (an outgoing one, a save, does).
    if (previous.status === "completed" && previous.ram === undefined) {
      throw new QemuStateError(`QEMU at ${socket} has already loaded a guest (its incoming migration completed; the guest is '${state.status}'): start a new QEMU with -incoming defer to restore again`);
    }
    throw new QemuStateError(
      `QEMU at ${socket} is not waiting for an incoming migration (its guest is '${state.status}'): start the destination QEMU with -incoming defer to restore into it`,
    );
  }
  if (migrationRunning(previous)) {
    throw new QemuStateError(`QEMU at ${socket} is already loading an incoming migration (status '${previous.status}')`);
  }
  if (previous.status === "completed" || previous.status === "failed") {
    throw new QemuStateError(`QEMU at ${socket} has already run an incoming migration (status '${previous.status}'): start a new QEMU with -incoming defer`);
  }
}

async function refuseIfMigrating(qmp: QmpClient, socket: string): Promise<void> {
  const info = await queryMigrate(qmp);
  if (migrationRunning(info)) {
    throw new QemuStateError(
      `a migration is already running on QEMU at ${socket} (status '${info.status}'): wait for it to end, or stop it with the QMP command migrate_cancel`,
    );
  }
}

/**
 * Refuses a save QEMU would write that cannot fit. Not a nicety: when a channel of a multifd mapped-ram save
 * hits ENOSPC, QEMU 10.0.2 tears the migration down while the other channels are mid-write and segfaults
 * (the race described in migration-watch.ts), so a full disk would cost the guest. What the save needs is
 * known in part: a block backed by a file needs at most its allocated bytes (its holes are zero pages, which
 * QEMU does not write); any other block may need all of it. Refused when that estimate does not fit (unless
 * `force`); a warning when only the whole-RAM bound does not.
 */
export function checkFreeSpace(path: string, blocks: RamBlock[], backends: Backend[], force: boolean, warnings: string[]): void {
  const dir = dirname(path);
  let stat: DirSpace;
  try {
    stat = dirSpace(dir);
  } catch (e) {
    if (e instanceof libc.SysError && e.code === "ENOENT") throw new QemuDriveError(`${dir} does not exist: cannot save ${path} there`);
    throw e;
  }
  if (stat.totalBytes === 0) return; // no size to run out of (ramfs), or none reported
  // The previous file stays until the new one is renamed over it: its space does not come back first.
  const free = stat.freeBytes;
  const ram = blocks.reduce((n, b) => n + b.usedLength, 0);
  const known = blocks.reduce((n, b) => n + knownBytes(b, backends), 0);
  const needed = spaceBound(known, blocks.length);
  const bound = spaceBound(ram, blocks.length);
  if (free < needed && !force) {
    throw new QemuDriveError(
      `${path}: not enough free space: ${mib(free)} free on ${stat.fs}, about ${mib(needed)} needed (the guest's ${mib(ram)} of RAM, ${mib(known)} of it possibly non-zero); ` +
        `ramsnap does not start a save that could fill the disk, because QEMU 10.0 can crash when it does (--force starts it anyway)`,
    );
  }
  if (free < bound) warnings.push(`${path}: ${mib(free)} free on ${stat.fs} may not be enough: up to ${mib(bound)} if no page of the guest's RAM is zero`);
}

/** The most bytes of a block QEMU may write: a file backend's allocated bytes, else the whole block. */
function knownBytes(b: RamBlock, backends: Backend[]): number {
  const backend = backends.find((x) => x.id === b.name);
  if (!backend?.memPath || !existsSync(backend.memPath)) return b.usedLength;
  return Math.min(b.usedLength, libc.statx(backend.memPath).allocated);
}

const mib = (n: number) => `${(n / 2 ** 20).toFixed(1)} MiB`;

function inspectOrExplain(path: string, offset: number): InspectReport {
  try {
    return inspectFile(path, { offset });
  } catch (e) {
    if (e instanceof FormatError) throw new QemuFileMismatchError(`${path} is not a loadable migration file: ${e.message}`);
    throw e;
  }
}

/** The file must be complete, mapped-ram, of the destination's machine type, and have exactly its RAM blocks' sizes. */
export function checkFileFits(path: string, machineType: string, guestBlocks: RamBlock[], offset = 0, inspected?: InspectReport): InspectReport {
  const report = inspected ?? inspectOrExplain(path, offset);
  if (!report.complete) throw new QemuFileMismatchError(`${path} is incomplete (no EOF: an interrupted save?)`);
  if (report.ramFormat !== "mapped-ram") {
    throw new QemuFileMismatchError(`${path} is a ${report.ramFormat ?? "RAM-less"} migration stream, not mapped-ram: QEMU loads it with migrate-incoming file:${path} and mapped-ram off`);
  }
  if (report.machineType && report.machineType !== machineType) {
    throw new QemuFileMismatchError(`${path} holds a ${report.machineType} guest, but the destination QEMU is ${machineType}: start it with -machine ${report.machineType}`);
  }
  // QEMU itself loads a block smaller than the guest's without a word (the rest stays zero).
  for (const b of report.blocks) {
    const g = guestBlocks.find((x) => x.name === b.name);
    if (!g) {
      throw new QemuFileMismatchError(
        `${path} has RAM block ${b.name}, which the destination QEMU lacks (it has ${guestBlocks.map((x) => x.name).join(", ")}): start it with the same memory backends`,
      );
    }
    if (g.usedLength !== b.length) {
      throw new QemuFileMismatchError(`RAM block ${b.name} is ${b.length} bytes in ${path} but ${g.usedLength} in the destination QEMU: give it the same memory size`);
    }
  }
  return report;
}

export interface VerifiedFile {
  complete: true;
  blocks: { name: string; length: number; present: number }[];
}

/** --verify: ramsnap's own reader must find the file complete, with the guest's RAM blocks in the guest's order. */
export function verifySavedFile(path: string, guestBlocks: RamBlock[], inspected?: InspectReport): VerifiedFile {
  let report: InspectReport;
  try {
    report = inspected ?? inspectFile(path);
  } catch (e) {
    throw new VerifyError(`--verify: ${e instanceof Error ? e.message : String(e)}`);
  }
  if (!report.complete) throw new VerifyError(`--verify: ${path} has no EOF`);
  if (report.ramFormat !== "mapped-ram") throw new VerifyError(`--verify: ${path} is not a mapped-ram file`);
  const inFile = report.blocks.map((b) => `${b.name}:${b.length}`).join(", ");
  const inGuest = guestBlocks.map((b) => `${b.name}:${b.usedLength}`).join(", ");
  if (inFile !== inGuest) throw new VerifyError(`--verify: ${path} holds blocks [${inFile}], the guest has [${inGuest}]`);
  return { complete: true, blocks: report.blocks.map((b) => ({ name: b.name, length: b.length, present: b.present })) };
}
