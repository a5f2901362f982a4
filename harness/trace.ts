// Test helper: judging a ramsnap process from outside. What ramsnap reports about itself (directIo: true,
// sourceHoleBytes, "identical") is what a bug would get wrong too, so these helpers look at what the
// kernel saw instead:
//
// - `traceRamsnap` runs the CLI under `strace -f` and returns its system calls, each with its thread, its
//   descriptor (and the file that descriptor names, from strace -y), its result, and where it started and
//   ended in the trace. Threads matter: the main stream runs on the process's main thread (tid = pid),
//   the channels on Worker threads. Start and end matter: with -f a call can be cut in two by another
//   thread's ("<unfinished ...>" / "<... resumed>"), and "A before B" must mean A ended before B started.
// - `openFlags` tells, for a call on a descriptor, the flags that descriptor was opened with (O_DIRECT).
// - `fdFlags` reads /proc/PID/fdinfo of a running process; `pageCacheBytes` asks fincore (util-linux)
//   how much of a file sits in the page cache.
import { readdirSync, readFileSync, readlinkSync, rmSync } from "node:fs";
import { join } from "node:path";

export const MAIN = `${import.meta.dir}/../src/cli/main.ts`;

export interface Call {
  tid: number;
  name: string;
  /** Top-level arguments as strace printed them (strings cut to `""...` by -s 0, paths kept whole). */
  args: string[];
  /** The result; -1 with `errno` set on failure, NaN when the process died inside the call. */
  ret: number;
  errno?: string;
  /** For calls on a descriptor (first argument `N</path>`), or returning one (openat): its number and path. */
  fd?: number;
  path?: string;
  /** Line numbers in the trace where the call started and where it returned. */
  start: number;
  end: number;
}

export interface Traced {
  /** The traced process (its main thread's tid). */
  pid: number;
  calls: Call[];
  code: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** The calls a save or restore is judged by; bun's own start-up noise is filtered out by path later. */
export const FILE_CALLS = [
  "openat",
  "open",
  "creat",
  "fcntl",
  "dup",
  "dup2",
  "dup3",
  "pwrite64",
  "pwritev",
  "pwritev2",
  "write",
  "writev",
  "pread64",
  "preadv",
  "preadv2",
  "read",
  "readv",
  "fsync",
  "fdatasync",
  "sync_file_range",
  "syncfs",
  "sync",
  "rename",
  "renameat",
  "renameat2",
  "ftruncate",
  "unlink",
  "unlinkat",
  "close",
];

/** Splits strace's argument text at top-level commas (not inside "...", [...], {...} or <...>). */
function splitArgs(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let quoted = false;
  let cur = "";
  for (let i = 0; i < text.length; i++) {
    const ch = text[i]!;
    if (quoted) {
      cur += ch;
      if (ch === "\\") cur += text[++i] ?? "";
      else if (ch === '"') quoted = false;
      continue;
    }
    if (ch === '"') quoted = true;
    else if ("[{<(".includes(ch)) depth++;
    else if ("]}>)".includes(ch)) depth--;
    if (ch === "," && depth === 0) {
      out.push(cur.trim());
      cur = "";
      continue;
    }
    cur += ch;
  }
  if (cur.trim() !== "") out.push(cur.trim());
  return out;
}

/** Parses `strace -f -y -s 0` output into calls, joining the halves of interrupted ones. */
export function parseTrace(text: string): { pid: number; calls: Call[] } {
  const calls: Call[] = [];
  const pending = new Map<number, { name: string; text: string; start: number }>();
  let pid = 0;
  text.split("\n").forEach((line, n) => {
    const m = /^(\d+)\s+(.*)$/.exec(line);
    if (!m) return;
    const tid = Number(m[1]);
    if (pid === 0) pid = tid;
    let body = m[2]!;
    let start = n;
    const resumed = /^<\.\.\. (\w+) resumed>(.*)$/.exec(body);
    if (resumed) {
      const p = pending.get(tid);
      if (!p) return;
      pending.delete(tid);
      body = p.text + resumed[2]!;
      start = p.start;
    }
    const unfinished = /^(\w+)\((.*) <unfinished \.\.\.>$/.exec(body);
    if (unfinished) {
      pending.set(tid, { name: unfinished[1]!, text: body.replace(/ <unfinished \.\.\.>$/, ""), start });
      return;
    }
    const c = /^(\w+)\((.*)\)\s+=\s+(-?\d+|\?)(<([^>]*)>)?(?:\s+(E[A-Z0-9]+))?/.exec(body);
    if (!c) return; // signals, exits
    const args = splitArgs(c[2]!);
    const call: Call = { tid, name: c[1]!, args, ret: c[3] === "?" ? Number.NaN : Number(c[3]), start, end: n };
    if (c[6]) call.errno = c[6];
    const fdArg = /^(\d+)<(.*)>$/.exec(args[0] ?? "");
    if (c[5] !== undefined && (call.name === "openat" || call.name === "open" || call.name.startsWith("dup") || call.name === "fcntl") && call.ret >= 0 && !/^F_(GET|SET)/.test(args[1] ?? "")) {
      call.fd = call.ret;
      call.path = c[5];
    } else if (fdArg) {
      call.fd = Number(fdArg[1]);
      call.path = fdArg[2];
    }
    calls.push(call);
  });
  return { pid, calls };
}

/** The open flags of `fd` as of `call`: those of the last open/dup that returned it, changed by any fcntl(F_SETFL). */
export function openFlags(calls: Call[], call: Call): string[] {
  let flags: string[] = [];
  for (const c of calls) {
    if (c.end >= call.start) break;
    if ((c.name === "openat" || c.name === "open") && c.ret === call.fd) flags = (c.args[c.name === "openat" ? 2 : 1] ?? "").split("|");
    if (c.name === "fcntl" && c.fd === call.fd && c.args[1] === "F_SETFL") flags = (c.args[2] ?? "").split("|");
    if (c.name.startsWith("dup") && c.ret === call.fd) {
      const from = /^(\d+)</.exec(c.args[0] ?? "");
      const orig = from ? calls.find((o) => (o.name === "openat" || o.name === "open") && o.ret === Number(from[1]) && o.end < c.start) : undefined;
      flags = orig ? (orig.args[orig.name === "openat" ? 2 : 1] ?? "").split("|") : [];
    }
  }
  return flags;
}

/** The file offset and byte count a positional write or read touched (pwrite64/pwritev/pread64/preadv). */
export function extentOf(c: Call): { offset: number; length: number } {
  return { offset: Number(c.args.at(-1)), length: c.ret };
}

export const isWrite = (c: Call) => ["pwrite64", "pwritev", "pwritev2", "write", "writev"].includes(c.name);
export const isRead = (c: Call) => ["pread64", "preadv", "preadv2", "read", "readv"].includes(c.name);
export const isSync = (c: Call) => ["fsync", "fdatasync", "sync_file_range", "syncfs", "sync"].includes(c.name);

function env(extra: Record<string, string> = {}): Record<string, string> {
  const e: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: "1" };
  delete e.RAMSNAP_DEBUG;
  delete e.RAMSNAP_TEST_FAULTS;
  return { ...e, ...extra };
}

/** `ramsnap ARGS...` (from sources, or `command` such as a compiled binary) run to its end under strace -f. */
export async function traceRamsnap(args: string[], o: { command?: string[]; traceFile: string; calls?: string[]; env?: Record<string, string>; timeoutMs?: number }): Promise<Traced> {
  const command = o.command ?? [process.execPath, MAIN];
  const p = Bun.spawn(["strace", "-f", "-qq", "-y", "-s", "0", "-e", `trace=${(o.calls ?? FILE_CALLS).join(",")}`, "-o", o.traceFile, "--", ...command, ...args], {
    stdout: "pipe",
    stderr: "pipe",
    stdin: "ignore",
    env: env(o.env),
  });
  const timer = setTimeout(() => p.kill("SIGKILL"), o.timeoutMs ?? 60_000);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  clearTimeout(timer);
  const text = readFileSync(o.traceFile, "utf8");
  rmSync(o.traceFile, { force: true });
  return { ...parseTrace(text), code: p.signalCode ? null : code, signal: p.signalCode ? String(p.signalCode) : null, stdout, stderr };
}

/** Whether strace can trace here (it needs ptrace; some containers forbid it). */
export function straceWorks(): boolean {
  const r = Bun.spawnSync(["strace", "-f", "-qq", "-e", "trace=getpid", "-o", "/dev/null", "--", "true"], { stdout: "ignore", stderr: "pipe" });
  return r.exitCode === 0;
}

/** Like requireDirectIo: under CI a missing strace is an error (these tests never skip there); elsewhere a loud warning. */
export function requireStrace(): boolean {
  if (straceWorks()) return true;
  const text = "strace is missing or cannot trace here (install it: scripts/setup.sh): the tests that judge ramsnap from its system calls are SKIPPED";
  if (process.env.CI) throw new Error(`${text.replace("are SKIPPED", "cannot run")}; CI never skips them`);
  process.stderr.write(`\n${"!".repeat(100)}\n!!! ${text}\n${"!".repeat(100)}\n\n`);
  return false;
}

// ---- /proc and the page cache ------------------------------------------------------------------

/** The descriptors process `pid` holds on files whose path passes `match`, with their fdinfo flags (octal in /proc). */
export function fdFlags(pid: number, match: (path: string) => boolean): { fd: number; path: string; flags: number }[] {
  const out: { fd: number; path: string; flags: number }[] = [];
  let names: string[] = [];
  try {
    names = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out; // the process is gone
  }
  for (const n of names) {
    try {
      const path = readlinkSync(`/proc/${pid}/fd/${n}`);
      if (!match(path)) continue;
      const info = readFileSync(`/proc/${pid}/fdinfo/${n}`, "utf8");
      const flags = /^flags:\s+([0-7]+)$/m.exec(info);
      if (flags) out.push({ fd: Number(n), path, flags: Number.parseInt(flags[1]!, 8) });
    } catch {
      // closed between the listing and the read
    }
  }
  return out;
}

/** Bytes of `path` resident in the page cache, as fincore (util-linux, mincore(2) underneath) counts them. */
export function pageCacheBytes(path: string): number {
  const r = Bun.spawnSync(["fincore", "--bytes", "--noheadings", "--output", "RES", path], { stdout: "pipe", stderr: "pipe" });
  if (r.exitCode !== 0) throw new Error(`fincore ${path}: ${r.stderr.toString().trim()}`);
  return Number(r.stdout.toString().trim());
}

/** The save's temporary files beside `target` (`.NAME.ramsnap-PID-XXXXXX.tmp`). */
export function temporariesOf(dir: string, name: string): string[] {
  return readdirSync(dir)
    .filter((n) => n.startsWith(`.${name}.ramsnap-`) && n.endsWith(".tmp"))
    .map((n) => join(dir, n));
}
