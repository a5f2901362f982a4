// `ramsnap qemu save|restore`: drive a running QEMU over QMP (src/qemu/drive.ts) from the command line.
import { writeSync } from "node:fs";
import { defineCommand } from "citty";
import { CancelledError, OptionError } from "../errors.ts";
import { DEFAULT_QEMU_CHANNELS, qemuRestore, qemuSave, type MigrationProgress, type PagesMode, type QemuRestoreResult, type QemuSaveResult } from "../qemu/drive.ts";
import { MAX_QEMU_CHANNELS } from "../qemu/migration-settings.ts";
import { inspectFile } from "../inspect.ts";
import { backendArgs, commandLine } from "../qemu/lazy.ts";
import { compressArg, intOption, sharedArgs, sizeOption } from "./args.ts";
import { parseCompression } from "../options.ts";
import { formatOf, refusePack } from "../savefile/open.ts";
import { log } from "./log.ts";
import { EXAMPLES } from "./run.ts";
import { bytes } from "./text.ts";

// --channels, --direct-io, --json and --progress are the shared definitions (args.ts): one description
// and one range for every command, checked by run.ts before this command runs.
const commonArgs = {
  qmp: { type: "string", description: "The QEMU's QMP socket (-qmp unix:PATH,server=on,wait=off); nothing else may be connected to it", valueHint: "socket", required: true },
  file: { type: "positional", description: "The migration file", required: true },
  channels: sharedArgs.channels,
  "direct-io": sharedArgs["direct-io"],
  json: sharedArgs.json,
  progress: sharedArgs.progress,
  pages: {
    type: "enum",
    options: ["auto", "ramsnap", "qemu"] as string[],
    default: "auto",
    description: "Who moves the guest's pages: ramsnap's channels straight from/into shared memory backends, or QEMU; auto picks ramsnap when every backend is a shared file",
  },
} as const;

interface CommonArgs {
  qmp?: string;
  file?: string;
  channels?: string;
  "direct-io"?: boolean;
  json?: boolean;
  progress?: boolean;
  pages?: string;
}

function required(args: CommonArgs): { socket: string; file: string } {
  if (!args.qmp) throw new OptionError("say which QEMU to drive: --qmp SOCKET");
  if (!args.file) throw new OptionError("say which file: ramsnap qemu save|restore --qmp SOCKET FILE");
  return { socket: args.qmp, file: args.file };
}

/** One line redrawn in place on stderr, at most ten times a second, and always once at the end. */
function progressLine(enabled: boolean): { update: (p: MigrationProgress) => void; done: () => void } {
  let last = 0;
  let drawn = false;
  const update = (p: MigrationProgress) => {
    const now = performance.now();
    // The last report is always drawn: a save shorter than one redraw interval still ends on its numbers.
    const final = p.status === "completed" || p.status === "failed" || p.status === "cancelled";
    if (!enabled || (now - last < 100 && !final)) return;
    last = now;
    let line: string;
    if (p.totalBytes !== undefined && p.remainingBytes !== undefined) {
      const frac = p.totalBytes ? (p.totalBytes - p.remainingBytes) / p.totalBytes : 0;
      const fill = Math.round(frac * 30);
      line =
        `${p.direction} [${"#".repeat(fill)}${"-".repeat(30 - fill)}] ${(frac * 100).toFixed(0).padStart(3)}%  ` +
        `${bytes(p.totalBytes - p.remainingBytes)} / ${bytes(p.totalBytes)}  written ${bytes(p.transferredBytes ?? 0)}  ` +
        `${bytes(p.bytesPerSecond ?? 0)}/s  ETA ${p.etaSeconds === undefined ? "?" : `${p.etaSeconds.toFixed(0)}s`}`;
    } else {
      // An incoming QEMU reports only its status, and a save has no numbers during setup: say what QEMU does.
      const doing = p.direction === "save" ? "is preparing" : p.status === "completed" ? "has loaded the file" : "is loading";
      line = `${p.direction}: QEMU ${doing} (${p.status})  ${p.seconds.toFixed(1)} s`;
    }
    process.stderr.write(`\r${line}\x1b[K`);
    drawn = true;
  };
  const done = () => {
    if (drawn) process.stderr.write("\r\x1b[K");
  };
  return { update, done };
}

function channels(args: CommonArgs): number {
  return intOption("channels", args.channels, DEFAULT_QEMU_CHANNELS, 1, MAX_QEMU_CHANNELS);
}

interface Interrupts {
  /** First Ctrl-C: stop at the next safe point. */
  stop: AbortSignal;
  /** Second Ctrl-C: migrate_cancel at once. */
  cancelNow: AbortSignal;
}

/**
 * Ctrl-C (or SIGTERM) in three steps. QEMU 10.0 can crash when a mapped-ram migration is cancelled (see
 * src/qemu/migration-watch.ts), so the first one lets a running migration finish and then throws its file
 * away; the second cancels at once, at that risk; the third exits without cleaning up.
 */
function interrupts(): { signals: Interrupts; status: () => number; dispose: () => void } {
  const stop = new AbortController();
  const cancelNow = new AbortController();
  let count = 0;
  // 128 + the signal, as a shell reports it: 130 for Ctrl-C, 143 for SIGTERM (a service manager's stop).
  let status = 130;
  const handler = (signal: NodeJS.Signals) => {
    count++;
    if (count === 1) status = signal === "SIGTERM" ? 143 : 130;
    if (count === 1) {
      stop.abort();
      writeSync(
        2,
        "\rstopping: a running QEMU migration cannot be cancelled safely (QEMU 10.0 may crash), so ramsnap lets it finish, " +
          "and the previous file stays as it was until a complete save replaces it; Ctrl-C again cancels at once, at that risk\x1b[K\n",
      );
    } else if (count === 2) {
      cancelNow.abort();
      writeSync(2, "\rcancelling now (migrate_cancel)\x1b[K\n");
    } else {
      process.exit(status);
    }
  };
  process.on("SIGINT", handler);
  process.on("SIGTERM", handler);
  return {
    signals: { stop: stop.signal, cancelNow: cancelNow.signal },
    status: () => status,
    dispose: () => {
      process.off("SIGINT", handler);
      process.off("SIGTERM", handler);
    },
  };
}

async function driven<T>(args: CommonArgs, run: (signals: Interrupts, onProgress: (p: MigrationProgress) => void) => Promise<T>): Promise<T> {
  const bar = progressLine(args.progress ?? process.stderr.isTTY === true);
  const sig = interrupts();
  try {
    return await run(sig.signals, bar.update);
  } catch (e) {
    if (e instanceof CancelledError) throw new CancelledError(e.message, sig.status());
    throw e;
  } finally {
    bar.done();
    sig.dispose();
  }
}

const ioText = (directIo: boolean) => (directIo ? "direct I/O" : "buffered I/O");
const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;

const pagesLine = (r: { pagesBy: string; pagesWhy: string }) =>
  r.pagesBy === "mapped" ? `pages not moved: ${r.pagesWhy}` : `pages moved by ${r.pagesBy === "ramsnap" ? "ramsnap's channels" : "QEMU"}: ${r.pagesWhy}`;

export function renderQemuSave(r: QemuSaveResult): string {
  const vm = r.vmState === "running" ? "the guest runs again" : `the guest is left paused (${r.vmState})`;
  const lines = [
    `saved the guest at ${r.qmp} (QEMU ${r.qemuVersion}) to ${r.file} in ${r.seconds.toFixed(2)} s: ${bytes(r.ramBytes)} of RAM, ` +
      `${bytes(r.writtenBytes)} written, ${r.gibPerSecond.toFixed(2)} GiB/s, ${plural(r.channels, "channel")}, ${ioText(r.directIo)}; ${vm}`,
  ];
  lines.push(pagesLine(r));
  if (r.verified) {
    const present = r.verified.blocks.reduce((n, b) => n + b.present, 0);
    lines.push(`verified: the file is complete and holds the guest's ${plural(r.verified.blocks.length, "RAM block")} (${present} pages present)`);
  }
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return `${lines.join("\n")}\n`;
}

export function renderQemuRestore(r: QemuRestoreResult): string {
  const vm = r.vmState === "running" ? "the guest is running" : `the guest is ${r.vmState} (resume it with the QMP command cont)`;
  const lines = [
    `restored ${r.file} into the QEMU at ${r.qmp} (QEMU ${r.qemuVersion}) in ${r.seconds.toFixed(2)} s: ${bytes(r.ramBytes)} of RAM, ` +
      `${bytes(r.dataBytes)} of pages read, ${r.gibPerSecond.toFixed(2)} GiB/s, ${plural(r.channels, "channel")}, ${ioText(r.directIo)}; ${vm}`,
    pagesLine(r),
  ];
  if (r.prefetch) lines.push(`prefetched ${bytes(r.prefetch.bytes)} of pages into the page cache in ${r.prefetch.seconds.toFixed(2)} s, while the guest ran`);
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return `${lines.join("\n")}\n`;
}

export const qemuSaveCommand = defineCommand({
  meta: { name: "save", description: "Save a running QEMU guest's RAM and devices to a mapped-ram file, through QMP" },
  args: {
    ...commonArgs,
    "keep-running": { type: "boolean", description: "Resume the guest after the save (default: leave it paused, as after any save)" },
    live: { type: "boolean", description: "Keep a running guest running during the save (QEMU's precopy; QEMU then moves the pages)" },
    manifest: { type: "boolean", default: true, description: "Write FILE.sums for verify and restore --verify (default; --no-manifest skips it)" },
    force: { type: "boolean", description: "Start a save QEMU writes even if the file system may not have room (QEMU 10.0 can crash when it fills up)" },
    verify: { type: "boolean", description: "Read the written file back: complete, and holding the guest's RAM blocks" },
    ...compressArg,
  },
  async run({ args }) {
      const { socket, file } = required(args);
      const compression = parseCompression(args.compress);
      if (compression && formatOf({ path: file }) !== "pack") throw new OptionError("--compress applies to packs: FILE ending in .rpk, or s3://BUCKET/KEY");
      const r = await driven(args, (signals, onProgress) =>
        qemuSave({
          qmp: socket,
          path: file,
          channels: channels(args),
          directIo: args["direct-io"] === true,
          keepRunning: args["keep-running"] === true,
          live: args.live === true,
          manifest: args.manifest !== false,
          force: args.force === true,
          compression,
          pages: args.pages as PagesMode,
          verify: args.verify === true,
          signal: signals.stop,
          cancelNow: signals.cancelNow,
          onProgress,
        }),
      );
      process.stdout.write(args.json ? `${JSON.stringify(r, null, 2)}\n` : renderQemuSave(r));
  },
});

export const qemuRestoreCommand = defineCommand({
  meta: { name: "restore", description: "Load a mapped-ram file into a QEMU started with -incoming defer, through QMP" },
  args: {
    ...commonArgs,
    lazy: { type: "boolean", description: "Instant restore: the destination maps FILE as guest RAM (start it with the arguments 'ramsnap qemu backend-args FILE' prints); QEMU loads device state only" },
    prefetch: { type: "boolean", description: "With --lazy: once the guest runs, read its pages into the page cache in parallel (the guest does not wait)" },
    resume: { type: "boolean", description: "Start the guest once it is loaded (default: leave it paused)" },
    offset: { type: "string", description: "Where the stream starts in FILE (QEMU's file:...,offset=)", valueHint: "bytes" },
    verify: { type: "boolean", description: "Check against FILE.sums before the guest can run: the pages ramsnap places as it places them, else the whole file first" },
  },
  async run({ args }) {
      const { socket, file } = required(args);
      const r = await driven(args, (signals, onProgress) =>
        qemuRestore({
          qmp: socket,
          path: file,
          pages: args.lazy && args.pages === "auto" ? undefined : (args.pages as PagesMode),
          lazy: args.lazy === true,
          prefetch: args.prefetch === true,
          resume: args.resume === true,
          offset: sizeOption("offset", args.offset),
          verify: args.verify === true,
          channels: channels(args),
          directIo: args["direct-io"] === true,
          signal: signals.stop,
          cancelNow: signals.cancelNow,
          onProgress,
        }),
      );
      process.stdout.write(args.json ? `${JSON.stringify(r, null, 2)}\n` : renderQemuRestore(r));
  },
});

export const qemuBackendArgsCommand = defineCommand({
  meta: { name: "backend-args", description: "Print the QEMU arguments that map a save file's RAM blocks as guest RAM (for qemu restore --lazy)" },
  args: {
    file: { type: "positional", description: "A mapped-ram save file", required: true },
    offset: { type: "string", description: "Where the stream starts in FILE (QEMU's file:...,offset=)", valueHint: "bytes" },
    json: { type: "boolean", description: "Print a JSON object instead of the arguments" },
  },
  run({ args }) {
    refusePack(args.file, "qemu backend-args (a guest maps the file)");
    const a = backendArgs(inspectFile(args.file, { offset: sizeOption("offset", args.offset) }));
    if (a.staleSlots > 0) log.warn(`warning: ${a.file} has ${a.staleSlots} page slots with old data behind clear bitmap bits; run 'ramsnap scrub ${a.file}' before a lazy restore`);
    process.stdout.write(args.json ? `${JSON.stringify(a, null, 2)}\n` : `${commandLine(a)}\n`);
  },
});

export const qemuCommand = defineCommand({
  meta: { name: "qemu", description: "Drive a running QEMU: save its guest to a mapped-ram file, or restore one into it" },
  subCommands: { save: qemuSaveCommand, restore: qemuRestoreCommand, "backend-args": qemuBackendArgsCommand },
});

EXAMPLES.set(
  qemuBackendArgsCommand,
  `  ramsnap qemu backend-args vm1.ram
  qemu-system-x86_64 -M q35 -m 1G ...same devices... $(ramsnap qemu backend-args vm1.ram) -incoming defer -qmp unix:/run/vm1-new.qmp,server=on,wait=off
  ramsnap qemu restore --lazy --resume --qmp /run/vm1-new.qmp vm1.ram

Each -object maps one RAM block's page array of FILE privately (share=off): the guest reads a page from
the file when it first touches it, and its writes go to its own copy, never to FILE. readonly=on opens
FILE read-only; rom=off keeps the block writable RAM (without it QEMU makes it a ROM and drops the
guest's writes). Many guests can map one file. While they run, do not write into FILE in place
(ramsnap refuses to); a new save under the same name is renamed over it and leaves the mapped file intact.`,
);

EXAMPLES.set(
  qemuSaveCommand,
  `  ramsnap qemu save --qmp /run/vm1.qmp vm1.ram --channels 4 --direct-io
  ramsnap qemu save --qmp /run/vm1.qmp vm1.ram --keep-running --verify --json
  ramsnap qemu save --qmp /run/vm1.qmp s3://saves/vm1.rpk            a pack in object storage (see ramsnap save --help)

The QEMU needs a QMP socket (e.g. -qmp unix:/run/vm1.qmp,server=on,wait=off) that nothing else is
connected to. ramsnap pauses the guest (unless --live). When every memory backend is a shared file
(share=on), QEMU writes only the device state and ramsnap's channels read the guest's RAM from the
backend files (--pages auto, the default); otherwise QEMU writes the pages itself, through two
descriptors ramsnap hands it in an fdset. Either way the file is written under a temporary name and
renamed over FILE only once complete, with FILE.sums beside it (--no-manifest skips it), and QEMU's
migration settings are put back. The guest stays paused unless --keep-running is given: resume it
later with the QMP command cont.
Ctrl-C or SIGTERM stops the save and leaves FILE as it was. QEMU 10.0 can crash when a mapped-ram
migration is cancelled midway, so a save QEMU is already writing finishes first (ramsnap says so) and is
kept; a second Ctrl-C cancels at once, at that risk. What a killed save leaves (a temporary file, an
fdset, changed settings) is put right by the next one.`,
);

EXAMPLES.set(
  qemuRestoreCommand,
  `  qemu-system-x86_64 -M q35 -m 4G ...same devices... -incoming defer -qmp unix:/run/vm1-new.qmp,server=on,wait=off
  ramsnap qemu restore --qmp /run/vm1-new.qmp vm1.ram --channels 4 --direct-io
  ramsnap qemu restore --qmp /run/vm1-new.qmp s3://saves/vm1.rpk --resume   pages fetched and decoded by the channels

  ramsnap qemu restore --lazy --resume --prefetch --qmp /run/vm1-new.qmp vm1.ram   # instant: see qemu backend-args

The destination must be started with -incoming defer, the same machine type and the same memory sizes
and backends: ramsnap checks the file against it first (QEMU itself would load a too-small block
without a word). After the load the guest is paused if QEMU was started with -S (resume it with
--resume, or later with the QMP command cont), running otherwise. Channels and direct I/O need not
match the save. When the destination's memory backends are shared files (--pages auto or ramsnap),
their pages are written by ramsnap's channels and QEMU loads only the rest; otherwise QEMU loads every page.`,
);

EXAMPLES.set(
  qemuCommand,
  `  ramsnap qemu save    --qmp /run/vm1.qmp vm1.ram --channels 4 --direct-io
  ramsnap qemu restore --qmp /run/vm1-new.qmp vm1.ram --channels 4 --direct-io   # QEMU started with -incoming defer

Needs QEMU 9.0 or newer (9.1 for --direct-io). Files are QEMU's own mapped-ram migration streams:
'ramsnap inspect' reads them, 'ramsnap restore' extracts their RAM.`,
);
