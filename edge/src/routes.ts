// The HTTP contract: one table of routes (openapi.yaml describes the same
// table; a test keeps them equal) and one handler per route. Handlers
// authenticate, check the caller's rights and validate input before any call
// to Temporal, and throw problems rather than build error responses.
import { authenticate, can, mightSignal, type Caller } from "./auth";
import type { Settings } from "./config";
import { problem, runPath } from "./problem";
import { hintView, isTerminal, outcomeView, readHint, readMeta, runningView, viewOf, waitForOutcome, writeHint, writeMeta, type RunView } from "./runs";
import { canonicalHash, readBytes, readJson, sha256Hex, validateOrThrow, validationErrors, type Catalog, type WorkflowDef } from "./schemas";
import { TemporalError, type Execution, type FetchFn, type TemporalClient } from "./temporal";
import { MAX_WEBHOOK_BYTES, parseCompletion, verifyWebhook } from "./webhook";

export interface Ctx {
  request: Request;
  env: Env;
  exec: ExecutionContext;
  settings: Settings;
  catalog: Catalog;
  temporal: TemporalClient;
  fetch: FetchFn;
  requestId: string;
  params: Record<string, string>;
  /** Set once the caller is known, for the access log. */
  caller?: Caller;
}

export interface Route {
  method: "GET" | "POST";
  path: string;
  handler: (c: Ctx) => Promise<Response>;
}

export const ROUTES: Route[] = [
  { method: "GET", path: "/healthz", handler: health },
  { method: "POST", path: "/v1/workflows/{name}", handler: startWorkflow },
  { method: "GET", path: "/v1/runs/{id}", handler: getRun },
  { method: "POST", path: "/v1/runs/{id}/signals/{name}", handler: sendSignal },
  { method: "POST", path: "/v1/runs/{id}/cancel", handler: cancelRun },
  { method: "POST", path: "/v1/hooks/temporal", handler: temporalHook },
];

// Names and ids the edge itself creates fit this; anything else cannot exist and never reaches Temporal.
const SAFE_ID = /^[A-Za-z0-9._:-]{1,200}$/;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

async function health(): Promise<Response> {
  return json(200, { status: "ok" });
}

async function identify(c: Ctx): Promise<Caller> {
  c.caller = await authenticate(c.request, c.settings, c.fetch);
  return c.caller;
}

function param(c: Ctx, name: string, what: string): string {
  const v = c.params[name];
  if (!SAFE_ID.test(v)) throw problem("not-found", { detail: `No such ${what}` });
  return v;
}

async function startWorkflow(c: Ctx): Promise<Response> {
  const caller = await identify(c);
  const name = param(c, "name", "workflow");
  const wf = c.catalog.get(name);
  if (!wf) throw problem("not-found", { detail: "No such workflow" });
  if (!can(caller, c.settings, "start", name)) throw problem("forbidden", { detail: `Your roles may not start ${name}` });
  const key = idempotencyKey(c.request.headers);
  const wait = preferredWait(c.request.headers, c.settings.maxWaitSeconds);
  const input = await readJson(c.request, limits(c.settings));
  validateOrThrow(wf.validator, input);

  const { workflowId, runId, replayed } = await startOrReplay(c, caller, wf, input, key);

  const headers: Record<string, string> = { Location: runPath(workflowId) };
  if (replayed) headers["Idempotent-Replayed"] = "true";
  if (replayed && isTerminal(replayed.status)) {
    return json(200, await viewOf(c.temporal, replayed, await readHint(c.env.RUN_STATUS, workflowId)), headers);
  }
  if (wait > 0) {
    headers["Preference-Applied"] = `wait=${wait}`;
    const outcome = await waitForOutcome(c.env, c.settings, c.temporal, workflowId, wait);
    if (outcome) return json(200, outcomeView(workflowId, runId, name, outcome), headers);
  }
  return json(202, runningView(workflowId, runId, name), headers);
}

/**
 * Starts the run, or finds the one this Idempotency-Key already started: then
 * `replayed` is that run (a different input for the same key is a 409).
 */
async function startOrReplay(
  c: Ctx,
  caller: Caller,
  wf: WorkflowDef,
  input: unknown,
  key: string | null,
): Promise<{ workflowId: string; runId: string; replayed: Execution | null }> {
  const name = wf.name;
  const inputHash = await canonicalHash(input);
  const workflowId = key
    ? `${name}-${(await sha256Hex(`${caller.subject}\n${key}`)).slice(0, 32)}`
    : `${name}-${crypto.randomUUID().replaceAll("-", "")}`;
  // Derived from key and input, so a retried start is deduplicated by Temporal itself.
  const requestId = key ? uuidFromHex(await sha256Hex(`${caller.subject}\n${key}\n${inputHash}`)) : crypto.randomUUID();
  try {
    const started = await c.temporal.start({
      workflowId,
      workflowType: name,
      taskQueue: wf.taskQueue,
      input,
      requestId,
      identity: temporalIdentity(caller),
      memo: {
        edge_subject: caller.subject,
        edge_email: caller.email,
        edge_roles: caller.roles,
        edge_request_id: c.requestId,
        edge_input_sha256: inputHash,
      },
      searchAttributes: { EdgeSubject: caller.subject, EdgeRequestId: c.requestId },
      header: traceHeader(c.request.headers),
    });
    // Temporal matched our request id (same key and input) to a run that has already finished.
    if (isTerminal(started.status)) {
      return { workflowId, runId: started.runId, replayed: { workflowId, runId: started.runId, workflowType: name, status: started.status, memo: {} } };
    }
    c.exec.waitUntil(
      writeMeta(c.env.RUN_STATUS, workflowId, { owner: caller.subject, workflow_type: name, run_id: started.runId }).catch((err) =>
        console.error(JSON.stringify({ level: "warn", msg: "run meta not written", workflow_id: workflowId, error: String(err) })),
      ),
    );
    return { workflowId, runId: started.runId, replayed: null };
  } catch (e) {
    if (!(key && e instanceof TemporalError && e.kind === "already-started")) throw e;
    const existing = await c.temporal.describe(workflowId);
    if (existing.memo.edge_input_sha256 !== inputHash) {
      throw problem("already-started", {
        detail: "This Idempotency-Key was already used with a different input",
        headers: { Location: runPath(workflowId) },
        extra: { workflow_id: workflowId, run_id: existing.runId },
      });
    }
    return { workflowId, runId: existing.runId, replayed: existing };
  }
}

async function getRun(c: Ctx): Promise<Response> {
  const caller = await identify(c);
  const id = param(c, "id", "run");
  const wait = preferredWait(c.request.headers, c.settings.maxWaitSeconds);
  const [hint, meta] = await Promise.all([readHint(c.env.RUN_STATUS, id), readMeta(c.env.RUN_STATUS, id)]);
  // A finished run whose owner is known is answered from KV alone.
  if (hint && isTerminal(hint.status) && meta && meta.run_id === hint.run_id && c.catalog.get(hint.workflow_type)) {
    if (meta.owner !== caller.subject && !can(caller, c.settings, "read", hint.workflow_type)) throw problem("forbidden");
    return json(200, hintView(hint));
  }
  const exec = await describeKnown(c, id);
  if (exec.memo.edge_subject !== caller.subject && !can(caller, c.settings, "read", exec.workflowType)) throw problem("forbidden");
  if (!isTerminal(exec.status) && wait > 0) {
    const outcome = await waitForOutcome(c.env, c.settings, c.temporal, id, wait);
    const view: RunView = outcome ? outcomeView(id, exec.runId, exec.workflowType, outcome) : runningView(id, exec.runId, exec.workflowType, exec.status);
    return json(200, view, { "Preference-Applied": `wait=${wait}` });
  }
  return json(200, await viewOf(c.temporal, exec, hint));
}

async function sendSignal(c: Ctx): Promise<Response> {
  const caller = await identify(c);
  const id = param(c, "id", "run");
  const name = param(c, "name", "signal");
  if (!c.catalog.declaresSignal(name)) throw problem("not-found", { detail: "No such signal" });
  if (!mightSignal(caller, c.settings, name, c.catalog.workflows.keys())) throw problem("forbidden", { detail: `Your roles may not send ${name}` });
  const key = idempotencyKey(c.request.headers);
  const body = (await readJson(c.request, limits(c.settings), { allowEmpty: true })) ?? {};
  const withApprover = (takesApprover: boolean) =>
    takesApprover && body && typeof body === "object" && !Array.isArray(body) ? { ...body, approver: caller.subject } : body;
  // Refuse a payload that no workflow declaring this signal would accept before asking Temporal anything.
  const declared = [...c.catalog.workflows.values()].flatMap((wf) => wf.signals.get(name) ?? []);
  const rejections = declared.map((s) => validationErrors(s.validator, withApprover(s.takesApprover)));
  if (rejections.every((errors) => errors.length)) throw problem("validation-failed", { errors: rejections[0] });

  const exec = await describeKnown(c, id);
  const sig = c.catalog.get(exec.workflowType)?.signals.get(name);
  if (!sig) throw problem("not-found", { detail: `${exec.workflowType} has no signal ${name}` });
  if (!can(caller, c.settings, "signal", exec.workflowType, name)) throw problem("forbidden", { detail: `Your roles may not send ${name}` });
  const payload = withApprover(sig.takesApprover);
  validateOrThrow(sig.validator, payload);
  if (isTerminal(exec.status)) throw problem("run-closed");
  await c.temporal.signal(id, name, payload, {
    identity: temporalIdentity(caller),
    requestId: key ? uuidFromHex(await sha256Hex(`${caller.subject}\n${id}\n${name}\n${key}`)) : crypto.randomUUID(),
    header: traceHeader(c.request.headers),
  });
  return json(202, { workflow_id: id, run_id: exec.runId, signal: name, status: "accepted", links: { self: runPath(id) } });
}

async function cancelRun(c: Ctx): Promise<Response> {
  const caller = await identify(c);
  const id = param(c, "id", "run");
  const exec = await describeKnown(c, id);
  if (exec.memo.edge_subject !== caller.subject && !can(caller, c.settings, "cancel", exec.workflowType)) throw problem("forbidden");
  if (isTerminal(exec.status)) throw problem("run-closed");
  await c.temporal.requestCancel(id, {
    identity: temporalIdentity(caller),
    requestId: crypto.randomUUID(),
    reason: `canceled through the edge by ${caller.subject}`.slice(0, 500),
  });
  return json(202, { workflow_id: id, run_id: exec.runId, status: "cancel_requested", links: { self: runPath(id) } });
}

async function temporalHook(c: Ctx): Promise<Response> {
  const body = await readBytes(c.request, MAX_WEBHOOK_BYTES);
  const webhookId = await verifyWebhook(c.request.headers, body, c.settings.webhookKeys);
  const ev = parseCompletion(webhookId, body);
  if (!ev) return json(200, { status: "ignored" });
  const waiter = c.env.RUN_WAITER.get(c.env.RUN_WAITER.idFromName(ev.workflowId));
  if ((await waiter.deliver(webhookId, ev.outcome)) === "duplicate") return json(200, { status: "duplicate" });
  try {
    await writeHint(c.env.RUN_STATUS, {
      workflow_id: ev.workflowId,
      run_id: ev.runId,
      workflow_type: ev.workflowType,
      status: ev.outcome.status,
      result: ev.outcome.result,
      error: ev.outcome.error,
      updated_at: new Date().toISOString(),
    });
  } catch (e) {
    // Let the sender's retry through: it must not be taken for a replay.
    await waiter.forget(webhookId);
    throw e;
  }
  return json(200, { status: "accepted" });
}

/** Describes a run the edge may talk about: one of the manifest's workflows. */
async function describeKnown(c: Ctx, id: string): Promise<Execution> {
  const exec = await c.temporal.describe(id);
  if (!c.catalog.get(exec.workflowType)) throw problem("not-found", { detail: "No such run" });
  return exec;
}

function limits(s: Settings) {
  return { maxBytes: s.maxBodyBytes, maxDepth: s.maxJsonDepth };
}

function temporalIdentity(caller: Caller): string {
  return `edge:${caller.subject}`.slice(0, 200);
}

/** `Idempotency-Key` (a plain token or an RFC 8941 string); 400 when present but unusable. */
export function idempotencyKey(h: Headers): string | null {
  let v = h.get("Idempotency-Key");
  if (v === null) return null;
  v = v.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
  if (!/^[\x20-\x7e]{1,255}$/.test(v) || !v.trim()) {
    throw problem("invalid-request", { detail: "Idempotency-Key must be 1 to 255 visible ASCII characters" });
  }
  return v;
}

/** Seconds asked for by `Prefer: wait=N` (RFC 7240), capped by settings; 0 when absent. */
export function preferredWait(h: Headers, max: number): number {
  const prefer = h.get("Prefer");
  if (!prefer) return 0;
  for (const pref of prefer.split(",")) {
    const m = /^\s*wait\s*=\s*"?(\d{1,6})"?\s*(;.*)?$/i.exec(pref);
    if (m) return Math.min(Number(m[1]), max);
  }
  return 0;
}

/**
 * W3C trace context for the worker, under the `_tracer-data` header key that
 * Temporal's OpenTelemetry interceptors read. Invalid values are dropped.
 */
export function traceHeader(h: Headers): Record<string, unknown> {
  const tp = h.get("traceparent")?.trim().toLowerCase();
  if (!tp) return {};
  const m = /^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$/.exec(tp);
  if (!m || m[1] === "ff" || /^0+$/.test(m[2]) || /^0+$/.test(m[3])) return {};
  const data: Record<string, string> = { traceparent: tp };
  const ts = h.get("tracestate")?.trim();
  if (ts && ts.length <= 512) data.tracestate = ts;
  return { "_tracer-data": data };
}

function uuidFromHex(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

