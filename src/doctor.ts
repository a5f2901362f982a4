// doctor: what a save to a given place will meet, measured rather than assumed: the file system, whether
// it takes O_DIRECT and with which alignment, free space against the image, the memory limit of this
// cgroup; then a recommendation of channels and direct I/O, with the reason.
import { existsSync, readFileSync, rmSync, statSync } from "node:fs";
import { availableParallelism } from "node:os";
import { dirname, join } from "node:path";
import * as libc from "../ffi/libc.ts";
import { RefusedError } from "./errors.ts";
import { spaceBound } from "./format/layout.ts";
import { dirSpace } from "./io/filesystem.ts";
import { staleTemporaries } from "./io/output.ts";
import { DEFAULT_CHANNELS } from "./options.ts";

export interface DoctorReport {
  path: string;
  /** The directory probed (PATH itself, or the folder a file PATH would go in). */
  dir: string;
  filesystem: string;
  mountPoint: string | null;
  mountOptions: string | null;
  kernel: string;
  directIo: { accepted: boolean; error?: string; memAlign: number; offsetAlign: number; misaligned512Works: boolean };
  freeBytes: number;
  totalBytes: number;
  imageBytes: number | null;
  /** Bytes a mapped-ram file of that image needs at most (format/layout.ts spaceBound, as one block). */
  neededBytes: number | null;
  enoughSpace: boolean | null;
  cgroupMemoryLimit: number | null;
  cpus: number;
  recommendation: { channels: number; directIo: boolean; reasons: string[] };
  /** ramsnap's temporary files in the folder whose writer was killed (kill -9, a power loss): safe to delete. */
  staleTemporaries: string[];
  warnings: string[];
}

function mountOf(dir: string): { point: string; type: string; options: string } | null {
  try {
    // mountinfo: id parent major:minor root mount-point options ... - type source super-options
    let best: { point: string; type: string; options: string } | null = null;
    for (const line of readFileSync("/proc/self/mountinfo", "utf8").split("\n")) {
      const f = line.split(" ");
      const sep = f.indexOf("-");
      if (sep < 0 || f.length < 6) continue;
      const point = f[4]!.replace(/\\040/g, " ");
      if ((dir === point || dir.startsWith(point.endsWith("/") ? point : `${point}/`)) && (!best || point.length >= best.point.length)) {
        best = { point, type: f[sep + 1]!, options: `${f[5]}${f[sep + 3] ? `,${f[sep + 3]}` : ""}` };
      }
    }
    return best;
  } catch {
    return null;
  }
}

function cgroupMemoryLimit(): number | null {
  try {
    const rel = readFileSync("/proc/self/cgroup", "utf8")
      .split("\n")
      .find((l) => l.startsWith("0::"))
      ?.slice(3);
    for (let p = rel ?? "/"; ; p = dirname(p)) {
      const f = join("/sys/fs/cgroup", p, "memory.max");
      if (existsSync(f)) {
        const v = readFileSync(f, "utf8").trim();
        if (v !== "max") return Number(v);
      }
      if (p === "/" || p === ".") break;
    }
    const v1 = "/sys/fs/cgroup/memory/memory.limit_in_bytes";
    if (existsSync(v1)) {
      const v = Number(readFileSync(v1, "utf8").trim());
      return v > 2 ** 60 ? null : v;
    }
  } catch {}
  return null;
}

/** Opens a scratch file with O_DIRECT and tries aligned and 512-byte-aligned writes. */
function probeDirect(dir: string): DoctorReport["directIo"] {
  const path = join(dir, `.ramsnap-doctor-${process.pid}.tmp`);
  const res: DoctorReport["directIo"] = { accepted: false, memAlign: 0, offsetAlign: 0, misaligned512Works: false };
  let fd = -1;
  const buf = new libc.AlignedBuffer(8192);
  try {
    fd = libc.open(path, libc.O_WRONLY | libc.O_CREAT | libc.O_EXCL | libc.O_DIRECT, 0o600);
    buf.view.fill(0);
    libc.pwriteFull(fd, buf.ptr, 4096, 0, { path, align: 4096 });
    res.accepted = true;
    const st = libc.fstatx(fd, path);
    res.memAlign = st.dioMemAlign;
    res.offsetAlign = st.dioOffsetAlign;
    try {
      libc.pwriteFull(fd, buf.ptr + 512, 512, 512, { path });
      res.misaligned512Works = true;
    } catch {}
  } catch (e) {
    res.error = e instanceof libc.SysError ? e.code : (e as Error).message;
  } finally {
    buf.free();
    if (fd >= 0) libc.close(fd, path);
    rmSync(path, { force: true });
  }
  return res;
}

export function doctor(path: string, imageBytes?: number): DoctorReport {
  // A missing PATH is an error, not a reason to look at its parent: a mistyped folder would otherwise get
  // another folder's verdict (its file system, its free space) under its own name.
  const st = statSync(path, { throwIfNoEntry: false });
  if (!st) throw new RefusedError(`${path} does not exist: give the folder saves will go to (create it first)`);
  const dir = st.isDirectory() ? path : dirname(path);
  const space = dirSpace(dir);
  const fs = space.fs;
  const mount = mountOf(dir);
  const kernel = readFileSync("/proc/sys/kernel/osrelease", "utf8").trim();
  const direct = probeDirect(dir);
  const cgroup = cgroupMemoryLimit();
  const cpus = availableParallelism();
  const needed = imageBytes !== undefined ? spaceBound(imageBytes, 1) : null;
  const warnings: string[] = [];
  const reasons: string[] = [];
  let directIo = direct.accepted;
  const [major, minor] = kernel.split(".").map(Number);
  if (!direct.accepted) {
    reasons.push(`${fs} refused O_DIRECT here (${direct.error}): save with buffered I/O`);
    if (fs === "tmpfs" && (major! < 6 || (major === 6 && minor! < 6))) reasons.push("tmpfs takes O_DIRECT only from Linux 6.6 on");
  } else if (fs === "tmpfs" || fs === "ramfs" || fs === "hugetlbfs") {
    directIo = false;
    reasons.push(`${fs} keeps files in memory: there is no page cache to bypass, so direct I/O gains nothing`);
  } else {
    reasons.push("direct I/O keeps a large save out of the page cache, which would otherwise push out the memory of everything else on the host");
  }
  if (fs === "nfs" || fs === "fuse") {
    warnings.push(`${fs}: O_DIRECT semantics depend on the server; measure with 'ramsnap demo --dir ${dir}' before relying on it`);
  }
  if (cgroup !== null && imageBytes !== undefined && cgroup < imageBytes * 1.5 && !directIo) {
    warnings.push(`this cgroup may use ${cgroup} bytes of memory; a buffered save of ${imageBytes} bytes fills the page cache charged to it and risks the OOM killer`);
  }
  if (cgroup !== null && imageBytes !== undefined && directIo) reasons.push("in a memory-limited cgroup, direct I/O also keeps the page cache charged to it small");
  if (direct.accepted && direct.memAlign > 4096) warnings.push(`direct I/O here needs ${direct.memAlign}-byte aligned memory, more than a page: ramsnap's 4096-byte alignment will fail`);
  const enough = needed !== null ? space.freeBytes >= needed : null;
  const stale = staleTemporaries(dir);
  for (const p of stale) warnings.push(`${p} is a temporary file of a save that was killed; the next save of that file removes it (or delete it)`);
  if (enough === false) warnings.push(`only ${space.freeBytes} bytes free; a save of this image may need up to ${needed}`);
  const channels = Math.max(1, Math.min(DEFAULT_CHANNELS, cpus * 2));
  reasons.push(`${channels} channels: enough to keep the disk busy while pages are checked for zeros (${cpus} CPUs)`);
  return {
    path,
    dir,
    filesystem: fs,
    mountPoint: mount?.point ?? null,
    mountOptions: mount?.options ?? null,
    kernel,
    directIo: direct,
    freeBytes: space.freeBytes,
    totalBytes: space.totalBytes,
    imageBytes: imageBytes ?? null,
    neededBytes: needed,
    enoughSpace: enough,
    cgroupMemoryLimit: cgroup,
    cpus,
    recommendation: { channels, directIo, reasons },
    staleTemporaries: stale,
    warnings,
  };
}
