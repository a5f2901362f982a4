// `ramsnap convert`: a QEMU save file re-laid as mapped-ram or classic.
import { defineCommand } from "citty";
import { convert, type ConvertResult } from "../convert/index.ts";
import { OptionError } from "../errors.ts";
import { pageArgs, sizeOption, transferArgs } from "./args.ts";
import { print, withProgress } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, table } from "./text.ts";

export const convertCommand = defineCommand({
  meta: { name: "convert", description: "Re-lay a QEMU save file as mapped-ram or classic, device state and trailer carried over" },
  args: {
    input: { type: "positional", description: "The QEMU save file to read", required: true },
    output: { type: "positional", description: "The file to write", required: true },
    to: { type: "enum", options: ["mapped-ram", "classic"], description: "The RAM format of the output", required: true },
    channels: pageArgs.channels,
    "direct-io": pageArgs["direct-io"],
    offset: { type: "string", description: "Where the stream starts in INPUT", valueHint: "bytes" },
    "output-offset": { type: "string", description: "Where the stream starts in OUTPUT (bytes before it are kept)", valueHint: "bytes" },
    manifest: { type: "boolean", description: "Also write OUTPUT.sums (mapped-ram output)" },
    json: pageArgs.json,
  },
  async run({ args }) {
    if (args.input === args.output) throw new OptionError("INPUT and OUTPUT must be different files");
    const t = transferArgs(args); // --offset is INPUT's here, read below with --output-offset
    const r: ConvertResult = await withProgress("convert", args.json, (signal, bar) =>
      convert({
        input: args.input,
        output: args.output,
        to: args.to as "mapped-ram" | "classic",
        inputOffset: sizeOption("offset", args.offset),
        offset: sizeOption("output-offset", args["output-offset"]),
        manifest: args.manifest,
        channels: t.channels,
        directIo: t.directIo,
        onProgress: bar.update,
        signal,
      }),
    );
    print(args.json, r, () => renderConvert(r));
  },
});
EXAMPLES.set(
  convertCommand,
  `  ramsnap convert old.sav new.ram --to mapped-ram --channels 4 --direct-io   parallel restore for old saves
  ramsnap convert vm.ram vm.sav --to classic                                   loadable without mapped-ram

Device sections, commands and the trailer are copied byte for byte and in order; the configuration's
capabilities gain or lose mapped-ram. QEMU loads the result with mapped-ram set the same way.
Streams holding state ramsnap cannot re-lay (other iterative sections, postcopy or COLO commands,
x-ignore-shared) are refused with the element named.`,
);

export function renderConvert(r: ConvertResult): string {
  return (
    `wrote ${r.output} (${r.to}) from ${r.input} (${r.from}) in ${r.seconds.toFixed(2)} s: ${r.copied} device sections and commands copied, ` +
    `${bytes(r.bytesWritten)} of pages\n${table(r.blocks.map((b) => [b.name, bytes(b.length), `${b.pagesWritten} pages`, `from ${b.from}`]))}\n`
  );
}
