// Runs a citty command tree with ramsnap's rules: unknown flags are errors, every failure is one line on
// stderr with a non-zero exit (2 for usage, 1 for everything else), and help ends with examples.
import { renderUsage, runCommand, type ArgsDef, type CommandDef } from "citty";
import { CLIError } from "./citty-error.ts";
import { LibcError } from "../../ffi/libc.ts";
import { OptionError, RamsnapError } from "../errors.ts";
import { log } from "./log.ts";

// biome-ignore lint: citty's generic command type
type AnyCommand = CommandDef<any>;

/** Extra help text, keyed by command, printed after citty's usage. */
export const EXAMPLES = new WeakMap<AnyCommand, string>();

const stripAnsi = (s: string): string => s.replace(/\x1b\[[0-9;]*m/g, "");

/** The command the words name, its parent, the words left for it, and its full name ("qemu save"). */
async function resolveChain(root: AnyCommand, argv: string[]): Promise<{ cmd: AnyCommand; parent?: AnyCommand; rest: string[]; path: string[] }> {
  let cmd = root;
  let parent: AnyCommand | undefined;
  let rest = argv;
  const path: string[] = [];
  for (;;) {
    const subs = (await resolve(cmd.subCommands)) as Record<string, AnyCommand> | undefined;
    if (!subs) return { cmd, parent, rest, path };
    const i = rest.findIndex((a) => !a.startsWith("-"));
    const name = i >= 0 ? rest[i]! : undefined;
    if (!name || !(name in subs)) return { cmd, parent, rest, path };
    parent = cmd;
    cmd = (await resolve(subs[name])) as AnyCommand;
    path.push(name);
    rest = rest.slice(i + 1);
  }
}

async function resolve<T>(v: T | (() => T | Promise<T>) | Promise<T>): Promise<T> {
  return typeof v === "function" ? await (v as () => T | Promise<T>)() : await v;
}

/** Flags the command does not define, including `--no-x` for non-booleans. */
function unknownFlags(args: ArgsDef, argv: string[]): string[] {
  const known = new Map<string, string>();
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") continue;
    const alias = (def as { alias?: string | string[] }).alias;
    const names = [name, ...(Array.isArray(alias) ? alias : alias ? [alias] : [])];
    for (const n of names) {
      known.set(n, def.type ?? "string");
      if (def.type === "boolean") known.set(`no-${n}`, "boolean");
    }
  }
  const bad: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (!a.startsWith("-") || a === "-") continue;
    const name = a.replace(/^--?/, "").split("=")[0]!;
    const type = known.get(name);
    if (!type) bad.push(a.split("=")[0]!);
    else if (type !== "boolean" && !a.includes("=")) i++; // the next word is this flag's value
  }
  return bad;
}

export async function usage(cmd: AnyCommand, parent?: AnyCommand): Promise<string> {
  const text = await renderUsage(cmd, parent);
  const examples = EXAMPLES.get(cmd);
  const full = examples ? `${text}\n\nEXAMPLES\n\n${examples.trimEnd()}\n` : `${text}\n`;
  return process.stdout.isTTY && !process.env.NO_COLOR ? full : stripAnsi(full);
}

/** Turns any error into the one line a user sees, and the exit code. */
function describeError(e: unknown): { message: string; code: number } {
  if (e instanceof RamsnapError) return { message: e.message, code: e.exitCode };
  if (e instanceof CLIError) return { message: stripAnsi(e.message), code: 2 };
  if (e instanceof LibcError) return { message: e.message, code: 1 };
  if (e instanceof Error) return { message: `${e.message} (internal error: please report it with the command you ran)`, code: 1 };
  return { message: String(e), code: 1 };
}

export async function runCli(root: AnyCommand, argv: string[]): Promise<number> {
  const meta = await resolve(root.meta);
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
    console.log(meta?.version ?? "");
    return 0;
  }
  const { cmd, parent, rest, path } = await resolveChain(root, argv);
  const cmdName = path.join(" ");
  const where = cmd === root ? "ramsnap --help" : `ramsnap ${cmdName} --help`;
  const hasSubcommands = Boolean(await resolve(cmd.subCommands));
  if (argv.includes("--help") || argv.includes("-h") || (hasSubcommands && rest.length === 0)) {
    process.stdout.write(await usage(cmd, parent));
    return 0;
  }
  try {
    if (hasSubcommands) {
      const word = rest.find((a) => !a.startsWith("-"));
      throw new OptionError(word ? `unknown command "${word}"` : `unknown option ${rest[0]}`);
    }
    const bad = unknownFlags((await resolve(cmd.args)) ?? {}, rest);
    if (bad.length) throw new OptionError(`unknown option ${bad.join(", ")}`);
    await runCommand(cmd, { rawArgs: rest });
    // A command that ran but found a problem (verify, diff) sets the exit code without throwing.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    const { message, code } = describeError(e);
    const hint = code === 2 ? ` (see '${where}')` : "";
    log.error(`ramsnap${cmdName ? ` ${cmdName}` : ""}: ${message}${hint}`);
    if (process.env.RAMSNAP_DEBUG && e instanceof Error && e.stack) log.info(e.stack);
    return code;
  }
}
