// Harness: real QEMU guests whose RAM the test can write before boot and read after.
//
// Guest RAM is a memory-backend-file on /dev/shm with share=on, so the file *is* the
// guest RAM: the test fills it before QEMU maps it and compares it after a save or load.
// Guests run under TCG, paused by default; a paused guest needs no kernel or disk.

import { closeSync, existsSync, ftruncateSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { Subprocess } from "bun";
import { syntheticImage, type Pattern, type SyntheticImage } from "../src/memory/synthetic.ts";
import { QmpClient } from "../src/qemu/qmp.ts";
import { chosenQemu, qemuUri } from "./qemu-binary.ts";
import { MiB, PAGE } from "./units.ts";

// ---------------------------------------------------------------------------
// Finding QEMU

/** The argv that starts the chosen QEMU (RAMSNAP_QEMU, harness/qemu-binary.ts), or null if it cannot run. */
export function qemuBinary(): string[] | null {
  return chosenQemu().command;
}

/**
 * True if QEMU is installed. Without it, CI fails hard (integration tests must never be
 * skipped there unnoticed); a local run warns loudly and the caller skips, e.g.
 * `test.skipIf(!requireQemu())`.
 */
export function requireQemu(): boolean {
  if (qemuBinary()) return true;
  const { label, problem } = chosenQemu();
  if (process.env.CI) throw new Error(`${label}: ${problem}: QEMU integration tests cannot be skipped in CI`);
  console.warn(
    `\n!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n` +
      `!!! ${chosenQemu().label}: ${chosenQemu().problem}\n` +
      `!!! SKIPPING the QEMU integration tests (CI refuses to skip them).\n` +
      `!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!\n`,
  );
  return false;
}

// ---------------------------------------------------------------------------
// Guest RAM contents: synthetic images (src/memory/synthetic.ts)

/** Creates `path` (it must not exist) with `size` bytes of `pattern` from `patternOffset`; zero chunks stay holes. */
function writePatternFile(path: string, size: number, pattern: SyntheticImage | null, patternOffset: number): void {
  const fd = openSync(path, "wx", 0o600);
  try {
    ftruncateSync(fd, size);
    if (!pattern) return;
    const chunk = new Uint8Array(Math.min(size, 16 * MiB));
    for (let pos = 0; pos < size; pos += chunk.length) {
      const view = chunk.subarray(0, Math.min(chunk.length, size - pos));
      const firstPage = (patternOffset + pos) / PAGE;
      if (!pattern.nonZeroPages.subarray(firstPage, firstPage + view.length / PAGE).includes(1)) continue;
      pattern.fill(view, patternOffset + pos);
      writeSync(fd, view, 0, view.length, pos);
    }
  } finally {
    closeSync(fd);
  }
}

// ---------------------------------------------------------------------------
// Guests

export interface GuestOptions {
  /** Readable part of the unique name; default "guest". */
  name?: string;
  ramMiB: number;
  /** Written into the shm file(s) before QEMU starts; default: all zeros. */
  pattern?: SyntheticImage | Pattern;
  /** Default "q35". */
  machine?: string;
  /** Start with `-incoming defer`, ready for migrateFromFile. */
  incoming?: boolean;
  /** Add `-device VGA` (one more RAM block, vga.vram). */
  vga?: boolean;
  /** N NUMA nodes with memory backends m0..m(N-1), ramMiB/N each, instead of one backend ram0. */
  numa?: number;
  /** Default false: the guest stays paused (-S), so its RAM does not change. */
  running?: boolean;
  /**
   * Boot a disk whose boot sector counts forever: a running guest that keeps writing RAM (the 32-bit
   * counter at guest address COUNTER_ADDRESS, in the first backend's file). Give it to the destination too:
   * device state includes the disk controller.
   */
  counter?: boolean;
  /**
   * How guest RAM is backed. "shm" (default): memory-backend-file with share=on, the file is the RAM.
   * "private": the same file with share=off (QEMU's copy is private). "anonymous": memory-backend-ram.
   */
  backing?: "shm" | "private" | "anonymous";
  /**
   * Memory arguments that replace the default backends (e.g. what `ramsnap qemu backend-args FILE` prints,
   * split into words): the guest then has no shm files, and its RAM is read with guestMemory().
   */
  memory?: string[];
  /** Limit for startup and each QMP reply; default 15 s. */
  timeoutMs?: number;
  /** More QEMU arguments, appended last (e.g. a second -qmp socket for a program under test). */
  extraArgs?: string[];
}

export interface Guest {
  /** Unique per guest, so tests may run in parallel. */
  readonly name: string;
  readonly qmp: QmpClient;
  /** Backend ids in QEMU ("ram0", or "m0".."mN-1"), which are also the RAM block names. */
  readonly backendIds: string[];
  /** The shm file behind each backend, same order. */
  readonly shmPaths: string[];
  /** Machine type as QEMU names it in the migration stream, e.g. "pc-q35-10.0". */
  readonly machineType: string;
  readonly pattern: SyntheticImage | null;
  readonly pid: number;
  /** What QEMU wrote to stderr so far. */
  stderr(): string;
  /** Quits QEMU (killing it if it does not exit), then deletes its shm files and socket. Idempotent. */
  stop(): Promise<void>;
}

// Stop functions of guests not stopped yet, for stopAllGuests.
const liveGuests = new Map<string, () => Promise<void>>();
let guestCounter = 0;

// Every file and directory a guest creates starts with this per-process prefix, so the
// janitor can find what is left when this process dies without cleaning up.
const SESSION = `ramsnap-qemu-${process.pid}-${Math.random().toString(16).slice(2, 8)}-`;
let janitor: Subprocess | null = null;

// A failing test that skips stop() is caught by stopAllGuests, but nothing in this process
// runs if it is killed, and `bun test` does not even fire process.on("exit"). So a small
// shell waits for EOF on a pipe from us, which comes however we end, and deletes the
// session's files. QEMU itself is killed by the kernel (setpriv --pdeathsig, below).
// Started at import: `bun test` kills processes a timed-out test started, janitor included.
ensureJanitor();
function ensureJanitor(): void {
  if (janitor && janitor.exitCode === null && janitor.signalCode === null) return;
  const script = 'cat >/dev/null; rm -rf -- "$0"* "$1"*';
  janitor = Bun.spawn(["/bin/sh", "-c", script, `/dev/shm/${SESSION}`, join(tmpdir(), SESSION)], {
    stdin: "pipe",
    stdout: "ignore",
    stderr: "ignore",
  });
  janitor.unref();
}

/** Stops every guest not stopped yet; for `afterAll`/`afterEach`. */
export async function stopAllGuests(): Promise<void> {
  await Promise.all([...liveGuests.values()].map((stop) => stop()));
}

export async function startGuest(opts: GuestOptions): Promise<Guest> {
  const binary = qemuBinary();
  if (!binary) throw new Error(`${chosenQemu().label}: ${chosenQemu().problem}`);
  const timeoutMs = opts.timeoutMs ?? 15_000;
  const g = layoutOf(opts);
  const running: Running = { proc: null, qmp: null, stderr: "" };
  const stop = stopperOf(g, running);
  ensureJanitor();
  liveGuests.set(g.name, stop);

  try {
    // The shm must hold its final size and content before QEMU maps it: shrinking a
    // mapped file later kills QEMU with SIGBUS.
    g.shmPaths.forEach((path, i) => {
      writePatternFile(path, g.backendBytes, g.pattern, i * g.backendBytes);
    });
    const proc = spawnQemu(binary, qemuArgs(opts, g), running);
    const client = await connectWhenReady(g.socketPath, proc, () => running.stderr, timeoutMs);
    running.qmp = client;
    // QOM type "pc-q35-10.0-machine" for "-M q35"; the stream carries the name without the suffix.
    const type = await client.execute<string>("qom-get", { path: "/machine", property: "type" });
    return {
      name: g.name,
      qmp: client,
      backendIds: g.backendIds,
      shmPaths: g.shmPaths,
      machineType: type.replace(/-machine$/, ""),
      pattern: g.pattern,
      pid: proc.pid,
      stderr: () => running.stderr,
      stop,
    };
  } catch (error) {
    running.proc?.kill("SIGKILL");
    await stop();
    throw error;
  }
}

/** Where a guest's pieces go: its unique name, scratch folder, QMP socket, memory backends and their contents. */
interface Layout {
  name: string;
  dir: string;
  socketPath: string;
  /** NUMA nodes (0: none, one backend ram0). */
  nodes: number;
  backendIds: string[];
  backendBytes: number;
  shmPaths: string[];
  pattern: SyntheticImage | null;
}

function layoutOf(opts: GuestOptions): Layout {
  const nodes = opts.memory ? 0 : (opts.numa ?? 0);
  if (nodes > 0 && opts.ramMiB % nodes !== 0) throw new Error(`ramMiB ${opts.ramMiB} is not divisible by numa ${nodes}`);
  const backendIds = opts.memory ? [] : nodes > 0 ? Array.from({ length: nodes }, (_, i) => `m${i}`) : ["ram0"];
  const ramBytes = opts.ramMiB * MiB;
  const pattern = opts.pattern === undefined ? null : "fill" in opts.pattern ? opts.pattern : syntheticImage(ramBytes, opts.pattern);
  if (pattern && pattern.sizeBytes !== ramBytes) throw new Error(`pattern is ${pattern.sizeBytes} bytes, guest RAM ${ramBytes}`);
  const name = `${SESSION}${++guestCounter}-${opts.name ?? "guest"}`;
  const dir = mkdtempSync(join(tmpdir(), `${name}-`));
  return {
    name,
    dir,
    socketPath: join(dir, "qmp.sock"),
    nodes,
    backendIds,
    backendBytes: ramBytes / (nodes || 1),
    shmPaths: backendIds.map((id) => `/dev/shm/${name}-${id}`),
    pattern,
  };
}

function qemuArgs(opts: GuestOptions, g: Layout): string[] {
  const args = [
    ...["-M", opts.machine ?? "q35", "-accel", "tcg", "-m", `${opts.ramMiB}M`],
    ...["-nodefaults", "-nographic", "-display", "none"],
    ...["-qmp", `unix:${chosenQemu().qemuPath(g.socketPath)},server=on,wait=off`],
  ];
  g.backendIds.forEach((id, i) => {
    const backing = opts.backing ?? "shm";
    args.push(
      "-object",
      backing === "anonymous"
        ? `memory-backend-ram,id=${id},size=${g.backendBytes}`
        : `memory-backend-file,id=${id},size=${g.backendBytes},mem-path=${chosenQemu().qemuPath(g.shmPaths[i]!)},share=${backing === "shm" ? "on" : "off"}`,
    );
    args.push(...(g.nodes > 0 ? ["-numa", `node,memdev=${id}`] : ["-machine", `memory-backend=${id}`]));
  });
  if (!opts.running) args.push("-S");
  if (opts.incoming) args.push("-incoming", "defer");
  if (opts.memory) args.push(...opts.memory);
  if (opts.vga) args.push("-device", "VGA");
  if (opts.counter) args.push("-drive", `file=${writeCounterDisk(g.dir)},format=raw,if=ide,snapshot=on`);
  if (opts.extraArgs) args.push(...opts.extraArgs);
  return args;
}

/**
 * A guest with a second QMP socket in `dir` for a ramsnap process to use (QMP serves one client per
 * socket, and the harness keeps the first); `extra` goes on QEMU's command line too.
 */
export async function startGuestWithSocket(dir: string, opts: Omit<GuestOptions, "extraArgs"> & { name: string }, extra: string[] = []): Promise<{ guest: Guest; socket: string }> {
  const socket = join(dir, `${opts.name}.qmp`);
  const guest = await startGuest({ ...opts, extraArgs: ["-qmp", `unix:${socket},server=on,wait=off`, ...extra] });
  return { guest, socket };
}

/** Guest-physical address of the counter the `counter` boot sector increments. */
export const COUNTER_ADDRESS = 0x7e00;

/**
 * A 1 MiB disk whose boot sector runs `cli; xor ax,ax; mov ds,ax; l: inc dword [0x7e00]; jmp l` (SeaBIOS
 * loads it at 0x7c00; a one-sector disk is not offered for boot, hence the size). snapshot=on lets two QEMUs
 * (source and destination) open it at once.
 */
function writeCounterDisk(dir: string): string {
  const code = [0xfa, 0x31, 0xc0, 0x8e, 0xd8, 0x66, 0xff, 0x06, COUNTER_ADDRESS & 0xff, COUNTER_ADDRESS >> 8, 0xeb, 0xf9];
  const disk = new Uint8Array(MiB);
  disk.set(code, 0);
  disk.set([0x55, 0xaa], 510);
  const path = join(dir, "counter.img");
  writeFileSync(path, disk);
  return path;
}

/** The counter's value, read from the guest RAM file (the first backend holds guest address 0). */
export async function readCounter(guest: Guest): Promise<number> {
  const bytes = new Uint8Array(await Bun.file(guest.shmPaths[0]!).slice(COUNTER_ADDRESS, COUNTER_ADDRESS + 4).arrayBuffer());
  return new DataView(bytes.buffer).getUint32(0, true);
}

/**
 * Waits until the guest's counter passes `value` (at most 10 s) and returns the last value read: a
 * guest that carries on counting after a restore. `read` reads the counter (default: from the RAM file).
 */
export async function waitCounterAbove(guest: Guest, value: number, read: (g: Guest) => Promise<number> = readCounter): Promise<number> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const c = await read(guest);
    if (c > value || Date.now() > deadline) return c;
    await Bun.sleep(50);
  }
}

/** The guest's physical memory [0, bytes), through QEMU itself (pmemsave): for guests whose RAM is no shm file. */
export async function guestMemory(guest: Guest, bytes: number): Promise<Uint8Array> {
  const dump = join(tmpdir(), `${guest.name}-pmem-${Math.random().toString(36).slice(2, 8)}`);
  try {
    await guest.qmp.execute("pmemsave", { val: 0, size: bytes, filename: dump });
    return new Uint8Array(await Bun.file(dump).arrayBuffer());
  } finally {
    rmSync(dump, { force: true });
  }
}

/** A guest's process and QMP connection once they exist, and what QEMU wrote to stderr so far. */
interface Running {
  proc: Subprocess<"ignore", "ignore", "pipe"> | null;
  qmp: QmpClient | null;
  stderr: string;
}

function spawnQemu(binary: string[], args: string[], running: Running): Subprocess<"ignore", "ignore", "pipe"> {
  // setpriv makes the kernel kill QEMU when this process dies, however it dies. The
  // signal follows the *thread* that spawned QEMU: start guests from the main thread,
  // not from a Worker that may end first.
  const setpriv = Bun.which("setpriv");
  // chroot (RAMSNAP_QEMU=sid) execs QEMU in place, so the pid and the death signal are QEMU's own.
  const command = setpriv ? [setpriv, "--pdeathsig", "KILL", ...binary, ...args] : [...binary, ...args];
  const proc = Bun.spawn(command, { stdin: "ignore", stdout: "ignore", stderr: "pipe" });
  running.proc = proc;
  void (async () => {
    const decoder = new TextDecoder();
    for await (const chunk of proc.stderr) running.stderr += decoder.decode(chunk, { stream: true });
  })();
  return proc;
}

/** Quits QEMU (killing it if it does not exit), then deletes its shm files and folder; once, however often called. */
function stopperOf(g: Layout, running: Running): () => Promise<void> {
  let stopping: Promise<void> | null = null;
  return () =>
    (stopping ??= (async () => {
      const { qmp, proc } = running;
      if (qmp) {
        // QEMU may close the socket before its reply arrives, or be wedged: the wait below decides.
        await qmp.execute("quit", undefined, { timeoutMs: 3000 }).catch(() => {});
        qmp.close();
      }
      if (proc) {
        const exited = await Promise.race([proc.exited, Bun.sleep(5000).then(() => null)]);
        if (exited === null) proc.kill("SIGKILL");
        await proc.exited;
      }
      for (const path of g.shmPaths) rmSync(path, { force: true });
      rmSync(g.dir, { recursive: true, force: true });
      liveGuests.delete(g.name);
    })());
}

async function connectWhenReady(
  socketPath: string,
  proc: Subprocess,
  stderr: () => string,
  timeoutMs: number,
): Promise<QmpClient> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (proc.exitCode !== null || proc.signalCode !== null) {
      await Bun.sleep(50); // let the last stderr lines arrive
      throw new Error(`QEMU exited (${proc.exitCode ?? proc.signalCode}) during startup: ${stderr().trim() || "(no stderr)"}`);
    }
    // Bun.file().exists() is false for sockets. QEMU binds (the file appears) a moment before it
    // listens: a connect in between is refused, so try again while QEMU lives.
    if (existsSync(socketPath)) {
      try {
        return await QmpClient.connect(socketPath, { timeoutMs });
      } catch (error) {
        if (!String(error).includes("nothing is listening") || Date.now() > deadline) throw error;
      }
    }
    if (Date.now() > deadline) throw new Error(`QEMU did not create its QMP socket ${socketPath} within ${timeoutMs} ms`);
    await Bun.sleep(20);
  }
}

// ---------------------------------------------------------------------------
// Migration to and from files

export interface MigrateOptions {
  /** Must be the same on the saving and the loading side. */
  mappedRam: boolean;
  multifd?: boolean;
  /** multifd-channels; QEMU's default is 2. */
  channels?: number;
  directIo?: boolean;
  zeroPageDetection?: "none" | "legacy" | "multifd";
  /** Default 120 s. */
  timeoutMs?: number;
}

export interface MigrationResult {
  /** Wall time from the migrate command to the observed end. */
  ms: number;
  /** The final query-migrate reply. */
  info: any;
}

// QEMU's default max-bandwidth (128 MiB/s) also throttles file: saves.
const UNLIMITED_BANDWIDTH = 2 ** 40;

async function configureMigration(guest: Guest, opts: MigrateOptions): Promise<void> {
  await guest.qmp.execute("migrate-set-capabilities", {
    capabilities: [
      { capability: "mapped-ram", state: opts.mappedRam },
      { capability: "multifd", state: opts.multifd ?? false },
    ],
  });
  const params: Record<string, unknown> = { "max-bandwidth": UNLIMITED_BANDWIDTH };
  if (opts.channels !== undefined) params["multifd-channels"] = opts.channels;
  if (opts.directIo !== undefined) params["direct-io"] = opts.directIo;
  if (opts.zeroPageDetection !== undefined) params["zero-page-detection"] = opts.zeroPageDetection;
  await guest.qmp.execute("migrate-set-parameters", params);
}

// Polls query-migrate rather than waiting for MIGRATION events: those need the "events"
// capability, and a buffered event from an earlier migration could pass for this one's end.
async function runMigration(
  guest: Guest,
  what: string,
  timeoutMs: number,
  start: () => Promise<unknown>,
): Promise<MigrationResult> {
  const stderrBefore = guest.stderr().length;
  const started = performance.now();
  await start();
  for (;;) {
    const info = await guest.qmp.execute<any>("query-migrate");
    if (info.status === "completed") return { ms: performance.now() - started, info };
    if (info.status === "failed" || info.status === "cancelled") {
      await Bun.sleep(50); // let the last stderr lines arrive: QEMU writes "qemu-system-x86_64: " and the message apart
      // error-desc is often generic ("load of migration failed: Invalid argument"); the
      // real reason may be only on stderr ("Capability mapped-ram is off, but ...").
      const stderr = guest.stderr().slice(stderrBefore).trim();
      const desc = [info["error-desc"], stderr].filter(Boolean).join(" | ") || "QEMU gave no error text";
      throw new Error(`${what} ${info.status}: ${desc}`);
    }
    if (performance.now() - started > timeoutMs) {
      throw new Error(`${what} not finished after ${timeoutMs} ms (status ${info.status})`);
    }
    await Bun.sleep(10);
  }
}

export async function migrateToFile(guest: Guest, uri: string, opts: MigrateOptions): Promise<MigrationResult> {
  await configureMigration(guest, opts);
  return runMigration(guest, `save of ${guest.name} to ${uri}`, opts.timeoutMs ?? 120_000, () =>
    guest.qmp.execute("migrate", { uri: qemuUri(uri) }),
  );
}

/** Loads into a guest started with `incoming: true`; it stays paused afterwards unless started with `running`. */
export async function migrateFromFile(guest: Guest, uri: string, opts: MigrateOptions): Promise<MigrationResult> {
  await configureMigration(guest, opts);
  // exit-on-error=false: keep QEMU alive after a failed load so the error can be queried.
  return runMigration(guest, `load of ${uri} into ${guest.name}`, opts.timeoutMs ?? 120_000, () =>
    guest.qmp.execute("migrate-incoming", { uri: qemuUri(uri), "exit-on-error": false }),
  );
}

// ---------------------------------------------------------------------------
// Inspecting guest RAM

export interface RamBlockInfo {
  name: string;
  usedLength: number;
  maxLength: number;
}

/** RAM blocks as `info ramblock` lists them (QEMU's RAM-list order). */
export async function ramBlocks(guest: Guest): Promise<RamBlockInfo[]> {
  const text = await guest.qmp.hmp("info ramblock");
  // "  Block Name  PSize  Offset  Used  Total  HVA  RO": PSize is two words ("4 KiB").
  const row = /^\s*(\S+)\s+\d+\s+\S+\s+0x[0-9a-f]+\s+(0x[0-9a-f]+)\s+(0x[0-9a-f]+)\s/i;
  const blocks: RamBlockInfo[] = [];
  for (const line of text.split(/\r?\n/)) {
    const m = row.exec(line);
    if (m) blocks.push({ name: m[1]!, usedLength: Number(m[2]), maxLength: Number(m[3]) });
  }
  if (blocks.length === 0) throw new Error(`cannot parse "info ramblock" output: ${JSON.stringify(text)}`);
  return blocks;
}

/** The current bytes of one memory backend (0 = ram0 or m0). */
export async function shmBytes(guest: Guest, index = 0): Promise<Uint8Array> {
  const path = guest.shmPaths[index];
  if (!path) throw new Error(`${guest.name} has no memory backend #${index}`);
  return Bun.file(path).bytes();
}
