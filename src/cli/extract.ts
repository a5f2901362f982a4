// `ramsnap extract`: every RAM block of a save file as a raw, sparse file.
import { join } from "node:path";
import { defineCommand } from "citty";
import { extract, type ExtractResult } from "../extract.ts";
import { repeated, sharedArgs, transferArgs } from "./args.ts";
import { abs, print, withProgress } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, plural, table } from "./text.ts";

/** docs/json.md's extract object: `file` is the save file read; each block's `file` the raw file written, both absolute. */
export const extractJson = (r: ExtractResult) => ({
  ...r,
  file: abs(r.file),
  dir: abs(r.dir),
  blocks: r.blocks.map((b) => ({ ...b, file: abs(join(r.dir, b.file)) })),
});

export const extractCommand = defineCommand({
  meta: { name: "extract", description: "Write each RAM block of a save file as a raw, sparse file (plain RAM for forensics tools)" },
  args: {
    file: { type: "positional", description: "A QEMU save file, mapped-ram or classic, or a pack (NAME.rpk or s3://BUCKET/KEY)", required: true },
    output: { type: "string", alias: "o", description: "Folder for the raw files and blocks.json", required: true, valueHint: "dir" },
    block: { type: "string", description: "Only this block (repeat for more; default: all)", valueHint: "name" },
    channels: sharedArgs.channels,
    "direct-io": sharedArgs["direct-io"],
    offset: sharedArgs.offset,
    json: sharedArgs.json,
    progress: sharedArgs.progress,
  },
  async run({ args, rawArgs }) {
    const t = transferArgs(args);
    const r: ExtractResult = await withProgress("extract", args, (signal, bar) =>
      extract({
        path: args.file,
        dir: args.output,
        blocks: repeated(rawArgs, "block"),
        channels: t.channels,
        directIo: t.directIo,
        offset: t.offset,
        onProgress: bar.update,
        signal,
      }),
    );
    print(
      args.json,
      extractJson(r),
      () =>
        `extracted ${plural(r.blocks.length, "block")} of ${r.file} (${r.ramFormat}) into ${r.dir} in ${r.seconds.toFixed(2)} s\n` +
        `${table(r.blocks.map((b) => [b.file, bytes(b.length), `${plural(b.present, "page")} present`, b.name]))}\n`,
    );
  },
});
EXAMPLES.set(
  extractCommand,
  `  ramsnap extract vm.ram -o vm-ram/                 every block; vm-ram/blocks.json lists them
  ramsnap extract vm.ram -o out/ --block ram0 --channels 4 --direct-io

Pages the file does not hold are holes in the raw files (they read as zero). Block names become file
names with "/" turned into "_" ("/rom@etc/acpi/tables" -> rom@etc_acpi_tables.raw); blocks.json maps them.`,
);
