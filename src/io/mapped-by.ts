// Which processes map a file, from /proc/PID/maps. A guest restored lazily maps its save file privately
// (copy-on-write): pages it has not written yet are read from the file itself, so a write into that file
// in place would change the running guest's memory under it. ramsnap's own saves never write in place
// (they rename a new file over the name, which leaves the mapped inode as it was); the commands that do
// write in place ask here first.
import { readdirSync, readFileSync } from "node:fs";
import * as libc from "../../ffi/libc.ts";
import { RefusedError } from "../errors.ts";

export interface Mapper {
  pid: number;
  command: string;
}

/** Processes that map the file open at `fd` privately (MAP_PRIVATE), this one excepted. */
export function privateMappers(fd: number, path: string): Mapper[] {
  const st = libc.fstatx(fd, path);
  const dev = `${st.devMajor.toString(16).padStart(2, "0")}:${st.devMinor.toString(16).padStart(2, "0")}`;
  const out: Mapper[] = [];
  for (const name of readdirSync("/proc")) {
    const pid = Number(name);
    if (!Number.isInteger(pid) || pid === process.pid) continue;
    let maps: string;
    try {
      maps = readFileSync(`/proc/${pid}/maps`, "utf8");
    } catch {
      continue; // gone, or not ours to read
    }
    // "start-end perms offset major:minor inode path"; perms end in p (private) or s (shared)
    const hit = maps.split("\n").some((l) => {
      const f = l.split(/\s+/);
      return f[1]?.endsWith("p") && f[3] === dev && f[4] === String(st.ino);
    });
    if (hit) out.push({ pid, command: commandOf(pid) });
  }
  return out;
}

function commandOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/comm`, "utf8").trim();
  } catch {
    return "?";
  }
}

export function refuseIfMappedPrivately(fd: number, path: string): void {
  const who = privateMappers(fd, path);
  if (who.length) {
    const list = who.map((m) => `${m.command} (pid ${m.pid})`).join(", ");
    throw new RefusedError(`${path} is mapped by ${list}: a guest restored lazily reads its pages from this file, so ramsnap will not write into it (save to another name, or stop that guest first)`);
  }
}
