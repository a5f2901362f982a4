// Capabilities and parameters for a mapped-ram file migration, set the way QEMU wants them, and put back
// afterwards: they outlive the migration inside QEMU, and a later live migration over TCP would fail with
// mapped-ram left on ("Migration requires seekable transport").
import type { QmpClient, QmpVersion } from "./qmp.ts";
import { QmpError } from "./qmp.ts";
import { QemuDriveError } from "./errors.ts";
import { atLeast, DIRECT_IO_SINCE } from "./version.ts";

/** QEMU's default max-bandwidth (128 MiB/s) throttles file: saves too; this is "as fast as the disk goes". */
export const UNLIMITED_BANDWIDTH = 2 ** 40;
/** QEMU's range for multifd-channels. */
export const MAX_QEMU_CHANNELS = 255;

export interface MigrationSettings {
  channels: number;
  directIo: boolean;
  /** Lift max-bandwidth (outgoing only: the incoming side ignores it). */
  unlimitedBandwidth: boolean;
  /**
   * "pages" (default): mapped-ram with multifd channels, QEMU moves every page. "device-state": a classic
   * stream with x-ignore-shared, QEMU writes device state and the blocks that are not shared files only
   * (x-ignore-shared with mapped-ram fails in QEMU 10.0.2: "Unable to write to file: Bad address").
   */
  stream?: "pages" | "device-state";
}

export interface AppliedSettings {
  /** Puts back what was there before; best effort, returns QEMU's complaint if it refused. */
  restore(): Promise<string | null>;
  /** "settings={...}": what was there before, for the fdset's label (see fdset.ts and leftovers.ts). */
  label: string;
}

/** What a migration's settings were before ramsnap changed them. */
export interface Baseline {
  capabilities: { capability: string; state: boolean }[];
  params: Record<string, unknown>;
}

/** Puts `before` back; QEMU's complaint if it refused, else null. */
export async function putBack(qmp: QmpClient, before: Baseline): Promise<string | null> {
  try {
    await qmp.execute("migrate-set-capabilities", { capabilities: before.capabilities });
    if (Object.keys(before.params).length) await qmp.execute("migrate-set-parameters", before.params);
    return null;
  } catch (e) {
    return e instanceof Error ? e.message : String(e);
  }
}

type Params = Record<string, unknown>;

export async function applyMigrationSettings(qmp: QmpClient, version: QmpVersion, s: MigrationSettings): Promise<AppliedSettings> {
  const caps = await qmp.execute<{ capability: string; state: boolean }[]>("query-migrate-capabilities");
  const params = await qmp.execute<Params>("query-migrate-parameters");
  const capState = (name: string) => caps.find((c) => c.capability === name)?.state ?? false;
  const names = ["mapped-ram", "multifd", "x-ignore-shared"];
  const before = {
    capabilities: names.map((capability) => ({ capability, state: capState(capability) })),
    params: pick(params, ["multifd-channels", "direct-io", "max-bandwidth"]),
  };

  const applied: AppliedSettings = {
    restore: () => putBack(qmp, before),
    label: `settings=${JSON.stringify(before)}`,
  };

  const pages = (s.stream ?? "pages") === "pages";
  const wantedCaps = { "mapped-ram": pages, multifd: pages, "x-ignore-shared": !pages };
  await refusal("migrate-set-capabilities", () =>
    qmp.execute("migrate-set-capabilities", { capabilities: Object.entries(wantedCaps).map(([capability, state]) => ({ capability, state })) }),
  );
  try {
    const wanted: Params = { "multifd-channels": s.channels };
    // Always set direct-io when QEMU has it: the parameter persists, and a true left over from an earlier
    // run with a single plain descriptor in the fdset would crash QEMU 10.0.2.
    if (atLeast(version, DIRECT_IO_SINCE)) wanted["direct-io"] = s.directIo;
    if (s.unlimitedBandwidth) wanted["max-bandwidth"] = UNLIMITED_BANDWIDTH;
    await refusal("migrate-set-parameters", () => qmp.execute("migrate-set-parameters", wanted));

    const now = await qmp.execute<Params>("query-migrate-parameters");
    if ((now["direct-io"] ?? false) !== s.directIo || now["multifd-channels"] !== s.channels) {
      throw new QemuDriveError(
        `QEMU did not take the migration parameters (asked direct-io=${s.directIo}, multifd-channels=${s.channels}; ` +
          `it has direct-io=${String(now["direct-io"])}, multifd-channels=${String(now["multifd-channels"])})`,
      );
    }
  } catch (e) {
    await applied.restore();
    throw e;
  }
  return applied;
}

function pick(from: Params, keys: string[]): Params {
  const out: Params = {};
  for (const k of keys) if (k in from) out[k] = from[k];
  return out;
}

/** QEMU's refusal, quoted, e.g. "Mapped-ram migration is incompatible with xbzrle". */
async function refusal(command: string, run: () => Promise<unknown>): Promise<void> {
  try {
    await run();
  } catch (e) {
    if (e instanceof QmpError) throw new QemuDriveError(`QEMU refused ${command}: ${e.desc}`);
    throw e;
  }
}
