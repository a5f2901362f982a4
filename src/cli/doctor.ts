// `ramsnap doctor`: what a save to a given place will meet, and the settings that suit it.
import { defineCommand } from "citty";
import { doctor, type DoctorReport } from "../doctor.ts";
import { sharedArgs, sizeOption } from "./args.ts";
import { abs, print } from "./report.ts";
import { EXAMPLES } from "./run.ts";
import { bytes, table } from "./text.ts";

/**
 * docs/json.md's doctor object: `path` and `dir` (the folder probed) absolute, and two keys renamed so no
 * key means two things across commands: `directIo` is a boolean everywhere (here the probe's details are
 * `directIoProbe`), and `totalBytes` is the RAM's size everywhere (here the file system's is `filesystemBytes`).
 */
export const doctorJson = ({ directIo, totalBytes, ...r }: DoctorReport) => ({
  path: abs(r.path),
  dir: abs(r.dir),
  filesystem: r.filesystem,
  mountPoint: r.mountPoint,
  mountOptions: r.mountOptions,
  kernel: r.kernel,
  directIoProbe: directIo,
  freeBytes: r.freeBytes,
  filesystemBytes: totalBytes,
  imageBytes: r.imageBytes,
  neededBytes: r.neededBytes,
  enoughSpace: r.enoughSpace,
  cgroupMemoryLimit: r.cgroupMemoryLimit,
  cpus: r.cpus,
  recommendation: r.recommendation,
  staleTemporaries: r.staleTemporaries.map(abs),
  warnings: r.warnings,
});

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
    path: { type: "positional", description: "The folder saves will go to (or an existing file there); it must exist", required: true },
    size: { type: "string", description: "Size of the RAM to save, to check the free space (e.g. 64G, 1.5G)", valueHint: "bytes" },
    json: sharedArgs.json,
  },
  run({ args }) {
    const r = doctor(args.path, sizeOption("size", args.size));
    print(args.json, doctorJson(r), () => renderDoctor(r));
    // Not enough room is a verdict a script must not miss: the save would fail part way.
    if (r.enoughSpace === false) process.exitCode = 1;
  },
});

EXAMPLES.set(
  doctorCommand,
  `  ramsnap doctor /var/lib/vm-saves --size 64G
  ramsnap doctor /dev/shm --json

It writes and removes one small scratch file in the folder to see whether O_DIRECT really works there.
Exit status: 0 when a save fits, 1 when --size does not fit in the free space (NOT ENOUGH) or PATH
does not exist, 2 for a wrong option.`,
);
