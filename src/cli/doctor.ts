import { defineCommand } from "citty";
import { doctor, type DoctorReport } from "../doctor.ts";
import { sizeOption } from "./args.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, table } from "./text.ts";

export function renderDoctor(r: DoctorReport): string {
  const d = r.directIo;
  const rows = [
    ["file system", `${r.filesystem}${r.mountPoint ? ` (mounted at ${r.mountPoint}, ${r.mountOptions})` : ""}`],
    ["direct I/O", d.accepted ? `accepted; ${d.memAlign ? `alignment ${d.memAlign} bytes of memory, ${d.offsetAlign} of offset (statx)` : "no alignment reported (statx)"}${d.misaligned512Works ? "" : "; 512-byte writes refused"}` : `refused (${d.error})`],
    ["free space", `${bytes(r.freeBytes)} of ${bytes(r.totalBytes)}${r.neededBytes !== null ? `; a save of ${bytes(r.imageBytes!)} needs up to ${bytes(r.neededBytes)}${r.enoughSpace ? "" : " (NOT ENOUGH)"}` : ""}`],
    ["memory limit", r.cgroupMemoryLimit !== null ? `${bytes(r.cgroupMemoryLimit)} (this cgroup)` : "none (no cgroup limit)"],
    ["machine", `Linux ${r.kernel}, ${r.cpus} CPUs`],
  ];
  const rec = r.recommendation;
  const lines = [`${r.dir}:`, table(rows), "", `recommended: --channels ${rec.channels}${rec.directIo ? " --direct-io" : ""}`, ...rec.reasons.map((x) => `  because ${x}`)];
  for (const w of r.warnings) lines.push(`warning: ${w}`);
  return `${lines.join("\n")}\n`;
}

export const doctorCommand = defineCommand({
  meta: { name: "doctor", description: "Check a place for saves: file system, O_DIRECT and its alignment, free space, memory limit; recommend settings" },
  args: {
    path: { type: "positional", description: "The folder (or file) saves will go to", required: true },
    size: { type: "string", description: "Size of the RAM to save, to check the free space", valueHint: "bytes" },
    json: { type: "boolean", description: "Print a JSON report" },
  },
  run({ args }) {
    const r = doctor(args.path, sizeOption("size", args.size));
    process.stdout.write(args.json ? `${JSON.stringify(r, null, 2)}\n` : renderDoctor(r));
  },
});

EXAMPLES.set(
  doctorCommand,
  `  ramsnap doctor /var/lib/vm-saves --size 64G
  ramsnap doctor /dev/shm --json

It writes and removes one small scratch file in the folder to see whether O_DIRECT really works there.`,
);
