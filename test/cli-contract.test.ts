// Issue #10, "nothing lost, nothing silent": what the CLI promises a user and a script. verify says what
// it checked, extra words are errors, --json is one schema (docs/json.schema.json) errors included, help
// and option checks are shared, and the messages users flagged. Real files, real processes.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import type { ArgsDef, CommandDef } from "citty";
import { rootCommand } from "../src/cli/commands.ts";
import { checkArgv } from "../src/cli/run.ts";
import { verify } from "../src/verify.ts";
import { inspectFile } from "../src/inspect.ts";
import { copy, flipByte, truncatedCopy } from "../harness/corrupt.ts";
import { expectOneLineError, ramsnap, ramsnapWith, spawnRamsnapWith } from "../harness/cli.ts";
import { type JsonKind, schemaProblems } from "../harness/json-schema.ts";
import { countPages, scratchDir, writeImage } from "../harness/scratch.ts";
import { MiB, PAGE } from "../harness/units.ts";

const disk = scratchDir("ramsnap-contract");
afterAll(() => disk.cleanup());
const at = (name: string) => join(disk.path, name);

const img = at("img.raw");
const map = writeImage(img, 8 * MiB, { kind: "scattered", seed: 310, nonZero: 0.4 });
const present = countPages(map);
const saved = at("saved.ram"); // no manifest beside it
const withSums = at("sums.ram"); // with sums.ram.sums

beforeAll(async () => {
  expect((await ramsnap("save", "-o", saved, "--block", `ram0=${img}`, "--channels", "2", "--no-manifest")).code).toBe(0);
  expect((await ramsnap("save", "-o", withSums, "--block", `ram0=${img}`, "--channels", "2", "--manifest")).code).toBe(0);
});

/** The first present page of ram0 in a saved file, and where its bytes sit in the file. */
function firstPresentPage(file: string): { page: number; fileOffset: number } {
  const page = map.findIndex((x) => x !== 0);
  const ram0 = inspectFile(file).blocks.find((b) => b.name === "ram0")!;
  return { page, fileOffset: ram0.pagesOffset! + page * PAGE };
}

describe("verify says what it checked (item 4)", () => {
  test("a corrupted page, no manifest, no --block: 'pages not checked', exit 3; --json says differing null, pagesChecked none", async () => {
    const bad = copy(saved, at("corrupt-nosums.ram"));
    flipByte(bad, firstPresentPage(bad).fileOffset + 100);

    const cli = await ramsnap("verify", bad);
    expect(cli.stderr).toBe("");
    expect(cli.code).toBe(3);
    expect(cli.stdout).toContain("structure OK (mapped-ram, 1 RAM block, 0 device sections, trailer)");
    expect(cli.stdout.trimEnd().split("\n").at(-1)).toBe("structure OK; pages not checked (no manifest, no --block)");
    expect(cli.stdout).not.toMatch(/^OK$/m);

    const j = await ramsnap("verify", bad, "--json");
    expect(j.code).toBe(3);
    const report = JSON.parse(j.stdout);
    expect(schemaProblems("verify", report)).toEqual([]);
    expect(report.pagesChecked).toBe("none");
    expect(report.blocks).toEqual([{ name: "ram0", length: 8 * MiB, pages: map.length, present, checkedAgainst: [], differing: null }]);

    // the library says it too
    const lib = verify({ path: bad });
    expect(lib.pagesChecked).toBe("none");
    expect(lib.blocks[0]).toMatchObject({ checkedAgainst: [], differing: null });
  });

  test("the same corruption is found with the manifest (exit 1) or the image (exit 1); an intact file checked either way exits 0", async () => {
    const bad = copy(withSums, at("corrupt-sums.ram"));
    copy(`${withSums}.sums`, `${bad}.sums`);
    const { page, fileOffset } = firstPresentPage(bad);
    flipByte(bad, fileOffset + 100);

    const m = await ramsnap("verify", bad);
    expect(m.code).toBe(1);
    expect(m.stdout).toContain(`manifest ${bad}.sums: block ram0, first bad extent 0`);
    expect(m.stdout.trimEnd().endsWith("FAILED")).toBe(true);
    expect(verify({ path: bad }).blocks[0]!.checkedAgainst).toEqual(["manifest"]);

    const i = await ramsnap("verify", saved, "--block", `ram0=${img}`, "--json");
    expect(i.code).toBe(0);
    expect(JSON.parse(i.stdout)).toMatchObject({ ok: true, pagesChecked: "all", blocks: [{ checkedAgainst: ["image"], differing: 0 }] });
    const badNoSums = copy(saved, at("corrupt-img.ram"));
    flipByte(badNoSums, fileOffset + 100);
    const d = await ramsnap("verify", badNoSums, "--block", `ram0=${img}`);
    expect(d.code).toBe(1);
    expect(d.stdout).toContain(`ram0: 1 of ${map.length} pages differs from ${img}; first: page ${page}`);

    const ok = await ramsnap("verify", withSums);
    expect(ok.code).toBe(0);
    expect(ok.stdout.trimEnd().endsWith("\nOK")).toBe(true);
  });

  test("verify --help documents exit status 3", async () => {
    const h = await ramsnap("verify", "--help");
    expect(h.code).toBe(0);
    expect(h.stdout).toMatch(/3 when the structure is sound but no page could be checked \(no manifest,\s+no --block\)/);
    expect(readFileSync(join(import.meta.dir, "..", "README.md"), "utf8")).toMatch(/`verify` exits 3/);
  });
});

type AnyCommand = CommandDef<ArgsDef>;

/** The command `words` name in the tree, and the words left for it (as run.ts resolves them). */
async function commandOf(words: string[]): Promise<{ cmd: AnyCommand; rest: string[] }> {
  let cmd = rootCommand as unknown as AnyCommand;
  let rest = words;
  for (;;) {
    const subs = cmd.subCommands as Record<string, AnyCommand> | undefined;
    if (!subs || !rest[0] || !(rest[0] in subs)) return { cmd, rest };
    cmd = subs[rest[0]]!;
    rest = rest.slice(1);
  }
}

/** The `ramsnap ...` command lines of a text: comments, pipes and shell redirections cut off. */
function commandLines(text: string, indented: boolean): string[][] {
  const out: string[][] = [];
  for (const raw of text.split("\n")) {
    const line = indented ? raw.replace(/^ {2}/, "") : raw;
    if (!line.startsWith("ramsnap ")) continue;
    // a help example's explanation follows three spaces; a README comment follows "#"
    const cmd = line.split(/ {3,}| #|\|/)[0]!.trim();
    out.push(cmd.split(/\s+/).slice(1).filter((w) => !/^\d*[<>]/.test(w)));
  }
  return out;
}

describe("extra words are errors (item 8)", () => {
  test("verify a.ram b.ram: exit 2 naming the extra word; nothing checked", async () => {
    expectOneLineError(await ramsnap("verify", saved, at("other.ram")), "verify", 2, /unexpected argument ".*other\.ram": it takes FILE/);
    expectOneLineError(await ramsnap("diff", saved, saved, saved), "diff", 2, /unexpected argument ".*saved\.ram": it takes A B/);
  });

  test("a pasted '[--manifest]' is an extra word: exit 2, and no file is written", async () => {
    const out = at("bracket.ram");
    expectOneLineError(await ramsnap("save", "-o", out, "--block", `ram0=${img}`, "[--manifest]"), "save", 2, /unexpected argument "\[--manifest\]": it takes none/);
    expect(existsSync(out)).toBe(false);
  });

  test("every ramsnap line in the README and in every command's help examples parses: known flags, no extra words", async () => {
    const readme = readFileSync(join(import.meta.dir, "..", "README.md"), "utf8");
    const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]!);
    const lines = blocks.flatMap((b) => commandLines(b, false));
    expect(lines.length).toBeGreaterThan(8);
    const problems: string[] = [];
    for (const words of lines) {
      // "[--manifest]" in a README line reads as optional to a person and as a file name to a shell
      if (words.some((w) => /^\[.*\]$/.test(w))) problems.push(`README: ramsnap ${words.join(" ")}: a bracketed word cannot be pasted`);
      const { cmd, rest } = await commandOf(words);
      try {
        if (cmd.subCommands) throw new Error("names no command");
        checkArgv((cmd.args ?? {}) as ArgsDef, rest);
      } catch (e) {
        problems.push(`README: ramsnap ${words.join(" ")}: ${(e as Error).message}`);
      }
    }
    for (const name of ["save", "restore", "inspect", "verify", "extract", "convert", "diff", "doctor", "demo", "qemu save", "qemu restore"]) {
      const help = await ramsnap(...name.split(" "), "--help");
      const examples = help.stdout.slice(help.stdout.indexOf("EXAMPLES"));
      for (const words of commandLines(examples, true)) {
        const { cmd, rest } = await commandOf(words);
        try {
          checkArgv((cmd.args ?? {}) as ArgsDef, rest);
        } catch (e) {
          problems.push(`${name} --help: ramsnap ${words.join(" ")}: ${(e as Error).message}`);
        }
      }
    }
    expect(problems).toEqual([]);
  });
});

describe("one CLI: shared options, help, reporters (item 9)", () => {
  test("--channels is 1 to 64 for every command that takes it, qemu included (checked before anything runs)", async () => {
    const cases: [string, string[]][] = [
      ["save", ["save", "-o", at("c.ram"), "--block", `ram0=${img}`]],
      ["restore", ["restore", saved, "--block", `ram0=${at("c.out")}`]],
      ["extract", ["extract", saved, "-o", at("c-dir")]],
      ["convert", ["convert", saved, at("c.sav"), "--to", "classic"]],
      ["demo", ["demo", "--size", "1M"]],
      ["qemu save", ["qemu", "save", "--qmp", at("no.qmp"), at("q.ram")]],
      ["qemu restore", ["qemu", "restore", "--qmp", at("no.qmp"), at("q.ram")]],
    ];
    for (const [name, args] of cases) {
      for (const n of ["0", "65", "100"]) {
        expectOneLineError(await ramsnap(...args, "--channels", n), name, 2, new RegExp(`--channels must be a whole number from 1 to 64, got ${n} `));
      }
      const help = await ramsnap(...name.split(" "), "--help");
      expect(help.stdout).toMatch(/--channels=<n>\s+Channels moving pages in parallel \(ramsnap's Workers, or QEMU's multifd threads\), 1 to 64 \(Default: 4\)/);
    }
    expect(existsSync(at("c.out")) || existsSync(at("c-dir")) || existsSync(at("c.sav"))).toBe(false);
  });

  test("shared options have one description in every command's help", async () => {
    const texts = await Promise.all(["save", "restore", "inspect", "verify", "extract", "convert", "diff", "doctor", "demo", "qemu save"].map(async (c) => (await ramsnap(...c.split(" "), "--help")).stdout));
    const json = texts.map((t) => /--json\s+(.*?)\s*$/m.exec(t)?.[1]);
    expect(new Set(json)).toEqual(new Set(["Print one JSON object on stdout instead of text, errors included (docs/json.md)"]));
    const offset = texts.map((t) => /--offset=<bytes>\s+(.*?)\s*$/m.exec(t)?.[1]).filter(Boolean);
    expect(offset.length).toBeGreaterThanOrEqual(5); // save, restore, inspect, verify, extract, convert
    expect(new Set(offset).size).toBe(1);
  });

  test("required options and positionals show as required; `ramsnap help CMD` is `ramsnap CMD --help`", async () => {
    const save = await ramsnap("help", "save");
    expect(save.code).toBe(0);
    expect(save.stdout).toBe((await ramsnap("save", "--help")).stdout);
    expect(save.stdout).toMatch(/--block=<name=path>\s+A RAM block.*\(Required\)/);
    expect(save.stdout).toMatch(/-o, --output=<file>\s+The file to write \(required unless --fd/);
    const q = await ramsnap("help", "qemu", "save");
    expect(q.code).toBe(0);
    expect(q.stdout).toMatch(/--qmp=<socket>\s+.*\(Required\)/);
    expect(q.stdout).toMatch(/FILE\s+The migration file \(Required\)/);
    expect((await ramsnap("help", "restore")).stdout).toMatch(/--block=<name=path>\s+A block to restore.*\(Required\)/);
    const bad = await ramsnap("help", "nonsense");
    expect({ code: bad.code, stdout: bad.stdout }).toEqual({ code: 2, stdout: "" });
    expect(bad.stderr).toMatch(/^ramsnap: unknown command "nonsense" \(see 'ramsnap --help'\)\n$/);
  });

  test("a mistyped flag suggests the one meant; a word far from any flag does not guess", async () => {
    expectOneLineError(await ramsnap("save", "-o", at("t.ram"), "--block", `ram0=${img}`, "--chanels", "2"), "save", 2, /unknown option --chanels; did you mean --channels\? \(see/);
    expectOneLineError(await ramsnap("restore", saved, "--block", `ram0=${at("t.out")}`, "--direct-oi"), "restore", 2, /unknown option --direct-oi; did you mean --direct-io\?/);
    expectOneLineError(await ramsnap("inspect", saved, "--bogus"), "inspect", 2, /unknown option --bogus \(see/);
  });

  test("piped, with colour allowed: no escape codes in help, results, errors or a --progress bar", async () => {
    const esc = /\x1b\[/;
    for (const args of [["--help"], ["verify", "--help"], ["inspect", saved], ["verify", saved, "--nope"]]) {
      const r = await ramsnapWith({ colour: true }, ...args);
      expect(r.stdout + r.stderr).not.toMatch(esc);
    }
    const big = at("big.raw");
    writeImage(big, 96 * MiB, { kind: "dense", seed: 311 });
    const r = await ramsnapWith({ colour: true }, "save", "-o", at("p.ram"), "--block", `ram0=${big}`, "--channels", "1", "--progress");
    expect(r.code).toBe(0);
    expect(r.stderr).not.toMatch(esc);
    expect(r.stderr).not.toContain("\r");
    // cli-progress on a pipe: whole lines, the last one at 100%
    const lines = r.stderr.trimEnd().split("\n");
    expect(lines.at(-1)).toMatch(/^save \[#{30}\] 100% {2}96\.0 MiB \/ 96\.0 MiB {2}[\d.]+ GiB\/s {2}ETA 0s$/);
    expect(r.stdout).toMatch(/^saved 1 block \(96\.0 MiB\)/);
  });
});

describe("--json is one schema, errors included (item 10)", () => {
  /** Runs with --json from `cwd` (relative paths in, absolute paths out), checks the schema, returns the object. */
  async function json(kind: JsonKind, cwd: string, ...args: string[]): Promise<{ code: number; value: Record<string, unknown> }> {
    const r = await ramsnapWith({ cwd }, ...args, "--json");
    let value: Record<string, unknown>;
    try {
      value = JSON.parse(r.stdout);
    } catch {
      throw new Error(`ramsnap ${args.join(" ")} --json printed no JSON: ${r.stdout}${r.stderr}`);
    }
    expect({ args, problems: schemaProblems(kind, value) }).toEqual({ args, problems: [] });
    return { code: r.code, value };
  }

  test("every command's --json output conforms to docs/json.schema.json, with absolute paths", async () => {
    const dir = at("json");
    mkdirSync(dir);
    copy(img, join(dir, "img.raw"));
    const s = await json("save", dir, "save", "-o", "a.ram", "--block", "ram0=img.raw", "--manifest");
    expect(s.code).toBe(0);
    expect(s.value).toMatchObject({ file: join(dir, "a.ram"), manifest: join(dir, "a.ram.sums"), pagesPresent: present });
    const r = await json("restore", dir, "restore", "a.ram", "--block", "ram0=out.raw", "--verify");
    expect(r.value).toMatchObject({ file: join(dir, "a.ram"), blocks: [{ target: join(dir, "out.raw") }], verifiedWith: join(dir, "a.ram.sums") });
    const i = await json("inspect", dir, "inspect", "a.ram");
    expect(i.value).toMatchObject({ file: join(dir, "a.ram"), offset: 0, complete: true });
    const v = await json("verify", dir, "verify", "a.ram", "--block", "ram0=img.raw");
    expect(v.value).toMatchObject({ file: join(dir, "a.ram"), pagesChecked: "all", manifest: { path: join(dir, "a.ram.sums"), ok: true } });
    const e = await json("extract", dir, "extract", "a.ram", "-o", "x");
    expect(e.value).toMatchObject({ file: join(dir, "a.ram"), dir: join(dir, "x"), blocks: [{ name: "ram0", file: join(dir, "x", "ram0.raw"), present }] });
    const c = await json("convert", dir, "convert", "a.ram", "a.sav", "--to", "classic");
    expect(c.value).toMatchObject({ file: join(dir, "a.sav"), input: join(dir, "a.ram"), blocks: [{ name: "ram0", present }] });
    const l = await json("convert", dir, "save", "--like", "a.sav", "-o", "like.ram", "--block", "ram0=img.raw");
    expect(l.value).toMatchObject({ file: join(dir, "like.ram"), blocks: [{ from: join(dir, "img.raw") }] });
    const d = await json("diff", dir, "diff", "a.ram", "a.sav");
    expect(d.value).toMatchObject({ a: join(dir, "a.ram"), b: join(dir, "a.sav"), same: true });
    const doc = await json("doctor", dir, "doctor", ".", "--size", "1M");
    expect(doc.value).toMatchObject({ path: dir, dir, imageBytes: MiB });
    const demo = await json("demo", dir, "demo", "--size", "1M", "--dir", ".", "--channels", "1");
    expect(demo.value).toMatchObject({ totalBytes: MiB, identical: true, channels: 1 });
    for (const x of [s, r, i, v, e, c, l, d, doc, demo]) expect(x.code).toBe(0);
  });

  test("with --json an error is a JSON object on stdout: message, code = the exit status, file and offset when known", async () => {
    const cut = truncatedCopy(saved, at("cut.ram"), 3 * MiB);
    const cases: [string[], number, Record<string, unknown>][] = [
      [["inspect", cut], 1, { file: cut, offset: expect.any(Number) }],
      [["verify", cut], 1, { file: cut }],
      [["restore", cut, "--block", `ram0=${at("e.out")}`], 1, { file: cut }],
      [["restore", at("missing.ram"), "--block", `ram0=${at("e.out")}`], 1, { file: at("missing.ram") }],
      [["save", "-o", at("e.ram"), "--block", `ram0=${img}`, "--channels", "65"], 2, {}],
      [["save", "-o", at("e.ram"), "--block", `ram0=${img}`, "--chanels", "2"], 2, {}],
      [["verify", saved, "extra"], 2, {}],
      [["extract", cut, "-o", at("e-dir")], 1, { file: cut }],
      [["convert", cut, at("e.sav"), "--to", "classic"], 1, { file: cut }],
      [["diff", cut, saved], 1, { file: cut }],
      [["doctor", at("no-such-dir")], 1, {}],
      [["demo", "--size", "1000"], 2, {}],
    ];
    for (const [args, code, where] of cases) {
      const r = await ramsnap(...args, "--json");
      expect({ args, code: r.code }).toEqual({ args, code });
      const value = JSON.parse(r.stdout);
      expect({ args, problems: schemaProblems("error", value) }).toEqual({ args, problems: [] });
      expect(structuredClone(value.error)).toMatchObject({ code, message: expect.any(String), ...where });
      // and the one line on stderr for a person, as without --json
      expect(r.stderr.trimEnd().split("\n")).toHaveLength(1);
    }
    const fe = JSON.parse((await ramsnap("inspect", cut, "--json")).stdout).error;
    expect(fe.message).toContain(`at offset ${fe.offset} `);
  });

  test("docs/json.md names every kind the schema defines", () => {
    const doc = readFileSync(join(import.meta.dir, "..", "docs", "json.md"), "utf8");
    for (const kind of ["save", "restore", "inspect", "verify", "extract", "convert", "diff", "doctor", "demo", "error"]) expect(doc).toContain(`\`${kind}\``);
  });
});

describe("messages users flagged (item 11, and doctor's part of item 5)", () => {
  test("a directory as the output: one line saying so, before any page is written", async () => {
    const dir = at("outdir");
    mkdirSync(dir);
    expectOneLineError(await ramsnap("save", "-o", dir, "--block", `ram0=${img}`), "save", 2, new RegExp(`^ramsnap save: -o ${dir} is a directory; give a file name`));
    expectOneLineError(await ramsnap("convert", saved, dir, "--to", "classic"), "convert", 2, new RegExp(`${dir} is a directory; give a file name`));
  });

  test("doctor on a missing folder: an error naming it, exit 1, instead of the parent's verdict", async () => {
    const missing = at("not-made-yet");
    expectOneLineError(await ramsnap("doctor", missing), "doctor", 1, new RegExp(`^ramsnap doctor: ${missing} does not exist`));
  });

  test("counts agree with their nouns: 1 RAM block, 1 block, 1 channel", async () => {
    const v = await ramsnap("verify", saved, "--block", `ram0=${img}`);
    expect(v.stdout).toContain("(mapped-ram, 1 RAM block, 0 device sections, trailer)");
    const e = await ramsnap("extract", saved, "-o", at("one"));
    expect(e.stdout).toMatch(/^extracted 1 block of /);
    const s = await ramsnap("save", "-o", at("one.ram"), "--block", `ram0=${img}`, "--channels", "1");
    expect(s.stdout).toMatch(/1 channel, buffered I\/O/);
    expect(s.stdout).not.toMatch(/\b1 (blocks|channels|calls|RAM blocks)\b/);
  });

  test("sizes: 1.5K and 1.5G are whole bytes; a fraction of a byte is refused", async () => {
    const base = at("offset.ram");
    const s = await ramsnap("save", "-o", base, "--block", `ram0=${img}`, "--offset", "1.5K", "--json");
    expect(s.code).toBe(0);
    expect(JSON.parse(s.stdout).offset).toBe(1536);
    expect((await ramsnap("inspect", base, "--offset", "1.5K")).code).toBe(0);
    expectOneLineError(await ramsnap("inspect", base, "--offset", "0.1K"), "inspect", 2, /--offset 0\.1K is not a whole number of bytes/);
    expectOneLineError(await ramsnap("doctor", disk.path, "--size", "1.3"), "doctor", 2, /--size 1\.3 is not a whole number of bytes/);
    const d = JSON.parse((await ramsnap("doctor", disk.path, "--size", "1.5G", "--json")).stdout);
    expect(d.imageBytes).toBe(1.5 * 2 ** 30);
  });

  test("doctor exits 1 when --size does not fit in the free space (NOT ENOUGH), 0 when it does", async () => {
    const free = JSON.parse((await ramsnap("doctor", disk.path, "--json")).stdout).freeBytes as number;
    const tooBig = `${Math.ceil((free * 2) / 2 ** 30)}G`;
    const no = await ramsnap("doctor", disk.path, "--size", tooBig);
    expect(no.code).toBe(1);
    expect(no.stdout).toContain("(NOT ENOUGH)");
    const yes = await ramsnap("doctor", disk.path, "--size", "1M");
    expect(yes.code).toBe(0);
    expect(yes.stdout).not.toContain("NOT ENOUGH");
  });

  /** A buffered one-channel save of a large image, stopped by `signal` once its progress bar first draws. */
  async function stoppedSave(file: string, signal: "SIGINT" | "SIGTERM"): Promise<{ code: number; stderr: string }> {
    const big = at("stop.raw");
    if (!existsSync(big)) writeImage(big, 256 * MiB, { kind: "dense", seed: 312 });
    const p = spawnRamsnapWith({}, "save", "-o", file, "--block", `ram0=${big}`, "--channels", "1", "--progress");
    const reader = p.stderr.getReader();
    const timeout = setTimeout(() => p.kill("SIGKILL"), 30_000);
    const chunks: Uint8Array[] = [];
    const first = await reader.read();
    expect(first.done).toBe(false); // the bar drew: pages are moving
    chunks.push(first.value!);
    p.kill(signal);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const code = await p.exited;
    clearTimeout(timeout);
    return { code, stderr: new TextDecoder().decode(Buffer.concat(chunks)) };
  }

  test("Ctrl-C of a save over an existing file: exit 130, 'the previous save is intact', and it is", async () => {
    const file = at("kept.ram");
    writeFileSync(file, readFileSync(saved));
    const before = readFileSync(file);
    const r = await stoppedSave(file, "SIGINT");
    expect(r.code).toBe(130);
    expect(r.stderr.trimEnd().split("\n").at(-1)).toBe(`ramsnap save: cancelled; ${file} was not changed (the previous save is intact)`);
    expect(Buffer.compare(readFileSync(file), before)).toBe(0);
  });

  test("SIGTERM of a save exits 143 (SIGINT stays 130); a file that did not exist is not created", async () => {
    const file = at("termed.ram");
    const r = await stoppedSave(file, "SIGTERM");
    expect(r.code).toBe(143);
    expect(r.stderr.trimEnd().split("\n").at(-1)).toBe(`ramsnap save: cancelled; ${file} was not created`);
    expect(existsSync(file)).toBe(false);
  });
});
