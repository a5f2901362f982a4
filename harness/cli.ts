// Harness: the CLI run as a real process, the way a user runs it.
import { expect } from "bun:test";
export const MAIN = `${import.meta.dir}/../src/cli/main.ts`;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** How to start it: the folder it runs in, and whether NO_COLOR is set (it is unless `colour` is true). */
export interface SpawnOptions {
  cwd?: string;
  colour?: boolean;
}

/** `ramsnap ARGS...` from sources, started and left running, without colours, debug stacks or test fault injection. */
export function spawnRamsnap(...args: string[]) {
  return spawnRamsnapWith({}, ...args);
}

export function spawnRamsnapWith(o: SpawnOptions, ...args: string[]) {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: "1" };
  if (o.colour) delete env.NO_COLOR;
  delete env.RAMSNAP_DEBUG;
  delete env.RAMSNAP_TEST_FAULTS;
  return Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env, cwd: o.cwd });
}

/** `ramsnap ARGS...` run to its end. */
export async function ramsnap(...args: string[]): Promise<Run> {
  return ramsnapWith({}, ...args);
}

/** `ramsnap ARGS...` run to its end, started as `o` says. */
export async function ramsnapWith(o: SpawnOptions, ...args: string[]): Promise<Run> {
  const p = spawnRamsnapWith(o, ...args);
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}

/**
 * A failure as a user sees it: one line on stderr, prefixed by the command (`save`, `qemu save`, ...),
 * no stack, no internal error, nothing on stdout, exit `code`.
 */
export function expectOneLineError(r: Run, command: string, code: number, pattern: RegExp): void {
  expect({ code: r.code, stdout: r.stdout }).toEqual({ code, stdout: "" });
  expect(r.stderr.endsWith("\n")).toBe(true);
  expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
  expect(r.stderr.startsWith(`ramsnap ${command}: `)).toBe(true);
  expect(r.stderr).not.toContain("    at ");
  expect(r.stderr).not.toContain("internal error");
  expect(r.stderr).toMatch(pattern);
}

/**
 * stderr without the progress bar's lines. With --progress on a pipe, cli-progress writes whole lines
 * ("save [###---] 40% ..."), one a second and one when it stops; what a user must read is what is left.
 */
export function withoutProgress(stderr: string): string {
  return stderr
    .split("\n")
    .filter((l) => !/^(save|restore|extract|convert) *\[[#-]*\] /.test(l))
    .join("\n");
}
