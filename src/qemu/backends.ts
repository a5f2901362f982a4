// The guest's memory backends, and who moves its pages. A RAM block backed by a shared file
// (`memory-backend-file` with share=on: /dev/shm, hugetlbfs, a file on disk) is a file ramsnap can read
// and write itself, with its channels and direct I/O, while QEMU writes or loads only the device state
// (x-ignore-shared leaves such blocks out of QEMU's stream). Anonymous, memfd or private RAM can only be
// reached through QEMU: its pages go the old way, through QEMU's own migration.
import { OptionError } from "../errors.ts";
import { QemuDriveError } from "./errors.ts";
import type { RamBlock } from "./guest-state.ts";
import type { QmpClient } from "./qmp.ts";

export interface Backend {
  /** The backend's id, which is also its RAM block's name. */
  id: string;
  size: number;
  share: boolean;
  /** QOM type: memory-backend-file, memory-backend-ram, memory-backend-memfd, ... */
  type: string;
  /** memory-backend-file only: the file and where the block starts in it. */
  memPath?: string;
  offset: number;
  readonly: boolean;
  /** QEMU 8.2+: "on", "off" or "auto" (auto follows readonly: a read-only backend becomes a ROM). */
  rom: string;
}

export type PagesMode = "auto" | "ramsnap" | "qemu";

export interface PagesChoice {
  by: "ramsnap" | "qemu";
  /** Why, in a sentence a user reads in the output. */
  why: string;
  /** With "ramsnap": the backends whose pages ramsnap moves (every other block is QEMU's). */
  backends: Backend[];
}

export async function queryBackends(qmp: QmpClient): Promise<Backend[]> {
  const list = await qmp.execute<{ id?: string; size: number; share: boolean }[]>("query-memdev");
  const out: Backend[] = [];
  for (const m of list) {
    if (!m.id) continue;
    const get = <T>(property: string) => qmp.execute<T>("qom-get", { path: `/objects/${m.id}`, property });
    const type = await get<string>("type");
    const file = type === "memory-backend-file";
    out.push({
      id: m.id,
      size: m.size,
      share: m.share,
      type,
      ...(file ? { memPath: await get<string>("mem-path") } : {}),
      offset: file ? await get<number>("offset").catch(() => 0) : 0,
      readonly: file ? await get<boolean>("readonly").catch(() => false) : false,
      rom: file ? await get<string>("rom").catch(() => "auto") : "auto",
    });
  }
  return out;
}

/** Why ramsnap cannot move a backend's pages itself, or null if it can. */
function unfit(b: Backend, forLoad: boolean): string | null {
  if (b.type !== "memory-backend-file" || !b.memPath) return `backend ${b.id} is ${b.type}, not a file ramsnap can reach`;
  if (!b.share) return `backend ${b.id} is private (share=off): QEMU's copy of its pages is not in ${b.memPath}`;
  if (forLoad && b.readonly) return `backend ${b.id} is read-only (readonly=on)`;
  return null;
}

/**
 * Who moves the pages. ramsnap does when every memory backend among the guest's RAM blocks is a shared
 * file (the small blocks that are not backends, ROMs and video RAM, stay in QEMU's stream); `live` keeps
 * a running guest running, which only QEMU's own precopy can do.
 */
export function choosePages(mode: PagesMode, o: { live?: boolean; forLoad: boolean }, blocks: RamBlock[], backends: Backend[]): PagesChoice {
  if (mode === "qemu") return { by: "qemu", why: "--pages qemu", backends: [] };
  // In the guest's block order (query-memdev lists backends in no particular order).
  const mine = blocks.flatMap((x) => backends.filter((b) => b.id === x.name));
  if (o.live && mode === "ramsnap") throw new OptionError("--live and --pages ramsnap do not go together: only QEMU's precopy moves the pages of a running guest");
  const problem = o.live
    ? "--live keeps the guest running, and only QEMU's precopy moves the pages of a running guest"
    : mine.length === 0
      ? `no RAM block of the guest is a memory backend (${blocks.map((b) => b.name).join(", ")})`
      : mine.map((b) => unfit(b, o.forLoad)).find((p) => p !== null) ?? null;
  if (problem === null) return { by: "ramsnap", why: `every memory backend is a shared file (${mine.map((b) => b.id).join(", ")})`, backends: mine };
  if (mode === "ramsnap") throw new QemuDriveError(`--pages ramsnap: ${problem}; use --pages auto to let QEMU move them`);
  return { by: "qemu", why: problem, backends: [] };
}
