// Commands that read or re-lay save files: extract, convert, verify, diff.
import { defineCommand } from "citty";
import { diff, type DiffReport } from "../diff.ts";
import { OptionError } from "../errors.ts";
import { extract, type ExtractResult } from "../extract.ts";
import { DEFAULT_CHANNELS, MAX_CHANNELS, parseBlockArg } from "../options.ts";
import { rewrite, type RewriteResult } from "../rewrite.ts";
import { verify, type VerifyReport } from "../verify.ts";
import { repeated, sizeOption, transferArgs } from "./args.ts";
import { abortOnSigint, progressBar } from "./progress.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, hex, table } from "./text.ts";

const channels = { type: "string", description: `Worker channels, 1 to ${MAX_CHANNELS}`, default: String(DEFAULT_CHANNELS), valueHint: "n" } as const;
const directIo = { type: "boolean", description: "Move pages with O_DIRECT (the file system must support it)" } as const;
const json = { type: "boolean", description: "Print a JSON report instead of text" } as const;
const offset = { type: "string", description: "Where the stream starts in FILE (QEMU's file:...,offset=)", valueHint: "bytes" } as const;

async function withSigint<T>(label: string, json: boolean | undefined, run: (signal: AbortSignal, bar: ReturnType<typeof progressBar>) => Promise<T>): Promise<T> {
  const bar = progressBar(label, json ? false : undefined);
  const sig = abortOnSigint();
  try {
    return await run(sig.signal, bar);
  } finally {
    bar.done();
    sig.dispose();
  }
}

function print(asJson: boolean | undefined, value: unknown, text: () => string): void {
  process.stdout.write(asJson ? `${JSON.stringify(value, null, 2)}\n` : text());
}

export const extractCommand = defineCommand({
  meta: { name: "extract", description: "Write each RAM block of a save file as a raw, sparse file (plain RAM for forensics tools)" },
  args: {
    file: { type: "positional", description: "A QEMU save file, mapped-ram or classic", required: true },
    output: { type: "string", alias: "o", description: "Folder for the raw files and blocks.json", required: true, valueHint: "dir" },
    block: { type: "string", description: "Only this block (repeat for more; default: all)", valueHint: "name" },
    channels,
    "direct-io": directIo,
    offset,
    json,
  },
  async run({ args, rawArgs }) {
    const t = transferArgs(args);
    const r: ExtractResult = await withSigint("extract", args.json, (signal, bar) =>
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
    print(args.json, r, () => `extracted ${r.blocks.length} blocks of ${r.file} (${r.ramFormat}) into ${r.dir} in ${r.seconds.toFixed(2)} s\n${table(r.blocks.map((b) => [b.file, bytes(b.length), `${b.present} pages present`, b.name]))}\n`);
  },
});
EXAMPLES.set(
  extractCommand,
  `  ramsnap extract vm.ram -o vm-ram/                 every block; vm-ram/blocks.json lists them
  ramsnap extract vm.ram -o out/ --block ram0 --channels 4 --direct-io

Pages the file does not hold are holes in the raw files (they read as zero). Block names become file
names with "/" turned into "_" ("/rom@etc/acpi/tables" -> rom@etc_acpi_tables.raw); blocks.json maps them.`,
);

export const convertCommand = defineCommand({
  meta: { name: "convert", description: "Re-lay a QEMU save file as mapped-ram or classic, device state and trailer carried over" },
  args: {
    input: { type: "positional", description: "The QEMU save file to read", required: true },
    output: { type: "positional", description: "The file to write", required: true },
    to: { type: "enum", options: ["mapped-ram", "classic"], description: "The RAM format of the output", required: true },
    channels,
    "direct-io": directIo,
    offset: { type: "string", description: "Where the stream starts in INPUT", valueHint: "bytes" },
    "output-offset": { type: "string", description: "Where the stream starts in OUTPUT (bytes before it are kept)", valueHint: "bytes" },
    manifest: { type: "boolean", description: "Also write OUTPUT.sums (mapped-ram output)" },
    json,
  },
  async run({ args }) {
    if (args.input === args.output) throw new OptionError("INPUT and OUTPUT must be different files");
    const t = transferArgs(args); // --offset is INPUT's here, read below with --output-offset
    const r: RewriteResult = await withSigint("convert", args.json, (signal, bar) =>
      rewrite({
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
    print(args.json, r, () => renderRewrite(r));
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

export function renderRewrite(r: RewriteResult): string {
  return (
    `wrote ${r.output} (${r.to}) from ${r.input} (${r.from}) in ${r.seconds.toFixed(2)} s: ${r.copied} device sections and commands copied, ` +
    `${bytes(r.bytesWritten)} of pages\n${table(r.blocks.map((b) => [b.name, bytes(b.length), `${b.pagesWritten} pages`, `from ${b.from}`]))}\n`
  );
}

export const verifyCommand = defineCommand({
  meta: { name: "verify", description: "Check a save file's structure and, given the RAM images, every page" },
  args: {
    file: { type: "positional", description: "The save file (mapped-ram or classic)", required: true },
    block: { type: "string", description: "Compare block NAME with the image at PATH (repeat for more)", valueHint: "name=path" },
    manifest: { type: "string", description: "Check against this manifest (default: FILE.sums when it exists)", valueHint: "file" },
    offset,
    json,
  },
  run({ args, rawArgs }) {
    const report = verify({ path: args.file, offset: sizeOption("offset", args.offset), blocks: repeated(rawArgs, "block").map(parseBlockArg), manifest: args.manifest });
    print(args.json, report, () => renderVerify(report));
    if (!report.ok) process.exitCode = 1;
  },
});
EXAMPLES.set(
  verifyCommand,
  `  ramsnap verify vm.ram                                   structure: every offset, bitmap, section, EOF, trailer
  ramsnap verify vm.ram --block ram0=/dev/shm/guest-ram   and every page against the image
A manifest beside the file (vm.ram.sums, from save --manifest) is checked too: every 1 MiB of RAM as a
loader would see it, and the main stream; the first bad extent of each block is named.

Exit status: 0 when everything checks out, 1 when the structure is broken (one line naming the
offset) or a page differs (the report names the first differing page of each block).`,
);

export function renderVerify(r: VerifyReport): string {
  const lines = [`${r.file}: structure OK (${r.ramFormat}, ${r.blocks.length} RAM blocks, ${r.devices} device sections, ${r.trailer ? "trailer" : "no trailer"})`];
  for (const b of r.blocks) {
    if (!b.image) continue;
    if (b.differing === 0) lines.push(`  ${b.name}: all ${b.pages} pages match ${b.image}`);
    else {
      const f = b.first!;
      const where = f.fileOffset !== null ? ` (file offset ${hex(f.fileOffset)})` : "";
      lines.push(`  ${b.name}: ${b.differing} of ${b.pages} pages differ from ${b.image}; first: page ${f.page} at block offset ${hex(f.offset)}${where}: ${f.problem}`);
    }
  }
  if (r.manifest) {
    const m = r.manifest;
    if (m.ok) lines.push(`  manifest ${m.path}: main stream and every extent match`);
    else {
      if (!m.mainStreamOk) lines.push(`  manifest ${m.path}: the main stream (header, block list, bitmaps, device state) does not match`);
      for (const b of m.bad) lines.push(`  manifest ${m.path}: block ${b.block}, first bad extent ${b.extent} (bytes ${hex(b.offset)}-${hex(b.offset + b.length - 1)})`);
      for (const n of m.mismatched) lines.push(`  manifest ${m.path}: block ${n} is not in the file, or has another size`);
    }
  }
  for (const w of r.warnings) lines.push(`  warning: ${w}`);
  lines.push(r.ok ? "OK" : "FAILED");
  return `${lines.join("\n")}\n`;
}

export const diffCommand = defineCommand({
  meta: { name: "diff", description: "Which pages differ between two saves of the same RAM blocks" },
  args: {
    a: { type: "positional", description: "First save file", required: true },
    b: { type: "positional", description: "Second save file", required: true },
    json,
  },
  run({ args }) {
    const r = diff({ a: args.a, b: args.b });
    print(args.json, r, () => renderDiff(r));
    if (!r.same) process.exitCode = 1;
  },
});
EXAMPLES.set(
  diffCommand,
  `  ramsnap diff monday.ram tuesday.ram
  ramsnap diff a.ram b.ram --json | jq '.blocks[] | {name, differing}'

A page a file does not hold counts as zero. Exit status 0 when the saves hold the same RAM, 1 when not.`,
);

export function renderDiff(r: DiffReport): string {
  const lines = [`${r.a} vs ${r.b}: ${r.same ? "same RAM" : "RAM differs"} (${bytes(r.bytesRead)} of pages read)`];
  for (const b of r.blocks) {
    const shown = b.ranges.slice(0, 8).map(([p, n]) => (n === 1 ? `${p}` : `${p}-${p + n - 1}`));
    const more = b.ranges.length > 8 ? `, ... (${b.ranges.length} ranges)` : "";
    lines.push(`  ${b.name}: ${b.differing} of ${b.pages} pages differ${b.differing ? `: ${shown.join(", ")}${more}` : ""}`);
  }
  if (r.onlyInA.length) lines.push(`  only in ${r.a}: ${r.onlyInA.join(", ")}`);
  if (r.onlyInB.length) lines.push(`  only in ${r.b}: ${r.onlyInB.join(", ")}`);
  return `${lines.join("\n")}\n`;
}
