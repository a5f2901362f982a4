// Benchmark: instant restore. How long from the command to a running guest, with the destination mapping
// the save file (`ramsnap qemu restore --lazy --resume`), beside ramsnap's eager restore and QEMU's own,
// in one run, methods alternated, page cache dropped before each; how long --prefetch takes to bring every
// present page into the page cache; and what 8 clones of one 1 GiB guest cost the host beside 8 eager
// restores (summed Pss of the QEMU processes). Writes bench/INSTANT.md.
//
//   bun bench/instant.ts [--sizes 1024,4096,16384] [--rounds 3] [--clones 8] [--dir /tmp]
//
// Uses dist/ramsnap when it exists (`bun run build`: what users run), else the sources. Needs root.
import { cpus, totalmem } from "node:os";
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startGuest, stopAllGuests, type Guest } from "../harness/qemu.ts";
import { GiB, MiB } from "../harness/units.ts";
import { inspectFile } from "../src/inspect.ts";
import { backendArgs } from "../src/qemu/lazy.ts";
import { dropCaches, median } from "./common.ts";

const { values: opt } = parseArgs({
  options: {
    sizes: { type: "string", default: "1024,4096,16384" },
    rounds: { type: "string", default: "3" },
    clones: { type: "string", default: "8" },
    dir: { type: "string", default: "/tmp" },
    out: { type: "string", default: join(import.meta.dir, "INSTANT.md") },
  },
});
const BINARY = join(import.meta.dir, "../dist/ramsnap");
const RAMSNAP = existsSync(BINARY) ? [BINARY] : [process.execPath, join(import.meta.dir, "../src/cli/main.ts")];
const rounds = Number(opt.rounds);
const work = mkdtempSync(join(opt.dir!, "ramsnap-instant-bench-"));

async function guest(name: string, sizeMiB: number, o: { incoming?: boolean; memory?: string[]; pattern?: { kind: "clustered"; seed: number; nonZero: number } }) {
  const socket = join(work, `${name}-${Math.random().toString(36).slice(2, 8)}.qmp`);
  const g = await startGuest({ name, ramMiB: sizeMiB, incoming: o.incoming, memory: o.memory, pattern: o.pattern, timeoutMs: 120_000, extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
  return { g, socket };
}

async function cli(...args: string[]): Promise<{ seconds: number; json: any }> {
  const t0 = performance.now();
  const p = Bun.spawn([...RAMSNAP, ...args, "--json"], { stdout: "pipe", stderr: "pipe" });
  const [out, err, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  if (code !== 0) throw new Error(`ramsnap ${args.join(" ")} failed (${code}): ${err}`);
  return { seconds: (performance.now() - t0) / 1000, json: JSON.parse(out) };
}

/** Drops the page cache, then reads ramsnap itself back in: the save file starts cold, the tool warm. */
function coldFile(): void {
  dropCaches();
  Bun.spawnSync([...RAMSNAP, "--version"]);
}

async function running(g: Guest): Promise<void> {
  const s = await g.qmp.execute<{ status: string }>("query-status");
  if (s.status !== "running") throw new Error(`guest is ${s.status}, not running`);
}

function mapping(file: string): string[] {
  const a = backendArgs(inspectFile(file));
  return [...a.blocks.flatMap((b) => ["-object", b.object]), ...a.machine.flatMap((m) => m.split(" "))];
}

/** Bytes of a process's private pages (Private_Clean + Private_Dirty from smaps_rollup). */
function privateOf(pid: number): number {
  const r = readFileSync(`/proc/${pid}/smaps_rollup`, "utf8");
  const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(r)?.[1] ?? 0);
  return (kb("Private_Clean") + kb("Private_Dirty")) * 1024;
}

/** Bytes of a file in the page cache (fincore, util-linux). */
function cachedOf(path: string): number {
  const r = Bun.spawnSync(["fincore", "--bytes", "--noheadings", "--output", "RES", path], { stdout: "pipe" });
  return Number(r.stdout.toString().trim() || 0);
}

type Timing = { lazy: number[]; prefetch: number[]; eager: number[]; qemu: number[] };
const results: { sizeMiB: number; presentMiB: number; t: Timing }[] = [];

/** The save every method restores: a paused guest, clustered RAM (60% of 2 MiB units; 5% at 16 GiB and more). */
async function makeSave(sizeMiB: number): Promise<{ file: string; presentMiB: number }> {
  const file = join(work, `vm-${sizeMiB}.ram`);
  const src = await guest("src", sizeMiB, { pattern: { kind: "clustered", seed: 7, nonZero: sizeMiB >= 16384 ? 0.05 : 0.6 } });
  try {
    await cli("qemu", "save", "--qmp", src.socket, file, "--channels", "4", "--direct-io");
  } finally {
    await src.g.stop();
  }
  const r = inspectFile(file);
  return { file, presentMiB: (r.blocks.reduce((s, b) => s + b.present, 0) * r.pageSize) / MiB };
}

async function timeLazy(file: string, sizeMiB: number, prefetch: boolean): Promise<number> {
  const dst = await guest("lazy", sizeMiB, { incoming: true, memory: mapping(file) });
  try {
    coldFile();
    const r = await cli("qemu", "restore", "--qmp", dst.socket, file, "--lazy", "--resume", ...(prefetch ? ["--prefetch"] : []));
    await running(dst.g);
    return prefetch ? r.json.prefetch.seconds : r.seconds;
  } finally {
    await dst.g.stop();
  }
}

async function timeEager(file: string, sizeMiB: number, byQemu: boolean): Promise<number> {
  const dst = await guest("eager", sizeMiB, { incoming: true });
  try {
    coldFile();
    if (!byQemu) {
      const r = await cli("qemu", "restore", "--qmp", dst.socket, file, "--resume", "--channels", "4", "--direct-io");
      await running(dst.g);
      return r.seconds;
    }
    const t0 = performance.now();
    await dst.g.qmp.execute("migrate-set-capabilities", { capabilities: ["mapped-ram", "multifd"].map((capability) => ({ capability, state: true })) });
    await dst.g.qmp.execute("migrate-set-parameters", { "multifd-channels": 4, "direct-io": true });
    await dst.g.qmp.execute("migrate-incoming", { uri: `file:${file}` });
    for (;;) {
      const s = await dst.g.qmp.execute<{ status?: string }>("query-migrate");
      if (s.status === "completed") break;
      if (s.status === "failed") throw new Error("QEMU's restore failed");
      await Bun.sleep(5);
    }
    await dst.g.qmp.execute("cont");
    await running(dst.g);
    return (performance.now() - t0) / 1000;
  } finally {
    await dst.g.stop();
  }
}

/**
 * Host memory `n` guests restored from one 1 GiB file hold once idle: each QEMU's private pages (its own
 * memory, and the guest pages it wrote), plus the shared pages counted once: for lazy clones the save
 * file's pages in the page cache (one copy serves all of them), for eager ones each guest's shm RAM.
 */
async function clonesMemory(file: string, n: number, lazy: boolean): Promise<number> {
  const gs: { g: Guest; socket: string }[] = [];
  dropCaches();
  try {
    for (let i = 0; i < n; i++) {
      const d = await guest(`clone${i}`, 1024, lazy ? { incoming: true, memory: mapping(file) } : { incoming: true });
      gs.push(d);
      await cli("qemu", "restore", "--qmp", d.socket, file, "--resume", ...(lazy ? ["--lazy"] : ["--channels", "4"]));
    }
    await Bun.sleep(5000); // idle a while: what the guests touch in that time is theirs
    const own = gs.reduce((s, d) => s + privateOf(d.g.pid), 0);
    const shared = lazy ? cachedOf(file) : gs.reduce((s, d) => s + d.g.shmPaths.reduce((t, p) => t + statSync(p).blocks * 512, 0), 0);
    return own + shared;
  } finally {
    await Promise.all(gs.map((d) => d.g.stop()));
  }
}

let clones: { lazy: number; eager: number; presentMiB: number } | undefined;
try {
  for (const sizeMiB of opt.sizes!.split(",").map(Number)) {
    const { file, presentMiB } = await makeSave(sizeMiB);
    const t: Timing = { lazy: [], prefetch: [], eager: [], qemu: [] };
    const steps: [keyof Timing, () => Promise<number>][] = [
      ["lazy", () => timeLazy(file, sizeMiB, false)],
      ["prefetch", () => timeLazy(file, sizeMiB, true)],
      ["eager", () => timeEager(file, sizeMiB, false)],
      ["qemu", () => timeEager(file, sizeMiB, true)],
    ];
    for (let r = 0; r < rounds; r++) {
      for (let i = 0; i < steps.length; i++) {
        const [k, run] = steps[(i + r) % steps.length]!;
        const s = await run();
        t[k].push(s);
        console.error(`${sizeMiB} MiB round ${r}: ${k} ${s.toFixed(3)} s`);
      }
    }
    results.push({ sizeMiB, presentMiB, t });
    if (sizeMiB === 1024) clones = { lazy: await clonesMemory(file, Number(opt.clones), true), eager: await clonesMemory(file, Number(opt.clones), false), presentMiB };
    rmSync(file, { force: true });
  }
} finally {
  await stopAllGuests();
  rmSync(work, { recursive: true, force: true });
}

const ms = (xs: number[]) => `${(median(xs) * 1000).toFixed(0)}`;
const lines = [
  "# Instant restore: the guest runs before its RAM is read",
  "",
  `Run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC on ${opt.dir}; ${cpus().length} vCPUs, ${(totalmem() / GiB).toFixed(0)} GiB RAM, ` +
    `Linux ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}, Bun ${Bun.version}; ramsnap ${RAMSNAP.length === 1 ? "compiled (dist/ramsnap)" : "from sources"}. ` +
    `Medians of ${rounds} rounds, methods alternated, page cache dropped before each. A q35 guest (TCG) saved paused by \`ramsnap qemu save\`; ` +
    "times run from starting the command to the guest running (the command returns after `cont`; query-status confirms); the save file is cold, ramsnap's binary warm.",
  "",
  `Command: \`bun bench/instant.ts --sizes ${opt.sizes} --rounds ${rounds} --clones ${opt.clones}\``,
  "",
  "| guest RAM (pages in the file) | lazy: command to running, ms | eager ramsnap (channels into shm backends), ms | QEMU's own restore (4 ch, direct-io) + cont, ms | --prefetch: all present pages in the page cache, ms |",
  "|---|---|---|---|---|",
  ...results.map((r) => `| ${r.sizeMiB} MiB (${r.presentMiB.toFixed(0)} MiB) | ${ms(r.t.lazy)} | ${ms(r.t.eager)} | ${ms(r.t.qemu)} | ${ms(r.t.prefetch)} |`),
  "",
];
if (clones) {
  lines.push(
    `${opt.clones} clones of the 1024 MiB guest (${clones.presentMiB.toFixed(0)} MiB of pages in the file), idle 5 s after the last started, firmware halted (no OS): ` +
      `they hold ${(clones.lazy / MiB).toFixed(0)} MiB of host memory restored lazily (one file, mapped copy-on-write) against ${(clones.eager / MiB).toFixed(0)} MiB restored eagerly ` +
      "(each its own shm RAM): the QEMUs' private pages plus the shared ones once (the save file's pages in the page cache; the eager guests' shm RAM).",
    "",
  );
}
writeFileSync(opt.out!, `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
