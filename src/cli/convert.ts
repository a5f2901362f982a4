// `ramsnap convert`: a QEMU save file re-laid as mapped-ram or classic.
import { defineCommand } from "citty";
import { convert, type ConvertResult } from "../convert/index.ts";
import { OptionError } from "../errors.ts";
import { parseCompression } from "../options.ts";
import { compressArg, sharedArgs, sizeOption, transferArgs } from "./args.ts";
import { abs, noteStale, print, withProgress } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, plural, table } from "./text.ts";

/**
 * docs/json.md's convert object. The keys are the ones save and restore use for the same things: `file`
 * is the file written, `writtenBytes` its page bytes, a block's `present` its pages in that file.
 */
export const convertJson = (r: ConvertResult) => ({
  file: abs(r.output),
  input: abs(r.input),
  from: r.from,
  to: r.to,
  machineType: r.machineType,
  blocks: r.blocks.map((b) => ({ name: b.name, length: b.length, present: b.pagesWritten, from: abs(b.from) })),
  copied: r.copied,
  ...(r.manifest ? { manifest: abs(r.manifest) } : {}),
  ...(r.staleRemoved ? { staleRemoved: r.staleRemoved.map(abs) } : {}),
  writtenBytes: r.bytesWritten,
  seconds: r.seconds,
  gibPerSecond: r.gibPerSecond,
  channels: r.channels,
  directIo: r.directIo,
});

export const convertCommand = defineCommand({
  meta: { name: "convert", description: "Re-lay a QEMU save file as mapped-ram, classic or a pack (and a pack back), device state and trailer carried over" },
  args: {
    input: { type: "positional", description: "The QEMU save file or pack to read (a pack may be s3://BUCKET/KEY)", required: true },
    output: { type: "positional", description: "The file to write (a pack may be s3://BUCKET/KEY)", required: true },
    to: { type: "enum", options: ["mapped-ram", "classic", "pack"], description: "The format of the output", required: true },
    ...compressArg,
    channels: sharedArgs.channels,
    "direct-io": sharedArgs["direct-io"],
    // --offset is INPUT's (the file read, as for every other reader); OUTPUT's has its own flag
    offset: sharedArgs.offset,
    "output-offset": { type: "string", description: "Where the stream starts in OUTPUT (bytes before it are kept)", valueHint: "bytes" },
    manifest: { type: "boolean", default: true, description: "Write OUTPUT.sums with a mapped-ram output (default; --no-manifest skips it)" },
    json: sharedArgs.json,
    progress: sharedArgs.progress,
  },
  async run({ args }) {
    if (args.input === args.output) throw new OptionError("INPUT and OUTPUT must be different files");
    const t = transferArgs(args);
    const compression = parseCompression(args.compress);
    if (compression && args.to !== "pack") throw new OptionError("--compress applies to --to pack");
    const r: ConvertResult = await withProgress("convert", args, (signal, bar) =>
      convert({
        input: args.input,
        output: args.output,
        to: args.to as "mapped-ram" | "classic" | "pack",
        compression,
        inputOffset: t.offset,
        offset: sizeOption("output-offset", args["output-offset"]),
        manifest: args.manifest !== false && args.to === "mapped-ram",
        channels: t.channels,
        directIo: t.directIo,
        onProgress: bar.update,
        signal,
      }),
    );
    print(args.json, convertJson(r), () => renderConvert(r));
    noteStale(r.staleRemoved);
  },
});
EXAMPLES.set(
  convertCommand,
  `  ramsnap convert old.sav new.ram --to mapped-ram --channels 4 --direct-io   parallel restore for old saves
  ramsnap convert vm.ram vm.sav --to classic                                   loadable without mapped-ram
  ramsnap convert vm.ram s3://saves/vm.rpk --to pack                           present pages only, compressed, in S3
  ramsnap convert s3://saves/vm.rpk vm.ram --to mapped-ram                     back to the file QEMU loads

Device sections, commands and the trailer are copied byte for byte and in order; the configuration's
capabilities gain or lose mapped-ram. QEMU loads the result with mapped-ram set the same way.
Streams holding state ramsnap cannot re-lay (other iterative sections, postcopy or COLO commands,
x-ignore-shared) are refused with the element named.`,
);

export function renderConvert(r: ConvertResult): string {
  return (
    `wrote ${r.output} (${r.to}) from ${r.input} (${r.from}) in ${r.seconds.toFixed(2)} s: ${plural(r.copied, "device section or command", "device sections and commands")} copied, ` +
    `${bytes(r.bytesWritten)} of pages\n${table(r.blocks.map((b) => [b.name, bytes(b.length), plural(b.pagesWritten, "page"), `from ${b.from}`]))}\n`
  );
}
