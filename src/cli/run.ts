// Runs a citty command tree with ramsnap's rules: unknown flags and extra words are errors, every failure
// is one line on stderr with the error type's exit status (2 for usage, 1 for facts, 130/143 for a
// signal), and also a JSON object on stdout under --json; help ends with examples.
import { renderUsage, runCommand, type ArgsDef, type CommandDef } from "citty";
import { CLIError } from "./citty-error.ts";
import { LibcError, ShortIoError, SysError } from "../../ffi/libc.ts";
import { OptionError, RamsnapError } from "../errors.ts";
import { FormatError } from "../format/errors.ts";
import { checkSharedArgs } from "./args.ts";
import { log, result } from "./log.ts";
import { abs, printJson } from "./report.ts";

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

interface ArgShape {
  /** Flag name (and aliases, and --no-x for booleans) to its type. */
  flags: Map<string, string>;
  /** Positional arguments the command takes, in order. */
  positionals: string[];
}

function shapeOf(args: ArgsDef): ArgShape {
  const flags = new Map<string, string>();
  const positionals: string[] = [];
  for (const [name, def] of Object.entries(args)) {
    if (def.type === "positional") {
      positionals.push(name);
      continue;
    }
    const alias = (def as { alias?: string | string[] }).alias;
    const names = [name, ...(Array.isArray(alias) ? alias : alias ? [alias] : [])];
    for (const n of names) {
      flags.set(n, def.type ?? "string");
      if (def.type === "boolean") flags.set(`no-${n}`, "boolean");
    }
  }
  return { flags, positionals };
}

/** The words of `argv` that are not flags or flag values: what citty binds to positionals, in order. */
function positionalWords(shape: ArgShape, argv: string[]): string[] {
  const words: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") return [...words, ...argv.slice(i + 1)];
    if (!a.startsWith("-") || a === "-") {
      words.push(a);
      continue;
    }
    const type = shape.flags.get(a.replace(/^--?/, "").split("=")[0]!);
    if (type && type !== "boolean" && !a.includes("=")) i++; // the next word is this flag's value
  }
  return words;
}

/** Edit distance, for suggesting the flag a user meant. */
function distance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const cur = [i];
    for (let j = 1; j <= b.length; j++) cur[j] = Math.min(prev[j]! + 1, cur[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    prev = cur;
  }
  return prev[b.length]!;
}

/** "unknown option --chanels; did you mean --channels?" when one known flag is close (a typo, not another word). */
function unknownFlagMessage(shape: ArgShape, flag: string): string {
  const name = flag.replace(/^--?/, "");
  let best: string | undefined;
  let bestD = Number.POSITIVE_INFINITY;
  for (const known of shape.flags.keys()) {
    if (known.length < 2) continue; // -o is an alias, not something a typo of a long flag means
    const d = distance(name, known);
    if (d < bestD) [best, bestD] = [known, d];
  }
  const close = best !== undefined && bestD <= Math.max(1, Math.floor(name.length / 4));
  return `unknown option ${flag}${close ? `; did you mean --${best}?` : ""}`;
}

/**
 * Everything citty lets through that ramsnap refuses, before the command runs: flags the command does not
 * define (including --no-x for a non-boolean), more positional words than it takes (a pasted
 * `[--manifest]` is a word too: it used to be dropped without a word), and the shared options' ranges.
 */
export function checkArgv(args: ArgsDef, argv: string[]): void {
  const shape = shapeOf(args);
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === "--") break;
    if (!a.startsWith("-") || a === "-") continue;
    const type = shape.flags.get(a.replace(/^--?/, "").split("=")[0]!);
    if (!type) throw new OptionError(unknownFlagMessage(shape, a.split("=")[0]!));
    if (type !== "boolean" && !a.includes("=")) i++;
  }
  const extra = positionalWords(shape, argv).slice(shape.positionals.length);
  if (extra.length) {
    const takes = shape.positionals.length ? `it takes ${shape.positionals.map((p) => p.toUpperCase()).join(" ")}` : "it takes none";
    throw new OptionError(`unexpected argument${extra.length === 1 ? "" : "s"} ${extra.map((w) => JSON.stringify(w)).join(" ")}: ${takes}`);
  }
  checkSharedArgs(args as Record<string, unknown>, argv);
}

export async function usage(cmd: AnyCommand, parent?: AnyCommand): Promise<string> {
  const text = await renderUsage(cmd, parent);
  const examples = EXAMPLES.get(cmd);
  const full = examples ? `${text}\n\nEXAMPLES\n\n${examples.trimEnd()}\n` : `${text}\n`;
  return process.stdout.isTTY && !process.env.NO_COLOR ? full : stripAnsi(full);
}

interface Described {
  message: string;
  code: number;
  /** The file and byte offset the error is about, when the error knows them (FormatError, ShortIoError). */
  file?: string;
  offset?: number;
}

/** Turns any error into the one line a user sees, the exit code, and where it happened when known. */
function describeError(e: unknown): Described {
  // `await using` raises a SuppressedError when clean-up fails after the work failed: the work's error is
  // the one a user needs (the clean-up's is usually the same cause: an endpoint that went away).
  if (e instanceof SuppressedError) return describeError(e.suppressed);
  const where: { file?: string; offset?: number } = {};
  if (e instanceof FormatError) Object.assign(where, { file: abs(e.file), offset: e.offset });
  else if (e instanceof ShortIoError) Object.assign(where, { ...(e.path ? { file: abs(e.path) } : {}), offset: e.offset });
  else if (e instanceof SysError && e.path) where.file = abs(e.path);
  if (e instanceof RamsnapError) return { message: e.message, code: e.exitCode, ...where };
  if (e instanceof CLIError) return { message: stripAnsi(e.message), code: 2 };
  if (e instanceof LibcError) return { message: e.message, code: 1, ...where };
  if (e instanceof Error) return { message: `${e.message} (internal error: please report it with the command you ran)`, code: 1 };
  return { message: String(e), code: 1 };
}

/** --json anywhere before `--`: then even an error is a JSON object on stdout (docs/json.md). */
const wantsJson = (argv: string[]): boolean => {
  const end = argv.indexOf("--");
  return (end < 0 ? argv : argv.slice(0, end)).some((a) => a === "--json" || a === "--json=true");
};

export async function runCli(root: AnyCommand, argv: string[]): Promise<number> {
  const meta = await resolve(root.meta);
  if (argv.length === 1 && (argv[0] === "--version" || argv[0] === "-v")) {
    result(meta?.version ?? "");
    return 0;
  }
  // `ramsnap help CMD` is `ramsnap CMD --help`, as in git and cargo.
  const helpWord = argv[0] === "help";
  const { cmd, parent, rest, path } = await resolveChain(root, helpWord ? argv.slice(1) : argv);
  const cmdName = path.join(" ");
  const where = cmd === root ? "ramsnap --help" : `ramsnap ${cmdName} --help`;
  const hasSubcommands = Boolean(await resolve(cmd.subCommands));
  const json = wantsJson(rest);
  try {
    if (helpWord && rest.length) throw new OptionError(`unknown command "${rest.join(" ")}"`);
    if (helpWord || argv.includes("--help") || argv.includes("-h") || (hasSubcommands && rest.length === 0)) {
      result(await usage(cmd, parent));
      return 0;
    }
    if (hasSubcommands) {
      const word = rest.find((a) => !a.startsWith("-"));
      throw new OptionError(word ? `unknown command "${word}"` : `unknown option ${rest[0]}`);
    }
    checkArgv((await resolve(cmd.args)) ?? {}, rest);
    await runCommand(cmd, { rawArgs: rest });
    // A command that ran but found a problem (verify, diff) sets the exit code without throwing.
    return typeof process.exitCode === "number" ? process.exitCode : 0;
  } catch (e) {
    const d = describeError(e);
    const hint = d.code === 2 ? ` (see '${where}')` : "";
    if (json) printJson({ error: { message: d.message, code: d.code, ...(d.file !== undefined ? { file: d.file } : {}), ...(d.offset !== undefined ? { offset: d.offset } : {}) } });
    log.error(`ramsnap${cmdName ? ` ${cmdName}` : ""}: ${d.message}${hint}`);
    if (process.env.RAMSNAP_DEBUG && e instanceof Error && e.stack) log.info(e.stack);
    return d.code;
  }
}
