// Which byte ranges a channel moves for one chunk of pages. Under O_DIRECT every call waits for the disk,
// so the number of calls matters more than the bytes: QEMU writes one call per run of non-zero pages and
// spends most of a scattered save waiting. ramsnap bridges short gaps of absent pages, moving them along
// with their neighbours; the bitmap, not the slot contents, decides what a loader takes, so the file
// stays exactly as valid (bridged slots hold zeros on save; on restore they are read into a scratch buffer,
// never into the target).

export interface Run {
  /** First page, relative to the block. */
  first: number;
  count: number;
}

/**
 * Runs covering every present page in [from, to). Gaps of at most `maxGap` absent pages between present
 * pages are bridged; no run is longer than `maxRun` pages.
 */
export function planRuns(present: (page: number) => boolean, from: number, to: number, maxGap: number, maxRun: number): Run[] {
  const runs: Run[] = [];
  let p = from;
  while (p < to) {
    while (p < to && !present(p)) p++;
    if (p >= to) break;
    const first = p;
    let last = p; // last present page in this run
    p++;
    while (p < to && p - first < maxRun) {
      if (present(p)) {
        last = p;
        p++;
        continue;
      }
      // look ahead across the gap: bridge it only if a present page follows soon enough and fits
      let q = p;
      while (q < to && !present(q) && q - p < maxGap + 1) q++;
      if (q < to && present(q) && q - p <= maxGap && q - first < maxRun) {
        last = q;
        p = q + 1;
      } else break;
    }
    runs.push({ first, count: last - first + 1 });
    p = last + 1;
  }
  return runs;
}
