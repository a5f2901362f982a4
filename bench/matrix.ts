// The whole engine matrix in one run (issue 14): dense, clustered and scattered images × save and restore ×
// 1, 2 and 4 channels, each beside its references in the same rounds, the order reversed every other round
// so the disk's drift hits both sides, medians of the rounds after a warm-up compared. Writes bench/MATRIX.md
// (ratios against the targets, the channels' stage counters, CPU time per GiB, peak RssAnon) and
// bench/matrix.svg (the ratios as bars).
//
//   bun bench/matrix.ts [--sizes 2048,4096] [--patterns dense,clustered,scattered] [--channels 1,2,4]
//                       [--ops save,restore] [--rounds 3] [--dir /tmp] [--compare REV] [--smoke]
//
// References, per pattern and size:
//   save      fio O_DIRECT write of the bytes a save must write at least: the whole image (dense), the
//             non-zero pages (clustered); scattered is held to fio writing the whole image (bridged runs
//             move nearly all of it), with dd oflag=direct of the whole image beside it.
//   restore   the larger of fio O_DIRECT reading the present bytes and the fresh-memory floor: fallocate
//             of the target's size on /dev/shm, the kernel handing out that memory.
// With --compare REV, the library at git revision REV (exported to a temporary folder) runs every
// ramsnap cell too, alternated with this tree's, so a change is judged before/after in the same rounds.
import { cpus } from "node:os";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as libc from "../ffi/libc.ts";
import * as here from "../src/index.ts";
import type { PatternKind } from "../src/memory/synthetic.ts";
import { writeImage } from "../harness/scratch.ts";
import { GiB, MiB, PAGE } from "../harness/units.ts";
import { dropCaches as dropAll, fio, median } from "./common.ts";

const { values: opt } = parseArgs({
  options: {
    sizes: { type: "string", default: "2048" },
    patterns: { type: "string", default: "dense,clustered,scattered" },
    channels: { type: "string", default: "1,2,4" },
    /** save, restore or both (a quick A/B of one side with --compare). */
    ops: { type: "string", default: "save,restore" },
    rounds: { type: "string", default: "3" },
    dir: { type: "string", default: "/tmp" },
    compare: { type: "string" },
    /** Checks the script itself: no page-cache drops (the numbers then mean nothing). */
    smoke: { type: "boolean", default: false },
    out: { type: "string", default: join(import.meta.dir, "MATRIX.md") },
    svg: { type: "string", default: join(import.meta.dir, "matrix.svg") },
  },
});
const dropCaches = opt.smoke ? () => {} : dropAll;
const sizes = opt.sizes!.split(",").map(Number);
const patterns = opt.patterns!.split(",") as PatternKind[];
const channelSet = opt.channels!.split(",").map(Number);
const ops = new Set(opt.ops!.split(","));
const rounds = Number(opt.rounds);
const TARGET = { dense: 1.1, clustered: 1.15, scattered: 1.0, restore: 1.2 } as const;

type Lib = Pick<typeof here, "save" | "restore">;
const libs: [string, Lib][] = [["", here]];
const tmp = mkdtempSync(join(opt.dir!, "ramsnap-matrix-"));
if (opt.compare) {
  // The other revision's library, imported from its own folder (its own libc handle and Workers).
  const rev = opt.compare;
  const at = join(tmp, "rev");
  const x = Bun.spawnSync(["sh", "-c", 'mkdir -p "$2" && git archive --format=tar "$1" | tar -x -C "$2"', "sh", rev, at], { cwd: join(import.meta.dir, ".."), stderr: "pipe" });
  if (x.exitCode !== 0) throw new Error(`git archive ${rev}: ${x.stderr.toString()}`);
  const label = git0("rev-parse", "--short", rev);
  libs.push([` @${label}`, (await import(join(at, "src/index.ts"))) as Lib]);
}
const headRev = git0("rev-parse", "--short", "HEAD");
function git0(...a: string[]): string {
  return Bun.spawnSync(["git", ...a], { cwd: import.meta.dir }).stdout.toString().trim();
}

const file = join(tmp, "o.ram");
const refFile = join(tmp, "ref.bin");
const ddFile = join(tmp, "dd.bin");
const img = "/dev/shm/ramsnap-matrix.img";
const target = "/dev/shm/ramsnap-matrix.out";
const floorFile = "/dev/shm/ramsnap-matrix.floor";

/** A ramsnap run's measurements: the library's result plus what the process spent around it. */
interface Run {
  seconds: number;
  transferSeconds: number;
  stages: Record<string, number>;
  cpuPerGiB: number;
  rssAnonPeak: number;
  ioCalls: number;
}

const rssAnon = (): number => Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) * 1024;

/** Runs op, sampling RssAnon every 5 ms (the main thread only waits on the channels meanwhile) and CPU time of all threads. */
async function measured(bytes: number, op: () => Promise<{ seconds: number; transferSeconds: number; stages: object; ioCalls: number }>): Promise<Run> {
  let peak = rssAnon();
  const timer = setInterval(() => {
    peak = Math.max(peak, rssAnon());
  }, 5);
  const cpu0 = process.cpuUsage();
  try {
    const r = await op();
    const cpu = process.cpuUsage(cpu0);
    peak = Math.max(peak, rssAnon());
    return { seconds: r.seconds, transferSeconds: r.transferSeconds, stages: { ...r.stages } as Record<string, number>, cpuPerGiB: (cpu.user + cpu.system) / 1e6 / (bytes / GiB), rssAnonPeak: peak, ioCalls: r.ioCalls };
  } finally {
    clearInterval(timer);
  }
}

/** dd's own figure for copying the image to a new file with O_DIRECT, fsync included. */
function dd(): number {
  const t0 = performance.now();
  const r = Bun.spawnSync(["dd", `if=${img}`, `of=${ddFile}`, "bs=8M", "oflag=direct", "conv=fsync"], { stderr: "pipe" });
  const wall = (performance.now() - t0) / 1000;
  if (r.exitCode !== 0) throw new Error(`dd failed: ${r.stderr.toString()}`);
  return Number(/copied, ([\d.]+) s/.exec(r.stderr.toString())?.[1] ?? wall);
}

/** The fresh-memory floor: the kernel handing out `bytes` of /dev/shm (fallocate of a new file). */
function floor(bytes: number): number {
  rmSync(floorFile, { force: true });
  const fd = libc.open(floorFile, libc.O_RDWR | libc.O_CREAT, 0o600);
  try {
    const t0 = performance.now();
    libc.fallocate(fd, 0, 0, bytes, floorFile);
    return (performance.now() - t0) / 1000;
  } finally {
    libc.close(fd, floorFile);
    rmSync(floorFile, { force: true });
  }
}

interface Cell {
  /** The ramsnap runs' names in the order of the first round's steps (the tables keep it). */
  order: string[];
  size: number;
  kind: PatternKind;
  presentBytes: number;
  refs: Record<string, number[]>;
  runs: Record<string, Run[]>;
}
const cells: Cell[] = [];

try {
  for (const size of sizes) {
    const bytes = size * MiB;
    for (const kind of patterns) {
      writeImage(img, bytes, { kind, seed: 11, nonZero: 0.6 });
      const probe = await here.save({ path: file, blocks: [{ name: "ram0", path: img }], channels: 2, directIo: true });
      const cell: Cell = { order: [], size, kind, presentBytes: probe.pagesPresent * PAGE, refs: {}, runs: {} };
      cells.push(cell);
      const writeRef = kind === "clustered" ? cell.presentBytes : bytes;
      const steps: [string, () => Promise<void>][] = [
        ["fio write", async () => (rmSync(refFile, { force: true }), dropCaches(), void (cell.refs["fio write"] ??= []).push(fio("write", refFile, writeRef)))],
        ["fio read", async () => (dropCaches(), void (cell.refs["fio read"] ??= []).push(fio("read", refFile, cell.presentBytes)))],
        ["floor", async () => void (cell.refs.floor ??= []).push(floor(bytes))],
      ];
      if (kind === "scattered") steps.push(["dd write", async () => (rmSync(ddFile, { force: true }), dropCaches(), void (cell.refs["dd write"] ??= []).push(dd()))]);
      for (const ch of channelSet) {
        for (const [label, lib] of libs) {
          if (ops.has("save")) steps.push([`save ${ch} ch${label}`, async () => {
            rmSync(file, { force: true });
            dropCaches();
            const r = await measured(bytes, () => lib.save({ path: file, blocks: [{ name: "ram0", path: img }], channels: ch, directIo: true }));
            (cell.runs[`save ${ch} ch${label}`] ??= []).push(r);
          }]);
          if (ops.has("restore")) steps.push([`restore ${ch} ch${label}`, async () => {
            rmSync(target, { force: true });
            dropCaches();
            const r = await measured(bytes, () => lib.restore({ path: file, blocks: [{ name: "ram0", path: target }], channels: ch, directIo: true }));
            rmSync(target, { force: true });
            (cell.runs[`restore ${ch} ch${label}`] ??= []).push(r);
          }]);
        }
      }
      cell.order = steps.map(([k]) => k).filter((k) => /^(save|restore)/.test(k));
      // Round 0 warms up and is dropped; every save writes the same file, so a restore may follow any of them.
      for (let round = 0; round <= rounds; round++) {
        const keep = { refs: structuredClone(cell.refs), runs: structuredClone(cell.runs) };
        for (const [, fn] of round % 2 ? [...steps].reverse() : steps) await fn();
        if (round === 0) {
          cell.refs = keep.refs;
          cell.runs = keep.runs;
        }
        const last = [...Object.entries(cell.refs).map(([k, v]) => `${k} ${v.at(-1)?.toFixed(2)}`), ...Object.entries(cell.runs).map(([k, v]) => `${k} ${v.at(-1)?.seconds.toFixed(2)}`)];
        console.error(`${size} MiB ${kind} round ${round}${round === 0 ? " (warm-up)" : ""}: ${last.join(", ")}`);
      }
    }
  }
} finally {
  rmSync(tmp, { recursive: true, force: true });
  for (const p of [img, target, floorFile]) rmSync(p, { force: true });
}

// ---- report ---------------------------------------------------------------------------------------

interface Row {
  name: string;
  ratio: number;
  target: number;
  refName: string;
}
const rows: Row[] = [];
const md: string[] = [];
const f2 = (x: number) => x.toFixed(2);
const medianRun = (rs: Run[]): Run => {
  const m = median(rs.map((r) => r.seconds));
  return rs.find((r) => r.seconds === m)!;
};
const stageMedian = (rs: Run[], k: string) => median(rs.map((r) => r.stages[k] ?? 0));

for (const c of cells) {
  const ref = Object.fromEntries(Object.entries(c.refs).map(([k, v]) => [k, median(v)]));
  const saveRef = ref["fio write"]!;
  const restoreRef = Math.max(ref["fio read"]!, ref.floor!);
  md.push(
    `## ${c.kind}, ${c.size} MiB: ${(c.presentBytes / MiB).toFixed(0)} MiB of non-zero pages`,
    "",
    `References (median s, runs): fio write of ${c.kind === "clustered" ? "the non-zero bytes" : "the whole image"} ${f2(saveRef)} (${c.refs["fio write"]!.map(f2).join(", ")}); ` +
      `fio read of the present bytes ${f2(ref["fio read"]!)} (${c.refs["fio read"]!.map(f2).join(", ")}); ` +
      `fresh-memory floor (fallocate ${c.size} MiB on /dev/shm) ${f2(ref.floor!)} (${c.refs.floor!.map(f2).join(", ")})` +
      (ref["dd write"] ? `; dd oflag=direct of the whole image ${f2(ref["dd write"])} (${c.refs["dd write"]!.map(f2).join(", ")})` : "") +
      ".",
    "",
    "| run | median s | reference | ratio | target | | runs s |",
    "|---|---|---|---|---|---|---|",
  );
  const runsInOrder = c.order.map((k) => [k, c.runs[k]!] as const);
  for (const [k, rs] of runsInOrder) {
    const m = median(rs.map((r) => r.seconds));
    const isSave = k.startsWith("save");
    const refS = isSave ? saveRef : restoreRef;
    const refName = isSave ? `fio write ${f2(saveRef)}` : `max(fio read, floor) ${f2(restoreRef)}`;
    const target = isSave ? TARGET[c.kind as keyof typeof TARGET] : TARGET.restore;
    const ratio = m / refS;
    const extra = isSave && ref["dd write"] ? `; ${f2(m / ref["dd write"])} × dd` : "";
    md.push(`| ${k} | ${f2(m)} | ${refName} | ${f2(ratio)}${extra} | ≤ ${target.toFixed(2)} | ${ratio <= target ? "met" : "**missed**"} | ${rs.map((r) => f2(r.seconds)).join(", ")} |`);
    // The chart and the count judge this tree; a compared revision's rows stay in the tables.
    if (!k.includes(" @")) rows.push({ name: `${c.kind} ${c.size} MiB ${k}`, ratio, target, refName });
  }
  md.push(
    "",
    "Where the time went (medians over the rounds; stages are seconds summed over the channels, so with N channels they fill up to N × transfer):",
    "",
    "| run | s | transfer s | readSource | zeroCheck | diskWait | faultTarget | hash | idle | I/O calls | CPU s/GiB | RssAnon peak MiB |",
    "|---|---|---|---|---|---|---|---|---|---|---|---|",
  );
  for (const [k, rs] of runsInOrder) {
    const mr = medianRun(rs);
    const st = ["readSource", "zeroCheck", "diskWait", "faultTarget", "hash", "idle"].map((s) => f2(stageMedian(rs, s)));
    md.push(
      `| ${k} | ${f2(mr.seconds)} | ${f2(median(rs.map((r) => r.transferSeconds)))} | ${st.join(" | ")} | ${mr.ioCalls} | ${f2(median(rs.map((r) => r.cpuPerGiB)))} | ${(Math.max(...rs.map((r) => r.rssAnonPeak)) / MiB).toFixed(0)} |`,
    );
  }
  if (libs.length > 1) {
    const label = libs[1]![0];
    md.push("", `This tree against${label} (median seconds, same rounds, alternated):`, "", `| run | this tree | ${label.trim()} | this ÷ ${label.trim()} |`, "|---|---|---|---|");
    for (const k of c.order.filter((k) => !k.endsWith(label))) {
      const a = median(c.runs[k]!.map((r) => r.seconds));
      const b = median(c.runs[k + label]!.map((r) => r.seconds));
      md.push(`| ${k} | ${f2(a)} | ${f2(b)} | ${f2(a / b)} |`);
    }
  }
  md.push("");
}

const met = rows.filter((r) => r.ratio <= r.target).length;
const cmd = `bun bench/matrix.ts --sizes ${opt.sizes} --patterns ${opt.patterns} --channels ${opt.channels} --ops ${opt.ops} --rounds ${opt.rounds}${opt.compare ? ` --compare ${opt.compare}` : ""}`;
const report = [
  "# The engine matrix: ramsnap beside fio, dd and the fresh-memory floor",
  "",
  `Run ended ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC, at ${headRev}: images in /dev/shm (src/memory/synthetic.ts, seed 11, 60 % non-zero for clustered and scattered), ` +
    `save files on ${opt.dir} (ext4), direct I/O, the library in-process; ${cpus().length} vCPUs, Bun ${Bun.version}; ${rounds} rounds after a warm-up, ` +
    "the order of every run reversed each other round, page cache dropped before each disk run.",
  "",
  `Command: \`${cmd}\``,
  "",
  "Targets: save dense ≤ 1.10 × fio write; clustered ≤ 1.15 × fio writing the non-zero bytes; scattered ≤ 1.00 × fio writing the whole image; " +
    "restore ≤ 1.20 × the larger of fio reading the present bytes and the fresh-memory floor. " +
    "ramsnap's seconds are the library call's, from opening the sources to the renamed, fsynced file (save) or the synced target (restore). " +
    "CPU s/GiB is process.cpuUsage() (every thread, user + system) over the call per GiB of RAM; RssAnon peak is /proc/self/status sampled every 5 ms during the call (the whole bench process).",
  "",
  `**${met} of ${rows.length} runs of this tree within target.**`,
  "",
  ...md,
  "![ratios](matrix.svg)",
  "",
].join("\n");
console.log(report);
writeFileSync(opt.out!, report);
writeFileSync(opt.svg!, svgOf(rows));

/** A horizontal bar per run: its ratio, with a tick at its target; bars past the target in a second colour. */
function svgOf(rs: Row[]): string {
  const barH = 16;
  const gap = 4;
  const left = 270;
  const width = 420;
  const top = 30;
  const max = Math.max(2, ...rs.map((r) => Math.min(r.ratio, 6))) * 1.05;
  const x = (v: number) => left + (Math.min(v, max) / max) * width;
  const h = top + rs.length * (barH + gap) + 30;
  const esc = (s: string) => s.replace(/&/g, "&amp;").replace(/</g, "&lt;");
  const out: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${left + width + 70}" height="${h}" font-family="sans-serif" font-size="11">`,
    "<title>ramsnap engine matrix: each run's time as a ratio to its reference</title>",
    `<text x="${left}" y="16" font-size="13">ratio to reference (tick: target; 1.0 dashed)</text>`,
    `<line x1="${x(1)}" y1="${top - 4}" x2="${x(1)}" y2="${h - 24}" stroke="#888" stroke-dasharray="3,3"/>`,
  ];
  rs.forEach((r, i) => {
    const y = top + i * (barH + gap);
    const colour = r.ratio <= r.target ? "#4a8" : "#d64";
    out.push(
      `<text x="${left - 6}" y="${y + barH - 4}" text-anchor="end">${esc(r.name)}</text>`,
      `<rect x="${left}" y="${y}" width="${(x(r.ratio) - left).toFixed(1)}" height="${barH}" fill="${colour}"/>`,
      `<line x1="${x(r.target).toFixed(1)}" y1="${y - 2}" x2="${x(r.target).toFixed(1)}" y2="${y + barH + 2}" stroke="#000" stroke-width="2"/>`,
      `<text x="${(x(r.ratio) + 4).toFixed(1)}" y="${y + barH - 4}">${r.ratio.toFixed(2)}</text>`,
    );
  });
  for (const v of [0, 1, 2, 3, 4, 5, 6].filter((v) => v <= max)) out.push(`<text x="${x(v).toFixed(1)}" y="${h - 10}" text-anchor="middle">${v}</text>`);
  out.push("</svg>", "");
  return out.join("\n");
}
