// `ramsnap scrub`: clear the page slots whose bitmap bit is clear but which hold old data, in place.
import { defineCommand } from "citty";
import { refusePack } from "../savefile/open.ts";
import { inspectFile } from "../inspect.ts";
import { clearStaleSlots, findStaleSlots } from "../savefile/slots.ts";
import { pageArgs, sizeOption } from "./args.ts";
import { print } from "./report.ts";
import { EXAMPLES } from "./run.ts";

export const scrubCommand = defineCommand({
  meta: { name: "scrub", description: "Clear page slots that hold old data behind clear bitmap bits (needed before a lazy restore of a live save)" },
  args: {
    file: { type: "positional", description: "A mapped-ram save file, changed in place", required: true },
    "dry-run": { type: "boolean", description: "Only count them" },
    offset: pageArgs.offset,
    json: pageArgs.json,
  },
  run({ args }) {
    refusePack(args.file, "scrub");
    const offset = sizeOption("offset", args.offset) ?? 0;
    const slots = findStaleSlots(args.file, offset);
    if (!args["dry-run"]) clearStaleSlots(args.file, slots, inspectFile(args.file, { offset }).pageSize);
    const blocks = [...new Set(slots.map((s) => s.block))];
    const r = { file: args.file, staleSlots: slots.length, blocks, cleared: !args["dry-run"] && slots.length > 0 };
    print(args.json, r, () =>
      slots.length === 0
        ? `${args.file}: no slot holds old data; a lazy restore can map it as it is\n`
        : `${args.file}: ${slots.length} slot${slots.length === 1 ? "" : "s"} of ${blocks.join(", ")} held old data behind clear bitmap bits; ${r.cleared ? "cleared (holes punched, the file keeps its size)" : "not changed (--dry-run)"}\n`,
    );
  },
});

EXAMPLES.set(
  scrubCommand,
  `  ramsnap scrub vm1.ram --dry-run     count them
  ramsnap scrub vm1.ram               clear them in place
  ramsnap convert vm1.ram clean.ram --to mapped-ram   or make a clean copy instead

A loader (QEMU, ramsnap restore) reads a page whose bitmap bit is clear as zero, whatever its slot holds;
a guest that maps the file (qemu restore --lazy) sees the slot. QEMU's saves of a running guest can leave
old bytes there. ramsnap's own saves never do. scrub refuses while a process maps the file privately.`,
);
