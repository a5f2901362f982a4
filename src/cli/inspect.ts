// `ramsnap inspect`: what a QEMU migration file holds, and whether it is complete.
import { defineCommand } from "citty";
import { inspectFile, inspectPack, type InspectReport } from "../inspect.ts";
import { OptionError } from "../errors.ts";
import { isPack } from "../savefile/open.ts";
import { sharedArgs, sizeOption } from "./args.ts";
import { abs, print } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, fields, hex, plural, table } from "./text.ts";

/** docs/json.md's inspect object: `file` absolute, and the stream's start is `offset`, the key save and --offset use. */
export const inspectJson = ({ base, ...r }: InspectReport) => {
  const { file, complete, version, ...rest } = r;
  return { file: abs(file), complete, version, offset: base, ...rest };
};

function packLine(p: NonNullable<InspectReport["pack"]>): string {
  return (
    `pack v${p.version}: ${bytes(p.size)}, ${plural(p.extents, "extent")} of ${bytes(p.extentBytes)} (${p.zstdExtents} zstd, ${p.extents - p.zstdExtents} raw): ` +
    `${bytes(p.pageBytes)} of pages stored in ${bytes(p.storedBytes)} (${p.ratio.toFixed(2)}:1)`
  );
}

export function renderReport(r: InspectReport): string {
  const out: string[] = [];
  const state = r.complete ? "complete" : "INCOMPLETE";
  out.push(`${r.file}: QEMU migration stream v${r.version}, ${r.ramFormat ?? "no RAM section"}, ${state}`);
  if (r.pack) out.push(packLine(r.pack), "the mapped-ram file it stands for (convert --to mapped-ram writes it):");
  out.push(
    fields([
      ["machine", r.machineType ?? "(no configuration section)"],
      ["capabilities", r.capabilities.join(", ") || "(none)"],
      ...(r.uuid ? [["uuid", r.uuid] as [string, string]] : []),
      ["page size", String(r.pageSize)],
      ["stream offset", r.base ? `${r.base} (${hex(r.base)})` : "0"],
      ["file size", `${bytes(r.fileSize)} apparent, ${bytes(r.allocatedBytes)} allocated`],
    ]),
  );
  if (r.blocks.length) {
    out.push("", `RAM blocks (section id ${r.ramSectionId}, total ${bytes(r.ramTotal ?? 0)})`);
    const mapped = r.ramFormat === "mapped-ram";
    const head = ["name", "size", "pages", "present", ...(mapped ? [] : ["zero"]), "absent", ...(mapped ? ["bitmap at", "pages at"] : [])];
    const rows = r.blocks.map((b) => [
      b.name,
      bytes(b.length),
      String(b.pages),
      String(b.present),
      ...(mapped ? [] : [String(b.zero)]),
      String(b.absent),
      ...(mapped ? (b.shared ? ["(shared, not saved)", ""] : [hex(b.bitmapOffset ?? 0), hex(b.pagesOffset ?? 0)]) : []),
    ]);
    out.push(table([head, ...rows]));
  }
  out.push("", "Sections");
  // A paused guest's save has many identical RAM PART sections (EOS only, one per iteration): fold them.
  const folded: { s: (typeof r.sections)[number]; times: number }[] = [];
  for (const s of r.sections) {
    const prev = folded[folded.length - 1];
    if (prev && s.type === "PART" && prev.s.type === "PART" && prev.s.id === s.id && prev.s.payloadSize === s.payloadSize) prev.times++;
    else folded.push({ s, times: 1 });
  }
  const rows = folded.map(({ s, times }) => [
    hex(s.offset),
    s.type,
    s.type === "COMMAND" ? "" : String(s.id),
    s.type === "COMMAND" ? (s.command ?? "") : (s.idstr ?? ""),
    s.instance !== undefined ? `${s.instance}` : "",
    s.version !== undefined ? `v${s.version}` : "",
    times > 1 ? `${bytes(s.payloadSize)} x ${times}` : bytes(s.payloadSize),
    s.sizeFrom === "footer-scan" ? "(end found by footer scan)" : "",
  ]);
  out.push(table([["offset", "type", "id", "name", "inst", "ver", "payload", ""], ...rows]));
  out.push("", r.eofOffset >= 0 ? `EOF at ${hex(r.eofOffset)}` : "no EOF: the save did not finish");
  out.push(r.trailer ? `trailer at ${hex(r.trailer.offset)}: ${plural(r.trailer.length, "byte")} of JSON describing ${plural(r.trailer.devices, "device")}` : "no trailer");
  for (const n of r.notes) out.push(`note: ${n}`);
  return `${out.join("\n")}\n`;
}

export const inspectCommand = defineCommand({
  meta: { name: "inspect", description: "Describe a QEMU migration file: configuration, RAM blocks, sections, completeness" },
  args: {
    file: { type: "positional", description: "The migration file (mapped-ram or classic), or a pack (NAME.rpk or s3://BUCKET/KEY)", required: true },
    offset: sharedArgs.offset,
    json: sharedArgs.json,
  },
  async run({ args }) {
    const offset = sizeOption("offset", args.offset) ?? 0;
    const pack = isPack({ path: args.file });
    if (pack && offset) throw new OptionError("--offset places a stream inside a file; a pack is a file of its own (drop --offset)");
    const report = pack ? await inspectPack(args.file) : inspectFile(args.file, { offset });
    print(args.json, inspectJson(report), () => renderReport(report));
  },
});

EXAMPLES.set(
  inspectCommand,
  `  ramsnap inspect vm.ram                 what QEMU (or ramsnap) saved, and whether it is complete
  ramsnap inspect vm.ram --json | jq '.blocks[] | {name, present}'
  ramsnap inspect disk.img --offset 1M   a stream written with QEMU's file:disk.img,offset=1M

A file is complete when its stream reaches EOF: QEMU and ramsnap write the page bitmaps before it.
Exit status: 0 for a well-formed file, 1 for a truncated, corrupt or unreadable one (the message names
the byte offset), 2 for a wrong option.`,
);
