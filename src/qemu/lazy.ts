// Instant restore: the destination QEMU maps the save file itself as guest RAM, copy-on-write
// (`memory-backend-file,mem-path=FILE,offset=PAGES_OFFSET,share=off,readonly=on,rom=off`), and loads only
// the device state and the small blocks; a page of a mapped block is read from the file when the guest
// first touches it, and a guest's writes go to its own private copy, never to the file. Many guests can
// map one file (clones): pages none has written are shared through the page cache.
//
// `rom=off` matters: with readonly=on alone QEMU makes the block a ROM and drops the guest's writes, and a
// real guest hangs while a paused one still compares equal. A bitmap bit that is clear means "zero page" to
// a loader, but a mapping shows the slot's bytes, so a file with stale slots (savefile/slots.ts) is refused.
import { statSync } from "node:fs";
import { resolve } from "node:path";
import { RefusedError } from "../errors.ts";
import type { InspectReport } from "../inspect.ts";
import { withLoadStream } from "../savefile/load-stream.ts";
import { findStaleSlots } from "../savefile/slots.ts";
import type { Backend } from "./backends.ts";
import { loadPreparedStream, type FdsetReport } from "./file-migration.ts";
import type { QmpClient, QmpVersion } from "./qmp.ts";

/** Blocks QEMU makes itself (firmware, option ROMs, video RAM): no -object can stand in for them. */
const NOT_BACKENDS = new Set(["pc.bios", "pc.rom", "isa-bios"]);
const QOM_ID = /^[A-Za-z][A-Za-z0-9_.-]*$/;

export interface MappableBlock {
  name: string;
  size: number;
  /** Where the block's page array starts in the file (its offset= in the backend). */
  offset: number;
  /** The -object argument for the destination's command line. */
  object: string;
}

export interface BackendArgs {
  file: string;
  blocks: MappableBlock[];
  /** How the destination uses the backends: -machine memory-backend=ID for one, -numa node,memdev=ID for several. */
  machine: string[];
  /** Slots of clear bits holding old data: such a file must be cleaned before a lazy restore. */
  staleSlots: number;
}

/** QEMU's option syntax doubles a comma inside a value. */
const quote = (v: string) => v.replace(/,/g, ",,");

/** The blocks of a mapped-ram file that a memory backend can map, with their -object arguments. */
export function mappableBlocks(report: InspectReport): MappableBlock[] {
  const file = resolve(report.file);
  return report.blocks
    .filter((b) => b.pagesOffset !== undefined && QOM_ID.test(b.name) && !NOT_BACKENDS.has(b.name))
    .map((b) => ({
      name: b.name,
      size: b.length,
      offset: b.pagesOffset!,
      object: `memory-backend-file,id=${b.name},size=${b.length},mem-path=${quote(file)},offset=${b.pagesOffset},share=off,readonly=on,rom=off`,
    }));
}

export function backendArgs(report: InspectReport): BackendArgs {
  const file = resolve(report.file);
  const blocks = mappableBlocks(report);
  if (blocks.length === 0) throw new RefusedError(`${report.file} has no RAM block a memory backend can map (${report.ramFormat === "mapped-ram" ? report.blocks.map((b) => b.name).join(", ") : "it is not a mapped-ram file"})`);
  const machine = blocks.length === 1 ? [`-machine memory-backend=${blocks[0]!.name}`] : blocks.map((b) => `-numa node,memdev=${b.name}`);
  return { file, blocks, machine, staleSlots: findStaleSlots(report.file, report.base).length };
}

/** The command-line words a user adds to the destination (`-object ...` for each block, then the machine hint). */
export function commandLine(a: BackendArgs): string {
  return [...a.blocks.map((b) => `-object ${b.object}`), ...a.machine].join(" ");
}

/** What differs between a destination backend and what an instant restore of `b` needs; null if nothing. */
function mismatch(b: MappableBlock, backend: Backend | undefined, file: string): string | null {
  if (!backend) return `it has no memory backend ${b.name}`;
  if (backend.type !== "memory-backend-file" || !backend.memPath) return `its backend ${b.name} is ${backend.type}`;
  const want = statSync(file);
  const got = statSync(backend.memPath, { throwIfNoEntry: false });
  if (!got || got.dev !== want.dev || got.ino !== want.ino) return `its backend ${b.name} maps ${backend.memPath}, not ${file}`;
  if (backend.offset !== b.offset) return `its backend ${b.name} starts at offset ${backend.offset}, not ${b.offset}`;
  if (backend.size !== b.size) return `its backend ${b.name} is ${backend.size} bytes, not ${b.size}`;
  if (backend.share) return `its backend ${b.name} is shared (share=on): the guest would write into the save file`;
  if (backend.readonly && backend.rom !== "off") return `its backend ${b.name} is read-only without rom=off: QEMU would make it a ROM and drop the guest's writes`;
  return null;
}

export interface LazyJob {
  qmp: QmpClient;
  version: QmpVersion;
  path: string;
  report: InspectReport;
  backends: Backend[];
  signal?: AbortSignal;
  warnings: string[];
}

export interface LazyLoaded {
  seconds: number;
  streamBytes: number;
  fdset: FdsetReport;
  mapped: string[];
}

/** Checks that the destination maps the file as it must, then lets QEMU load everything but the mapped blocks. */
export async function restoreLazily(job: LazyJob): Promise<LazyLoaded> {
  const t0 = performance.now();
  const args = backendArgs(job.report);
  for (const b of args.blocks) {
    const wrong = mismatch(b, job.backends.find((x) => x.id === b.name), args.file);
    if (wrong) throw new RefusedError(`--lazy: the destination QEMU cannot map ${job.path}: ${wrong}; start it with ${commandLine(args)}`);
  }
  if (args.staleSlots > 0) {
    throw new RefusedError(
      `--lazy: ${job.path} has ${args.staleSlots} page slots whose bitmap bit is clear but which hold old data (a save of a running guest), and a mapping would show them: ` +
        `clear them with 'ramsnap scrub ${job.path}', or make a clean copy with 'ramsnap convert ${job.path} COPY --to mapped-ram'`,
    );
  }
  const mapped = new Set(args.blocks.map((b) => b.name));
  return withLoadStream(job.path, job.report.base, mapped, async (load, streamBytes) => {
    const fdset = await loadPreparedStream(job.qmp, job.version, load, { signal: job.signal, offset: job.report.base }, job.warnings);
    return { seconds: (performance.now() - t0) / 1000, streamBytes, fdset, mapped: [...mapped] };
  });
}
