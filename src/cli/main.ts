#!/usr/bin/env bun
import { rootCommand } from "./commands.ts";
import { runCli } from "./run.ts";

process.exitCode = await runCli(rootCommand, process.argv.slice(2));
// The work is done and reported. Normally nothing is left and the process ends here; what may be left is
// Bun's S3 writer of an aborted upload (it cannot be cancelled, only abandoned: src/io/s3.ts), which
// otherwise keeps the process alive until its own idle timeout, 2.5 min on the RGW. An unref'd timer
// never delays a normal exit, and ends the process if something else would.
setTimeout(() => process.exit(process.exitCode), 1000).unref();
