// Opening a save file for direct I/O (O_DIRECT) and proving it works before anything else is touched:
// one aligned transfer at a page slot whose content does not matter yet. A file system that refuses
// O_DIRECT gets a message naming it and the way out, instead of an EINVAL from the first channel.
import * as libc from "../../ffi/libc.ts";
import { RefusedError } from "../errors.ts";
import type { Access } from "../options.ts";
import { filesystemName } from "./filesystem.ts";

/**
 * Opens the path for direct I/O and proves it with one aligned transfer at `probeOffset`, which must be
 * a page slot whose content does not matter yet (a block's first page). `name` is what messages call
 * the file (a save's target, while it is written under a temporary name).
 */
export function openDirect(path: string, access: Access, probeOffset: number, name = path): number {
  let fd: number;
  try {
    fd = libc.open(path, (access === "write" ? libc.O_WRONLY : libc.O_RDONLY) | libc.O_DIRECT);
  } catch (e) {
    if (e instanceof libc.SysError && e.code === "EINVAL") throw directUnsupported(name, path, undefined);
    throw e;
  }
  try {
    probeDirect(fd, name, access, probeOffset, path);
    return fd;
  } catch (e) {
    libc.close(fd, path);
    throw e;
  }
}

/** `name` is what messages call the file; `path` where it is now (a save's temporary file). */
export function probeDirect(fd: number, name: string, access: Access, probeOffset: number, path = name): void {
  const buf = new libc.AlignedBuffer(4096);
  try {
    if (access === "write") {
      buf.view.fill(0);
      libc.pwriteFull(fd, buf.ptr, 4096, probeOffset, { path: name, align: 4096 });
    } else {
      libc.pread(fd, buf.ptr, 4096, probeOffset, { path: name, align: 4096 });
    }
  } catch (e) {
    if (e instanceof libc.SysError && e.code === "EINVAL") throw directUnsupported(name, path, fd);
    throw e;
  } finally {
    buf.free();
  }
}

function directUnsupported(name: string, path: string, fd: number | undefined): RefusedError {
  let fs = "its file system";
  try {
    const probe = fd ?? libc.open(path, libc.O_RDONLY);
    fs = filesystemName(probe, path);
    if (fd === undefined) libc.close(probe, path);
  } catch {}
  return new RefusedError(`${name}: ${fs} does not accept direct I/O (O_DIRECT); run without --direct-io`);
}
