// Which QEMU the integration tests run, chosen by one environment variable:
//
//   RAMSNAP_QEMU=host (default)  the host's qemu-system-x86_64 (QEMU 10.0 from bookworm-backports in CI)
//   RAMSNAP_QEMU=sid             QEMU 11 from a Debian sid chroot built by scripts/qemu11.sh
//
// The chroot runs as `chroot ROOT qemu-system-x86_64 ...`. scripts/qemu11.sh bind-mounts the host's /proc,
// /dev/shm and /tmp at the same paths inside it, so a path names the same file on both sides and the only
// "mapping" is a check that QEMU can see the path at all: a file elsewhere (a TMPDIR of /var/tmp, say)
// would be silently created inside the chroot instead, and the test would compare the wrong file.

import { existsSync, statSync } from "node:fs";
import { join, resolve } from "node:path";

const QEMU = "qemu-system-x86_64";
/** Keep in step with scripts/qemu11.sh. */
export const DEFAULT_QEMU11_ROOT = "/var/cache/ramsnap/qemu11-sid";
/** Bound at the same path inside the chroot by scripts/qemu11.sh. */
const CHROOT_BINDS = ["/proc", "/dev/shm", "/tmp"];

export type QemuChoice = "host" | "sid";

export interface QemuBinary {
  choice: QemuChoice;
  /** For messages: "host qemu-system-x86_64" or "sid chroot ROOT". */
  label: string;
  /** The argv that starts QEMU, arguments to follow; null when this QEMU cannot run (see `problem`). */
  command: string[] | null;
  /** Why `command` is null, with what to do about it. */
  problem: string | null;
  /** The path QEMU must be given for a file the test names by `hostPath`; throws if QEMU cannot see it. */
  qemuPath(hostPath: string): string;
}

export function qemuChoice(): QemuChoice {
  const v = process.env.RAMSNAP_QEMU ?? "host";
  if (v === "" || v === "host") return "host";
  if (v === "sid") return "sid";
  // A typo must not quietly test the host's QEMU a second time.
  throw new Error(`RAMSNAP_QEMU=${v}: expected "host" or "sid"`);
}

let cached: QemuBinary | null = null;

export function chosenQemu(): QemuBinary {
  cached ??= qemuChoice() === "sid" ? chrootQemu(process.env.RAMSNAP_QEMU11_ROOT || DEFAULT_QEMU11_ROOT) : hostQemu();
  return cached;
}

function hostQemu(): QemuBinary {
  const binary = Bun.which(QEMU);
  return {
    choice: "host",
    label: `host ${QEMU}`,
    command: binary ? [binary] : null,
    problem: binary ? null : `${QEMU} not found in PATH (bash scripts/setup.sh installs QEMU 10)`,
    qemuPath: (p) => p,
  };
}

function chrootQemu(root: string): QemuBinary {
  const label = `sid chroot ${root}`;
  const problem = chrootProblem(root);
  return {
    choice: "sid",
    label,
    command: problem ? null : [Bun.which("chroot") ?? "/usr/sbin/chroot", root, QEMU],
    problem,
    qemuPath(hostPath) {
      const p = resolve(hostPath);
      // fdsets are QEMU's own names for descriptors it was handed, not files.
      if (p.startsWith("/dev/fdset/")) return p;
      if (CHROOT_BINDS.some((b) => p === b || p.startsWith(`${b}/`))) return p;
      throw new Error(`${p} is not visible to QEMU in the ${label}: only ${CHROOT_BINDS.join(", ")} are bound into it`);
    },
  };
}

function chrootProblem(root: string): string | null {
  const fix = "run the tests through `bash scripts/qemu11.sh run bun test ...` (it builds and mounts the chroot)";
  if (!existsSync(join(root, "usr/bin", QEMU))) return `no ${QEMU} in ${root}: ${fix}`;
  if (process.getuid?.() !== 0) return `chroot needs root to run QEMU from ${root}`;
  for (const b of CHROOT_BINDS) {
    // A bind mount shows the very same inode: cheaper and surer than parsing the mount table.
    const inside = statSync(join(root, b), { throwIfNoEntry: false });
    const outside = statSync(b);
    if (!inside || inside.dev !== outside.dev || inside.ino !== outside.ino) return `${b} is not bind-mounted into ${root}: ${fix}`;
  }
  return null;
}

/** The path in a `file:PATH[,offset=N]` migration URI as QEMU must see it; other URIs pass unchanged. */
export function qemuUri(uri: string): string {
  const m = /^file:([^,]+)(,.*)?$/.exec(uri);
  if (!m) return uri;
  return `file:${chosenQemu().qemuPath(m[1]!)}${m[2] ?? ""}`;
}
