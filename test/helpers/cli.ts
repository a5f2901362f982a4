// Test helper: the CLI run as a real process, the way a user runs it.
export const MAIN = `${import.meta.dir}/../../src/cli/main.ts`;

export interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** `ramsnap ARGS...` from sources, without colours, debug stacks or test fault injection. */
export async function ramsnap(...args: string[]): Promise<Run> {
  const env: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: "1" };
  delete env.RAMSNAP_DEBUG;
  delete env.RAMSNAP_TEST_FAULTS;
  const p = Bun.spawn([process.execPath, MAIN, ...args], { stdout: "pipe", stderr: "pipe", stdin: "ignore", env });
  const [stdout, stderr, code] = await Promise.all([new Response(p.stdout).text(), new Response(p.stderr).text(), p.exited]);
  return { code, stdout, stderr };
}
