// ramsnap save and restore against fio's O_DIRECT write and read of the same bytes, alternated round by
// round so the disk's drift hits both, medians compared: the issue's "≤ 1.15 × fio" targets measured with
// less noise than one pass of bench/run.ts. Writes bench/VS-FIO.md.
//
//   bun bench/vs-fio.ts [--size 2048] [--patterns dense,clustered] [--channels 2,4] [--rounds 5] [--dir /tmp]
//
// The reference is fio with the same block size ramsnap's channels use (8 MiB), psync, end_fsync; for
// dense the whole image, for clustered only the non-zero bytes (what a save has to write at least).
import { cpus } from "node:os";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { restore } from "../src/restore.ts";
import { save } from "../src/save.ts";
import { writeImage } from "../harness/scratch.ts";
import { MiB, PAGE } from "../harness/units.ts";
import { dropCaches, fio, median } from "./common.ts";

const { values: opt } = parseArgs({
  options: {
    size: { type: "string", default: "2048" },
    patterns: { type: "string", default: "dense,clustered" },
    channels: { type: "string", default: "2,4" },
    rounds: { type: "string", default: "5" },
    dir: { type: "string", default: "/tmp" },
    out: { type: "string", default: join(import.meta.dir, "VS-FIO.md") },
  },
});
const size = Number(opt.size) * MiB;
const rounds = Number(opt.rounds);
const channelSet = opt.channels!.split(",").map(Number);
const dir = mkdtempSync(join(opt.dir!, "ramsnap-vs-fio-"));
const file = join(dir, "o.ram");
const img = "/dev/shm/ramsnap-vs-fio.img";
const target = "/dev/shm/ramsnap-vs-fio.restored";

const lines: string[] = [];
const summary: string[] = [];
try {
  for (const kind of opt.patterns!.split(",") as ("dense" | "clustered")[]) {
    writeImage(img, size, { kind, seed: 11, nonZero: 0.6 });
    // What a save must write at least: the non-zero pages (a probe save tells how many).
    const probe = await save({ path: file, blocks: [{ name: "ram0", path: img }], channels: 2, directIo: true });
    const dataBytes = probe.pagesPresent * PAGE;
    const t: Record<string, number[]> = {};
    const add = (k: string, s: number) => (t[k] ??= []).push(s);
    // Round 0 warms up and is not counted.
    for (let round = 0; round <= rounds; round++) {
      const steps: [string, () => Promise<number>][] = [
        ["fio write", async () => (rmSync(file, { force: true }), dropCaches(), fio("write", file, dataBytes))],
        ["fio read", async () => (dropCaches(), fio("read", file, dataBytes))],
      ];
      for (const ch of channelSet) {
        steps.push([`save ${ch} ch`, async () => (rmSync(file, { force: true }), dropCaches(), (await save({ path: file, blocks: [{ name: "ram0", path: img }], channels: ch, directIo: true })).seconds)]);
        steps.push([`restore ${ch} ch`, async () => (rmSync(target, { force: true }), dropCaches(), (await restore({ path: file, blocks: [{ name: "ram0", path: target }], channels: ch, directIo: true })).seconds)]);
      }
      // fio's file and ramsnap's are the same path: each save is restored before fio overwrites it.
      const order = round % 2 ? [...steps.slice(2), ...steps.slice(0, 2)] : steps;
      for (const [k, fn] of order) {
        const s = await fn();
        if (round > 0) add(k, s);
      }
      console.error(`${kind} round ${round}: ${Object.entries(t).map(([k, v]) => `${k} ${v.at(-1)?.toFixed(2)}`).join(", ")}`);
    }
    const fw = median(t["fio write"]!);
    const fr = median(t["fio read"]!);
    lines.push(`## ${kind}: ${(dataBytes / MiB).toFixed(0)} MiB of non-zero pages in a ${opt.size} MiB image`, "");
    lines.push("| | median s | ratio to fio | runs s |", "|---|---|---|---|");
    for (const [k, v] of Object.entries(t)) {
      const ref = k.startsWith("fio") ? undefined : k.startsWith("save") ? fw : fr;
      lines.push(`| ${k} | ${median(v).toFixed(2)} | ${ref ? (median(v) / ref).toFixed(2) : ""} | ${v.map((x) => x.toFixed(2)).join(", ")} |`);
      if (ref) summary.push(`${kind} ${k}: ${(median(v) / ref).toFixed(2)} × fio`);
    }
    lines.push("");
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  rmSync(img, { force: true });
  rmSync(target, { force: true });
}
const report = [
  "# ramsnap beside fio, alternated",
  "",
  `Run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC: ${opt.size} MiB images in /dev/shm, the file on ${opt.dir}, direct I/O; ` +
    `${cpus().length} vCPUs, Bun ${Bun.version}; ${rounds} rounds after a warm-up, the order of fio and ramsnap swapped each round, page cache dropped before each run.`,
  "",
  `Command: \`bun bench/vs-fio.ts --size ${opt.size} --patterns ${opt.patterns} --channels ${opt.channels} --rounds ${opt.rounds}\``,
  "",
  "The reference is fio's O_DIRECT write and read (8 MiB blocks, psync, fsync at the end) of the bytes a save must write: the whole image for dense, the non-zero pages for clustered. ramsnap's time is the library call's, from opening the sources to the renamed, fsynced file.",
  "",
  ...lines,
  `Summary (target: ≤ 1.15): ${summary.join("; ")}.`,
  "",
].join("\n");
console.log(report);
writeFileSync(opt.out!, report);
