// Harness: checks a value against docs/json.schema.json, the schema of every command's --json output.
// A small validator for the subset that file uses (type, properties, required, additionalProperties,
// items, enum, minimum, maximum, pattern, $ref), so the schema is checked without a dependency. It returns
// every problem with its JSON path, so a failing test says which key drifted.
import schemaFile from "../docs/json.schema.json" with { type: "json" };

interface Schema {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  additionalProperties?: boolean;
  items?: Schema;
  enum?: unknown[];
  minimum?: number;
  maximum?: number;
  pattern?: string;
}

const defs = (schemaFile as unknown as { $defs: Record<string, Schema> }).$defs;

/** The output kinds docs/json.md describes, one per command plus the error object. */
export type JsonKind = "error" | "save" | "restore" | "inspect" | "verify" | "extract" | "convert" | "diff" | "doctor" | "demo";

function typeOf(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  if (typeof v === "number") return Number.isInteger(v) ? "integer" : "number";
  return typeof v;
}

const KNOWN = new Set(["$ref", "$comment", "type", "properties", "required", "additionalProperties", "items", "enum", "minimum", "maximum", "pattern"]);

function check(v: unknown, s: Schema, at: string, out: string[]): void {
  for (const k of Object.keys(s)) if (!KNOWN.has(k)) throw new Error(`${at}: the schema uses "${k}", which this validator does not know`);
  if (s.$ref) {
    const name = s.$ref.replace(/^#\/\$defs\//, "");
    const target = defs[name];
    if (!target) throw new Error(`${at}: $ref ${s.$ref} names no definition`);
    check(v, target, at, out);
  }
  const t = typeOf(v);
  if (s.type !== undefined) {
    const allowed = Array.isArray(s.type) ? s.type : [s.type];
    // an integer is a number too
    if (!allowed.includes(t) && !(t === "integer" && allowed.includes("number"))) {
      out.push(`${at}: ${JSON.stringify(v)} is ${t}, not ${allowed.join(" or ")}`);
      return;
    }
  }
  if (s.enum && !s.enum.includes(v)) out.push(`${at}: ${JSON.stringify(v)} is not one of ${JSON.stringify(s.enum)}`);
  if (typeof v === "number") {
    if (s.minimum !== undefined && v < s.minimum) out.push(`${at}: ${v} is below ${s.minimum}`);
    if (s.maximum !== undefined && v > s.maximum) out.push(`${at}: ${v} is above ${s.maximum}`);
  }
  if (typeof v === "string" && s.pattern && !new RegExp(s.pattern).test(v)) out.push(`${at}: "${v}" does not match /${s.pattern}/`);
  if (t === "array" && s.items) {
    for (const [i, x] of (v as unknown[]).entries()) check(x, s.items, `${at}[${i}]`, out);
  }
  if (t === "object") {
    const o = v as Record<string, unknown>;
    for (const r of s.required ?? []) if (!(r in o)) out.push(`${at}: missing "${r}"`);
    for (const [k, x] of Object.entries(o)) {
      const p = s.properties?.[k];
      if (p) check(x, p, `${at}.${k}`, out);
      else if (s.additionalProperties === false) out.push(`${at}: "${k}" is not in the schema`);
    }
  }
}

/** Every way `value` departs from the schema of `kind` (empty when it conforms). */
export function schemaProblems(kind: JsonKind, value: unknown): string[] {
  const out: string[] = [];
  check(value, { $ref: `#/$defs/${kind}` }, kind, out);
  return out;
}
