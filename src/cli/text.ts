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

/** Parses a size such as 4096, 0x1000, 4K, 1M or 2G (binary multiples, like QEMU's offset=). */
export function parseSize(text: string): number | null {
  const t = text.trim();
  if (/^0x[0-9a-f]+$/i.test(t)) return Number.parseInt(t, 16);
  const m = /^(\d+)([kmgt]i?b?|b)?$/i.exec(t);
  if (!m) return null;
  const mult: Record<string, number> = { "": 1, b: 1, k: 2 ** 10, m: 2 ** 20, g: 2 ** 30, t: 2 ** 40 };
  const v = Number(m[1]) * mult[(m[2] ?? "").charAt(0).toLowerCase()]!;
  return Number.isSafeInteger(v) ? v : null;
}
