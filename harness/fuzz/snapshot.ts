// What a case touched in its scratch folder: names, sizes, change times and inodes of everything there,
// before and after, so a write outside the targets (or to the input) shows.
import { readdirSync, statSync } from "node:fs";
import { join } from "node:path";

export interface Snapshot {
  [name: string]: string;
}

/** Names, sizes and change times of everything under `dir` (recursively), to see what a case touched. */
export function snapshot(dir: string, into: Snapshot = {}, prefix = ""): Snapshot {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = `${prefix}${e.name}`;
    const full = join(dir, e.name);
    if (e.isDirectory()) {
      into[`${rel}/`] = "dir";
      snapshot(full, into, `${rel}/`);
    } else {
      const st = statSync(full, { bigint: true });
      into[rel] = `${st.size}:${st.mtimeNs}:${st.ino}`;
    }
  }
  return into;
}

/** What differs between two snapshots, but for the paths in `allowed`. */
export function diffSnapshots(a: Snapshot, b: Snapshot, allowed: Set<string>): string[] {
  const out: string[] = [];
  for (const k of new Set([...Object.keys(a), ...Object.keys(b)])) {
    if (allowed.has(k) || a[k] === b[k]) continue;
    out.push(a[k] === undefined ? `${k} appeared` : b[k] === undefined ? `${k} vanished` : `${k} changed`);
  }
  return out;
}

