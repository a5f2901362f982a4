// What a QEMU says about its guest and its migration: the facts the drive checks before it touches anything.
import { QemuDriveError } from "./errors.ts";
import type { QmpClient } from "./qmp.ts";

export interface RunState {
  /** QEMU's RunState: "running", "paused", "prelaunch", "inmigrate", "postmigrate", ... */
  status: string;
  running: boolean;
}

export async function queryRunState(qmp: QmpClient): Promise<RunState> {
  const r = await qmp.execute<{ status: string; running: boolean }>("query-status");
  return { status: r.status, running: r.running };
}

/** The raw query-migrate reply; `status` is absent before the first migration. */
export interface MigrateInfo {
  status?: string;
  "error-desc"?: string;
  "total-time"?: number;
  ram?: { total: number; transferred: number; remaining: number; mbps: number; "normal-bytes"?: number; duplicate?: number };
}

export const queryMigrate = (qmp: QmpClient): Promise<MigrateInfo> => qmp.execute<MigrateInfo>("query-migrate");

// Statuses after which a new migration may start; any other status means one is under way.
const IDLE_STATUSES = new Set([undefined, "none", "completed", "failed", "cancelled"]);

export function migrationRunning(info: MigrateInfo): boolean {
  return !IDLE_STATUSES.has(info.status);
}

export interface RamBlock {
  name: string;
  /** Bytes in use: what a migration stream carries for this block. */
  usedLength: number;
  maxLength: number;
}

/**
 * The guest's RAM blocks in QEMU's RAM-list order, which is the order a migration stream lists them in.
 * From HMP `info ramblock`: no QMP command lists them (query-memory-devices shows only hot-pluggable DIMMs).
 */
export async function queryRamBlocks(qmp: QmpClient): Promise<RamBlock[]> {
  const text = await qmp.hmp("info ramblock");
  return parseRamBlocks(text);
}

export function parseRamBlocks(text: string): RamBlock[] {
  // "  Block Name  PSize  Offset  Used  Total  HVA  RO": PSize is two words ("4 KiB").
  const row = /^\s*(\S+)\s+\d+\s+\S+\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s/i;
  const blocks: RamBlock[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = row.exec(line);
    if (m) blocks.push({ name: m[1]!, usedLength: Number(m[2]), maxLength: Number(m[3]) });
  }
  if (blocks.length === 0) throw new QemuDriveError(`cannot read QEMU's "info ramblock" output: ${JSON.stringify(text.slice(0, 200))}`);
  return blocks;
}

/** The machine type as a migration stream names it, e.g. "pc-q35-10.0" (QOM calls it "pc-q35-10.0-machine"). */
export async function queryMachineType(qmp: QmpClient): Promise<string> {
  const type = await qmp.execute<string>("qom-get", { path: "/machine", property: "type" });
  return type.replace(/-machine$/, "");
}
