// What the benchmarks share: a cold page cache before each timed run, fio as the O_DIRECT reference, medians.
import { writeFileSync } from "node:fs";

/** Writes back and drops the page cache (needs root; without it buffered numbers flatter ramsnap and fio alike). */
export function dropCaches(): void {
  Bun.spawnSync(["sync"]);
  try {
    writeFileSync("/proc/sys/vm/drop_caches", "3");
  } catch {}
}

/**
 * fio's sequential O_DIRECT write or read of `bytes` at the start of `path`, 8 MiB blocks (a channel's
 * chunk), psync, fsync at the end; returns fio's own job time in seconds (its start-up excluded, like
 * ramsnap's in-process timing).
 */
export function fio(rw: "write" | "read", path: string, bytes: number): number {
  const r = Bun.spawnSync(
    ["fio", "--name=ref", `--filename=${path}`, `--rw=${rw}`, "--bs=8M", "--direct=1", "--ioengine=psync", `--size=${bytes}`, "--numjobs=1", "--end_fsync=1", "--output-format=json"],
    { stdout: "pipe", stderr: "pipe" },
  );
  if (r.exitCode !== 0) throw new Error(`fio ${rw} failed: ${r.stderr.toString()}`);
  return JSON.parse(r.stdout.toString()).jobs[0].job_runtime / 1000;
}

export const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
