// `ramsnap verify`: a save file's structure, its pages against images, its manifest.
import { defineCommand } from "citty";
import { parseBlockArg } from "../options.ts";
import { verify, verifyPack, type VerifyReport } from "../verify.ts";
import { OptionError } from "../errors.ts";
import { isPack } from "../savefile/open.ts";
import { repeated, sharedArgs, sizeOption } from "./args.ts";
import { abs, print } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { hex, plural } from "./text.ts";

/**
 * Exit status when the structure is sound but no page was checked (no image, no manifest): not 0, which
 * a script would read as "the RAM is intact", and not 1, which means something is wrong.
 */
export const PAGES_NOT_CHECKED = 3;

/** docs/json.md's verify object: the library's report with its paths absolute. */
export const verifyJson = (r: VerifyReport) => ({
  ...r,
  file: abs(r.file),
  blocks: r.blocks.map((b) => ({ ...b, ...(b.image ? { image: abs(b.image) } : {}) })),
  ...(r.manifest ? { manifest: { ...r.manifest, path: abs(r.manifest.path) } } : {}),
});

export const verifyCommand = defineCommand({
  meta: { name: "verify", description: "Check a save file's structure and, given the RAM images or a manifest, every page" },
  args: {
    file: { type: "positional", description: "The save file (mapped-ram or classic), or a pack (NAME.rpk or s3://BUCKET/KEY)", required: true },
    block: { type: "string", description: "Compare block NAME with the image at PATH (repeat for more)", valueHint: "name=path" },
    manifest: { type: "string", description: "Check against this manifest (default: FILE.sums when it exists)", valueHint: "file" },
    offset: sharedArgs.offset,
    json: sharedArgs.json,
  },
  async run({ args, rawArgs }) {
    const blocks = repeated(rawArgs, "block").map(parseBlockArg);
    const pack = isPack({ path: args.file });
    if (pack && (blocks.length || args.manifest || args.offset)) throw new OptionError("a pack carries a hash of every extent: verify it alone (--block, --manifest and --offset are for mapped-ram and classic files)");
    const report = pack ? await verifyPack({ path: args.file }) : verify({ path: args.file, offset: sizeOption("offset", args.offset), blocks, manifest: args.manifest });
    print(args.json, verifyJson(report), () => renderVerify(report));
    if (!report.ok) process.exitCode = 1;
    else if (report.pagesChecked === "none") process.exitCode = PAGES_NOT_CHECKED;
  },
});
EXAMPLES.set(
  verifyCommand,
  `  ramsnap verify vm.ram --block ram0=/dev/shm/guest-ram   structure, and every page against the image
  ramsnap verify vm.ram                                   structure, and pages against vm.ram.sums if it exists
  ramsnap verify vm.ram --manifest /backup/vm.ram.sums
  ramsnap verify s3://saves/vm.rpk                        a pack: its structure and every extent's hash
A manifest beside the file (vm.ram.sums, from save --manifest) is checked when it exists: every 1 MiB of
RAM as a loader would see it, and the main stream; the first bad extent of each block is named.
Without an image or a manifest only the structure can be checked: every offset, bitmap, section, EOF and
the trailer, but not what the pages hold.

Exit status: 0 when the structure and the pages checked are sound; 1 when the structure is broken (one
line naming the offset) or a page differs (the report names the first differing page of each block);
2 for a wrong option; ${PAGES_NOT_CHECKED} when the structure is sound but no page could be checked (no manifest,
no --block).`,
);

export function renderVerify(r: VerifyReport): string {
  const lines = [
    `${r.file}: structure OK (${r.ramFormat}, ${plural(r.blocks.length, "RAM block")}, ${plural(r.devices, "device section")}, ${r.trailer ? "trailer" : "no trailer"})`,
  ];
  for (const b of r.blocks) {
    if (!b.image) continue;
    if (b.differing === 0) lines.push(`  ${b.name}: all ${plural(b.pages, "page")} match ${b.image}`);
    else {
      const f = b.first!;
      const where = f.fileOffset !== null ? ` (file offset ${hex(f.fileOffset)})` : "";
      lines.push(
        `  ${b.name}: ${b.differing} of ${plural(b.pages, "page")} ${b.differing === 1 ? "differs" : "differ"} from ${b.image}; first: page ${f.page} at block offset ${hex(f.offset)}${where}: ${f.problem}`,
      );
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
  const unchecked = r.blocks.filter((b) => b.checkedAgainst.length === 0 && b.present > 0).map((b) => b.name);
  if (r.pagesChecked === "some" && unchecked.length) lines.push(`  pages not checked (no image or manifest for them): ${unchecked.join(", ")}`);
  if (!r.ok) lines.push("FAILED");
  else lines.push(r.pagesChecked === "none" ? "structure OK; pages not checked (no manifest, no --block)" : "OK");
  return `${lines.join("\n")}\n`;
}
