// Harness: a real Linux guest whose RAM holds what a running system's does (kernel, page cache, tmpfs
// files of text, binaries, random and zero data), for benchmarks that want more than synthetic patterns.
//
// Debian's cloud kernel and busybox-static, both fetched with `apt-get download` into a cache folder
// (default /var/cache/ramsnap-bench) and unpacked with `dpkg -x`; an uncompressed cpio initramfs (written
// here, no cpio tool needed) whose /init mounts proc, sys, devtmpfs and a tmpfs, fills the tmpfs, says
// "ramsnap-guest: filled" on the serial port, then sleeps. Booted under TCG on a memory-backend-file in
// /dev/shm (share=on, harness/qemu.ts), so once the guest is paused its backend file is its RAM.
//
// What the guest writes, for R MiB of RAM (fillPlan; the initramfs carries the numbers):
//   modules   the kernel's modules tree (up to R/16 MiB of .ko files) in the initramfs: the rootfs copy,
//             and the initrd image the kernel freed after unpacking it (free pages keep their bytes);
//   binaries  copies of that tree and of busybox in the tmpfs, about R/8 MiB (ELF: code, tables, strings);
//   text      R/8 MiB of text: /proc/kallsyms, dmesg, the kernel config, file listings, appended over and
//             over (its period, some MiB, is longer than a pack's 1 MiB extent, so no extent sees a repeat);
//   random    R/8 MiB from /dev/urandom (as compressed or encrypted files would be);
//   zero      R/16 MiB of zeros written to the tmpfs (pages the guest touched that hold nothing).
// The rest of RAM is what the kernel touched while booting, or never touched (zero).
import { closeSync, existsSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, rmSync, statSync, writeSync } from "node:fs";
import { join, relative } from "node:path";
import { chosenQemu } from "./qemu-binary.ts";
import { startGuest, type Guest } from "./qemu.ts";
import { MiB } from "./units.ts";

export const LINUX_CACHE = "/var/cache/ramsnap-bench";
const KERNEL_META = "linux-image-cloud-amd64";
const BUSYBOX = "busybox-static";

export interface LinuxFiles {
  /** The bzImage. */
  kernel: string;
  /** lib/modules/VERSION of the unpacked kernel package. */
  modules: string;
  /** The kernel's config (text, copied into the initramfs). */
  config: string;
  busybox: string;
  /** The .deb files used, by name (for the report). */
  packages: string[];
}

function run(cmd: string[], cwd?: string): string {
  const r = Bun.spawnSync(cmd, { cwd, stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`${cmd.join(" ")} failed (${r.exitCode}): ${r.stderr.toString().trim()}`);
  return r.stdout.toString();
}

/** The cached .deb whose name starts with `prefix` and ends in _amd64.deb, or null. */
function cachedDeb(cache: string, pattern: RegExp): string | null {
  const hit = readdirSync(cache).filter((f) => pattern.test(f)).sort().at(-1);
  return hit ? join(cache, hit) : null;
}

/**
 * The kernel and busybox, downloaded into `cache` on first use (apt-get download: needs the machine's
 * Debian sources and the network) and unpacked beside. Throws saying why when they cannot be had.
 */
export function linuxGuestFiles(cache = LINUX_CACHE): LinuxFiles {
  mkdirSync(cache, { recursive: true });
  let kernelDeb = cachedDeb(cache, /^linux-image-[\d.]+-\d+-cloud-amd64_.*_amd64\.deb$/);
  if (!kernelDeb) {
    // The meta-package names the current kernel: "Depends: linux-image-6.1.0-57-cloud-amd64".
    const dep = /Depends:\s+(linux-image-\S+-cloud-amd64)/.exec(run(["apt-cache", "depends", KERNEL_META]))?.[1];
    if (!dep) throw new Error(`apt-cache depends ${KERNEL_META} names no kernel package`);
    run(["apt-get", "download", dep], cache);
    kernelDeb = cachedDeb(cache, /^linux-image-[\d.]+-\d+-cloud-amd64_.*_amd64\.deb$/);
  }
  let busyboxDeb = cachedDeb(cache, /^busybox-static_.*_amd64\.deb$/);
  if (!busyboxDeb) {
    run(["apt-get", "download", BUSYBOX], cache);
    busyboxDeb = cachedDeb(cache, /^busybox-static_.*_amd64\.deb$/);
  }
  if (!kernelDeb || !busyboxDeb) throw new Error(`apt-get download left no kernel or busybox package in ${cache}`);
  const unpacked = (deb: string): string => {
    const dir = join(cache, "unpacked", deb.split("/").at(-1)!.replace(/\.deb$/, ""));
    if (!existsSync(join(dir, ".done"))) {
      rmSync(dir, { recursive: true, force: true });
      mkdirSync(dir, { recursive: true });
      run(["dpkg", "-x", deb, dir]);
      closeSync(openSync(join(dir, ".done"), "w"));
    }
    return dir;
  };
  const k = unpacked(kernelDeb);
  const b = unpacked(busyboxDeb);
  const version = readdirSync(join(k, "lib/modules"))[0];
  if (!version) throw new Error(`${kernelDeb} holds no lib/modules`);
  return {
    kernel: join(k, "boot", `vmlinuz-${version}`),
    modules: join(k, "lib/modules", version),
    config: join(k, "boot", `config-${version}`),
    busybox: join(b, "bin/busybox"),
    packages: [kernelDeb, busyboxDeb].map((p) => p.split("/").at(-1)!),
  };
}

export interface FillPlan {
  ramMiB: number;
  /** MiB of module files put in the initramfs. */
  modulesMiB: number;
  /** Copies of those modules (and busybox) made in the tmpfs. */
  binaryCopies: number;
  textMiB: number;
  randomMiB: number;
  zeroMiB: number;
}

/** How much of each kind the guest writes for `ramMiB` of RAM, with the modules tree holding `modulesMiB`. */
export function fillPlan(ramMiB: number, treeMiB: number): FillPlan {
  const modulesMiB = Math.min(treeMiB, Math.floor(ramMiB / 16));
  return {
    ramMiB,
    modulesMiB,
    binaryCopies: Math.max(1, Math.round(ramMiB / 8 / Math.max(1, modulesMiB))),
    textMiB: Math.floor(ramMiB / 8),
    randomMiB: Math.floor(ramMiB / 8),
    zeroMiB: Math.floor(ramMiB / 16),
  };
}

/** Files under `dir`, sorted, with their sizes. */
function walk(dir: string): { path: string; size: number }[] {
  const out: { path: string; size: number }[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...walk(p));
    else if (e.isFile()) out.push({ path: p, size: statSync(p).size });
  }
  return out;
}

function initScript(plan: FillPlan): string {
  return `#!/bin/busybox sh
/bin/busybox mkdir -p /proc /sys /dev /mnt /tmp
/bin/busybox --install -s /bin
export PATH=/bin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs -o size=95% tmpfs /mnt
say() { echo "ramsnap-guest: $*" > /dev/ttyS0; }
say booted
i=0
while [ $i -lt ${plan.binaryCopies} ]; do cp -a /lib/modules /mnt/modules.$i; cp /bin/busybox /mnt/busybox.$i; i=$((i+1)); done
say binaries
{ cat /proc/kallsyms; dmesg; cat /etc/kernel-config; busybox --list; find / -xdev; cat /proc/self/maps /proc/meminfo /proc/cpuinfo; } > /tmp/text.0
: > /mnt/text
while [ $(stat -c %s /mnt/text) -lt ${plan.textMiB * MiB} ]; do cat /tmp/text.0 >> /mnt/text; done
say text
dd if=/dev/urandom of=/mnt/random bs=1M count=${plan.randomMiB} 2>/dev/null
dd if=/dev/zero of=/mnt/zero bs=1M count=${plan.zeroMiB} 2>/dev/null
sync
say "filled: $(grep -E 'MemFree|^Cached|Shmem:' /proc/meminfo | tr -s ' ' | tr '\\n' ' ')"
while true; do sleep 3600; done
`;
}

/** An uncompressed cpio archive in the kernel's "newc" format, written entry by entry. */
class CpioWriter {
  private fd: number;
  private pos = 0;
  private ino = 1;
  constructor(path: string) {
    this.fd = openSync(path, "w", 0o644);
  }
  private write(bytes: Uint8Array): void {
    writeSync(this.fd, bytes);
    this.pos += bytes.length;
  }
  private pad(): void {
    const n = (4 - (this.pos % 4)) % 4;
    if (n) this.write(new Uint8Array(n));
  }
  entry(name: string, mode: number, data: Uint8Array = new Uint8Array(0), rdev: [number, number] = [0, 0]): void {
    const hex = (n: number) => n.toString(16).padStart(8, "0");
    const fields = [this.ino++, mode, 0, 0, 1, 0, data.length, 0, 0, rdev[0], rdev[1], name.length + 1, 0];
    this.write(new TextEncoder().encode(`070701${fields.map(hex).join("")}${name}\0`));
    this.pad();
    this.write(data);
    this.pad();
  }
  close(): void {
    this.entry("TRAILER!!!", 0);
    closeSync(this.fd);
  }
}

const DIR = 0o040755;
const FILE = 0o100644;
const EXEC = 0o100755;
const CHR = 0o020600;

/** Writes the initramfs for `plan` to `out` (once: an existing one is reused). */
export function buildInitramfs(files: LinuxFiles, plan: FillPlan, out: string): void {
  if (existsSync(out)) return;
  const tmp = `${out}.part`;
  const w = new CpioWriter(tmp);
  for (const d of [".", "bin", "dev", "etc", "proc", "sys", "mnt", "tmp", "lib", "lib/modules"]) w.entry(d, DIR);
  w.entry("dev/console", CHR, undefined, [5, 1]);
  w.entry("init", EXEC, new TextEncoder().encode(initScript(plan)));
  w.entry("bin/busybox", EXEC, readFileSync(files.busybox));
  w.entry("etc/kernel-config", FILE, readFileSync(files.config));
  const root = join(files.modules, "..");
  const made = new Set<string>(["lib/modules"]);
  let budget = plan.modulesMiB * MiB;
  for (const f of walk(files.modules)) {
    if (f.size > budget) continue;
    budget -= f.size;
    const rel = join("lib/modules", relative(root, f.path));
    const parts = rel.split("/");
    for (let i = 3; i < parts.length; i++) {
      const d = parts.slice(0, i).join("/");
      if (!made.has(d)) (made.add(d), w.entry(d, DIR));
    }
    w.entry(rel, FILE, readFileSync(f.path));
  }
  w.close();
  renameSync(tmp, out);
}

export interface LinuxGuest {
  guest: Guest;
  plan: FillPlan;
  files: LinuxFiles;
  /** Seconds from QEMU's start to "filled" on the serial port. */
  fillSeconds: number;
  /** The serial console's text up to "filled". */
  console: string;
}

/**
 * Boots the guest with `ramMiB` of RAM under TCG, waits until /init says it is filled, and pauses it: its
 * RAM is then guest.shmPaths[0], and stays put. `extraArgs` go on QEMU's command line (e.g. a QMP socket).
 */
export async function bootFilledLinuxGuest(opts: { ramMiB: number; cache?: string; timeoutMs?: number; extraArgs?: string[] }): Promise<LinuxGuest> {
  const cache = opts.cache ?? LINUX_CACHE;
  const files = linuxGuestFiles(cache);
  const treeMiB = walk(files.modules).reduce((s, f) => s + f.size, 0) / MiB;
  const plan = fillPlan(opts.ramMiB, Math.floor(treeMiB));
  const initrd = join(cache, `initramfs-${plan.ramMiB}M-v1.cpio`);
  buildInitramfs(files, plan, initrd);
  const log = join(cache, `console-${process.pid}-${Date.now().toString(36)}.log`);
  const q = chosenQemu().qemuPath;
  const t0 = performance.now();
  const guest = await startGuest({
    name: "linux",
    ramMiB: opts.ramMiB,
    running: true,
    timeoutMs: 60_000,
    extraArgs: ["-kernel", q(files.kernel), "-initrd", q(initrd), "-append", "console=ttyS0 quiet panic=-1", "-serial", `file:${q(log)}`, "-no-reboot", ...(opts.extraArgs ?? [])],
  });
  const text = () => (existsSync(log) ? readFileSync(log, "utf8") : "");
  try {
    const deadline = Date.now() + (opts.timeoutMs ?? 600_000);
    for (;;) {
      const t = text();
      if (t.includes("ramsnap-guest: filled")) break;
      if (/Kernel panic|end Kernel panic/.test(t)) throw new Error(`the guest panicked:\n${t.slice(-2000)}`);
      if (Date.now() > deadline) throw new Error(`the guest did not fill its RAM in time; console:\n${t.slice(-2000)}`);
      await Bun.sleep(200);
    }
    const fillSeconds = (performance.now() - t0) / 1000;
    await guest.qmp.execute("stop");
    return { guest, plan, files, fillSeconds, console: text() };
  } catch (e) {
    await guest.stop();
    throw e;
  } finally {
    rmSync(log, { force: true });
  }
}
