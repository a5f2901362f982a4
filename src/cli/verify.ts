// `ramsnap verify`: a save file's structure, its pages against images, its manifest.
import { defineCommand } from "citty";
import { parseBlockArg } from "../options.ts";
import { verify, type VerifyReport } from "../verify.ts";
import { pageArgs, repeated, sizeOption } from "./args.ts";
import { print } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { hex } from "./text.ts";

export const verifyCommand = defineCommand({
  meta: { name: "verify", description: "Check a save file's structure and, given the RAM images, every page" },
  args: {
    file: { type: "positional", description: "The save file (mapped-ram or classic)", required: true },
    block: { type: "string", description: "Compare block NAME with the image at PATH (repeat for more)", valueHint: "name=path" },
    manifest: { type: "string", description: "Check against this manifest (default: FILE.sums when it exists)", valueHint: "file" },
    offset: pageArgs.offset,
    json: pageArgs.json,
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
