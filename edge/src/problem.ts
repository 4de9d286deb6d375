// The one place where errors become HTTP responses: every failure the edge can
// answer with is an `application/problem+json` (RFC 9457) body with a stable
// `type`, a human `title` and, where useful, a stable `code` or the offending
// fields. Upstream bodies, stack traces and token-failure details never leak.
import { CodecError } from "./codec";
import { TemporalError } from "./temporal";

/** Stable problem types: slug → status and title. openapi.yaml lists the same slugs. */
export const PROBLEMS = {
  "invalid-request": { status: 400, title: "The request is invalid" },
  "malformed-json": { status: 400, title: "The body is not valid JSON" },
  "json-too-deep": { status: 400, title: "The JSON body is nested too deeply" },
  unauthorized: { status: 401, title: "Authentication required" },
  "webhook-rejected": { status: 401, title: "Webhook signature rejected" },
  forbidden: { status: 403, title: "Not allowed" },
  "not-found": { status: 404, title: "Not found" },
  "method-not-allowed": { status: 405, title: "Method not allowed" },
  "already-started": { status: 409, title: "A run already exists for this Idempotency-Key" },
  "run-closed": { status: 409, title: "The run has already finished" },
  "decision-refused": { status: 409, title: "The run refused the decision" },
  "payload-too-large": { status: 413, title: "The body is too large" },
  "unsupported-media-type": { status: 415, title: "The body must be application/json" },
  "validation-failed": { status: 422, title: "The input does not match the schema" },
  "activity-failed": { status: 422, title: "The edge activity's attempt failed" },
  misconfigured: { status: 500, title: "The service is misconfigured" },
  internal: { status: 500, title: "Internal error" },
  "upstream-unavailable": { status: 502, title: "The workflow service is unavailable" },
  "upstream-busy": { status: 503, title: "The workflow service is busy" },
  "upstream-timeout": { status: 504, title: "The workflow service did not answer in time" },
} as const;

export type ProblemSlug = keyof typeof PROBLEMS;
export const PROBLEM_TYPE_PREFIX = "urn:edgeflow:problem:";

/** One offending field of a validation failure. */
export interface FieldError {
  /** JSONPath of the field, e.g. `$.items[0].quantity`. */
  path: string;
  /** JSON Pointer of the same field, e.g. `/items/0/quantity`. */
  pointer: string;
  detail: string;
}

/** A field's place: object keys (strings) and array indexes (numbers), outermost first. */
export type Segments = (string | number)[];

/** The error for the field at `segments`. */
export function fieldError(segments: Segments, detail: string): FieldError {
  const pointer = segments.map((s) => "/" + String(s).replace(/~/g, "~0").replace(/\//g, "~1")).join("");
  return { path: jsonPath(segments), pointer, detail };
}

/** `$.items[0].quantity`; keys that are not plain identifiers as `["a b"]`, as the worker writes them. */
export function jsonPath(segments: Segments): string {
  let p = "$";
  for (const s of segments) {
    if (typeof s === "number") p += `[${s}]`;
    else if (/^[A-Za-z_][A-Za-z0-9_]*$/.test(s)) p += `.${s}`;
    else p += `[${JSON.stringify(s)}]`;
  }
  return p;
}

/** The path `text` starts with (`$`, then `.key`, `[0]` or `["any key"]` steps) and its length in characters. */
export function pathPrefix(text: string): { segments: Segments; length: number } | null {
  if (!text.startsWith("$")) return null;
  const step = /\.([A-Za-z_][A-Za-z0-9_]*)|\[([0-9]+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  const segments: Segments = [];
  let length = 1;
  step.lastIndex = length;
  for (let m = step.exec(text); m; m = step.exec(text)) {
    segments.push(m[1] ?? (m[2] !== undefined ? Number(m[2]) : (JSON.parse(m[3]) as string)));
    length = step.lastIndex;
  }
  return { segments, length };
}

export interface ProblemOptions {
  detail?: string;
  /** Stable machine-readable reason (e.g. `token_expired`). */
  code?: string;
  errors?: FieldError[];
  headers?: Record<string, string>;
  /** Extra members of the body (e.g. `workflow_id` of an existing run). */
  extra?: Record<string, unknown>;
}

/** Thrown anywhere in a handler; turned into a response by `toResponse`. */
export class HttpProblem extends Error {
  constructor(
    readonly slug: ProblemSlug,
    readonly options: ProblemOptions = {},
  ) {
    super(options.detail ?? PROBLEMS[slug].title);
    this.name = "HttpProblem";
  }
}

export function problem(slug: ProblemSlug, options?: ProblemOptions): HttpProblem {
  return new HttpProblem(slug, options);
}

/** Maps a Temporal client failure to what the caller may learn about it. */
function fromTemporal(err: TemporalError): HttpProblem {
  switch (err.kind) {
    case "not-found":
      return problem("not-found", { detail: "No such run" });
    case "run-closed":
      return problem("run-closed");
    case "already-started":
      return problem("already-started", {
        headers: err.workflowId ? { Location: runPath(err.workflowId) } : undefined,
        extra: err.workflowId ? { workflow_id: err.workflowId, run_id: err.runId ?? null } : undefined,
      });
    case "timeout":
      return problem("upstream-timeout");
    case "busy":
      return problem("upstream-busy", { headers: { "Retry-After": "1" } });
    default:
      return problem("upstream-unavailable");
  }
}

export function runPath(workflowId: string): string {
  return `/v1/runs/${encodeURIComponent(workflowId)}`;
}

/** Turns any thrown value into a problem response; unknown errors are logged, never echoed. */
export function toResponse(err: unknown, ctx: { requestId: string; instance: string }): Response {
  let p: HttpProblem;
  if (err instanceof HttpProblem) p = err;
  else if (err instanceof TemporalError) {
    p = fromTemporal(err);
    if (err.kind !== "not-found" && err.kind !== "run-closed" && err.kind !== "already-started") {
      console.error(JSON.stringify({ level: "error", msg: "temporal call failed", request_id: ctx.requestId, kind: err.kind, status: err.status ?? null, error: err.message }));
    }
  } else if (err instanceof CodecError) {
    // A payload under a key this edge lacks (or altered): the edge's keys are wrong, not the request.
    console.error(JSON.stringify({ level: "error", msg: "payload not decrypted", request_id: ctx.requestId, key_id: err.keyId ?? null, error: err.message }));
    p = problem("misconfigured", { code: "payload_undecryptable", detail: err.keyId ? `A payload encrypted with key id ${err.keyId} could not be decrypted` : undefined });
  } else {
    console.error(JSON.stringify({ level: "error", msg: "unhandled error", request_id: ctx.requestId, error: describeError(err) }));
    p = problem("internal");
  }
  const meta = PROBLEMS[p.slug];
  const body: Record<string, unknown> = {
    type: PROBLEM_TYPE_PREFIX + p.slug,
    title: meta.title,
    status: meta.status,
  };
  if (p.options.detail) body.detail = p.options.detail;
  if (p.options.code) body.code = p.options.code;
  if (p.options.errors) body.errors = p.options.errors;
  Object.assign(body, p.options.extra ?? {});
  body.instance = ctx.instance;
  body.request_id = ctx.requestId;
  const headers = new Headers({ "Content-Type": "application/problem+json", ...p.options.headers });
  return new Response(JSON.stringify(body), { status: meta.status, headers });
}

export function describeError(err: unknown): string {
  if (err instanceof Error) {
    const cause = err.cause ? ` (cause: ${describeError(err.cause)})` : "";
    return `${err.name}: ${err.message}${cause}`;
  }
  return String(err);
}
