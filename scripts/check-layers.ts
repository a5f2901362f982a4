// Checks the house's layering from the import lines of src/ and ffi/ (docs/architecture.md draws it):
// - every import goes to the module's own layer or a lower one (never up);
// - no import loop, within a layer or across;
// - only ffi/ talks to bun:ffi, and only src/memory/ maps files into memory (libc.mmap).
// Run by .ci/run; `bun scripts/check-layers.ts --print` also prints the layer of every module.
import { readdirSync, readFileSync } from "node:fs";
import { join, relative, resolve } from "node:path";

const ROOT = resolve(import.meta.dir, "..");

/** Lowest first. A module belongs to the first entry whose prefix matches its path. */
const LAYERS: [string, string[]][] = [
  ["ffi", ["ffi/"]],
  ["errors", ["src/errors.ts"]],
  ["format", ["src/format/"]],
  ["options", ["src/options.ts"]],
  ["io, memory", ["src/io/", "src/memory/"]],
  ["integrity", ["src/integrity/"]],
  ["channels", ["src/channels/"]],
  ["savefile", ["src/savefile/"]],
  ["operations", ["src/save.ts", "src/restore.ts", "src/convert/", "src/extract.ts", "src/verify.ts", "src/inspect.ts", "src/diff.ts", "src/doctor.ts", "src/prefetch.ts"]],
  ["qemu", ["src/qemu/"]],
  ["cli", ["src/cli/"]],
  ["library entry", ["src/index.ts"]],
];

function layerOf(file: string): number {
  const i = LAYERS.findIndex(([, prefixes]) => prefixes.some((p) => file === p || (p.endsWith("/") && file.startsWith(p))));
  if (i < 0) throw new Error(`${file} is in no layer: add it to LAYERS in scripts/check-layers.ts`);
  return i;
}

function sources(dir: string): string[] {
  return readdirSync(join(ROOT, dir), { recursive: true, withFileTypes: true })
    .filter((e) => e.isFile() && e.name.endsWith(".ts"))
    .map((e) => relative(ROOT, join(e.parentPath, e.name)));
}

function importsOf(file: string, text: string): string[] {
  const out: string[] = [];
  for (const m of text.matchAll(/^\s*(?:import|export)\b[^;]*?\bfrom\s+"(\.{1,2}\/[^"]+)"/gms)) out.push(relative(ROOT, resolve(ROOT, file, "..", m[1]!)));
  return out;
}

/** Modules on an import loop, each loop once (Tarjan's strongly connected components). */
function loops(graph: Map<string, string[]>): string[][] {
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const found: string[][] = [];
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    for (const w of graph.get(v) ?? []) {
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (stack.includes(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const comp: string[] = [];
      for (let w = stack.pop()!; ; w = stack.pop()!) {
        comp.push(w);
        if (w === v) break;
      }
      if (comp.length > 1 || (graph.get(v) ?? []).includes(v)) found.push(comp);
    }
  };
  for (const v of graph.keys()) if (!idx.has(v)) visit(v);
  return found;
}

const files = [...sources("ffi"), ...sources("src")];
const graph = new Map<string, string[]>();
const problems: string[] = [];
for (const f of files) {
  const text = readFileSync(join(ROOT, f), "utf8");
  const deps = importsOf(f, text);
  graph.set(f, deps);
  for (const d of deps) {
    if (d.endsWith(".json")) continue;
    if (layerOf(d) > layerOf(f)) problems.push(`${f} (${LAYERS[layerOf(f)]![0]}) imports ${d} (${LAYERS[layerOf(d)]![0]}), a higher layer`);
  }
  if (!f.startsWith("ffi/") && /from\s+"bun:ffi"/.test(text)) problems.push(`${f} imports bun:ffi: only ffi/ calls libc`);
  if (!f.startsWith("src/memory/") && !f.startsWith("ffi/") && /\blibc\.mmap\(/.test(text)) problems.push(`${f} maps memory: only src/memory/ does (see docs/architecture.md)`);
}
for (const l of loops(graph)) problems.push(`import loop among: ${l.join(", ")}`);

if (process.argv.includes("--print")) {
  for (const [i, [name]] of LAYERS.entries()) console.log(`${i} ${name}: ${files.filter((f) => layerOf(f) === i).join(", ")}`);
}
if (problems.length) {
  for (const p of problems) console.error(`check-layers: ${p}`);
  process.exit(1);
}
console.log(`check-layers: ${files.length} modules in ${LAYERS.length} layers, no upward import, no loop`);
