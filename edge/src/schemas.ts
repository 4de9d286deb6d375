// Input checking before anything reaches Temporal: the catalog of workflows,
// signals and updates built from the Rust-exported manifest and JSON Schemas;
// the worker's rules applied in the worker's order (well-formed Unicode, then
// the schema, then the workflow's own rule from rules.ts), every offending field
// reported by path; and body reading with size and nesting-depth caps.
// Validation uses @cfworker/json-schema, which interprets schemas (no
// `new Function`/eval, so it runs in workerd). test/rules.property.test.ts holds
// these verdicts equal to `edgeflow schema check`'s.
import { Validator, type OutputUnit } from "@cfworker/json-schema";
import { manifest } from "./generated/catalog";
import { fieldError, problem, type FieldError, type Segments } from "./problem";
import { RULES, type Rule } from "./rules";

export interface Manifest {
  version: number;
  workflows: {
    name: string;
    task_queue: string;
    /** The input field a run's workflow id is made from (`<name>-<value>`), e.g. `order_id`. */
    workflow_id_from?: string | null;
    input?: string | null;
    signals?: { name: string; input?: string | null }[];
    updates?: { name: string; input?: string | null; result?: string | null }[];
    queries?: { name: string }[];
  }[];
  activities?: unknown[];
  /** Bodies the worker posts: their event types and JSON Schema (the completion event). */
  events?: { name: string; types: string[]; body: string }[];
  /** Application-failure types whose details are a contract (`InvalidInput`). */
  failures?: { type: string; details: string }[];
  /** The search attributes the edge sets on every run it starts: what each holds → its name and type. */
  search_attributes?: Record<string, { name: string; type: string }>;
}

/**
 * The search attributes the edge sets on every run it starts, as the manifest names them
 * (Rust: `edgeflow_workflows::catalog::SEARCH_ATTRIBUTES`).
 */
export const SEARCH_ATTRIBUTES = {
  subject: manifest.search_attributes.subject.name,
  requestId: manifest.search_attributes.request_id.name,
};

/** A signal's or update's payload. */
export interface MessageDef {
  name: string;
  validator: Validator | null;
  /** The payload has an `approver` field: the edge fills it with the caller's subject. */
  takesApprover: boolean;
}

export interface WorkflowDef {
  name: string;
  taskQueue: string;
  /** The input field that names the business object (an order id): the workflow id is
   * `<name>-<value>`, so the same object is one run however often it is sent. */
  idField: string | null;
  validator: Validator | null;
  /** What the input's schema cannot say (rules.ts), if anything. */
  rule: Rule | null;
  signals: Map<string, MessageDef>;
  /** Updates by name: a signal route whose name is also an update is sent as the update. */
  updates: Map<string, MessageDef>;
  /** What `POST /v1/runs/{id}/signals/{name}` sends: the update of that name, else the signal. */
  message(name: string): MessageDef | undefined;
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
    const messages = (list: { name: string; input?: string | null }[] = []) =>
      new Map(
        list.map((m): [string, MessageDef] => {
          const schema = m.input ? (files[m.input] as { properties?: Record<string, unknown> }) : undefined;
          return [m.name, { name: m.name, validator: load(m.input), takesApprover: !!schema?.properties && "approver" in schema.properties }];
        }),
      );
    const workflows = new Map<string, WorkflowDef>();
    for (const wf of manifest.workflows) {
      const signals = messages(wf.signals);
      const updates = messages(wf.updates);
      workflows.set(wf.name, {
        name: wf.name,
        taskQueue: wf.task_queue,
        idField: wf.workflow_id_from ?? null,
        validator: load(wf.input),
        rule: RULES[wf.name] ?? null,
        signals,
        updates,
        message: (name) => updates.get(name) ?? signals.get(name),
      });
    }
    return new Catalog(workflows);
  }

  get(name: string): WorkflowDef | undefined {
    return this.workflows.get(name);
  }

  /** Is `signal` declared (as a signal or an update) by any workflow? Lets odd names be refused before any Temporal call. */
  declaresSignal(signal: string): boolean {
    for (const wf of this.workflows.values()) if (wf.message(signal)) return true;
    return false;
  }
}

/**
 * Every reason the worker would refuse `value`, in the worker's order (see
 * activities/src/untrusted.rs): strings and keys that are not well-formed
 * Unicode; else the schema's errors; else the rule's. Empty when accepted.
 */
export function inputProblems(validator: Validator | null, value: unknown, rule: Rule | null = null): FieldError[] {
  const unicode = malformedStrings(value);
  if (unicode.length) return unicode;
  const schema = validationErrors(validator, value);
  if (schema.length) return schema;
  return rule ? rule(value) : [];
}

/** Checks `value` as `inputProblems` does; throws a 422 problem listing every offending field. */
export function checkOrThrow(validator: Validator | null, value: unknown, rule: Rule | null = null): void {
  const errors = inputProblems(validator, value, rule);
  if (errors.length) throw problem("validation-failed", { errors });
}

/** The schema's errors alone (none when valid or when there is no schema); call after `malformedStrings`. */
function validationErrors(validator: Validator | null, value: unknown): FieldError[] {
  if (!validator) return [];
  const result = validator.validate(value);
  return result.valid ? [] : fieldErrors(result.errors, value);
}

const LONE_SURROGATE = "is not well-formed Unicode (a lone surrogate)";

/**
 * Strings and object keys holding a lone surrogate (`"\ud800"`: valid JSON,
 * but no Rust `String`), each at its path; a bad key is named with U+FFFD in
 * its place, as the worker names it.
 */
export function malformedStrings(value: unknown, segments: Segments = [], out: FieldError[] = []): FieldError[] {
  if (typeof value === "string") {
    if (!value.isWellFormed()) out.push(fieldError(segments, LONE_SURROGATE));
  } else if (Array.isArray(value)) {
    value.forEach((item, i) => malformedStrings(item, [...segments, i], out));
  } else if (value && typeof value === "object") {
    for (const [key, item] of Object.entries(value)) {
      const at = [...segments, key.toWellFormed()];
      if (!key.isWellFormed()) out.push(fieldError(at, `the key ${LONE_SURROGATE}`));
      malformedStrings(item, at, out);
    }
  }
  return out;
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
  "if",
  "then",
  "else",
]);

/** The validator's errors as field errors; `instance` tells array indexes from object keys. */
export function fieldErrors(units: OutputUnit[], instance: unknown): FieldError[] {
  const out: FieldError[] = [];
  const seen = new Set<string>();
  for (const u of units) {
    if (WRAPPERS.has(u.keyword)) continue;
    let segments = typedSegments(instance, pointerSegments(u.instanceLocation));
    let detail = u.error;
    if (u.keyword === "required") {
      const m = /"(.*)"/.exec(u.error);
      if (m) segments = [...segments, m[1]];
      detail = "is required";
    } else if (u.keyword === "false") {
      detail = "is not allowed";
    }
    const error = fieldError(segments, detail);
    const key = `${error.pointer}\n${detail}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(error);
  }
  return out;
}

/** The segments of @cfworker/json-schema's instance location (`#/items/0`: escaped, then URI-encoded). */
function pointerSegments(location: string): string[] {
  const p = location.replace(/^#/, "");
  if (!p) return [];
  return p
    .slice(1)
    .split("/")
    .map((s) => {
      let v = s;
      try {
        v = decodeURIComponent(v);
      } catch {
        /* keep as is */
      }
      return v.replace(/~1/g, "/").replace(/~0/g, "~");
    });
}

/** Segments with array indexes as numbers, found by walking `instance` along them. */
function typedSegments(instance: unknown, segments: string[]): Segments {
  let at: unknown = instance;
  return segments.map((s) => {
    const index = Array.isArray(at);
    at = at && typeof at === "object" ? (at as Record<string, unknown>)[s] : undefined;
    return index ? Number(s) : s;
  });
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
  return parseJson(bytes, limits);
}

/** JSON text as received: 413 past `maxBytes`, 400 unless UTF-8 JSON nested at most `maxDepth` deep. */
export function parseJson(bytes: Uint8Array, limits: BodyLimits): unknown {
  if (bytes.length > limits.maxBytes) throw tooLarge(limits.maxBytes);
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
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw problem("malformed-json");
  }
  // `1e400` is JSON but no number either side holds (JavaScript makes it Infinity; the worker refuses it).
  if (!allFinite(value)) throw problem("malformed-json", { detail: "A number is out of range" });
  return value;
}

function allFinite(value: unknown): boolean {
  if (typeof value === "number") return Number.isFinite(value);
  if (value && typeof value === "object") return Object.values(value).every(allFinite);
  return true;
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
