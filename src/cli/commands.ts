// The command tree, apart from main.ts so tests and scripts can load it (main.ts runs it on import).
import { defineCommand } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { inspectCommand } from "./inspect.ts";
import { restoreCommand } from "./restore.ts";
import { saveCommand } from "./save.ts";
import { demoCommand } from "./demo.ts";
import { doctorCommand } from "./doctor.ts";
import { qemuCommand } from "./qemu.ts";
import { scrubCommand } from "./scrub.ts";
import { convertCommand } from "./convert.ts";
import { diffCommand } from "./diff.ts";
import { extractCommand } from "./extract.ts";
import { verifyCommand } from "./verify.ts";
import { EXAMPLES } from "./run.ts";

export const rootCommand = defineCommand({
  meta: {
    name: "ramsnap",
    version: pkg.version,
    description: "Save and restore memory images in QEMU's mapped-ram format, in parallel, with direct I/O",
  },
  subCommands: {
    demo: demoCommand,
    save: saveCommand,
    restore: restoreCommand,
    inspect: inspectCommand,
    verify: verifyCommand,
    extract: extractCommand,
    convert: convertCommand,
    diff: diffCommand,
    doctor: doctorCommand,
    scrub: scrubCommand,
    qemu: qemuCommand,
  },
});

EXAMPLES.set(
  rootCommand,
  `  ramsnap demo                                   save and restore a synthetic 1 GiB image, measured
  ramsnap save -o vm.ram --block ram0=/dev/shm/guest-ram --channels 4 --direct-io
  ramsnap restore vm.ram --block ram0=/dev/shm/restored --channels 4 --direct-io
  ramsnap inspect vm.ram
  ramsnap qemu save --qmp /run/vm1.qmp vm1.ram --channels 4 --direct-io   drive a running QEMU
  ramsnap verify vm.ram --block ram0=/dev/shm/guest-ram
  ramsnap convert old.sav vm.ram --to mapped-ram
  ramsnap doctor /var/lib/vm-saves --size 64G     which settings suit that file system
  ramsnap help save                               one command's options and examples

Files are QEMU migration streams: QEMU 9.0+ loads what ramsnap writes (with the mapped-ram capability on),
and ramsnap reads what QEMU writes, with or without mapped-ram.`,
);
