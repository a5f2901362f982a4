#!/usr/bin/env bun
import { defineCommand } from "citty";
import pkg from "../../package.json" with { type: "json" };
import { inspectCommand } from "./inspect.ts";
import { EXAMPLES, runCli } from "./run.ts";

export const rootCommand = defineCommand({
  meta: {
    name: "ramsnap",
    version: pkg.version,
    description: "Save and restore memory images in QEMU's mapped-ram format, in parallel, with direct I/O",
  },
  subCommands: {
    inspect: inspectCommand,
  },
});

EXAMPLES.set(
  rootCommand,
  `  ramsnap inspect vm.ram

Files are QEMU migration streams: QEMU 9.0+ loads what ramsnap writes (with the mapped-ram capability on),
and ramsnap reads what QEMU writes, with or without mapped-ram.`,
);

process.exitCode = await runCli(rootCommand, process.argv.slice(2));
