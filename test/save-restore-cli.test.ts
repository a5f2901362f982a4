// The CLI as a user runs it: real processes (`bun src/cli/main.ts ...`), output captured, signals sent.
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, readdirSync, writeFileSync } from "node:fs";
import { countPages, readBytes, requireDirectIo, sameFiles, scratchDir, writeImage } from "../harness/scratch.ts";
import { expectOneLineError, MAIN, ramsnap, withoutProgress } from "../harness/cli.ts";
import { MiB, PAGE } from "../harness/units.ts";

const disk = scratchDir("ramsnap-cli");
const shm = scratchDir("ramsnap-cli", "/dev/shm");
const direct = requireDirectIo(disk.path);
afterAll(() => {
  disk.cleanup();
  shm.cleanup();
});

const env = (): Record<string, string> => {
  const e: Record<string, string> = { ...(process.env as Record<string, string>), NO_COLOR: "1" };
  delete e.RAMSNAP_DEBUG;
  return e;
};

const img = `${shm.path}/img.raw`;
const map = writeImage(img, 12 * MiB, { kind: "scattered", seed: 101, nonZero: 0.3 });
const present = countPages(map);
const pages = map.length;

describe("save and restore", () => {
  test("--json: fields that scripts read", async () => {
    const file = `${disk.path}/json.ram`;
    const directArgs = direct ? ["--direct-io"] : [];
    const s = await ramsnap("save", "-o", file, "--block", `ram0=${img}`, "--channels", "2", ...directArgs, "--json");
    expect(s.stderr).toBe("");
    expect(s.code).toBe(0);
    const sj = JSON.parse(s.stdout);
    expect(sj).toMatchObject({
      file,
      blocks: [{ name: "ram0", length: 12 * MiB, present, zero: pages - present }],
      totalBytes: 12 * MiB,
      pagesPresent: present,
      pagesZero: pages - present,
      channels: 2,
      directIo: direct,
      offset: 0,
    });
    for (const k of ["seconds", "gibPerSecond", "writtenBytes", "ioCalls"]) expect(typeof sj[k]).toBe("number");
    expect(sj.writtenBytes).toBeGreaterThanOrEqual(present * PAGE);

    const i = await ramsnap("inspect", file, "--json");
    expect(i.code).toBe(0);
    expect(JSON.parse(i.stdout)).toMatchObject({ complete: true, ramFormat: "mapped-ram", blocks: [{ name: "ram0", present, absent: pages - present }] });

    const out = `${shm.path}/json.out`;
    const r = await ramsnap("restore", file, "--block", `ram0=${out}`, "--channels", "3", ...directArgs, "--json");
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const rj = JSON.parse(r.stdout);
    expect(rj).toMatchObject({
      file,
      blocks: [{ name: "ram0", length: 12 * MiB, present, absent: pages - present, target: out }],
      skipped: [],
      totalBytes: 12 * MiB,
      channels: 3,
      directIo: direct,
    });
    expect(typeof rj.gibPerSecond).toBe("number");
    expect(await sameFiles(img, out)).toBeNull();
  });

  test("text output names the block, the counts and the speed", async () => {
    const file = `${disk.path}/text.ram`;
    const s = await ramsnap("save", "-o", file, "--block", `ram0=${img}`, "--channels", "1");
    expect(s.code).toBe(0);
    expect(s.stderr).toBe(""); // no progress bar when stderr is not a terminal
    expect(s.stdout).toMatch(/^saved 1 block \(12\.0 MiB\) to .*text\.ram in [\d.]+ s: [\d.]+ GiB\/s, 1 channel, buffered I\/O/);
    expect(s.stdout).toContain("ram0");
    expect(s.stdout).toContain(`${present} present`);
    expect(s.stdout).toContain(`${pages - present} zero`);

    const out = `${shm.path}/text.out`;
    const r = await ramsnap("restore", file, "--block", `ram0=${out}`);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^restored 1 block \(12\.0 MiB\) from .*text\.ram in [\d.]+ s: [\d.]+ GiB\/s, 4 channels/);
    expect(r.stdout).toContain(`-> ${out}`);
    expect(r.stdout).toContain("ram0");
    expect(await sameFiles(img, out)).toBeNull();

    const i = await ramsnap("inspect", file);
    expect(i.code).toBe(0);
    expect(i.stdout).toContain("mapped-ram, complete");
  });
});

describe("errors are one line", () => {
  const file = `${disk.path}/errors.ram`;
  const cut = `${disk.path}/cut.ram`;
  beforeAll(async () => {
    expect((await ramsnap("save", "-o", file, "--block", `ram0=${img}`, "--channels", "1")).code).toBe(0);
    const whole = await readBytes(file);
    writeFileSync(cut, whole.subarray(0, whole.length - 100));
  });

  const cases: [string, () => string[], string, number, RegExp][] = [
    ["save without -o", () => ["save", "--block", `ram0=${img}`], "save", 2, /say where to save: -o FILE \(or --fd N\) \(see 'ramsnap save --help'\)/],
    ["save --channels 0 --direct-io", () => ["save", "-o", `${disk.path}/x.ram`, "--block", `ram0=${img}`, "--channels", "0", "--direct-io"], "save", 2, /--channels must be a whole number from 1 to 64, got 0/],
    ["save --channels 65", () => ["save", "-o", `${disk.path}/x.ram`, "--block", `ram0=${img}`, "--channels", "65"], "save", 2, /--channels must be a whole number from 1 to 64, got 65/],
    ["save --block without =", () => ["save", "-o", `${disk.path}/x.ram`, "--block", "ram0"], "save", 2, /--block ram0: expected NAME=PATH/],
    ["save with an unknown option", () => ["save", "-o", `${disk.path}/x.ram`, "--block", `ram0=${img}`, "--bogus"], "save", 2, /unknown option --bogus/],
    ["save from a missing image", () => ["save", "-o", `${disk.path}/x.ram`, "--block", "ram0=/nonexistent/image"], "save", 1, /open \/nonexistent\/image: ENOENT/],
    ["save --fd that is not open", () => ["save", "--fd", "999", "--block", `ram0=${img}`], "save", 2, /--fd 999 is not an open descriptor \(EBADF\)/],
    ["restore of a truncated file", () => ["restore", cut, "--block", `ram0=${shm.path}/cut.out`], "restore", 1, /cut\.ram: at offset \d+ \(0x[0-9a-f]+\): .*truncated/],
    ["restore of a missing file", () => ["restore", `${disk.path}/missing.ram`, "--block", `ram0=${shm.path}/m.out`], "restore", 1, /open .*missing\.ram: ENOENT/],
    ["restore of a block the file lacks", () => ["restore", file, "--block", `ram1=${shm.path}/n.out`], "restore", 2, /has no RAM block named ram1; it has ram0/],
    ["restore --offset that is not a size", () => ["restore", file, "--block", `ram0=${shm.path}/o.out`, "--offset", "abc"], "restore", 2, /--offset abc is not a size/],
    ["restore without a file", () => ["restore", "--block", `ram0=${shm.path}/o.out`], "restore", 2, /say which file to restore \(or --fd N\)/],
  ];
  for (const [what, args, command, code, pattern] of cases) {
    test(`${what}: exit ${code}`, async () => {
      expectOneLineError(await ramsnap(...args()), command, code, pattern);
    });
  }

  test("a refused restore creates no target", async () => {
    const out = `${shm.path}/refused.out`;
    expectOneLineError(await ramsnap("restore", cut, "--block", `ram0=${out}`), "restore", 1, /truncated/);
    expect(existsSync(out)).toBe(false);
    expect(existsSync(`${disk.path}/x.ram`)).toBe(false); // and no refused save above left a file
  });
});

describe("interrupted saves", () => {
  const big = `${shm.path}/big.raw`;
  beforeAll(() => {
    writeImage(big, 256 * MiB, { kind: "dense", seed: 102 });
  });

  /**
   * Starts a buffered one-channel save of the 256 MiB image with --progress, waits until the progress
   * bar first draws (pages are moving), then sends `signal`. Returns the process's end and stderr.
   */
  async function interruptedSave(file: string, signal: "SIGKILL" | "SIGINT"): Promise<{ code: number; signalCode: string | number | null; stderr: string }> {
    const p = Bun.spawn([process.execPath, MAIN, "save", "-o", file, "--block", `ram0=${big}`, "--channels", "1", "--progress"], {
      stdout: "pipe",
      stderr: "pipe",
      stdin: "ignore",
      env: env(),
    });
    const reader = p.stderr.getReader();
    const chunks: Uint8Array[] = [];
    const timeout = setTimeout(() => p.kill("SIGKILL"), 30_000);
    const first = await reader.read();
    expect(first.done).toBe(false); // the progress bar drew: the save is moving pages
    chunks.push(first.value!);
    p.kill(signal);
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      chunks.push(value);
    }
    const code = await p.exited;
    clearTimeout(timeout);
    return { code, signalCode: p.signalCode, stderr: new TextDecoder().decode(Buffer.concat(chunks)) };
  }

  /** Must not be a complete file: gone, or `ramsnap inspect` fails on it. */
  async function expectNotComplete(file: string): Promise<void> {
    if (!existsSync(file)) return;
    const i = await ramsnap("inspect", file);
    expect(i.stdout).not.toContain("complete");
    expectOneLineError(i, "inspect", 1, /truncated|no EOF|ends/);
  }

  /** The save's temporary files beside the target (left by a kill -9, which nothing can clean up). */
  function temporaries(file: string): string[] {
    const base = file.slice(file.lastIndexOf("/") + 1);
    return readdirSync(disk.path).filter((n) => n.startsWith(`.${base}.ramsnap-`) && n.endsWith(".tmp")).map((n) => `${disk.path}/${n}`);
  }

  test("kill -9 mid-save leaves nothing at the target name; its temporary file is not complete", async () => {
    const file = `${disk.path}/killed.ram`;
    const r = await interruptedSave(file, "SIGKILL");
    expect(r.signalCode).toBe("SIGKILL"); // it was killed, it did not finish first
    expect(existsSync(file)).toBe(false); // pages go to a temporary file, renamed only when complete
    const tmps = temporaries(file);
    expect(tmps).toHaveLength(1);
    await expectNotComplete(tmps[0]!);
  });

  test("kill -9 of a save over an existing complete file leaves that file exactly as it was", async () => {
    const file = `${disk.path}/killed-existing.ram`;
    expect((await ramsnap("save", "-o", file, "--block", `ram0=${img}`, "--channels", "1")).code).toBe(0);
    expect((await ramsnap("inspect", file)).code).toBe(0);
    const before = await Bun.file(file).bytes();
    const r = await interruptedSave(file, "SIGKILL");
    expect(r.signalCode).toBe("SIGKILL");
    expect(Buffer.from(await Bun.file(file).bytes()).equals(Buffer.from(before))).toBe(true);
    for (const t of temporaries(file)) await expectNotComplete(t);
  });

  test("Ctrl-C (SIGINT) mid-save: exit 130, one 'cancelled' line, the file it created is removed", async () => {
    const file = `${disk.path}/interrupted.ram`;
    const r = await interruptedSave(file, "SIGINT");
    expect(r.signalCode).toBeNull();
    expect(r.code).toBe(130);
    // what remains after the progress bar's lines is one line
    const text = withoutProgress(r.stderr);
    expect(text.split("\n").filter(Boolean)).toHaveLength(1);
    expect(text).toBe(`ramsnap save: cancelled; ${file} was not created\n`);
    expect(r.stderr).not.toContain("    at ");
    expect(existsSync(file)).toBe(false);
  });
});
