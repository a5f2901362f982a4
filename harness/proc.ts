// Harness: what /proc says of a process. Benches and tests judge ramsnap's memory by RssAnon, its own
// anonymous memory: maxRSS or VmRSS would also count the guest RAM a restore maps, which is not ramsnap's.
import { readFileSync } from "node:fs";

/** RssAnon of `pid` ("self" for this process) in bytes; 0 once the process is gone. */
export function rssAnon(pid: number | "self"): number {
  try {
    return Number(/RssAnon:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, "utf8"))?.[1] ?? 0) * 1024;
  } catch {
    return 0;
  }
}

/** Samples RssAnon of `pid` every `ms` until `stop()`, which returns the peak in bytes. */
export function samplePeakRss(pid: number, ms = 20): { stop(): number } {
  let peak = rssAnon(pid);
  const timer = setInterval(() => {
    peak = Math.max(peak, rssAnon(pid));
  }, ms);
  return {
    stop: () => {
      clearInterval(timer);
      return peak;
    },
  };
}
