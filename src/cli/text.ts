// Small formatting helpers for human-readable output.

export function bytes(n: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(v >= 100 ? 0 : 1)} ${units[u]}`;
}

export const hex = (n: number): string => `0x${n.toString(16)}`;

/** "key  value" lines, keys padded to one width, values as they are. */
export function fields(rows: [string, string][], indent = "  "): string {
  const w = Math.max(...rows.map((r) => r[0].length));
  return rows.map(([k, v]) => `${indent}${k.padEnd(w)}  ${v}`).join("\n");
}

/** Left-aligned columns; numeric-looking cells are right-aligned. */
export function table(rows: string[][], indent = "  "): string {
  const widths: number[] = [];
  for (const r of rows) {
    r.forEach((c, i) => {
      widths[i] = Math.max(widths[i] ?? 0, c.length);
    });
  }
  const numeric = (c: string) => /^[\d.,]+( \w+)?%?$/.test(c) && !/^0x/.test(c);
  return rows
    .map((r) => indent + r.map((c, i) => (numeric(c) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!))).join("  ").trimEnd())
    .join("\n");
}

/** "1 block", "2 blocks": counts in messages agree with their noun. */
export function plural(n: number, word: string, many = `${word}s`): string {
  return `${n} ${n === 1 ? word : many}`;
}

const MULTIPLIERS: Record<string, bigint> = { "": 1n, b: 1n, k: 1n << 10n, m: 1n << 20n, g: 1n << 30n, t: 1n << 40n };

/**
 * Parses a size such as 4096, 0x1000, 4K, 1.5G (binary multiples, like QEMU's offset= and -m). A decimal
 * fraction is scaled exactly (in BigInt, so 1.1K is not rounded to 1126); `{ fraction: true }` means the
 * result is not a whole number of bytes, which a byte offset or size cannot be.
 */
export function parseSize(text: string): number | null | { fraction: true } {
  const t = text.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t, 16);
  const m = /^(\d+)(?:\.(\d+))?([kmgt]i?b?|b)?$/i.exec(t);
  if (!m) return null;
  const frac = m[2] ?? "";
  const scaled = BigInt(m[1]! + frac) * MULTIPLIERS[(m[3] ?? "").charAt(0).toLowerCase()]!;
  const den = 10n ** BigInt(frac.length);
  if (scaled % den !== 0n) return { fraction: true };
  const v = Number(scaled / den);
  return Number.isSafeInteger(v) ? v : null;
}
