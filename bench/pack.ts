// Benchmark: the packed save format (docs/pack-format.md) against mapped-ram, on local disk and on the RGW,
// for dense random RAM, clustered RAM and a real Linux guest's RAM, in one run: methods alternated round by
// round, page cache dropped before every timed run, medians. Every ramsnap row is the CLI as a user runs
// it, timed from spawn to exit, its peak RssAnon sampled from /proc/PID/status. Writes bench/PACK.md.
//
//   bun bench/pack.ts [--sizes 2048] [--kinds dense,clustered,linux] [--rounds 3] [--dir /tmp] [--quick]
//                     [--methods mapped,mapped-direct,pack,pack-s3,plain-s3] [--out FILE]
//
// Per image and round (the order rotated each round; --methods picks, default all but mapped-direct):
//   mapped-ram  ramsnap save -o IMG.ram --no-manifest, then ramsnap restore IMG.ram into a fresh target:
//               the local reference for both directions (mapped-direct: the same with --direct-io);
//   pack        ramsnap save -o IMG.rpk (zstd:1, the default), then ramsnap restore IMG.rpk;
//   pack S3     ramsnap save -o s3://$S3_BUCKET/bench/KEY.rpk, then ramsnap restore from it;
//   plain S3    the reference for S3: the same pack's bytes (a copy made before the rounds, on /dev/shm)
//               uploaded by Bun's S3Client writer (multipart, 8 MiB parts, queue of 4: ramsnap's settings)
//               and read back by 4 parallel ranged GETs of 8 MiB into memory, dropped (harness/s3-plain.ts,
//               a process of its own, timed as the CLI is).
// Images (the guest RAM, as a memory backend would hold it) and restore targets are on /dev/shm; the saves
// on --dir (ext4). The first round's restores are compared byte for byte with the image.
//
//   dense      every page non-zero, random bytes (AES-128-CTR of zeros, fixed key): incompressible. Not
//              src/memory/synthetic.ts's "dense": its pages are 4 KiB windows of one 64 KiB random pool,
//              which zstd finds again within a 1 MiB extent (about 10× smaller), so it is no random RAM.
//   clustered  synthetic.ts "clustered", 50 % of the 2 MiB units non-zero (pool pages: compressible, above).
//   linux      Debian's cloud kernel and a busybox initramfs under TCG that fills a tmpfs with text,
//              binaries, random and zero data (harness/linux-guest.ts), paused; its RAM file copied.
// Needs root (dropping the page cache), qemu-system-x86_64, apt sources for the guest, and the RGW
// (`eval "$(bash scripts/ceph-rgw.sh env)"`). Disk: the RGW's OSD is a sparse 60 GiB BlueStore file on the
// same disk, and it grows with every byte uploaded (overwritten objects' space is not handed back to the
// host file): a 2048,4096 run uploads about 60 GiB. With less free, the OSD dies of ENOSPC mid-run (seen:
// radosgw then hangs every request); `bash scripts/ceph-rgw.sh start` on a dead one makes a fresh, sparse one.
import { createCipheriv } from "node:crypto";
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, rmSync, statSync, writeFileSync, writeSync } from "node:fs";
import { cpus, totalmem } from "node:os";
import { join } from "node:path";
import { parseArgs } from "node:util";
import { S3Client } from "bun";
import { bootFilledLinuxGuest, type FillPlan } from "../harness/linux-guest.ts";
import { stopAllGuests } from "../harness/qemu.ts";
import { abortPending, requireS3 } from "../harness/s3.ts";
import { writeImage } from "../harness/scratch.ts";
import { GiB, MiB } from "../harness/units.ts";
import { dropCaches, median } from "./common.ts";
import { samplePeakRss } from "../harness/proc.ts";

const { values: opt } = parseArgs({
  options: {
    sizes: { type: "string" },
    kinds: { type: "string", default: "dense,clustered,linux" },
    /** Which of mapped, mapped-direct (mapped-ram with --direct-io), pack, pack-s3, plain-s3 to run. */
    methods: { type: "string", default: "mapped,pack,pack-s3,plain-s3" },
    rounds: { type: "string" },
    dir: { type: "string", default: "/tmp" },
    /** A 256 MiB smoke run of one round, written to /tmp/PACK-quick.md unless --out says otherwise. */
    quick: { type: "boolean", default: false },
    out: { type: "string" },
  },
});
const sizes = (opt.sizes ?? (opt.quick ? "256" : "2048")).split(",").map(Number);
const kinds = opt.kinds!.split(",") as Kind[];
const rounds = Number(opt.rounds ?? (opt.quick ? "1" : "3"));
const out = opt.out ?? (opt.quick ? "/tmp/PACK-quick.md" : join(import.meta.dir, "PACK.md"));
type Kind = "dense" | "clustered" | "linux";

const MAIN = join(import.meta.dir, "../src/cli/main.ts");
const PLAIN = join(import.meta.dir, "../harness/s3-plain.ts");
const wanted = opt.methods!.split(",");
const usesS3 = wanted.some((m) => m.endsWith("-s3"));
const s3Fixture = usesS3 ? await requireS3() : { settings: {} as never, bucket: "" };
if (!s3Fixture) throw new Error("the S3 rows need the RGW: bash scripts/ceph-rgw.sh start; eval \"$(bash scripts/ceph-rgw.sh env)\"");
const s3 = s3Fixture;
const bucket = s3.bucket;
const tag = `${process.pid}-${Date.now().toString(36)}`;
const work = mkdtempSync(join(opt.dir!, "ramsnap-pack-bench-"));
const img = `/dev/shm/ramsnap-pack-bench-${tag}.img`;
const target = `/dev/shm/ramsnap-pack-bench-${tag}.out`;
const refPack = `/dev/shm/ramsnap-pack-bench-${tag}.ref.rpk`;
const ramFile = join(work, "img.ram");
const packFile = join(work, "img.rpk");
const packKey = `bench/pack-${tag}.rpk`;
const plainKey = `bench/plain-${tag}.rpk`;

/** One timed process: wall seconds spawn to exit, its peak RssAnon, and (ramsnap --json) what it reported. */
interface Timed {
  seconds: number;
  rss: number;
  report: { seconds?: number; transferSeconds?: number; stages?: Record<string, number> };
}

/**
 * Runs a Bun script to its end; `rss` is the peak of its own anonymous memory, RssAnon from /proc/PID/status
 * sampled every 20 ms (maxRSS would count the target a restore maps, which is guest RAM, not ramsnap's).
 */
async function timed(script: string, args: string[]): Promise<Timed> {
  const t0 = performance.now();
  const p = Bun.spawn([process.execPath, script, ...args], { stdout: "pipe", stderr: "pipe", env: { ...process.env, NO_COLOR: "1" } });
  const sampler = samplePeakRss(p.pid);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  const seconds = (performance.now() - t0) / 1000;
  const peak = sampler.stop();
  if (code !== 0) throw new Error(`${script.split("/").at(-1)} ${args.join(" ")} failed (${code}): ${stderr}${stdout}`);
  let report = {};
  try {
    report = JSON.parse(stdout);
  } catch {}
  return { seconds, rss: peak, report };
}
const ramsnap = (...args: string[]) => timed(MAIN, [...args, "--json"]);

/** The disk under --dir, as /sys/dev/block/MAJOR:MINOR/stat (its 7th field: sectors written so far). */
const diskStat = (() => {
  const dev = statSync(opt.dir!).dev;
  return `/sys/dev/block/${(dev >> 8) & 0xfff}:${(dev & 0xff) | ((dev >> 12) & 0xfff00)}/stat`;
})();
const sectorsWritten = () => Number(readFileSync(diskStat, "utf8").trim().split(/\s+/)[6]);
const settleWaits: number[] = [];

/**
 * Drops the page cache, then waits until the disk has written less than 1 MiB over the last second (at most
 * 60 s). The RGW's OSD shares the disk and goes on writing for seconds after an upload has returned
 * (BlueStore's deferred writes, RocksDB): a local save started then pays for it. Seen in a first run: the
 * method right after the plain upload saved 2–3× slower than in the round where it came first.
 */
async function cold(): Promise<void> {
  dropCaches();
  const t0 = performance.now();
  const window: number[] = [sectorsWritten()];
  for (;;) {
    await Bun.sleep(250);
    window.push(sectorsWritten());
    if (window.length > 5) window.shift();
    if (window.length === 5 && (window[4]! - window[0]!) * 512 < MiB) break;
    if (performance.now() - t0 > 60_000) break;
  }
  settleWaits.push((performance.now() - t0) / 1000);
}

function sameAsImage(path: string, what: string): void {
  if (Bun.spawnSync(["cmp", "-s", path, img]).exitCode !== 0) throw new Error(`${what}: the restored RAM differs from the image`);
}

/** A save and its restore, each after a cache drop, the restore into a fresh target. */
interface Run {
  save: Timed;
  restore: Timed;
}
type Method = (check: boolean) => Promise<Run>;

const throughRamsnap =
  (dest: string, saveArgs: string[], label: string, restoreArgs: string[] = []): Method =>
  async (check) => {
    if (!dest.startsWith("s3://")) rmSync(dest, { force: true });
    await cold();
    const save = await ramsnap("save", "-o", dest, "--block", `ram0=${img}`, ...saveArgs);
    rmSync(target, { force: true });
    await cold();
    const restore = await ramsnap("restore", dest, "--block", `ram0=${target}`, ...restoreArgs);
    if (check) sameAsImage(target, label);
    rmSync(target, { force: true });
    return { save, restore };
  };

const plainS3: Method = async () => {
  await cold();
  const save = await timed(PLAIN, ["put", refPack, plainKey]);
  await cold();
  const restore = await timed(PLAIN, ["get", plainKey, "--parallel", "4", "--range-mib", "8"]);
  return { save, restore };
};

const MAPPED = "mapped-ram (local)";
const MAPPED_DIRECT = "mapped-ram --direct-io (local)";
const PACK = "pack (local)";
const PACK_S3 = "pack (S3)";
const PLAIN_S3 = "plain S3 transfer of the pack's bytes";
const ALL_METHODS: Record<string, [string, Method]> = {
  mapped: [MAPPED, throughRamsnap(ramFile, ["--no-manifest"], "mapped-ram")],
  "mapped-direct": [MAPPED_DIRECT, throughRamsnap(ramFile, ["--no-manifest", "--direct-io"], "mapped-ram --direct-io", ["--direct-io"])],
  pack: [PACK, throughRamsnap(packFile, [], "pack")],
  "pack-s3": [PACK_S3, throughRamsnap(`s3://${bucket}/${packKey}`, [], "pack S3")],
  "plain-s3": [PLAIN_S3, plainS3],
};
const METHODS: [string, Method][] = wanted.map((m) => {
  const method = ALL_METHODS[m];
  if (!method) throw new Error(`--methods: ${m} is none of ${Object.keys(ALL_METHODS).join(", ")}`);
  return method;
});
const has = (...names: string[]) => names.every((n) => METHODS.some(([m]) => m === n));

/** Dense random RAM: AES-128-CTR of zeros under a fixed key, so every run has the same bytes. */
function writeRandomImage(path: string, bytes: number): void {
  const cipher = createCipheriv("aes-128-ctr", Buffer.alloc(16, 11), Buffer.alloc(16, 0));
  const zero = Buffer.alloc(16 * MiB);
  const fd = openSync(path, "w", 0o600);
  try {
    for (let pos = 0; pos < bytes; pos += zero.length) writeSync(fd, cipher.update(zero.subarray(0, Math.min(zero.length, bytes - pos))));
  } finally {
    closeSync(fd);
  }
}

interface ImageInfo {
  /** For the linux guest: what it wrote, how long it took to boot and fill, its last console line. */
  guest?: { plan: FillPlan; fillSeconds: number; last: string; packages: string[] };
}

async function makeImage(kind: Kind, sizeMiB: number): Promise<ImageInfo> {
  rmSync(img, { force: true });
  if (kind === "dense") writeRandomImage(img, sizeMiB * MiB);
  else if (kind === "clustered") writeImage(img, sizeMiB * MiB, { kind: "clustered", seed: 11, nonZero: 0.5 });
  else {
    const g = await bootFilledLinuxGuest({ ramMiB: sizeMiB });
    try {
      // Paused: the backend file is its RAM and stays put; copied (holes kept) so QEMU's memory goes.
      const cp = Bun.spawnSync(["cp", "--sparse=always", g.guest.shmPaths[0]!, img], { stderr: "pipe" });
      if (cp.exitCode !== 0) throw new Error(`cp of the guest's RAM failed: ${cp.stderr.toString()}`);
    } finally {
      await g.guest.stop();
    }
    const last = g.console.trim().split("\n").at(-1)!.replace(/^ramsnap-guest: /, "");
    return { guest: { plan: g.plan, fillSeconds: g.fillSeconds, last, packages: g.files.packages } };
  }
  return {};
}

interface Cell {
  size: number;
  kind: Kind;
  info: ImageInfo;
  /** Pages the mapped-ram file holds (non-zero pages), and its allocated bytes (stat blocks × 512). */
  presentBytes: number;
  ramAllocated: number;
  ramFileSize: number;
  /** The pack's size, and inspect's pack figures. */
  packSize: number;
  pack: { storedBytes: number; pageBytes: number; ratio: number; extents: number; zstdExtents: number };
  runs: Map<string, Run[]>;
}
const cells: Cell[] = [];
const skipped: string[] = [];

function inspectJson(path: string): any {
  const r = Bun.spawnSync([process.execPath, MAIN, "inspect", path, "--json"], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`inspect ${path}: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString());
}

let done = false;
try {
  for (const size of sizes) {
    for (const kind of kinds) {
      let info: ImageInfo;
      try {
        info = await makeImage(kind, size);
      } catch (e) {
        if (kind !== "linux") throw e;
        // No guest (no network for apt, no QEMU): said in the report, never stood in for.
        skipped.push(`${size} MiB linux: ${(e as Error).message.split("\n")[0]}`);
        console.error(`${size} MiB linux: skipped: ${(e as Error).message}`);
        continue;
      }
      // Untimed: the files whose sizes the report gives, and the pack the plain transfers move.
      await ramsnap("save", "-o", ramFile, "--block", `ram0=${img}`, "--no-manifest");
      await ramsnap("save", "-o", packFile, "--block", `ram0=${img}`);
      copyFileSync(packFile, refPack);
      const ramInspect = inspectJson(ramFile);
      const packInspect = inspectJson(packFile);
      const st = statSync(ramFile);
      const cell: Cell = {
        size,
        kind,
        info,
        presentBytes: ramInspect.blocks[0].present * ramInspect.pageSize,
        ramAllocated: st.blocks * 512,
        ramFileSize: st.size,
        packSize: statSync(packFile).size,
        pack: packInspect.pack,
        runs: new Map(),
      };
      cells.push(cell);
      console.error(
        `${size} MiB ${kind}: ${(cell.presentBytes / MiB).toFixed(0)} MiB present, mapped-ram ${(cell.ramAllocated / MiB).toFixed(0)} MiB allocated, ` +
          `pack ${(cell.packSize / MiB).toFixed(0)} MiB (${(cell.ramAllocated / cell.packSize).toFixed(2)}× smaller)`,
      );
      for (let r = 0; r < rounds; r++) {
        // Alternate the order round by round so drift (the disk, the RGW's own work) spreads over every method.
        const order = METHODS.map((_, i) => METHODS[(i + r) % METHODS.length]!);
        for (const [name, method] of order) {
          const run = await method(r === 0);
          (cell.runs.get(name) ?? cell.runs.set(name, []).get(name)!).push(run);
          console.error(
            `${size} MiB ${kind} round ${r}: ${name}: save ${run.save.seconds.toFixed(2)} s (${(run.save.rss / MiB).toFixed(0)} MiB), ` +
              `restore ${run.restore.seconds.toFixed(2)} s (${(run.restore.rss / MiB).toFixed(0)} MiB)`,
          );
        }
      }
      writeReport();
    }
  }
  done = true;
} finally {
  await stopAllGuests();
  for (const p of [img, target, refPack]) rmSync(p, { force: true });
  rmSync(work, { recursive: true, force: true });
  if (usesS3) {
    const client = new S3Client({ ...s3.settings, bucket });
    for (const key of [packKey, plainKey]) await client.delete(key).catch(() => {});
    await abortPending(s3.settings, bucket, "bench/").catch(() => {});
  }
}

// ---- report (written after every image, so a run cut short keeps what it measured) ------------------
function writeReport(): void {
  const f2 = (x: number) => x.toFixed(2);
  const fx = (x: number) => (Number.isNaN(x) ? "–" : f2(x));
  const secs = (c: Cell, m: string, k: "save" | "restore") => median(c.runs.get(m)!.map((r) => r[k].seconds));
  const gibs = (c: Cell, m: string, k: "save" | "restore") => (c.size * MiB) / GiB / secs(c, m, k);
  const rssOf = (c: Cell, m: string, k: "save" | "restore") => Math.max(...c.runs.get(m)!.map((r) => r[k].rss));
  const stage = (c: Cell, m: string, k: "save" | "restore", s: string) => median(c.runs.get(m)!.map((r) => r[k].report.stages?.[s] ?? 0));
  const inner = (c: Cell, m: string, k: "save" | "restore") => median(c.runs.get(m)!.map((r) => r[k].report.seconds ?? Number.NaN));

  interface Target {
    what: string;
    value: number;
    limit: number;
    /** "max": value must not exceed limit; "min": at least. */
    sense: "max" | "min";
    unit: string;
  }
  const targets: Target[] = [];
  const qemuVersion = Bun.spawnSync(["qemu-system-x86_64", "--version"]).stdout.toString().split("\n")[0]!.replace(/^QEMU emulator version /, "");
  const head = Bun.spawnSync(["git", "rev-parse", "--short", "HEAD"], { cwd: import.meta.dir }).stdout.toString().trim();
  const cmd = `bun bench/pack.ts --sizes ${sizes.join(",")} --kinds ${kinds.join(",")} --methods ${wanted.join(",")} --rounds ${rounds}`;
  const md: string[] = [
    "# Packs against mapped-ram, on local disk and in S3",
    "",
    `${done ? "Run ended" : "**Partial** (the run had not ended; images so far), written"} ${new Date().toISOString().slice(0, 16).replace("T", " ")} UTC at ${head} (plus the working tree); ${cpus().length} vCPUs (${cpus()[0]?.model ?? "?"}), ` +
      `${(totalmem() / GiB).toFixed(0)} GiB RAM, Linux ${readFileSync("/proc/sys/kernel/osrelease", "utf8").trim()}, Bun ${Bun.version}, QEMU ${qemuVersion}; ` +
      (usesS3 ? `S3: Ceph RGW (scripts/ceph-rgw.sh) on this machine at ${s3.settings.endpoint}, its OSD on the same virtual disk as ${opt.dir}. ` : "") +
      `RAM images and restore targets on /dev/shm, saves on ${opt.dir} (ext4). ramsnap with its defaults (4 channels, buffered I/O; packs zstd:1), ` +
      `every run the CLI from spawn to exit. Medians of ${rounds} round${rounds === 1 ? "" : "s"}, the order of the methods rotated each round, ` +
      "page cache dropped (sync, drop_caches 3) before every save and every restore, then the disk let settle until it wrote less than 1 MiB in a second " +
      `(the RGW's OSD shares it and writes on for seconds after an upload; waits: median ${f2(settleWaits.length ? median(settleWaits) : 0)} s, longest ${f2(Math.max(0, ...settleWaits))} s, not timed); ` +
      "the first round's restores compared byte for byte with the image.",
    "",
    `Command: \`${cmd}\``,
    "",
    "Methods: **mapped-ram** `ramsnap save -o IMG.ram --no-manifest` / `ramsnap restore IMG.ram` (the local reference; " +
      "**mapped-ram --direct-io**, when run, the same with `--direct-io` on both sides); " +
      "**pack** `ramsnap save -o IMG.rpk` / `ramsnap restore IMG.rpk`; **pack S3** the same to and from `s3://BUCKET/bench/KEY.rpk`; " +
      "**plain S3** the reference for S3: the same pack's bytes (a copy on /dev/shm) uploaded by Bun's S3Client writer " +
      "(multipart, 8 MiB parts, queue of 4, as ramsnap's upload) and downloaded by 4 parallel ranged GETs of 8 MiB into memory, " +
      "dropped (harness/s3-plain.ts, its own process, timed the same way). GiB/s is of the RAM covered (the image's size). " +
      "Memory is the peak RssAnon of the process (/proc/PID/status every 20 ms): the guest RAM a restore maps is file-backed and not in it.",
    "",
    "Images: **dense** every page non-zero, random bytes (AES-CTR; src/memory/synthetic.ts's dense pages are windows of one 64 KiB " +
      "random pool, which zstd finds again within an extent, so it is not random RAM); **clustered** synthetic.ts clustered, half of " +
      "the 2 MiB units non-zero (its pool pages compress about 10×); **linux** a real guest's RAM (harness/linux-guest.ts): Debian's cloud " +
      "kernel and a busybox-static initramfs booted under TCG whose /init fills a tmpfs with text (kallsyms, dmesg, the kernel config, " +
      "listings, appended over and over), copies of the kernel's modules and busybox, random and zero data, then paused.",
    "",
  ];
  if (skipped.length) md.push(`**Skipped:** ${skipped.join("; ")}.`, "");

  for (const c of cells) {
    md.push(`## ${c.size} MiB, ${c.kind}`, "");
    if (c.info.guest) {
      const p = c.info.guest.plan;
      md.push(
        `Guest: ${c.info.guest.packages.join(", ")}; booted and filled in ${f2(c.info.guest.fillSeconds)} s under TCG. /init wrote ${p.modulesMiB} MiB of modules ` +
          `(initramfs), ${p.binaryCopies} copies of them and busybox, ${p.textMiB} MiB of text, ${p.randomMiB} MiB random, ${p.zeroMiB} MiB zeros; ` +
          `then ${c.info.guest.last}.`,
        "",
      );
    }
    md.push(
      `Non-zero pages ${(c.presentBytes / MiB).toFixed(0)} MiB; mapped-ram file ${(c.ramFileSize / MiB).toFixed(0)} MiB, ${(c.ramAllocated / MiB).toFixed(0)} MiB allocated; ` +
        `pack ${(c.packSize / MiB).toFixed(1)} MiB (${c.pack.extents} extents, ${c.pack.zstdExtents} zstd, the rest raw): ` +
        `**${f2(c.ramAllocated / c.packSize)}× smaller than the mapped-ram file's allocated size**, ${f2(c.pack.ratio)}× on the pages (inspect's ratio, pageBytes ÷ storedBytes).`,
      "",
      "| | save s | save GiB/s | restore s | restore GiB/s | peak RssAnon MiB (save / restore) | runs s (save; restore) |",
      "|---|---|---|---|---|---|---|",
    );
    for (const [m] of METHODS) {
      const rs = c.runs.get(m)!;
      md.push(
        `| ${m} | ${f2(secs(c, m, "save"))} | ${f2(gibs(c, m, "save"))} | ${f2(secs(c, m, "restore"))} | ${f2(gibs(c, m, "restore"))} | ` +
          `${(rssOf(c, m, "save") / MiB).toFixed(0)} / ${(rssOf(c, m, "restore") / MiB).toFixed(0)} | ` +
          `${rs.map((r) => f2(r.save.seconds)).join(", ")}; ${rs.map((r) => f2(r.restore.seconds)).join(", ")} |`,
      );
    }
    const r = (a: string, b: string, k: "save" | "restore") => secs(c, a, k) / secs(c, b, k);
    md.push("");
    if (has(PACK, MAPPED)) md.push(`- pack ÷ mapped-ram, local: save ${f2(r(PACK, MAPPED, "save"))}, restore ${f2(r(PACK, MAPPED, "restore"))}.`);
    if (has(PACK, MAPPED_DIRECT)) md.push(`- pack ÷ mapped-ram --direct-io, local: save ${f2(r(PACK, MAPPED_DIRECT, "save"))}, restore ${f2(r(PACK, MAPPED_DIRECT, "restore"))}.`);
    if (has(PACK_S3, PLAIN_S3)) md.push(`- pack S3 ÷ plain S3 of the same ${(c.packSize / MiB).toFixed(0)} MiB: save ${f2(r(PACK_S3, PLAIN_S3, "save"))}, restore ${f2(r(PACK_S3, PLAIN_S3, "restore"))}.`);
    if (has(PACK, PACK_S3, PLAIN_S3)) {
      md.push(
        `- What S3 adds to a local pack: save ${f2(secs(c, PACK_S3, "save") - secs(c, PACK, "save"))} s, restore ${f2(secs(c, PACK_S3, "restore") - secs(c, PACK, "restore"))} s, ` +
          `against the plain transfer's ${f2(secs(c, PLAIN_S3, "save"))} s up and ${f2(secs(c, PLAIN_S3, "restore"))} s down (the plain transfer moves the packed bytes and neither compresses nor decompresses).`,
      );
    }
    md.push(
      "",
      "Where the time went (medians; own s: what ramsnap's --json reports, or the plain helper's transfer alone; the rest of the wall time is " +
        "Bun starting, loading and exiting; stages are seconds summed over ramsnap's 4 channels):",
      "",
      "| run | wall s | own s | transfer s | readSource | zeroCheck | compress | diskWait | faultTarget | idle |",
      "|---|---|---|---|---|---|---|---|---|---|",
    );
    for (const [m] of METHODS) {
      for (const k of ["save", "restore"] as const) {
        const st = ["readSource", "zeroCheck", "compress", "diskWait", "faultTarget", "idle"].map((s) => (m === PLAIN_S3 ? "–" : f2(stage(c, m, k, s))));
        md.push(`| ${m} ${k} | ${f2(secs(c, m, k))} | ${f2(inner(c, m, k))} | ${fx(median(c.runs.get(m)!.map((x) => x[k].report.transferSeconds ?? Number.NaN)))} | ${st.join(" | ")} |`);
      }
    }
    md.push("");
    const at = `${c.size} MiB ${c.kind}`;
    if (c.kind === "linux") targets.push({ what: `${at}: mapped-ram allocated ÷ pack size`, value: c.ramAllocated / c.packSize, limit: 2, sense: "min", unit: "×" });
    for (const ref of [MAPPED, MAPPED_DIRECT].filter((x) => has(PACK, x))) {
      targets.push(
        { what: `${at}: pack save ÷ ${ref.replace(" (local)", "")} save (local)`, value: r(PACK, ref, "save"), limit: 1.5, sense: "max", unit: "" },
        { what: `${at}: pack restore ÷ ${ref.replace(" (local)", "")} restore (local)`, value: r(PACK, ref, "restore"), limit: 1.3, sense: "max", unit: "" },
      );
    }
    if (has(PACK_S3, PLAIN_S3)) {
      targets.push(
        { what: `${at}: pack S3 save ÷ plain multipart upload`, value: r(PACK_S3, PLAIN_S3, "save"), limit: 1.1, sense: "max", unit: "" },
        { what: `${at}: pack S3 restore ÷ plain ranged GETs`, value: r(PACK_S3, PLAIN_S3, "restore"), limit: 1.1, sense: "max", unit: "" },
      );
    }
  }
  const peak = Math.max(0, ...cells.flatMap((c) => METHODS.map(([m]) => m).filter((m) => m !== PLAIN_S3).flatMap((m) => [rssOf(c, m, "save"), rssOf(c, m, "restore")])));
  if (cells.length) targets.push({ what: "ramsnap's peak RssAnon, any run", value: peak / MiB, limit: 256, sense: "max", unit: " MiB" });
  const ok = (t: Target) => (t.sense === "max" ? t.value <= t.limit : t.value >= t.limit);
  md.push(
    "## Targets",
    "",
    `**${targets.filter(ok).length} of ${targets.length} met.** A real guest's RAM packs ≥ 2× smaller than the mapped-ram file's allocated size; ` +
      "local pack save ≤ 1.5× and restore ≤ 1.3× mapped-ram's; S3 save and restore ≤ 1.1× the plain transfer of the same bytes; ramsnap's memory < 256 MiB.",
    "",
    ...targets.map((t) => `- ${ok(t) ? "met" : "**missed**"}: ${t.what} = ${t.unit === " MiB" ? t.value.toFixed(0) : f2(t.value)}${t.unit} (${t.sense === "max" ? "≤" : "≥"} ${t.limit}${t.unit})`),
    "",
  );
  writeFileSync(out, `${md.join("\n")}\n`);
}

if (done) {
  writeReport();
  console.log(readFileSync(out, "utf8"));
  console.error(`written to ${out}`);
}
