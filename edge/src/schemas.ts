// Input checking before anything reaches Temporal: the catalog of workflows and
// signals built from the Rust-exported manifest and JSON Schemas, validation
// that reports every offending field by path, and body reading with size and
// nesting-depth caps. Validation uses @cfworker/json-schema, which interprets
// schemas (no `new Function`/eval, so it runs in workerd).
import { Validator, type OutputUnit } from "@cfworker/json-schema";
import { problem, type FieldError } from "./problem";

export interface Manifest {
  version: number;
  workflows: {
    name: string;
    task_queue: string;
    input?: string | null;
    signals?: { name: string; input?: string | null }[];
    queries?: { name: string }[];
  }[];
  activities?: unknown[];
}

export interface SignalDef {
  name: string;
  validator: Validator | null;
  /** The payload has an `approver` field: the edge fills it with the caller's subject. */
  takesApprover: boolean;
}

export interface WorkflowDef {
  name: string;
  taskQueue: string;
  validator: Validator | null;
  signals: Map<string, SignalDef>;
}

/** Workflows the edge may start, with their validators; built once per isolate. */
export class Catalog {
  private constructor(readonly workflows: Map<string, WorkflowDef>) {}

  static fromManifest(manifest: Manifest, files: Record<string, unknown>): Catalog {
    if (manifest.version !== 1) throw new Error(`unsupported schema manifest version ${manifest.version}`);
    const load = (file: string | null | undefined): Validator | null => {
      if (!file) return null;
      const schema = files[file];
      if (!schema || typeof schema !== "object") throw new Error(`schema file ${file} named in the manifest is missing`);
      return new Validator(schema as object, "2020-12", false);
    };
    const workflows = new Map<string, WorkflowDef>();
    for (const wf of manifest.workflows) {
      const signals = new Map<string, SignalDef>();
      for (const s of wf.signals ?? []) {
        const schema = s.input ? (files[s.input] as { properties?: Record<string, unknown> }) : undefined;
        signals.set(s.name, {
          name: s.name,
          validator: load(s.input),
          takesApprover: !!schema?.properties && "approver" in schema.properties,
        });
      }
      workflows.set(wf.name, { name: wf.name, taskQueue: wf.task_queue, validator: load(wf.input), signals });
    }
    return new Catalog(workflows);
  }

  get(name: string): WorkflowDef | undefined {
    return this.workflows.get(name);
  }

  /** Is `signal` declared by any workflow? Lets odd signal names be refused before any Temporal call. */
  declaresSignal(signal: string): boolean {
    for (const wf of this.workflows.values()) if (wf.signals.has(signal)) return true;
    return false;
  }
}

/** Validates `value`; throws a 422 problem listing every offending field. */
export function validateOrThrow(validator: Validator | null, value: unknown): void {
  const errors = validationErrors(validator, value);
  if (errors.length) throw problem("validation-failed", { errors });
}

/** Every offending field of `value` (none when valid or when there is no schema). */
export function validationErrors(validator: Validator | null, value: unknown): FieldError[] {
  if (!validator) return [];
  const result = validator.validate(value);
  return result.valid ? [] : fieldErrors(result.errors);
}

// Keywords whose errors only say "a child failed"; the child's own error says which field and why.
const WRAPPERS = new Set([
  "properties",
  "items",
  "prefixItems",
  "$ref",
  "$dynamicRef",
  "additionalProperties",
  "patternProperties",
  "unevaluatedProperties",
  "unevaluatedItems",
  "allOf",
  "dependentSchemas",
  "then",
  "else",
]);

export function fieldErrors(units: OutputUnit[]): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const u of units) {
    if (WRAPPERS.has(u.keyword)) continue;
    let segments = pointerSegments(u.instanceLocation);
    let detail = u.error;
    if (u.keyword === "required") {
      const m = /"(.*)"/.exec(u.error);
      if (m) segments = [...segments, m[1]];
      detail = "is required";
    } else if (u.keyword === "false") {
      detail = "is not allowed";
    }
    const pointer = segments.map((s) => "/" + s.replace(/~/g, "~0").replace(/\//g, "~1")).join("");
    const key = `${pointer}\n${detail}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push({ path: jsonPath(segments), pointer, detail });
  }
  return out;
}

function pointerSegments(location: string): string[] {
  const p = location.replace(/^#/, "");
  if (!p) return [];
  return p
    .slice(1)
    .split("/")
    .map((s) => {
      let v = s.replace(/~1/g, "/").replace(/~0/g, "~");
      try {
        v = decodeURIComponent(v);
      } catch {
        /* keep as is */
      }
      return v;
    });
}

function jsonPath(segments: string[]): string {
  let p = "$";
  for (const s of segments) {
    if (/^(0|[1-9][0-9]*)$/.test(s)) p += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) p += `.${s}`;
    else p += `[${JSON.stringify(s)}]`;
  }
  return p;
}

export interface BodyLimits {
  maxBytes: number;
  maxDepth: number;
}

/**
 * Reads a JSON body: 415 unless JSON, 413 past `maxBytes` (checked while
 * streaming, not only from Content-Length), 400 when malformed or nested
 * deeper than `maxDepth`. An empty body is `undefined` when `allowEmpty`.
 */
export async function readJson(request: Request, limits: BodyLimits, o: { allowEmpty?: boolean } = {}): Promise<unknown> {
  const bytes = await readBytes(request, limits.maxBytes);
  if (bytes.length === 0 && o.allowEmpty) return undefined;
  const type = (request.headers.get("Content-Type") ?? "").split(";")[0].trim().toLowerCase();
  if (type !== "application/json" && !/^application\/[a-z0-9.+-]*\+json$/.test(type)) {
    throw problem("unsupported-media-type");
  }
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true, ignoreBOM: false }).decode(bytes);
  } catch {
    throw problem("malformed-json", { detail: "The body is not valid UTF-8" });
  }
  const depth = jsonDepth(text);
  if (depth > limits.maxDepth) {
    throw problem("json-too-deep", { detail: `Nesting depth ${depth} exceeds the limit of ${limits.maxDepth}` });
  }
  try {
    return JSON.parse(text);
  } catch {
    throw problem("malformed-json");
  }
}

/** Reads at most `maxBytes` of the body; 413 beyond. */
export async function readBytes(request: Request, maxBytes: number): Promise<Uint8Array> {
  const declared = Number(request.headers.get("Content-Length") ?? "NaN");
  if (Number.isFinite(declared) && declared > maxBytes) throw tooLarge(maxBytes);
  if (!request.body) return new Uint8Array();
  const reader = request.body.getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > maxBytes) {
      await reader.cancel().catch(() => {});
      throw tooLarge(maxBytes);
    }
    chunks.push(value);
  }
  const out = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.byteLength;
  }
  return out;
}

function tooLarge(maxBytes: number) {
  return problem("payload-too-large", { detail: `The body exceeds ${maxBytes} bytes` });
}

/** Maximum nesting of arrays/objects in JSON text, without parsing it (strings are skipped). */
export function jsonDepth(text: string): number {
  let depth = 0;
  let max = 0;
  let inString = false;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (inString) {
      if (c === 92 /* \ */) i++;
      else if (c === 34 /* " */) inString = false;
    } else if (c === 34) inString = true;
    else if (c === 123 || c === 91 /* { [ */) {
      depth++;
      if (depth > max) max = depth;
    } else if (c === 125 || c === 93 /* } ] */) depth--;
  }
  return max;
}

/** SHA-256 of a canonical JSON encoding (object keys sorted), hex. */
export async function canonicalHash(value: unknown): Promise<string> {
  return sha256Hex(canonicalJson(value));
}

export function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.keys(value as object)
      .sort()
      .map((k) => `${JSON.stringify(k)}:${canonicalJson((value as Record<string, unknown>)[k])}`);
    return `{${entries.join(",")}}`;
  }
  return JSON.stringify(value ?? null);
}

export async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
