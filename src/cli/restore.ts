// `ramsnap restore`: RAM images from a mapped-ram file, through the channels.
import { defineCommand } from "citty";
import { parseBlockArg } from "../options.ts";
import { restore, type RestoreResult } from "../restore.ts";
import { OptionError } from "../errors.ts";
import { pageArgs, repeated, transferArgs } from "./args.ts";
import { abs, print, withProgress } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, plural, table } from "./text.ts";

export function renderRestore(r: RestoreResult): string {
  const rows = r.blocks.map((b) => [b.name, bytes(b.length), `${b.present} present`, `-> ${b.target}`]);
  const skipped = r.skipped.length ? `not restored (no --block given): ${r.skipped.join(", ")}\n` : "";
  const verified = r.verifiedWith ? `every restored extent matches ${r.verifiedWith}\n` : "";
  return (
    `restored ${plural(r.blocks.length, "block")} (${bytes(r.totalBytes)}) from ${r.file} in ${r.seconds.toFixed(2)} s: ` +
    `${r.gibPerSecond.toFixed(2)} GiB/s, ${plural(r.channels, "channel")}, ${r.directIo ? "direct I/O" : "buffered I/O"}, ` +
    `${bytes(r.readBytes)} read in ${plural(r.ioCalls, "call")}\n${table(rows)}\n${skipped}${verified}`
  );
}

/** docs/json.md's restore object: the library's result with its paths absolute ("fd N" stays as it is). */
export const restoreJson = (r: RestoreResult, fd?: number) => ({
  ...r,
  file: fd === undefined ? abs(r.file) : r.file,
  blocks: r.blocks.map((b) => ({ ...b, target: abs(b.target) })),
  ...(r.verifiedWith ? { verifiedWith: abs(r.verifiedWith) } : {}),
});

export const restoreCommand = defineCommand({
  meta: { name: "restore", description: "Restore RAM images from a mapped-ram file (written by ramsnap or QEMU) or a pack (local or in S3)" },
  args: {
    file: { type: "positional", description: "The mapped-ram file, or a pack: NAME.rpk or s3://BUCKET/KEY (required unless --fd)", required: false },
    block: {
      type: "string",
      description: "A block to restore: its name in the file and the target file (created or resized); repeat for more",
      valueHint: "name=path",
      required: true,
    },
    ...pageArgs,
    verify: { type: "boolean", description: "Check the file's main stream and every restored 1 MiB against FILE.sums (save --manifest writes it)" },
  },
  async run({ args, rawArgs }) {
    const blocks = repeated(rawArgs, "block").map(parseBlockArg);
    const t = transferArgs(args);
    const fd = t.fd;
    if (fd === undefined && !args.file) throw new OptionError("say which file to restore (or --fd N)");
    if (fd !== undefined && args.file) throw new OptionError("give FILE or --fd, not both");
    const r = await withProgress("restore", args, (signal, bar) =>
      restore({
        ...t,
        path: args.file,
        blocks: blocks.map((b) => ({ name: b.name, path: b.path })),
        verify: args.verify,
        onProgress: bar.update,
        signal,
      }),
    );
    print(args.json, restoreJson(r, fd), () => renderRestore(r));
  },
});

EXAMPLES.set(
  restoreCommand,
  `  ramsnap restore vm.ram --block ram0=/dev/shm/guest-ram --channels 4 --direct-io
  ramsnap restore vm.ram --block ram0=ram0.raw --json
  ramsnap restore --fd 3 --direct-fd 4 --block ram0=/dev/shm/guest-ram 3<vm.ram
  ramsnap restore vm.ram --block ram0=/dev/shm/guest-ram --verify   # checked against vm.ram.sums

The whole stream is checked first (block list, bitmaps, EOF): a truncated or corrupt file is refused
before any target is touched. Pages the file does not hold come out as zeros. Blocks in the file that
no --block names are left out and listed.`,
);
