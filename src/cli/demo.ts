// The README's first command: a self-contained, measured round trip that needs nothing but this binary.
import { defineCommand } from "citty";
import { existsSync, mkdtempSync, rmSync, statfsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import * as libc from "../../ffi/libc.ts";
import { OptionError } from "../errors.ts";
import { mapFileForRead, mapFileForWrite } from "../memory/region.ts";
import { fillPattern } from "../memory/synthetic.ts";
import { CancelledError } from "../errors.ts";
import { restore } from "../restore.ts";
import { save } from "../save.ts";
import { sharedArgs, sizeOption, transferArgs } from "./args.ts";
import { abortOnSigint, progressBar } from "./progress.ts";
import { log, result } from "./log.ts";
import { abs, printJson, wantsBar } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, plural, table } from "./text.ts";

/** memcmp over two mapped files, in windows (a JS view is limited to 4 GiB). */
function sameBytes(a: string, b: string): boolean {
  const ra = mapFileForRead(a);
  const rb = mapFileForRead(b);
  try {
    if (ra.length !== rb.length) return false;
    const STEP = 1 << 30;
    for (let off = 0; off < ra.length; off += STEP) {
      if (libc.memcmp(ra.ptr + off, rb.ptr + off, Math.min(STEP, ra.length - off)) !== 0) return false;
    }
    return true;
  } finally {
    ra.release();
    rb.release();
  }
}

function ramDir(size: number): string {
  // Guest RAM lives in shared memory; use it for the images when it has room.
  try {
    const st = statfsSync("/dev/shm");
    if (existsSync("/dev/shm") && st.bavail * st.bsize > 2.2 * size) return "/dev/shm";
  } catch {}
  return tmpdir();
}

export const demoCommand = defineCommand({
  meta: { name: "demo", description: "Save and restore a synthetic image with direct I/O, check it, and print the speed" },
  args: {
    size: { type: "string", description: "Image size", default: "1G", valueHint: "bytes" },
    dir: { type: "string", description: "Where the save file goes (its file system is what gets measured)", default: tmpdir(), valueHint: "dir" },
    channels: sharedArgs.channels,
    // on by default here: the demo shows the fast path (--no-direct-io measures the page cache instead)
    "direct-io": { ...sharedArgs["direct-io"], default: true },
    keep: { type: "boolean", description: "Keep the image, the save file and the restored image" },
    json: sharedArgs.json,
    progress: sharedArgs.progress,
  },
  async run({ args }) {
    const size = sizeOption("size", args.size)!;
    if (size < 1 << 20 || size % 4096 !== 0) throw new OptionError("--size must be at least 1M and a multiple of 4K");
    const channels = transferArgs(args).channels;
    const directIo = args["direct-io"] !== false;
    const ram = mkdtempSync(join(ramDir(size), "ramsnap-demo-"));
    const work = mkdtempSync(join(args.dir, "ramsnap-demo-"));
    const source = join(ram, "image.raw");
    const restored = join(ram, "restored.raw");
    const file = join(work, "image.ram");
    const sig = abortOnSigint();
    const sbar = progressBar("save   ", wantsBar(args));
    const rbar = progressBar("restore", wantsBar(args));
    try {
      if (!args.json) log.info(`making a ${bytes(size)} image (60% of 2 MiB units non-zero, 30% of the rest scattered) in ${ram}`);
      const img = mapFileForWrite(source, size);
      try {
        const half = Math.floor(size / 2 / 4096) * 4096;
        fillPattern(img.ptr, half, { kind: "clustered", seed: 1, nonZero: 0.6 });
        fillPattern(img.ptr + half, size - half, { kind: "scattered", seed: 2, nonZero: 0.3 });
      } finally {
        img.release();
      }
      const s = await save({ path: file, blocks: [{ name: "ram0", path: source }], channels, directIo, onProgress: sbar.update, signal: sig.signal });
      sbar.done();
      const r = await restore({ path: file, blocks: [{ name: "ram0", path: restored }], channels, directIo, onProgress: rbar.update, signal: sig.signal });
      rbar.done();
      const identical = sameBytes(source, restored);
      const allocated = libc.statx(file).allocated;
      // docs/json.md: the same keys as save's and restore's objects for the same things
      const summary = {
        file: abs(file),
        totalBytes: size,
        channels,
        directIo,
        save: { seconds: s.seconds, gibPerSecond: s.gibPerSecond, writtenBytes: s.writtenBytes, ioCalls: s.ioCalls, pagesPresent: s.pagesPresent, pagesZero: s.pagesZero },
        restore: { seconds: r.seconds, gibPerSecond: r.gibPerSecond, readBytes: r.readBytes, ioCalls: r.ioCalls },
        allocatedBytes: allocated,
        identical,
      };
      if (args.json) printJson(summary);
      else {
        result(
          `${table([
            ["", "seconds", "GiB/s", "page bytes moved", "I/O calls"],
            ["save", s.seconds.toFixed(2), s.gibPerSecond.toFixed(2), bytes(s.writtenBytes), String(s.ioCalls)],
            ["restore", r.seconds.toFixed(2), r.gibPerSecond.toFixed(2), bytes(r.readBytes), String(r.ioCalls)],
          ])}\n` +
            `${bytes(size)} image, ${s.pagesPresent} pages present, ${s.pagesZero} zero; file ${bytes(allocated)} on disk; ` +
            `${plural(channels, "channel")}, ${directIo ? "direct I/O" : "buffered I/O"}\n` +
            `restored image ${identical ? "is identical to the source" : "DIFFERS from the source"}\n`,
        );
      }
      if (!identical) process.exitCode = 1;
    } catch (e) {
      if (e instanceof CancelledError) throw sig.cancelled(e.message);
      throw e;
    } finally {
      sbar.done(); // a bar left running keeps its timer, and the process, alive
      rbar.done();
      sig.dispose();
      if (!args.keep) {
        rmSync(ram, { recursive: true, force: true });
        rmSync(work, { recursive: true, force: true });
      } else if (!args.json) log.info(`kept ${source}, ${restored} and ${file}`);
    }
  },
});

EXAMPLES.set(
  demoCommand,
  `  ramsnap demo                          1 GiB, 4 channels, direct I/O, save file in the temp directory
  ramsnap demo --size 4G --dir /var/tmp --channels 2
  ramsnap demo --no-direct-io           the same through the page cache, for comparison`,
);
