// The restore part of a case: restore the damaged file into targets in the scratch folder (some of them
// there already, with other contents), then check what it left: targets of the right sizes when it
// succeeded and nothing it created when it failed, and, for mapped-ram, targets that verify against the file.
import { closeSync, existsSync, openSync, statSync, writeSync } from "node:fs";
import { join } from "node:path";
import { RefusedError } from "../../src/errors.ts";
import type { InspectReport } from "../../src/inspect.ts";
import { restore } from "../../src/restore.ts";
import { verify } from "../../src/verify.ts";
import { MiB, PAGE } from "../units.ts";
import type { Case } from "./case-runner.ts";
import { classify, uncleanDetail } from "./outcomes.ts";

interface Target {
  name: string;
  /** The block's length as the file says, or null when the file does not parse. */
  length: number | null;
  path: string;
  /** Size of the file that was there before the restore, or null when there was none. */
  preexisting: number | null;
}

/** Restores case `c` into `targetDir` and checks the targets. */
export async function restoreCase(c: Case, report: InspectReport | undefined, targetDir: string): Promise<void> {
  const targets = pickTargets(c, report, targetDir);
  const { r, baseline } = c;
  const manifest = existsSync(c.copy.sums);
  const opts = {
    path: c.copy.path,
    blocks: targets.map((t) => ({ name: t.name, path: t.path })),
    channels: baseline ? 2 : r.int(1, 3),
    directIo: !baseline && r.chance(0.4),
    maxGap: r.pick([0, 1, 32, 4096]),
    keepHoles: r.chance(0.2),
    verify: baseline ? manifest : r.chance(manifest ? 0.6 : 0.05),
  };
  let ok = false;
  try {
    await restore(opts);
    ok = true;
    c.res.outcome.restore = "ok";
  } catch (e) {
    const cls = classify(e);
    c.res.outcome.restore = cls.cls;
    if (!cls.clean) c.fail("unclean-error", uncleanDetail(e), "restore");
  }
  for (const t of targets) checkTarget(c, t, ok);
  if (ok && report?.ramFormat === "mapped-ram") checkContent(c, targets);
}

/** Every block (a baseline, or most cases) or one, each to t<k>.raw; a few made to exist beforehand. */
function pickTargets(c: Case, report: InspectReport | undefined, targetDir: string): Target[] {
  const { r, baseline } = c;
  const blocks = report?.blocks.filter((b) => !b.shared) ?? [];
  let chosen: { name: string; length: number | null }[];
  if (!report || blocks.length === 0) chosen = [{ name: c.seed.info.blocks[0]?.name ?? "ram0", length: null }];
  else if (baseline || r.chance(0.6)) chosen = blocks.map((b) => ({ name: b.name, length: b.length }));
  else {
    const b = r.pick(blocks);
    chosen = [{ name: b.name, length: b.length }];
  }
  const targets: Target[] = chosen.map((b, k) => ({ ...b, path: join(targetDir, `t${k}.raw`), preexisting: null }));
  for (const t of targets) {
    c.allowed.add(`target/${t.path.slice(targetDir.length + 1)}`);
    if (!baseline && r.chance(0.1)) {
      t.preexisting = r.pick([0, PAGE, MiB + 3 * PAGE]);
      const fd = openSync(t.path, "w");
      if (t.preexisting) writeSync(fd, new Uint8Array(t.preexisting).fill(0xa5), 0, t.preexisting, 0);
      closeSync(fd);
    }
  }
  return targets;
}

/** A target after the restore: the block's size if it succeeded; if it failed, gone or as it was. */
function checkTarget(c: Case, t: Target, ok: boolean): void {
  const st = statSync(t.path, { throwIfNoEntry: false });
  const fail = (detail: string) => c.fail("target", detail, "restore");
  if (ok) {
    if (!st) fail(`restore succeeded but ${t.path} does not exist`);
    else if (t.length !== null && st.size !== t.length) fail(`${t.path} is ${st.size} bytes; the file's block ${t.name} is ${t.length}`);
  } else if (t.preexisting === null && st) {
    fail(`restore failed (${c.res.outcome.restore}) but left ${t.path} (${st.size} bytes), which it created`);
  } else if (st && t.length !== null && st.size !== t.length && st.size !== t.preexisting) {
    fail(`after a failed restore ${t.path} is ${st.size} bytes: neither its old size ${t.preexisting} nor the block's ${t.length}`);
  } else if (st && t.length === null && st.size !== t.preexisting) {
    fail(`after a failed restore of an unreadable file, ${t.path} is ${st.size} bytes (was ${t.preexisting})`);
  }
}

/** What restore wrote must be what the file holds, page by page. */
function checkContent(c: Case, targets: Target[]): void {
  try {
    const v = verify({ path: c.copy.path, blocks: targets.map((t) => ({ name: t.name, path: t.path })), manifest: undefined });
    for (const b of v.blocks) {
      if (b.image && b.differing) c.fail("restore-mismatch", `${b.name}: ${b.differing} pages differ from the file; first ${JSON.stringify(b.first)}`, "restore");
    }
  } catch (e) {
    if (!(e instanceof RefusedError)) c.fail("restore-mismatch", `verify of the restored targets failed: ${classify(e).message}`, "restore");
  }
}
