// What a killed ramsnap leaves inside QEMU: an fdset (QEMU keeps the descriptors of a closed monitor's sets
// only until they are removed or the migration closes them) and changed migration settings, which the next
// run would otherwise take for the user's. Every fdset ramsnap adds carries its pid and the settings it
// found (fdset.ts FDSET_LABEL); a set whose ramsnap is gone is removed, and its settings are put back,
// unless a migration is still running (then they stay until it ends, and the next run tries again).
import { processAlive } from "../io/output.ts";
import { FDSET_LABEL } from "./fdset.ts";
import { migrationRunning, queryMigrate } from "./guest-state.ts";
import { putBack, type Baseline } from "./migration-settings.ts";
import type { QmpClient } from "./qmp.ts";

interface FdsetInfo {
  "fdset-id": number;
  fds: { fd: number; opaque?: string }[];
}

/** Cleans up after killed ramsnap runs; returns one line per thing put right, for the user. */
export async function recoverLeftovers(qmp: QmpClient): Promise<string[]> {
  const sets = await qmp.execute<FdsetInfo[]>("query-fdsets");
  const done: string[] = [];
  for (const set of sets) {
    const m = set.fds.map((f) => FDSET_LABEL.exec(f.opaque ?? "")).find((x) => x !== null);
    if (!m || processAlive(Number(m[1]))) continue;
    if (migrationRunning(await queryMigrate(qmp))) {
      done.push(`fdset ${set["fdset-id"]} of a killed ramsnap (pid ${m[1]}) is still in use by a running migration; left as it is`);
      continue;
    }
    await qmp.execute("remove-fd", { "fdset-id": set["fdset-id"] }).catch(() => {});
    const complaint = m[2] ? await putBack(qmp, JSON.parse(m[2]) as Baseline) : null;
    done.push(
      `removed fdset ${set["fdset-id"]} left by a killed ramsnap (pid ${m[1]})` +
        (m[2] ? (complaint ? `; could not put its migration settings back: ${complaint}` : " and put back the migration settings it had changed") : ""),
    );
  }
  return done;
}
