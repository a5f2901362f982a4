#!/usr/bin/env bun
import { rootCommand } from "./commands.ts";
import { runCli } from "./run.ts";

process.exitCode = await runCli(rootCommand, process.argv.slice(2));
