// A short, deterministic fuzz campaign over inspect, verify and restore (issue 6), on a corpus made here:
// QEMU 10 saves of a small guest (mapped-ram and classic) and files ramsnap wrote, with and without a
// manifest. harness/fuzz/ has the mutators and the per-case checks; `bun scripts/fuzz.ts` runs the
// long campaign. Also here: a few mutated files through the CLI as a process (errors are one line, no
// stack), and the harness's own self-test (a planted TypeError, hang, crash, slow case and stray file must
// each be reported, so a green run means something).
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { existsSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { inspectFile } from "../src/inspect.ts";
import { verify } from "../src/verify.ts";
import { SysError } from "../ffi/libc.ts";
import { ChannelError } from "../src/index.ts";
import { analyzeSeed } from "../harness/fuzz/analysis.ts";
import { runCampaign, type CampaignStats } from "../harness/fuzz/campaign.ts";
import { makeCorpus } from "../harness/fuzz/corpus.ts";
import { mutationFor, seedOf } from "../harness/fuzz/mutation.ts";
import { classify } from "../harness/fuzz/outcomes.ts";
import { formatFailure, formatStats } from "../harness/fuzz/report.ts";
import type { Seed, SeedSpec } from "../harness/fuzz/seed.ts";
import { materializeCase } from "../harness/fuzz/working-copy.ts";
import { requireQemu, stopAllGuests } from "../harness/qemu.ts";
import { scratchDir } from "../harness/scratch.ts";
import { ramsnap } from "../harness/cli.ts";
import { analyzePackSeed, formatPackFailure, makePackCorpus, materializePackCase, runPackCase, type PackSeed, type PackSeedSpec } from "../harness/fuzz/pack.ts";
import { formatPackStats, type PackCampaignStats, runPackCampaign } from "../harness/fuzz/pack-campaign.ts";

const CAMPAIGN = 20261126;
const CASES = 1000; // about 35 s on this 2-vCPU machine; scripts/fuzz.ts runs the long campaigns
const work = scratchDir("ramsnap-fuzz", "/dev/shm");
afterAll(async () => {
  await stopAllGuests();
  work.cleanup();
});



function report(stats: CampaignStats): string {
  return `${formatStats(stats)}\n${stats.failures.map((f) => formatFailure(f, CAMPAIGN)).join("\n")}`;
}

describe.skipIf(!requireQemu())("fuzzing inspect, verify and restore", () => {
  let specs: SeedSpec[] = [];
  let seeds: Seed[] = [];

  beforeAll(async () => {
    specs = await makeCorpus(join(work.path, "corpus"));
    seeds = specs.map((s, k) => analyzeSeed(s, k));
  }, 60_000);

  test("the corpus: QEMU and ramsnap files, mapped-ram and classic, with structure to aim at", () => {
    expect(specs.map((s) => s.name)).toEqual(["qemu-mapped", "qemu-classic", "ramsnap", "ramsnap-sums", "ramsnap-like", "ramsnap-classic"]);
    const kinds = (s: Seed) => new Set(s.fields.map((f) => f.kind));
    for (const s of seeds) {
      expect(inspectFile(s.path).complete).toBe(true);
      for (const k of ["magic", "version", "length", "tag", "eof"]) expect(kinds(s).has(k as never)).toBe(true);
    }
    const mapped = seeds.find((s) => s.name === "qemu-mapped")!;
    for (const k of ["offset", "bitmap", "page", "json", "id", "ram-word"]) expect(kinds(mapped).has(k as never)).toBe(true);
    expect(seeds.find((s) => s.name === "qemu-classic")!.fields.some((f) => f.kind === "ram-word" && f.label.includes("record"))).toBe(true);
    expect(seeds.filter((s) => s.manifest).map((s) => s.name)).toEqual(["ramsnap-sums", "ramsnap-like"]);
    // mutations are reproducible: the same case gives the same steps
    expect(mutationFor(mapped, CAMPAIGN, 77)).toEqual(mutationFor(mapped, CAMPAIGN, 77));
  });

  test(
    `${CASES} cases: no crash, no hang, no write outside the target, every failure a clean error`,
    async () => {
      const stats = await runCampaign({ seeds: specs, workRoot: join(work.path, "campaign"), campaign: CAMPAIGN, cases: CASES, jobs: 2, restoreFraction: 0.1, caseLimitMs: 5000 });
      console.log(formatStats(stats));
      expect(report(stats)).toBe(report({ ...stats, failures: [] }));
      expect(stats.cases).toBe(CASES);
      // the mutations reach both sides: files that still parse and files that do not
      expect(stats.outcomes.inspect.ok).toBeGreaterThan(CASES / 10);
      expect(stats.outcomes.inspect.FormatError).toBeGreaterThan(CASES / 3);
      expect(stats.outcomes.verify.ok).toBeGreaterThan(0);
      expect(stats.restores).toBeGreaterThan(CASES / 20);
      expect(stats.outcomes.restore.ok).toBeGreaterThan(seeds.length / 2);
      expect(stats.outcomes.restore.FormatError).toBeGreaterThan(0);
    },
    110_000,
  );

  test("through the CLI as a process: every failure one line, no stack, the exit status the library implies", async () => {
    const dir = join(work.path, "cli");
    mkdirSync(dir);
    const picked: { i: number; path: string; fails: boolean }[] = [];
    let failing = 0;
    let passing = 0;
    for (let i = seeds.length; i < 400 && (failing < 5 || passing < 2); i++) {
      const { seed, mutationCase } = seedOf(seeds, CAMPAIGN, i);
      const { path } = materializeCase(seed, CAMPAIGN, mutationCase, join(dir, `c${i}`));
      let fails = false;
      try {
        verify({ path });
      } catch (e) {
        expect(classify(e).clean).toBe(true);
        fails = true;
      }
      if (fails ? failing++ < 5 : passing++ < 2) picked.push({ i, path, fails });
    }
    expect(picked.filter((p) => p.fails)).toHaveLength(5);
    for (const { i, path, fails } of picked) {
      for (const command of ["inspect", "verify"]) {
        const r = await ramsnap(command, path);
        const what = `case ${i}, ramsnap ${command}: exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
        if (r.code === 0) {
          expect(fails, what).toBe(false);
          expect(r.stderr, what).toBe("");
          continue;
        }
        // a report, not an error: 1 for a manifest mismatch, 3 for a sound structure with no manifest to check pages against
        if (command === "verify" && !fails) expect([1, 3], what).toContain(r.code);
        else {
          expect(fails, what).toBe(true);
          expect([1, 2], what).toContain(r.code);
          expect(r.stdout, what).toBe("");
          expect(r.stderr.endsWith("\n"), what).toBe(true);
          expect(r.stderr.trimEnd().split("\n"), what).toHaveLength(1);
          expect(r.stderr.startsWith(`ramsnap ${command}: `), what).toBe(true);
          expect(r.stderr, what).not.toContain("    at ");
          expect(r.stderr, what).not.toContain("internal error");
        }
      }
    }
  }, 60_000);

  describe("the harness reports what it must", () => {
    test("classify: an errno a user can act on is a clean failure; one that means an unchecked offset or length reached the kernel is not", () => {
      for (const [errno, code] of [[28, "ENOSPC"], [5, "EIO"], [12, "ENOMEM"]] as const) {
        expect(classify(new SysError("pwrite", errno, "/x", "detail")).clean).toBe(true);
        expect(classify(new ChannelError(`pread /x: ${code}`, code)).clean).toBe(true);
      }
      for (const [errno, code] of [[22, "EINVAL"], [14, "EFAULT"], [9, "EBADF"], [75, "EOVERFLOW"]] as const) {
        expect(classify(new SysError("pread", errno, "/x", "detail"))).toMatchObject({ cls: "SysError", clean: false });
        expect(classify(new ChannelError(`preadv /x: ${code}`, code))).toMatchObject({ cls: "ChannelError", clean: false });
      }
      expect(classify(new ChannelError("TypeError: x is undefined")).clean).toBe(false);
    });

    // One small seed (ramsnap's own save), a dozen cases, the misbehaviour planted in case 7.
    const selfTest = (kind: string, limits: { caseLimitMs?: number; hangMs?: number } = {}) =>
      runCampaign({ seeds: specs.filter((s) => s.name === "ramsnap"), workRoot: join(work.path, `self-${kind}`), campaign: CAMPAIGN, cases: 12, jobs: 1, restoreFraction: 0.2, selfTest: `${kind}@7`, ...limits });

    test("a TypeError, a crash (SIGSEGV), a stray file, a slow case and a hang are each caught in their case, and the campaign goes on", async () => {
      const [typeError, crash, stray, slow, hang] = await Promise.all([
        selfTest("type-error"),
        selfTest("crash"),
        selfTest("stray-file"),
        selfTest("slow", { caseLimitMs: 3000 }),
        selfTest("hang", { caseLimitMs: 3000, hangMs: 6000 }),
      ]);
      const kinds = (s: CampaignStats) => s.failures.map((f) => `${f.case}:${f.kind}${f.op ? `:${f.op}` : ""}`);
      expect(kinds(typeError)).toEqual(["7:unclean-error:inspect"]);
      expect(typeError.failures[0]!.detail).toContain("TypeError");
      expect(kinds(crash)).toEqual(["7:crash"]);
      expect(crash.failures[0]!.detail).toContain("SIGSEGV");
      expect(kinds(stray)).toEqual(["7:wrote-outside"]);
      expect(stray.failures[0]!.detail).toContain("stray appeared");
      expect(kinds(slow)).toEqual(["7:slow"]);
      expect(kinds(hang)).toEqual(["7:hang"]);
      for (const s of [typeError, crash, stray, slow, hang]) expect(s.cases).toBe(12);
      expect(crash.respawns).toBe(1);
      expect(hang.respawns).toBe(1);
    }, 60_000);
  });
});

// Packs (docs/pack-format.md), no QEMU needed: seeds ramsnap saves from synthetic RAM, damage aimed at the
// header, the footer's fields, the index entries, the main stream record and the extents, raw or with the
// hashes forged to match (harness/fuzz/pack.ts has the rule); inspect, verify, restore, extract and convert
// --to mapped-ram run on each. `bun harness/fuzz/pack-campaign.ts` runs the long campaign.
describe("fuzzing packs", () => {
  const PACK_CASES = 200; // about 4 s on this 2-vCPU machine
  let specs: PackSeedSpec[] = [];
  let seeds: PackSeed[] = [];
  beforeAll(async () => {
    specs = await makePackCorpus(join(work.path, "pack-corpus"));
    seeds = specs.map((s, k) => analyzePackSeed(s, k));
  }, 30_000);

  const packReport = (s: PackCampaignStats) => `${formatPackStats(s)}\n${s.failures.map((f) => formatPackFailure(f, CAMPAIGN)).join("\n")}`;

  test(`${PACK_CASES} cases: a clean error or exactly the original RAM, never a crash, a hang, a stray file or wrong bytes`, async () => {
    const stats = await runPackCampaign({ seeds: specs, workRoot: join(work.path, "pack-campaign"), campaign: CAMPAIGN, cases: PACK_CASES, jobs: 2, caseLimitMs: 5000 });
    console.log(formatPackStats(stats));
    expect(packReport(stats)).toBe(packReport({ ...stats, failures: [] }));
    expect(stats.cases).toBe(PACK_CASES);
    // the damage reaches every side: refused on open, refused by a channel, and harmless
    expect(stats.outcomes.inspect.PackError).toBeGreaterThan(PACK_CASES / 3);
    expect(stats.outcomes.inspect.ok).toBeGreaterThan(PACK_CASES / 10);
    expect(stats.outcomes.restore.ok).toBeGreaterThan(PACK_CASES / 20);
    expect((stats.outcomes.restore["ChannelError(pack)"] ?? 0) + (stats.outcomes.restore.PackError ?? 0)).toBeGreaterThan(PACK_CASES / 3);
    expect(stats.outcomes.verify.PackError).toBeGreaterThan(stats.outcomes.inspect.PackError!); // verify also reads every extent
    expect(stats.forged).toBeGreaterThan(PACK_CASES / 5);
  }, 60_000);

  test("the judge catches wrong bytes: a case whose expected RAM was changed fails", async () => {
    const seed = { ...seeds[0]!, ram: seeds[0]!.ram.map((b) => b.slice()) };
    seed.ram[1]![seed.ram[1]!.length - 1]! ^= 1;
    const res = await runPackCase([seed], CAMPAIGN, 0, join(work.path, "pack-judge"));
    expect(res.failures.map((f) => `${f.kind}:${f.op}`)).toEqual(["wrong-bytes:restore", "wrong-bytes:extract"]);
  }, 30_000);

  test("through the CLI: every failure one line, exit 1, no stack; no output left behind", async () => {
    const dir = join(work.path, "pack-cli");
    mkdirSync(dir);
    let failing = 0;
    for (let i = seeds.length; i < 200 && failing < 6; i++) {
      const path = join(dir, `c${i}.rpk`);
      const m = materializePackCase(seeds, CAMPAIGN, i, path);
      const out = join(dir, `c${i}.out`);
      const r = await ramsnap("convert", path, out, "--to", "mapped-ram");
      const what = `case ${i} (${m.steps.join("; ")}): exit ${r.code}, stderr ${JSON.stringify(r.stderr)}`;
      if (r.code === 0) continue;
      failing++;
      expect(r.code, what).toBe(1);
      expect(r.stdout, what).toBe("");
      expect(r.stderr.trimEnd().split("\n"), what).toHaveLength(1);
      expect(r.stderr.startsWith("ramsnap convert: "), what).toBe(true);
      expect(r.stderr, what).not.toContain("    at ");
      expect(r.stderr, what).not.toContain("internal error");
      expect(existsSync(out), what).toBe(false);
      for (const command of ["verify", "restore"]) {
        const args = command === "restore" ? ["restore", path, "--block", `ram0=${join(dir, "t.raw")}`] : ["verify", path];
        const v = await ramsnap(...args);
        if (v.code === 0) continue;
        expect(v.code, what).toBe(1);
        expect(v.stderr.trimEnd().split("\n"), what).toHaveLength(1);
        expect(v.stderr, what).not.toContain("    at ");
        expect(v.stderr, what).toContain(path);
        expect(existsSync(join(dir, "t.raw")), what).toBe(false);
      }
    }
    expect(failing).toBe(6);
  }, 60_000);
});
