// Handing the migration file to QEMU as a management program should: ramsnap opens it, QEMU never sees a
// path. Two descriptors, opened separately (a dup() would share its O_DIRECT flag): a plain one for the main
// stream's small unaligned records and an O_DIRECT one for the multifd channels' page writes. Both go into
// one fdset with `add-fd` (SCM_RIGHTS over the QMP socket); QEMU then opens `/dev/fdset/N` by picking the
// descriptor whose access mode and O_DIRECT bit match what it asks for.
//
// The arrangement is checked before anything is sent: with direct-io on, QEMU 10.0.2 segfaults when the set
// holds only a plain descriptor, so that arrangement must never reach it.
import { rmSync } from "node:fs";
import * as libc from "../../ffi/libc.ts";
import { openDirect } from "../io/direct.ts";
import type { QmpClient } from "./qmp.ts";
import { QmpError } from "./qmp.ts";
import { QemuDriveError } from "./errors.ts";

export type FdsetAccess = "write" | "read";

export interface MigrationFdset {
  /** QEMU's fdset id. */
  readonly id: number;
  /** What to give `migrate` / `migrate-incoming`. */
  readonly uri: string;
  /** The descriptors as QEMU numbers them in its own process. */
  readonly qemuFds: number[];
  /**
   * Removes the set (`remove-fd`) and waits until `query-fdsets` no longer lists it: QEMU frees a set only
   * once the migration has closed its dup()s of it. Safe to call twice; true if the set is gone.
   */
  remove(timeoutMs?: number): Promise<boolean>;
}

export interface PassedFile {
  fdset: MigrationFdset;
  /** This call created the file (a save's file that did not exist): a failed save removes it. */
  created: boolean;
}

interface LocalDescriptors {
  plain: number;
  direct: number | undefined;
  created: boolean;
}

/** Opens `path` for a save ("write") or a restore ("read") and passes the descriptors to QEMU as one fdset. */
/**
 * Every fdset ramsnap adds is labelled (add-fd's opaque) "ramsnap pid=PID ...": a later run finds the sets
 * of a ramsnap that was killed, and `label` (the settings to put back) tells it how to clean up after it.
 */
export const FDSET_LABEL = /^ramsnap pid=(\d+) .*?(?: settings=(\{.*\}))?$/;

export async function passFileToQemu(qmp: QmpClient, path: string, access: FdsetAccess, directIo: boolean, label?: string): Promise<PassedFile> {
  const local = openLocal(path, access, directIo);
  try {
    checkArrangement(local, access, directIo);
    const what = access === "write" ? "save" : "restore";
    const tag = (kind: string) => `ramsnap pid=${process.pid} ${what} ${path} (${kind})${label ? ` ${label}` : ""}`;
    const first = await addFd(qmp, local.plain, undefined, tag("plain"));
    const fdset = fdsetHandle(qmp, first.fdsetId, [first.fd]);
    if (local.direct !== undefined) {
      try {
        const second = await addFd(qmp, local.direct, first.fdsetId, tag("O_DIRECT"));
        fdset.qemuFds.push(second.fd);
      } catch (e) {
        await fdset.remove();
        throw e;
      }
    }
    return { fdset, created: local.created };
  } catch (e) {
    if (local.created) removeQuietly(path);
    throw e;
  } finally {
    // QEMU holds its own copies now (or never got them): ours are not needed either way.
    libc.close(local.plain, path);
    if (local.direct !== undefined) libc.close(local.direct, path);
  }
}

function openLocal(path: string, access: FdsetAccess, directIo: boolean): LocalDescriptors {
  let created = false;
  let plain: number;
  if (access === "read") {
    plain = libc.open(path, libc.O_RDONLY);
  } else {
    // QEMU creates migration files 0600 (they hold guest memory); knowing whether we created it tells a
    // failed save whether the file is ours to remove.
    try {
      plain = libc.open(path, libc.O_WRONLY | libc.O_CREAT | libc.O_EXCL, 0o600);
      created = true;
    } catch (e) {
      if (!(e instanceof libc.SysError && e.code === "EEXIST")) throw e;
      plain = libc.open(path, libc.O_WRONLY);
    }
  }
  if (!directIo) return { plain, direct: undefined, created };
  try {
    return { plain, direct: openDirectProbed(plain, path, access), created };
  } catch (e) {
    libc.close(plain, path);
    if (created) removeQuietly(path);
    throw e;
  }
}

/**
 * The O_DIRECT descriptor, proven with one aligned transfer (some file systems accept O_DIRECT at open and
 * refuse it at the first write). A save probes past the end of the file and cuts the file back, so an existing
 * file is not touched before QEMU starts; openDirect's error names the file system and says to drop --direct-io.
 */
function openDirectProbed(plain: number, path: string, access: FdsetAccess): number {
  if (access === "read") return openDirect(path, "read", 0);
  const size = libc.fstatx(plain, path).size;
  const probeAt = Math.ceil(size / 4096) * 4096;
  try {
    return openDirect(path, "write", probeAt);
  } finally {
    libc.ftruncate(plain, size, path);
  }
}

function checkArrangement(local: LocalDescriptors, access: FdsetAccess, directIo: boolean): void {
  const wantMode = access === "write" ? libc.O_WRONLY : libc.O_RDONLY;
  const plainFlags = libc.getFlags(local.plain);
  const problem = (why: string) => new QemuDriveError(`internal check failed before add-fd: ${why}`);
  if ((plainFlags & libc.O_ACCMODE) !== wantMode) throw problem("the plain descriptor has the wrong access mode");
  if (plainFlags & libc.O_DIRECT) throw problem("the plain descriptor has O_DIRECT");
  if (!directIo) {
    if (local.direct !== undefined) throw problem("an O_DIRECT descriptor without direct-io");
    return;
  }
  // QEMU 10.0.2 crashes on direct-io with no O_DIRECT descriptor in the set.
  if (local.direct === undefined) throw problem("direct-io without an O_DIRECT descriptor");
  const directFlags = libc.getFlags(local.direct);
  if ((directFlags & libc.O_ACCMODE) !== wantMode || (directFlags & libc.O_DIRECT) === 0) {
    throw problem("the O_DIRECT descriptor has the wrong flags");
  }
}

async function addFd(qmp: QmpClient, fd: number, fdsetId: number | undefined, opaque: string): Promise<{ fd: number; fdsetId: number }> {
  const args = fdsetId === undefined ? { opaque } : { "fdset-id": fdsetId, opaque };
  try {
    const r = await qmp.executeWithFd<{ fd: number; "fdset-id": number }>("add-fd", args, fd);
    return { fd: r.fd, fdsetId: r["fdset-id"] };
  } catch (e) {
    if (e instanceof QmpError) throw new QemuDriveError(`QEMU refused add-fd: ${e.desc}`);
    throw e;
  }
}

function fdsetHandle(qmp: QmpClient, id: number, qemuFds: number[]): MigrationFdset & { qemuFds: number[] } {
  let removal: Promise<boolean> | null = null;
  return {
    id,
    uri: `file:/dev/fdset/${id}`,
    qemuFds,
    remove(timeoutMs = 5000) {
      removal ??= (async () => {
        try {
          await qmp.execute("remove-fd", { "fdset-id": id });
        } catch (e) {
          if (!(e instanceof QmpError)) return false; // the connection is gone: QEMU cleans up sets of a closed monitor
        }
        const deadline = performance.now() + timeoutMs;
        for (;;) {
          const sets = await qmp.execute<{ "fdset-id": number }[]>("query-fdsets").catch(() => null);
          if (sets === null) return false;
          if (!sets.some((s) => s["fdset-id"] === id)) return true;
          if (performance.now() > deadline) return false;
          await Bun.sleep(10);
        }
      })();
      return removal;
    },
  };
}

export function removeQuietly(path: string): void {
  try {
    rmSync(path, { force: true });
  } catch {}
}
