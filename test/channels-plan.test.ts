// planRuns: which byte ranges a channel moves for a chunk of pages (short gaps bridged, runs capped).
import { describe, expect, test } from "bun:test";
import { planRuns, type Run } from "../src/channels/plan.ts";
import { rng } from "../src/memory/synthetic.ts";

/** Pages from a string: '#' present, '.' absent. */
const bits = (s: string): Uint8Array => Uint8Array.from(s, (c) => (c === "#" ? 1 : 0));
const plan = (map: Uint8Array, maxGap: number, maxRun = map.length, from = 0, to = map.length): Run[] =>
  planRuns((p) => map[p] === 1, from, to, maxGap, maxRun);
/** Runs as [first, count] pairs. */
const runs = (r: Run[]): [number, number][] => r.map((x) => [x.first, x.count]);

describe("planRuns", () => {
  test("nothing present: no runs", () => {
    expect(plan(bits("........"), 32)).toEqual([]);
    expect(plan(new Uint8Array(0), 32)).toEqual([]);
  });

  test("an empty range: no runs, even with pages present around it", () => {
    const m = bits("########");
    expect(plan(m, 32, 8, 3, 3)).toEqual([]);
  });

  test("all present: one run, or runs of maxRun", () => {
    const m = bits("#".repeat(10));
    expect(runs(plan(m, 32))).toEqual([[0, 10]]);
    expect(runs(plan(m, 0))).toEqual([[0, 10]]);
    expect(runs(plan(m, 32, 4))).toEqual([
      [0, 4],
      [4, 4],
      [8, 2],
    ]);
    expect(runs(plan(m, 32, 1))).toEqual(Array.from({ length: 10 }, (_, i) => [i, 1]));
  });

  test("leading and trailing absent pages are never part of a run", () => {
    expect(runs(plan(bits("...##.#..."), 32))).toEqual([[3, 4]]);
    expect(runs(plan(bits("......#"), 32))).toEqual([[6, 1]]);
    expect(runs(plan(bits("#......"), 32))).toEqual([[0, 1]]);
  });

  test("gaps up to maxGap are bridged, longer ones are not", () => {
    // gaps of 1, 2 and 3 absent pages
    const m = bits("#.#..#...#");
    expect(runs(plan(m, 0))).toEqual([
      [0, 1],
      [2, 1],
      [5, 1],
      [9, 1],
    ]);
    expect(runs(plan(m, 1))).toEqual([
      [0, 3],
      [5, 1],
      [9, 1],
    ]);
    expect(runs(plan(m, 2))).toEqual([
      [0, 6],
      [9, 1],
    ]);
    expect(runs(plan(m, 3))).toEqual([[0, 10]]);
  });

  test("a gap of exactly maxGap (32) is bridged; 33 is not", () => {
    const gap = (n: number) => bits(`#${".".repeat(n)}#`);
    expect(runs(plan(gap(32), 32))).toEqual([[0, 34]]);
    expect(runs(plan(gap(33), 32))).toEqual([
      [0, 1],
      [34, 1],
    ]);
  });

  test("bridging never makes a run longer than maxRun", () => {
    const m = bits("##.##.##");
    expect(runs(plan(m, 1, 4))).toEqual([
      [0, 4],
      [4, 4],
    ]);
    expect(runs(plan(m, 1, 3))).toEqual([
      [0, 2],
      [3, 2],
      [6, 2],
    ]);
    // a run that ends at maxRun exactly, then a bridgeable gap
    expect(runs(plan(bits("####.#"), 32, 4))).toEqual([
      [0, 4],
      [5, 1],
    ]);
  });

  test("the range [from, to) limits the runs", () => {
    const m = bits("##.####.##");
    expect(runs(plan(m, 32, 100, 3, 6))).toEqual([[3, 3]]);
    expect(runs(plan(m, 32, 100, 1, 9))).toEqual([[1, 8]]);
    // the gap before `to` is not bridged into pages outside the range
    expect(runs(plan(bits("#...#"), 32, 100, 0, 4))).toEqual([[0, 1]]);
  });
});

/** The reference: maximal present runs joined across short gaps, greedily, then cut at maxRun. */
function check(map: Uint8Array, from: number, to: number, maxGap: number, maxRun: number, got: Run[]): string | null {
  const present = (p: number) => map[p] === 1;
  const covered = new Uint8Array(map.length);
  let prevEnd = -1;
  for (const r of got) {
    if (!Number.isInteger(r.first) || !Number.isInteger(r.count) || r.count < 1) return `bad run ${JSON.stringify(r)}`;
    const end = r.first + r.count;
    if (r.first < from || end > to) return `run ${JSON.stringify(r)} leaves [${from}, ${to})`;
    if (r.first < prevEnd) return `run ${JSON.stringify(r)} overlaps or is out of order`;
    if (r.count > maxRun) return `run ${JSON.stringify(r)} is longer than maxRun ${maxRun}`;
    if (!present(r.first) || !present(end - 1)) return `run ${JSON.stringify(r)} starts or ends on an absent page`;
    let gap = 0;
    for (let p = r.first; p < end; p++) {
      covered[p] = covered[p]! + 1;
      gap = present(p) ? 0 : gap + 1;
      if (gap > maxGap) return `run ${JSON.stringify(r)} bridges a gap longer than ${maxGap}`;
    }
    prevEnd = end;
  }
  for (let p = 0; p < map.length; p++) {
    const want = p >= from && p < to && present(p) ? 1 : 0;
    if (present(p) && want && covered[p] !== 1) return `present page ${p} covered ${covered[p]} times`;
    if (!want && !(p >= from && p < to) && covered[p]) return `page ${p} outside the range is covered`;
  }
  // Bridging must actually happen: two consecutive runs separated by a short gap would have fitted together
  for (let i = 1; i < got.length; i++) {
    const a = got[i - 1]!;
    const b = got[i]!;
    const gap = b.first - (a.first + a.count);
    if (gap <= maxGap && b.first + b.count - a.first <= maxRun && a.count < maxRun) {
      // only a reason to split: the joined run would exceed maxRun
      return `runs ${JSON.stringify(a)} and ${JSON.stringify(b)} are ${gap} pages apart and fit in one run of at most ${maxRun}`;
    }
  }
  return null;
}

/** A brute-force planner to compare totals with: the greedy plan, computed page by page. */
function reference(map: Uint8Array, from: number, to: number, maxGap: number, maxRun: number): Run[] {
  const out: Run[] = [];
  let cur: Run | null = null;
  let lastPresent = -1;
  for (let p = from; p < to; p++) {
    if (map[p] !== 1) continue;
    if (cur && p - lastPresent - 1 <= maxGap && p - cur.first + 1 <= maxRun) {
      cur.count = p - cur.first + 1;
    } else {
      if (cur) out.push(cur);
      cur = { first: p, count: 1 };
    }
    lastPresent = p;
  }
  if (cur) out.push(cur);
  return out;
}

describe("planRuns against a brute-force reference on random bitmaps", () => {
  test("2000 random cases", () => {
    const r = rng(20260127);
    const rand = (n: number) => r() % n;
    for (let c = 0; c < 2000; c++) {
      const n = 1 + rand(300);
      const density = [0.02, 0.1, 0.3, 0.5, 0.8, 0.97][rand(6)]!;
      const map = Uint8Array.from({ length: n }, () => (r() / 2 ** 32 < density ? 1 : 0));
      const from = rand(3) === 0 ? rand(n) : 0;
      const to = rand(3) === 0 ? from + rand(n - from + 1) : n;
      const maxGap = [0, 1, 2, 5, 32, 1000][rand(6)]!;
      const maxRun = [1, 2, 7, 64, 2048][rand(5)]!;
      const got = planRuns((p) => map[p] === 1, from, to, maxGap, maxRun);
      const why = check(map, from, to, maxGap, maxRun, got);
      const ctx = `case ${c}: n=${n} from=${from} to=${to} maxGap=${maxGap} maxRun=${maxRun} map=${Array.from(map, (v) => (v ? "#" : ".")).join("")}`;
      expect(why === null ? null : `${why} (${ctx})`).toBeNull();
      expect({ ctx, runs: got }).toEqual({ ctx, runs: reference(map, from, to, maxGap, maxRun) });
    }
  });
});
