// Benchmark: who should move a paused guest's pages. `ramsnap qemu save|restore` on both of its paths
// (ramsnap's channels with QEMU writing device state only; QEMU's own mapped-ram migration) beside QEMU
// driven by hand in three settings, and fio moving the same non-zero bytes with O_DIRECT, in one run,
// methods alternated round by round, medians. Every restore's guest RAM is compared with the saved guest's
// in the first round. Writes bench/QEMU-PAGES.md.
//
//   bun bench/qemu-pages.ts [--sizes 2048,4096] [--patterns dense,clustered,scattered] [--rounds 3] [--dir /tmp]
//
// QEMU by hand: (a) mapped-ram, 4 multifd channels, direct-io; (b) the same buffered, then `sync -f` of the
// file; (c) 2 channels, direct-io, zero-page-detection=none (every page written whole: QEMU's best on
// scattered RAM in the lab notes). Needs root (dropping the page cache) and qemu-system-x86_64 10.x.
import { cpus, totalmem } from "node:os";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { startGuest, stopAllGuests, type Guest } from "../harness/qemu.ts";
import { GiB, MiB, PAGE } from "../harness/units.ts";
import { syntheticImage, type PatternKind, type SyntheticImage } from "../src/memory/synthetic.ts";
import { dropCaches, fio, median } from "./common.ts";
import { samplePeakRss } from "../harness/proc.ts";

const { values: opt } = parseArgs({
  options: {
    sizes: { type: "string", default: "2048,4096" },
    patterns: { type: "string", default: "dense,clustered,scattered" },
    rounds: { type: "string", default: "3" },
    dir: { type: "string", default: "/tmp" },
    out: { type: "string", default: join(import.meta.dir, "QEMU-PAGES.md") },
  },
});
const MAIN = join(import.meta.dir, "../src/cli/main.ts");
const rounds = Number(opt.rounds);
const work = mkdtempSync(join(opt.dir!, "ramsnap-pages-bench-"));
const file = join(work, "vm.ram");

interface Run {
  save: number;
  restore: number;
  /** Peak resident memory of the ramsnap process (save, restore), bytes. */
  rss?: [number, number];
}
type Method = (src: Guest, srcSocket: string, size: number, check: boolean) => Promise<Run>;

async function guest(name: string, sizeMiB: number, pattern: SyntheticImage | undefined, incoming: boolean): Promise<{ g: Guest; socket: string }> {
  const socket = join(work, `${name}-${Math.random().toString(36).slice(2, 8)}.qmp`);
  const g = await startGuest({ name, ramMiB: sizeMiB, pattern, incoming, running: !incoming, timeoutMs: 120_000, extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`] });
  return { g, socket };
}

/**
 * Runs the CLI; `rss` is the peak of its own memory: RssAnon from /proc/PID/status, sampled every 20 ms
 * (maxRSS would also count the guest RAM a restore maps and writes, which is the guest's, not ramsnap's).
 */
async function cli(...args: string[]): Promise<{ seconds: number; rss: number }> {
  const t0 = performance.now();
  const p = Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const sampler = samplePeakRss(p.pid);
  const [err, code] = await Promise.all([new Response(p.stderr).text(), p.exited]);
  const peak = sampler.stop();
  if (code !== 0) throw new Error(`ramsnap ${args.join(" ")} failed (${code}): ${err}`);
  return { seconds: (performance.now() - t0) / 1000, rss: peak };
}

async function waitMigration(g: Guest): Promise<void> {
  for (;;) {
    const info = await g.qmp.execute<{ status?: string; "error-desc"?: string }>("query-migrate");
    if (info.status === "completed") return;
    if (info.status === "failed" || info.status === "cancelled") throw new Error(`by hand: ${info.status}: ${info["error-desc"]}`);
    await Bun.sleep(20);
  }
}

async function settings(g: Guest, o: { channels: number; directIo: boolean; zeroPages?: string; outgoing: boolean }): Promise<void> {
  await g.qmp.execute("migrate-set-capabilities", {
    capabilities: ["mapped-ram", "multifd"].map((capability) => ({ capability, state: true })).concat([{ capability: "x-ignore-shared", state: false }]),
  });
  await g.qmp.execute("migrate-set-parameters", {
    "multifd-channels": o.channels,
    "direct-io": o.directIo,
    "zero-page-detection": o.zeroPages ?? "multifd",
    ...(o.outgoing ? { "max-bandwidth": 2 ** 40 } : {}),
  });
}

/** A fresh destination, the restore timed by `load`, and (first round) its RAM compared with the source's. */
async function restoreInto(src: Guest, sizeMiB: number, check: boolean, label: string, load: (dst: { g: Guest; socket: string }) => Promise<number>): Promise<number> {
  const dst = await guest("bench-dst", sizeMiB, undefined, true);
  try {
    dropCaches();
    const seconds = await load(dst);
    // cmp of the backend files: a 4 GiB guest's RAM does not fit one JS buffer (Bun's 4 GiB view limit).
    if (check && Bun.spawnSync(["cmp", "-s", dst.g.shmPaths[0]!, src.shmPaths[0]!]).exitCode !== 0) throw new Error(`${label}: restored RAM differs`);
    return seconds;
  } finally {
    await dst.g.stop();
  }
}

const ramsnapPath =
  (pages: "ramsnap" | "qemu"): Method =>
  async (src, socket, sizeMiB, check) => {
    rmSync(file, { force: true });
    dropCaches();
    // No manifest: QEMU writes none, so the comparison is of moving pages alone (bench/MANIFEST.md has its cost).
    const s = await cli("qemu", "save", "--qmp", socket, file, "--channels", "4", "--direct-io", "--pages", pages, "--no-manifest");
    let rss = 0;
    const restore = await restoreInto(src, sizeMiB, check, `ramsnap --pages ${pages}`, async (dst) => {
      const r = await cli("qemu", "restore", "--qmp", dst.socket, file, "--channels", "4", "--direct-io", "--pages", pages);
      rss = r.rss;
      return r.seconds;
    });
    return { save: s.seconds, restore, rss: [s.rss, rss] };
  };

const byHand =
  (o: { channels: number; directIo: boolean; zeroPages?: string }): Method =>
  async (src, _socket, sizeMiB, check) => {
    rmSync(file, { force: true });
    dropCaches();
    const t0 = performance.now();
    await settings(src, { ...o, outgoing: true });
    await src.qmp.execute("stop");
    await src.qmp.execute("migrate", { uri: `file:${file}` });
    await waitMigration(src);
    if (!o.directIo) Bun.spawnSync(["sync", "-f", file]); // buffered: the save is done when it is on disk
    const save = (performance.now() - t0) / 1000;
    const restore = await restoreInto(src, sizeMiB, check, `by hand ${JSON.stringify(o)}`, async (dst) => {
      const t1 = performance.now();
      await settings(dst.g, { ...o, outgoing: false });
      await dst.g.qmp.execute("migrate-incoming", { uri: `file:${file}`, "exit-on-error": false });
      await waitMigration(dst.g);
      return (performance.now() - t1) / 1000;
    });
    return { save, restore };
  };

const fioSame: Method = async (_src, _socket, _size, _check) => {
  const bytes = currentPattern!.nonZeroCount * PAGE;
  rmSync(file, { force: true });
  dropCaches();
  const save = fio("write", file, bytes);
  dropCaches();
  const restore = fio("read", file, bytes);
  return { save, restore };
};

const METHODS: [string, Method][] = [
  ["ramsnap qemu save/restore, ramsnap moves the pages (4 ch, direct I/O)", ramsnapPath("ramsnap")],
  ["ramsnap qemu save/restore --pages qemu (4 ch, direct-io)", ramsnapPath("qemu")],
  ["QEMU by hand (a): 4 ch, direct-io", byHand({ channels: 4, directIo: true })],
  ["QEMU by hand (b): 4 ch, buffered, then sync", byHand({ channels: 4, directIo: false })],
  ["QEMU by hand (c): 2 ch, direct-io, zero-page-detection=none", byHand({ channels: 2, directIo: true, zeroPages: "none" })],
  ["fio, O_DIRECT, the non-zero bytes (8 MiB blocks)", fioSame],
];

let currentPattern: SyntheticImage | undefined;
const results: { size: number; kind: string; dataMiB: number; runs: Map<string, Run[]> }[] = [];

try {
  for (const size of opt.sizes!.split(",").map(Number)) {
    for (const kind of opt.patterns!.split(",") as PatternKind[]) {
      currentPattern = syntheticImage(size * MiB, { kind, seed: 11, nonZero: 0.6 });
      const src = await guest("bench-src", size, currentPattern, false);
      const runs = new Map<string, Run[]>();
      try {
        await Bun.sleep(2000); // let the firmware finish and halt: RAM stays put from here on
        for (let r = 0; r < rounds; r++) {
          // Alternate the order round by round so drift (the disk, the host) spreads over every method.
          const order = METHODS.map((_, i) => METHODS[(i + r) % METHODS.length]!);
          for (const [name, method] of order) {
            const run = await method(src.g, src.socket, size, r === 0);
            (runs.get(name) ?? runs.set(name, []).get(name)!).push(run);
            console.error(`${size} MiB ${kind} round ${r}: ${name}: save ${run.save.toFixed(2)} s, restore ${run.restore.toFixed(2)} s`);
            await src.g.qmp.execute("cont"); // out of postmigrate, so the next save may start
            // QEMU's default back: (c) leaves zero-page-detection=none, which ramsnap's --pages qemu would inherit.
            await src.g.qmp.execute("migrate-set-parameters", { "zero-page-detection": "multifd" });
          }
        }
      } finally {
        await src.g.stop();
      }
      results.push({ size, kind, dataMiB: (currentPattern.nonZeroCount * PAGE) / MiB, runs });
    }
  }
} finally {
  await stopAllGuests();
  rmSync(work, { recursive: true, force: true });
}

// ---- report ---------------------------------------------------------------------------------------------
const med = (runs: Run[], k: "save" | "restore") => median(runs.map((x) => x[k]));
const qemuVersion = Bun.spawnSync(["qemu-system-x86_64", "--version"]).stdout.toString().split("\n")[0]!.replace(/^QEMU emulator version /, "");
const lines = [
  "# Who moves the pages: ramsnap's channels, or QEMU",
  "",
  `Run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC on ${opt.dir} (a file system on the virtual disk); QEMU ${qemuVersion}; ` +
    `${cpus().length} vCPUs (${cpus()[0]?.model ?? "?"}), ${(totalmem() / GiB).toFixed(0)} GiB RAM, Linux ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}, Bun ${Bun.version}. ` +
    `A paused q35 guest (TCG) whose RAM is a /dev/shm memory backend (share=on) holding the pattern (60% non-zero pages or 2 MiB units; dense: all). ` +
    `Medians of ${rounds} rounds, methods alternated round by round, page cache dropped before every save and every restore; ` +
    "the first round's restores compared byte for byte with the saved guest's RAM. ramsnap rows are the CLI as a user runs it, process start to exit.",
  "",
  `Command: \`bun bench/qemu-pages.ts --sizes ${opt.sizes} --patterns ${opt.patterns} --rounds ${rounds}\``,
  "",
];
for (const r of results) {
  const ours = r.runs.get(METHODS[0]![0])!;
  const a = r.runs.get(METHODS[2]![0])!;
  const fioRuns = r.runs.get(METHODS[5]![0])!;
  const bestQemuSave = Math.min(...METHODS.slice(2, 5).map(([n]) => med(r.runs.get(n)!, "save")));
  lines.push(`## ${r.size} MiB, ${r.kind} (${r.dataMiB.toFixed(0)} MiB of non-zero pages)`, "", "| | save s | restore s |", "|---|---|---|");
  for (const [name] of METHODS) lines.push(`| ${name} | ${med(r.runs.get(name)!, "save").toFixed(2)} | ${med(r.runs.get(name)!, "restore").toFixed(2)} |`);
  const rss = Math.max(...ours.flatMap((x) => x.rss ?? [0]));
  lines.push(
    "",
    `- ramsnap's path against QEMU (a): save ${(med(a, "save") / med(ours, "save")).toFixed(1)}× faster, restore ${(med(a, "restore") / med(ours, "restore")).toFixed(1)}× faster; ` +
      `against QEMU's best save of (a)–(c): ${(bestQemuSave / med(ours, "save")).toFixed(1)}× faster.`,
    `- ramsnap ÷ fio moving the same bytes: save ${(med(ours, "save") / med(fioRuns, "save")).toFixed(2)}, restore ${(med(ours, "restore") / med(fioRuns, "restore")).toFixed(2)}.`,
    `- ramsnap's own peak memory (RssAnon, sampled; the guest RAM a restore maps is not counted): ${(rss / MiB).toFixed(0)} MiB.`,
    "",
  );
}
writeFileSync(opt.out!, `${lines.join("\n")}\n`);
console.log(lines.join("\n"));
