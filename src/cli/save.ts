// `ramsnap save`: RAM images into one mapped-ram file, or a QEMU save with RAM replaced (--like).
import { statSync } from "node:fs";
import { defineCommand } from "citty";
import { parseBlockArg, parseCompression } from "../options.ts";
import { save, type SaveResult } from "../save.ts";
import { OptionError } from "../errors.ts";
import { DEFAULT_MACHINE_TYPE } from "../format/constants.ts";
import { compressArg, pageArgs, repeated, transferArgs } from "./args.ts";
import { abs, noteStale, print, withProgress } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, plural, table } from "./text.ts";
import { convert } from "../convert/index.ts";
import { convertJson, renderConvert } from "./convert.ts";
import { formatOf } from "../savefile/open.ts";

export function renderSave(r: SaveResult): string {
  const rows = r.blocks.map((b) => [b.name, bytes(b.length), `${b.present} present`, `${b.zero} zero`]);
  return (
    `saved ${plural(r.blocks.length, "block")} (${bytes(r.totalBytes)}) to ${r.file} in ${r.seconds.toFixed(2)} s: ` +
    `${r.gibPerSecond.toFixed(2)} GiB/s, ${plural(r.channels, "channel")}, ${r.directIo ? "direct I/O" : "buffered I/O"}, ` +
    `${bytes(r.writtenBytes)} of pages written in ${plural(r.ioCalls, "call")}` +
    `${r.sourceHoleBytes > 0 ? `; ${bytes(r.sourceHoleBytes)} of the sources were holes, not read` : ""}\n${table(rows)}\n${r.manifest ? `manifest: ${r.manifest}\n` : ""}`
  );
}

/** docs/json.md's save object: the library's result with its paths absolute ("fd N" stays as it is). */
export const saveJson = (r: SaveResult, fd?: number) => ({
  ...r,
  file: fd === undefined ? abs(r.file) : r.file,
  ...(r.manifest ? { manifest: abs(r.manifest) } : {}),
  ...(r.staleRemoved ? { staleRemoved: r.staleRemoved.map(abs) } : {}),
});

/** What a cancelled save left at its target: a save replaces a file only once complete (io/output.ts). */
function cancelledMessage(output: string | undefined, existed: boolean): string {
  if (output === undefined) return "cancelled; the file on the descriptor has no EOF and will not load";
  return existed ? `cancelled; ${output} was not changed (the previous save is intact)` : `cancelled; ${output} was not created`;
}

export const saveCommand = defineCommand({
  meta: { name: "save", description: "Save RAM images into one mapped-ram file that QEMU can load, or a compressed pack (local or in S3)" },
  args: {
    output: {
      type: "string",
      alias: "o",
      description: "The file to write (required unless --fd; replaced only once complete): NAME.rpk or s3://BUCKET/KEY writes a pack (docs/pack-format.md)",
      valueHint: "file",
    },
    block: {
      type: "string",
      description: "A RAM block: its name in QEMU and the file holding it; repeat for more blocks, in order",
      valueHint: "name=path",
      required: true,
    },
    machine: { type: "string", description: "Machine type written in the file; QEMU loads only files of its own machine type", default: DEFAULT_MACHINE_TYPE, valueHint: "type" },
    manifest: {
      type: "boolean",
      default: true,
      description: "Write FILE.sums, a hash of every 1 MiB of RAM and of the main stream, for verify and restore --verify (default; --no-manifest skips it; none with --fd)",
    },
    like: { type: "string", description: "Take configuration, device state and trailer from this QEMU save of the same VM; blocks not given keep its pages", valueHint: "file" },
    ...compressArg,
    ...pageArgs,
  },
  async run({ args, rawArgs }) {
    const blocks = repeated(rawArgs, "block").map(parseBlockArg);
    const t = transferArgs(args);
    const compression = parseCompression(args.compress);
    if (compression && formatOf({ path: args.output }) !== "pack") throw new OptionError("--compress applies to packs: -o NAME.rpk or -o s3://BUCKET/KEY");
    const fd = t.fd;
    if (fd === undefined && !args.output) throw new OptionError("say where to save: -o FILE (or --fd N)");
    if (fd !== undefined && args.output) throw new OptionError("give -o FILE or --fd, not both");
    const target = args.output && !args.output.startsWith("s3://") ? statSync(args.output, { throwIfNoEntry: false }) : undefined;
    if (target?.isDirectory()) throw new OptionError(`-o ${args.output} is a directory; give a file name`);
    const cancelled = () => cancelledMessage(args.output, target !== undefined);
    if (args.like !== undefined) {
      if (fd !== undefined || args["direct-fd"] !== undefined) throw new OptionError("--like writes to -o FILE, not to descriptors");
      if (rawArgs.some((a) => a === "--machine" || a.startsWith("--machine="))) throw new OptionError("--like takes the machine type from the QEMU file; drop --machine");
      if (args.output === args.like) throw new OptionError("-o and --like must be different files");
      const r = await withProgress(
        "save",
        args,
        (signal, bar) =>
          convert({
            input: args.like!,
            output: args.output!,
            to: formatOf({ path: args.output }),
            compression,
            replace: blocks.map((b) => ({ name: b.name, path: b.path })),
            channels: t.channels,
            directIo: t.directIo,
            offset: t.offset,
            manifest: args.manifest !== false,
            onProgress: bar.update,
            signal,
          }),
        cancelled,
      );
      print(args.json, convertJson(r), () => renderConvert(r));
      noteStale(r.staleRemoved);
      return;
    }
    const r = await withProgress(
      "save",
      args,
      (signal, bar) =>
        save({
          ...t,
          path: args.output,
          blocks: blocks.map((b) => ({ name: b.name, path: b.path })),
          machineType: args.machine,
          compression,
          manifest: args.manifest !== false && fd === undefined,
          onProgress: bar.update,
          signal,
        }),
      cancelled,
    );
    print(args.json, saveJson(r, fd), () => renderSave(r));
    noteStale(r.staleRemoved);
  },
});

EXAMPLES.set(
  saveCommand,
  `  ramsnap save -o vm.ram --block ram0=/dev/shm/guest-ram --channels 4 --direct-io
  ramsnap save -o vm.ram --block ram0=/dev/shm/node0 --block ram1=/dev/shm/node1 --machine pc-q35-9.2
  ramsnap save --fd 3 --block ram0=/dev/shm/guest-ram 3<>vm.ram   # a descriptor from a manager (not >>: O_APPEND is refused)
  ramsnap save --like qemu.sav -o edited.ram --block ram0=edited-ram0.raw   # load an edited RAM image back
  ramsnap save -o vm.rpk --block ram0=/dev/shm/guest-ram                       # a pack: present pages only, zstd
  ramsnap save -o s3://saves/vm1.rpk --block ram0=/dev/shm/guest-ram --compress zstd:3   # straight into S3

QEMU loads the file with the mapped-ram capability on, into a guest of the same machine type whose
memory backends have the same names and sizes:
  (qemu) migrate_set_capability mapped-ram on
  (qemu) migrate_incoming file:vm.ram
With --like, the file is the QEMU save with the given blocks' pages replaced: that VM loads it (with
mapped-ram on), device state and all. Blocks not given keep the QEMU save's pages.
All-zero pages are not written (their bitmap bits stay clear and the file keeps holes).
The file is written under a temporary name beside FILE and renamed once its pages, bitmaps and EOF are
on disk: an interrupted save (Ctrl-C, kill -9, a full disk) leaves FILE as it was, or absent. With
--fd there is no name to rename: the file is valid only once ramsnap exits 0 (its EOF comes last).
A pack (-o NAME.rpk, or s3://BUCKET/KEY) holds only the present pages, in 1 MiB extents each compressed
and hashed on its own (docs/pack-format.md); restore, extract, inspect, verify and convert read it, and
convert turns it back into the mapped-ram file QEMU loads. An object is uploaded in parts as the channels
compress, and appears at KEY only once complete: an interrupted upload leaves the previous object.
S3 settings come from S3_ENDPOINT, S3_REGION, S3_ACCESS_KEY_ID, S3_SECRET_ACCESS_KEY (or their AWS_*
names). A pack has no FILE.sums: every extent carries its own hash.`,
);
