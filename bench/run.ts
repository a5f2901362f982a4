// Benchmarks (not tests): ramsnap save/restore against fio with O_DIRECT on the same bytes and against
// QEMU 10's own mapped-ram + multifd + direct-io save and restore of a guest holding the same memory,
// side by side in one run. Prints a table and writes bench/RESULTS.md.
//
//   bun bench/run.ts [--size 4G] [--dir /tmp] [--patterns dense,clustered,scattered] [--repeat 1]
//                    [--channels 1,2,4] [--no-qemu] [--out bench/RESULTS.md]
//
// Needs root for dropping the page cache between runs (otherwise buffered numbers flatter), fio, and
// qemu-system-x86_64 10.x (scripts/setup.sh installs both).
import { cpus, totalmem } from "node:os";
import { existsSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseArgs } from "node:util";
import * as libc from "../ffi/libc.ts";
import { restore } from "../src/restore.ts";
import { GiB, MiB, PAGE } from "../harness/units.ts";
import { dropCaches, fio } from "./common.ts";
import { save } from "../src/save.ts";
import { migrateFromFile, migrateToFile, startGuest, stopAllGuests } from "../harness/qemu.ts";
import { syntheticImage, type PatternKind } from "../src/memory/synthetic.ts";

const { values: opt } = parseArgs({
  options: {
    size: { type: "string", default: "4096" },
    dir: { type: "string", default: "/tmp" },
    patterns: { type: "string", default: "dense,clustered,scattered" },
    repeat: { type: "string", default: "1" },
    channels: { type: "string", default: "1,2,4" },
    "no-qemu": { type: "boolean", default: false },
    out: { type: "string", default: join(import.meta.dir, "RESULTS.md") },
  },
});

const sizeMiB = Number(opt.size!.replace(/G$/i, "") ) * (/G$/i.test(opt.size!) ? 1024 : 1);
const size = sizeMiB * MiB;
const repeat = Number(opt.repeat);
const channelSet = opt.channels!.split(",").map(Number);
const patterns = opt.patterns!.split(",") as PatternKind[];
const file = join(opt.dir!, "ramsnap-bench.ram");
const restored = "/dev/shm/ramsnap-bench-restored";

/** Runs fn `repeat` times, fresh state before each; returns min and median seconds. */
async function measure(before: () => void, fn: () => Promise<number>): Promise<{ min: number; median: number }> {
  const times: number[] = [];
  for (let i = 0; i < repeat; i++) {
    before();
    times.push(await fn());
  }
  times.sort((a, b) => a - b);
  return { min: times[0]!, median: times[Math.floor(times.length / 2)]! };
}


/** Peak anonymous memory of this process (RssAnon), sampled while `fn` runs: ramsnap's own memory. */
let peakAnon = 0;
async function sampled<T>(fn: () => Promise<T>): Promise<T> {
  const read = () => Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"))?.[1] ?? 0) * 1024;
  const timer = setInterval(() => (peakAnon = Math.max(peakAnon, read())), 20);
  try {
    return await fn();
  } finally {
    clearInterval(timer);
    peakAnon = Math.max(peakAnon, read());
  }
}

interface Row {
  pattern: string;
  what: string;
  save?: { min: number; median: number };
  restore?: { min: number; median: number };
  dataBytes: number;
}

const rows: Row[] = [];
const fresh = () => {
  rmSync(file, { force: true });
  dropCaches();
};
const freshTarget = () => {
  rmSync(restored, { force: true });
  dropCaches();
};

for (const kind of patterns) {
  console.error(`\n== ${kind}: ${sizeMiB} MiB image`);
  const pattern = syntheticImage(size, { kind, seed: 7, nonZero: 0.6 });
  const dataBytes = pattern.nonZeroCount * PAGE;
  // The guest's RAM file is the image for everyone: ramsnap saves it, QEMU saves it.
  const guest = await startGuest({ name: `bench-${kind}`, ramMiB: sizeMiB, pattern, timeoutMs: 120_000 });
  const image = guest.shmPaths[0]!;
  try {
    for (const direct of [true, false]) {
      for (const channels of channelSet) {
        const what = `ramsnap ${channels} ch, ${direct ? "direct" : "buffered"}`;
        const s = await measure(fresh, async () => (await sampled(() => save({ path: file, blocks: [{ name: "ram0", path: image }], channels, directIo: direct, machineType: guest.machineType }))).seconds);
        const r = await measure(freshTarget, async () => (await sampled(() => restore({ path: file, blocks: [{ name: "ram0", path: restored }], channels, directIo: direct }))).seconds);
        rows.push({ pattern: kind, what, save: s, restore: r, dataBytes });
        console.error(`${what}: save ${s.min.toFixed(2)} s, restore ${r.min.toFixed(2)} s`);
      }
    }
    {
      // The integrity manifest's cost: the same save with FILE.sums computed in the channels.
      const channels = channelSet[channelSet.length - 1]!;
      const m = await measure(fresh, async () => (await sampled(() => save({ path: file, blocks: [{ name: "ram0", path: image }], channels, directIo: true, manifest: true }))).seconds);
      rmSync(`${file}.sums`, { force: true });
      rows.push({ pattern: kind, what: `ramsnap ${channels} ch, direct, --manifest`, save: m, dataBytes });
      console.error(`ramsnap ${channels} ch direct --manifest: save ${m.min.toFixed(2)} s`);
    }
    const full = await measure(fresh, async () => fio("write", file, size));
    const fullRead = await measure(dropCaches, async () => fio("read", file, size));
    rows.push({ pattern: kind, what: "fio O_DIRECT, whole image", save: full, restore: fullRead, dataBytes: size });
    const data = await measure(fresh, async () => fio("write", file, dataBytes));
    const dataRead = await measure(dropCaches, async () => fio("read", file, dataBytes));
    rows.push({ pattern: kind, what: "fio O_DIRECT, non-zero bytes only", save: data, restore: dataRead, dataBytes });
    console.error(`fio: whole ${full.min.toFixed(2)}/${fullRead.min.toFixed(2)} s, data only ${data.min.toFixed(2)}/${dataRead.min.toFixed(2)} s`);

    if (!opt["no-qemu"]) {
      for (const channels of [channelSet[channelSet.length - 1]!]) {
        const mig = { mappedRam: true, multifd: true, channels, directIo: true, timeoutMs: 600_000 };
        const qs = await measure(fresh, async () => (await migrateToFile(guest, `file:${file}`, mig)).ms / 1000);
        const qr = await measure(dropCaches, async () => {
          const dst = await startGuest({ name: `bench-${kind}-in`, ramMiB: sizeMiB, incoming: true, timeoutMs: 120_000 });
          try {
            return (await migrateFromFile(dst, `file:${file}`, mig)).ms / 1000;
          } finally {
            await dst.stop();
          }
        });
        rows.push({ pattern: kind, what: `QEMU ${channels} ch, direct-io`, save: qs, restore: qr, dataBytes });
        console.error(`QEMU ${channels} ch: save ${qs.min.toFixed(2)} s, restore ${qr.min.toFixed(2)} s`);
      }
    }
  } finally {
    await guest.stop();
    rmSync(file, { force: true });
    rmSync(restored, { force: true });
  }
}
await stopAllGuests();

// ---- report ----------------------------------------------------------------------------------
const ref = (pattern: string, what: string) => rows.find((r) => r.pattern === pattern && r.what === what);
const fmt = (m?: { min: number; median: number }) => (m ? `${m.min.toFixed(2)} / ${m.median.toFixed(2)}` : "");
const ratio = (a?: { min: number }, b?: { min: number }) => (a && b ? (a.min / b.min).toFixed(2) : "");
const lines: string[] = [];
const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
const fsOf = (() => {
  try {
    const fd = libc.open(opt.dir!, libc.O_RDONLY);
    const t = libc.fstatfs(fd).type;
    libc.close(fd);
    return t === 0xef53 ? "ext4" : `fs 0x${t.toString(16)}`;
  } catch {
    return "?";
  }
})();
lines.push(`# ramsnap benchmark`, "");
lines.push(
  `Run ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC: ${sizeMiB} MiB image, save file on ${fsOf} (${opt.dir}), images in /dev/shm; ` +
    `${cpus().length} vCPUs (${cpus()[0]?.model ?? "?"}), ${(totalmem() / GiB).toFixed(0)} GiB RAM, Linux ${kernel}, Bun ${Bun.version}; ` +
    `seconds as min / median of ${repeat} run${repeat === 1 ? "" : "s"}; page cache dropped before each run. ` +
    `Ratios use the min times; "vs fio" divides by fio's O_DIRECT time for the same bytes (whole image for dense, non-zero bytes for clustered and scattered), ` +
    `"QEMU ÷ ramsnap" says how many times faster ramsnap is than QEMU with the same channel count and direct-io.`,
);
lines.push("", `Command: \`bun bench/run.ts --size ${opt.size} --repeat ${repeat} --channels ${opt.channels}\``, "");
lines.push(`Peak anonymous memory of the benchmark process during ramsnap's saves and restores (RssAnon, sampled every 20 ms): ${(peakAnon / MiB).toFixed(0)} MiB.`, "");
for (const kind of patterns) {
  const refWhat = kind === "dense" ? "fio O_DIRECT, whole image" : "fio O_DIRECT, non-zero bytes only";
  const fioRow = ref(kind, refWhat);
  const qemuRow = rows.find((r) => r.pattern === kind && r.what.startsWith("QEMU"));
  const dataBytes = rows.find((r) => r.pattern === kind)?.dataBytes ?? 0;
  lines.push(`## ${kind} (${(dataBytes / MiB).toFixed(0)} MiB of non-zero pages)`, "");
  lines.push("| | save s | restore s | save vs fio | restore vs fio | QEMU ÷ ramsnap save | QEMU ÷ ramsnap restore |", "|---|---|---|---|---|---|---|");
  for (const r of rows.filter((x) => x.pattern === kind)) {
    const isRamsnap = r.what.startsWith("ramsnap");
    const sameCh = isRamsnap && qemuRow && r.what.includes(`${qemuRow.what.split(" ")[1]} ch, direct`);
    lines.push(
      `| ${r.what} | ${fmt(r.save)} | ${fmt(r.restore)} | ${isRamsnap ? ratio(r.save, fioRow?.save) : ""} | ${isRamsnap ? ratio(r.restore, fioRow?.restore) : ""} | ` +
        `${sameCh ? ratio(qemuRow!.save, r.save) : ""} | ${sameCh ? ratio(qemuRow!.restore, r.restore) : ""} |`,
    );
  }
  lines.push("");
}
const report = lines.join("\n");
console.log(report);
if (existsSync(join(import.meta.dir))) writeFileSync(opt.out!, `${report}\n`);
