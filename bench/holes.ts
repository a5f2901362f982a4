// What skipping a source's holes buys: a guest that touched a tenth of its RAM, saved from its memory
// backend as it is (untouched RAM = holes) and from the same bytes written out in full (zeros as data),
// alternated round by round, medians compared, with fio writing the touched bytes as the floor.
// Writes bench/HOLES.md.
//
//   bun bench/holes.ts [--size 4096] [--touched 0.1] [--channels 4] [--rounds 3] [--dir /tmp]
import { cpus } from "node:os";
import { closeSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync, ftruncateSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { save } from "../src/save.ts";
import { pagesOf, rng } from "../src/memory/synthetic.ts";
import { MiB, PAGE } from "../harness/units.ts";
import { dropCaches, fio, median } from "./common.ts";

const { values: opt } = parseArgs({
  options: {
    size: { type: "string", default: "4096" },
    touched: { type: "string", default: "0.1" },
    channels: { type: "string", default: "4" },
    rounds: { type: "string", default: "3" },
    dir: { type: "string", default: "/tmp" },
    out: { type: "string", default: join(import.meta.dir, "HOLES.md") },
  },
});
const EXTENT = 2 * MiB;
const size = Number(opt.size) * MiB;
const channels = Number(opt.channels);
const rounds = Number(opt.rounds);
const dir = mkdtempSync(join(opt.dir!, "ramsnap-holes-"));
const file = join(dir, "o.ram");
const sparse = "/dev/shm/ramsnap-holes.sparse";
const full = "/dev/shm/ramsnap-holes.full";

// Touched RAM in 2 MiB extents (the clustered pattern's layout), each page of it non-zero.
const touched = pagesOf({ kind: "clustered", seed: 21, nonZero: Number(opt.touched) }, size / PAGE);
const r = rng(99);
const extent = new Uint8Array(EXTENT);
const zeros = new Uint8Array(EXTENT);
let dataBytes = 0;
for (const [path, writeZeros] of [[sparse, false], [full, true]] as const) {
  const fd = openSync(path, "w", 0o600);
  ftruncateSync(fd, size);
  for (let at = 0; at < size; at += EXTENT) {
    if (touched[at / PAGE]) {
      for (let i = 0; i < EXTENT; i += 4) extent[i] = r() & 0xff || 1;
      writeSync(fd, extent, 0, EXTENT, at);
      if (!writeZeros) dataBytes += EXTENT;
    } else if (writeZeros) writeSync(fd, zeros, 0, EXTENT, at);
  }
  closeSync(fd);
}


const t: Record<string, number[]> = {};
let holeBytes = 0;
try {
  for (let round = 0; round <= rounds; round++) {
    const steps: [string, () => Promise<number>][] = [
      ["save, source with holes", async () => {
        const s = await save({ path: file, blocks: [{ name: "ram0", path: sparse }], channels, directIo: true });
        holeBytes = s.sourceHoleBytes;
        return s.seconds;
      }],
      ["save, the same bytes written out in full", async () => (await save({ path: file, blocks: [{ name: "ram0", path: full }], channels, directIo: true })).seconds],
      ["fio O_DIRECT write of the touched bytes", async () => fio("write", file, dataBytes)],
    ];
    for (const [k, fn] of round % 2 ? [...steps].reverse() : steps) {
      rmSync(file, { force: true });
      dropCaches();
      const s = await fn();
      if (round > 0) (t[k] ??= []).push(s);
    }
    console.error(`round ${round}: ${Object.entries(t).map(([k, v]) => `${k} ${v.at(-1)?.toFixed(2)}`).join(", ")}`);
  }
} finally {
  rmSync(dir, { recursive: true, force: true });
  rmSync(sparse, { force: true });
  rmSync(full, { force: true });
}
const fioMedian = median(t["fio O_DIRECT write of the touched bytes"]!);
const report = [
  "# Saving a guest that touched little of its RAM",
  "",
  `Run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC: a ${opt.size} MiB image in /dev/shm of which ${(dataBytes / MiB).toFixed(0)} MiB (${(100 * dataBytes / size).toFixed(0)}%, in 2 MiB extents) ` +
    `is non-zero, the rest holes (a guest's never-touched RAM); the same bytes also written out in full. Saved to ${opt.dir} with ${channels} channels and direct I/O; ` +
    `${cpus().length} vCPUs, Bun ${Bun.version}; ${rounds} rounds after a warm-up, order reversed every other round, page cache dropped before each run.`,
  "",
  `Command: \`bun bench/holes.ts --size ${opt.size} --touched ${opt.touched} --channels ${opt.channels} --rounds ${opt.rounds}\``,
  "",
  "| | median s | × fio | runs s |",
  "|---|---|---|---|",
  ...Object.entries(t).map(([k, v]) => `| ${k} | ${median(v).toFixed(2)} | ${(median(v) / fioMedian).toFixed(2)} | ${v.map((x) => x.toFixed(2)).join(", ")} |`),
  "",
  `The save from the sparse source skipped ${(holeBytes / MiB).toFixed(0)} MiB of holes (SEEK_DATA/SEEK_HOLE) instead of reading them and checking every page for zeros. Both files are byte for byte the same (a test asserts it).`,
  "",
].join("\n");
console.log(report);
writeFileSync(opt.out!, report);
