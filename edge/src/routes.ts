// The HTTP contract: one table of routes (openapi.yaml describes the same
// table; a test keeps them equal) and one handler per route. Handlers
// authenticate, check the caller's rights and validate input before any call
// to Temporal, and throw problems rather than build error responses.
import { can, mightSignal } from "./auth";
import { CALLBACK_PATH, completionCallback, verifyCallback } from "./callback";
import type { Settings } from "./config";
import { fieldError, pathPrefix, problem, runPath, type FieldError } from "./problem";
import { traceHeader, type Trace } from "./trace";
import { isTerminal, outcomeView, runningView, settle, viewOf, waitForOutcome, type RunView } from "./runs";
import { checkOrThrow, inputProblems, readBytes, readJson, SEARCH_ATTRIBUTES, sha256Hex, type Catalog, type MessageDef, type WorkflowDef } from "./schemas";
import { TemporalError, type Execution, type FetchFn, type TemporalClient, type TemporalFailure, type UpdateOutcome } from "./temporal";
import { codecDecode, codecEncode, codecPreflight } from "./codecserver";
import { INVALID_INPUT } from "./activities/activity";
import { activityRoute } from "./activities/route";
import type { ActivityRegistry } from "./activities";
import { MAX_WEBHOOK_BYTES, parseCompletion, verifyWebhook } from "./webhook";
import { identify, inputDigest, nameCaller, sameInput, startedBy, type NamedCaller } from "./scope";

export interface Ctx {
  request: Request;
  env: Env;
  exec: ExecutionContext;
  settings: Settings;
  catalog: Catalog;
  /** The edge activities POST /v1/activities/{name} runs. */
  activities: ActivityRegistry;
  temporal: TemporalClient;
  fetch: FetchFn;
  requestId: string;
  params: Record<string, string>;
  /** The request's trace: the caller's continued, or one the edge started. */
  trace: Trace;
  /** Set once the caller is known: for the access log, and the gateway token's subject. */
  caller?: NamedCaller;
  /** The run this request started or addressed, for the access log. */
  workflowId?: string;
  /** Set on every answer to this request, problems included (CORS headers). */
  responseHeaders?: Record<string, string>;
}

export interface Route {
  method: "GET" | "POST" | "OPTIONS";
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
  { method: "POST", path: CALLBACK_PATH, handler: temporalCallback },
  { method: "POST", path: "/v1/codec/encode", handler: codecEncode },
  { method: "POST", path: "/v1/codec/decode", handler: codecDecode },
  { method: "OPTIONS", path: "/v1/codec/encode", handler: codecPreflight },
  { method: "OPTIONS", path: "/v1/codec/decode", handler: codecPreflight },
  { method: "POST", path: "/v1/activities/{name}", handler: activityRoute },
];

// Names and ids the edge itself creates fit this; anything else cannot exist and never reaches Temporal.
const SAFE_ID = /^[A-Za-z0-9._:-]{1,200}$/;

function json(status: number, body: unknown, headers: Record<string, string> = {}): Response {
  return new Response(JSON.stringify(body), { status, headers: { "Content-Type": "application/json", ...headers } });
}

async function health(): Promise<Response> {
  return json(200, { status: "ok" });
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
  checkOrThrow(wf.validator, input, wf.rule);

  const { workflowId, runId, replayed } = await startOrReplay(c, caller, wf, input, key);
  c.workflowId = workflowId;

  const headers: Record<string, string> = { Location: runPath(workflowId) };
  if (replayed) headers["Idempotent-Replayed"] = "true";
  if (replayed && isTerminal(replayed.status)) {
    return json(200, await viewOf(c.env, replayed, c.temporal, keep(c)), headers);
  }
  if (wait > 0) {
    headers["Preference-Applied"] = `wait=${wait}`;
    const outcome = await waitForOutcome(c.env, c.settings, c.temporal, workflowId, wait, keep(c));
    if (outcome) return json(200, outcomeView(workflowId, runId, name, outcome), headers);
  }
  return json(202, runningView(workflowId, runId, name), headers);
}

/**
 * Starts the run, or finds the one this Idempotency-Key already started: then
 * `replayed` is that run, open or closed (a different input for the same key
 * is a 409).
 */
async function startOrReplay(
  c: Ctx,
  caller: NamedCaller,
  wf: WorkflowDef,
  input: unknown,
  key: string | null,
): Promise<{ workflowId: string; runId: string; replayed: Execution | null }> {
  const name = wf.name;
  const hashKey = c.settings.callerHashKey;
  // A run about one business object (an order) is named after it (the schema has checked the
  // field is a safe id), so sending the same order again finds the same run; otherwise the
  // Idempotency-Key names it, hashed with the caller's principal (their subject, without
  // CALLER_HASH_KEY, as before the key existed). A natural id is prefixed with the
  // caller's scope: another caller's order with the same id is another run (scope.ts).
  const natural = wf.idField ? (input as Record<string, unknown>)[wf.idField] : undefined;
  const workflowId =
    typeof natural === "string"
      ? `${name}-${caller.scope}-${natural}`
      : key
        ? `${name}-${(await sha256Hex(`${caller.principal}\n${key}`)).slice(0, 32)}`
        : `${name}-${crypto.randomUUID().replaceAll("-", "")}`;
  if (typeof natural === "string" && c.settings.legacyRunIds) {
    const legacy = await legacyRun(c, caller, name, natural);
    if (legacy) return replayOf(c, caller, wf, input, natural, legacy);
  }
  const callback = c.settings.callback;
  try {
    const started = await c.temporal.start({
      workflowId,
      workflowType: name,
      taskQueue: wf.taskQueue,
      input,
      // A new one every time, so a repeat of this key always meets the existing run as a conflict (409,
      // below) and is known to be a replay; Temporal's answer to a repeated request id looks like a first start.
      requestId: crypto.randomUUID(),
      identity: temporalIdentity(caller),
      memo: {
        edge_subject: caller.principal,
        edge_email: caller.email,
        edge_roles: caller.roles,
        edge_request_id: c.requestId,
        ...(await inputDigest(input, hashKey)),
      },
      searchAttributes: { [SEARCH_ATTRIBUTES.subject]: caller.principal, [SEARCH_ATTRIBUTES.requestId]: c.requestId },
      header: traceHeader(c.trace, { edge_request_id: c.requestId, edge_subject: caller.principal }),
      completionCallbacks: callback ? [await completionCallback(callback, c.settings.temporal.namespace, workflowId)] : [],
    });
    return { workflowId, runId: started.runId, replayed: null };
  } catch (e) {
    if (callback && e instanceof TemporalError && e.kind === "rejected" && /callback|url/i.test(e.message)) {
      console.error(JSON.stringify({ level: "error", msg: "Temporal refuses the completion callback: allow CALLBACK_URL's host in the cluster's callback.allowedAddresses, or unset CALLBACK_URL", error: e.message }));
    }
    if (!((key || typeof natural === "string") && e instanceof TemporalError && e.kind === "already-started")) throw e;
    return replayOf(c, caller, wf, input, natural, await c.temporal.describe(workflowId));
  }
}

/** A start that met an existing run: the same run again (a replay), or a 409 saying why not. */
async function replayOf(
  c: Ctx,
  caller: NamedCaller,
  wf: WorkflowDef,
  input: unknown,
  natural: unknown,
  existing: Execution,
): Promise<{ workflowId: string; runId: string; replayed: Execution }> {
  const workflowId = existing.workflowId;
  // Another caller's run (or one started outside the edge) says nothing about itself.
  const visible = startedBy(existing.memo, caller) || can(caller, c.settings, "read", wf.name);
  if (!visible) {
    throw problem("already-started", { detail: `This ${wf.idField ?? "Idempotency-Key"} is already in use` });
  }
  if (!(await sameInput(existing.memo, input, c.settings.callerHashKey))) {
    throw problem("already-started", {
      detail:
        typeof natural === "string"
          ? `${wf.name} ${wf.idField} ${natural} already exists with a different input`
          : "This Idempotency-Key was already used with a different input",
      headers: { Location: runPath(workflowId) },
      extra: { workflow_id: workflowId, run_id: existing.runId },
    });
  }
  return { workflowId, runId: existing.runId, replayed: existing };
}

/**
 * With `LEGACY_RUN_IDS`, for upgrades: the run this caller may have started for this natural id
 * under an older naming (unscoped `order-<id>`, or scoped by the unkeyed hash before
 * `CALLER_HASH_KEY` was set), so that a client retrying across the change meets its run instead
 * of starting a second one. Runs another caller started there are ignored.
 */
async function legacyRun(c: Ctx, caller: NamedCaller, name: string, natural: string): Promise<Execution | null> {
  const ids = [`${name}-${natural}`];
  if (c.settings.callerHashKey) ids.push(`${name}-${(await nameCaller(caller, undefined)).scope}-${natural}`);
  for (const id of ids) {
    try {
      const existing = await c.temporal.describe(id);
      if (startedBy(existing.memo, caller)) return existing;
    } catch (e) {
      if (!(e instanceof TemporalError && e.kind === "not-found")) throw e;
    }
  }
  return null;
}

async function getRun(c: Ctx): Promise<Response> {
  const caller = await identify(c);
  const id = param(c, "id", "run");
  c.workflowId = id;
  const wait = preferredWait(c.request.headers, c.settings.maxWaitSeconds);
  const exec = await describeKnown(c, id);
  if (!startedBy(exec.memo, caller) && !can(caller, c.settings, "read", exec.workflowType)) throw problem("forbidden");
  if (!isTerminal(exec.status) && wait > 0) {
    const outcome = await waitForOutcome(c.env, c.settings, c.temporal, id, wait, keep(c));
    const view: RunView = outcome ? outcomeView(id, exec.runId, exec.workflowType, outcome) : runningView(id, exec.runId, exec.workflowType, exec.status);
    return json(200, view, { "Preference-Applied": `wait=${wait}` });
  }
  return json(200, await viewOf(c.env, exec, c.temporal, keep(c)));
}

/**
 * A signal, or, when the run's workflow declares an update of that name (e.g.
 * `approve`), that update: the caller then hears whether the decision was
 * applied (200), refused (409) or invalid (422).
 */
async function sendSignal(c: Ctx): Promise<Response> {
  const caller = await identify(c);
  const id = param(c, "id", "run");
  c.workflowId = id;
  const name = param(c, "name", "signal");
  if (!c.catalog.declaresSignal(name)) throw problem("not-found", { detail: "No such signal" });
  if (!mightSignal(caller, c.settings, name, c.catalog.workflows.keys())) throw problem("forbidden", { detail: `Your roles may not send ${name}` });
  const key = idempotencyKey(c.request.headers);
  const body = (await readJson(c.request, limits(c.settings), { allowEmpty: true })) ?? {};
  const withApprover = (m: MessageDef) => (m.takesApprover && body && typeof body === "object" && !Array.isArray(body) ? { ...body, approver: caller.subject } : body);
  // Refuse a payload that no workflow declaring this name would accept before asking Temporal anything.
  const declared = [...c.catalog.workflows.values()].flatMap((wf) => wf.message(name) ?? []);
  const rejections = declared.map((m) => inputProblems(m.validator, withApprover(m)));
  if (rejections.every((errors) => errors.length)) throw problem("validation-failed", { errors: rejections[0] });

  const exec = await describeKnown(c, id);
  const wf = c.catalog.get(exec.workflowType)!;
  const update = wf.updates.get(name);
  const message = wf.message(name);
  if (!message) throw problem("not-found", { detail: `${exec.workflowType} has no signal ${name}` });
  if (!can(caller, c.settings, "signal", exec.workflowType, name)) throw problem("forbidden", { detail: `Your roles may not send ${name}` });
  const payload = withApprover(message);
  checkOrThrow(message.validator, payload);
  if (isTerminal(exec.status)) throw problem("run-closed");
  const options = {
    identity: temporalIdentity(caller),
    requestId: key ? uuidFromHex(await sha256Hex(`${caller.principal}\n${id}\n${name}\n${key}`)) : crypto.randomUUID(),
    header: traceHeader(c.trace, { edge_request_id: c.requestId, edge_subject: caller.principal }),
  };
  const links = { self: runPath(id) };
  if (!update) {
    await c.temporal.signal(id, name, payload, options).catch((e) => closedMeanwhile(c, id, e));
    return json(202, { workflow_id: id, run_id: exec.runId, signal: name, status: "accepted", links });
  }
  // Temporal answers an update within ~20 s, with its outcome or only the stage it reached (no worker
  // took it yet): ask again with the same update id, which never makes a second update, until the wait ends.
  const deadline = Date.now() + (preferredWait(c.request.headers, c.settings.maxWaitSeconds) || c.settings.maxWaitSeconds) * 1000;
  let outcome: UpdateOutcome | null = null;
  do {
    try {
      outcome = await c.temporal.update(id, name, payload, { ...options, updateId: options.requestId, timeoutMs: Math.max(1000, deadline - Date.now()) });
    } catch (e) {
      if (!(e instanceof TemporalError && e.kind === "timeout")) await closedMeanwhile(c, id, e);
    }
  } while (!outcome && Date.now() < deadline);
  if (!outcome) return json(202, { workflow_id: id, run_id: exec.runId, signal: name, status: "pending", links });
  if ("success" in outcome) return json(200, { workflow_id: id, run_id: exec.runId, signal: name, status: "applied", result: outcome.success, links });
  throw refusal(outcome.failure);
}

/** The application-failure type of a refused input (Rust: `edgeflow_activities::INVALID_INPUT`). */
export { INVALID_INPUT };

/**
 * The details of an `InvalidInput` failure: Rust's `InvalidInputDetails`, exported to
 * schemas/failures/InvalidInput.details.schema.json; test/contracts.test.ts fails when this
 * type and the schema differ.
 */
export interface InvalidInputDetails {
  errors: { path: string; message: string }[];
}

/**
 * A decision the run refused: 422 naming each field when the workflow found the
 * payload invalid, else 409 with the workflow's reason (already decided, not needed).
 */
export function refusal(failure: TemporalFailure) {
  const errors = invalidInput(failure) ?? legacyInvalidInput(failure.message);
  if (errors) return problem("validation-failed", { errors });
  return problem("decision-refused", { detail: failure.message.slice(0, 500) });
}

/**
 * The fields an `InvalidInput` failure names; null when neither `failure` nor a cause of it
 * is one. A cause counts because the SDK wraps what an update validator returns in an
 * untyped failure of its own, the typed one its cause.
 */
function invalidInput(failure: TemporalFailure): FieldError[] | null {
  let f: TemporalFailure | null = failure;
  while (f && f.type !== INVALID_INPUT) f = f.cause;
  if (!f) return null;
  const details = f.details[0] as Partial<InvalidInputDetails> | undefined;
  const problems = Array.isArray(details?.errors) ? details.errors : [];
  const errors = problems
    .filter((p) => p && typeof p.path === "string" && typeof p.message === "string")
    .map((p) => {
      const at = pathPrefix(p.path);
      return at && at.length === p.path.length ? fieldError(at.segments, p.message) : fieldError([], `${p.path}: ${p.message}`);
    });
  // Typed, but with details this edge cannot read: still the caller's input, said in words.
  return errors.length ? errors : [fieldError([], f.message.slice(0, 500))];
}

const LEGACY_PREFIX = "invalid input: ";

/**
 * The fields named by the refusal's message, `invalid input: $.path: message; …`: how
 * workers before typed refusals said it, with no type or details. An update is validated by
 * the worker build its run is on, so this form comes back while any such build still serves
 * runs (a run pinned to an old Worker Deployment version keeps it until it closes). Remove
 * once no build older than the typed refusal polls the task queue.
 */
function legacyInvalidInput(message: string): FieldError[] | null {
  if (!message.startsWith(LEGACY_PREFIX)) return null;
  return message
    .slice(LEGACY_PREFIX.length)
    .split(/; (?=\$)/)
    .map((part) => {
      const at = pathPrefix(part);
      return at && part.startsWith(": ", at.length) ? fieldError(at.segments, part.slice(at.length + 2)) : fieldError([], part);
    });
}

async function cancelRun(c: Ctx): Promise<Response> {
  const caller = await identify(c);
  const id = param(c, "id", "run");
  c.workflowId = id;
  const exec = await describeKnown(c, id);
  if (!startedBy(exec.memo, caller) && !can(caller, c.settings, "cancel", exec.workflowType)) throw problem("forbidden");
  if (isTerminal(exec.status)) throw problem("run-closed");
  await c.temporal.requestCancel(id, {
    identity: temporalIdentity(caller),
    requestId: crypto.randomUUID(),
    reason: `canceled through the edge by ${caller.principal}`.slice(0, 500),
  });
  return json(202, { workflow_id: id, run_id: exec.runId, status: "cancel_requested", links: { self: runPath(id) } });
}

/** The worker's signed completion event: a trigger to read the run's end from Temporal (runs.ts `settle`). */
async function temporalHook(c: Ctx): Promise<Response> {
  const body = await readBytes(c.request, MAX_WEBHOOK_BYTES);
  const webhookId = await verifyWebhook(c.request.headers, body, c.settings.webhookKeys);
  const ev = parseCompletion(webhookId, body);
  if (!ev) return json(200, { status: "ignored" });
  const waiter = c.env.RUN_WAITER.get(c.env.RUN_WAITER.idFromName(ev.workflowId));
  if ((await waiter.claim(webhookId)) === "duplicate") return json(200, { status: "duplicate" });
  c.exec.waitUntil(settle(c.env, c.temporal, ev.workflowId, { isServed: (type) => !!c.catalog.get(type), closed: false }));
  return json(200, { status: "accepted" });
}

/**
 * Temporal's completion callback (every terminal state, any workflow): checked
 * and answered at once, the run's end then read from Temporal (runs.ts
 * `settle`). Never 5xx (see callback.ts); a callback the edge does not expect is a 4xx,
 * which Temporal does not retry.
 */
async function temporalCallback(c: Ctx): Promise<Response> {
  if (!c.settings.callback) throw problem("not-found", { detail: "Completion callbacks are not configured" });
  const workflowId = await verifyCallback(c.request, c.settings.callback, c.settings.temporal.namespace);
  // The body (the run's result or failure) is not needed: Temporal is asked instead.
  await drain(c.request);
  c.exec.waitUntil(settle(c.env, c.temporal, workflowId, { isServed: (type) => !!c.catalog.get(type), closed: true }));
  return json(200, { status: "accepted" });
}

/** Reads and drops a body (up to 8 MiB), so the sender is not cut off mid-upload. */
async function drain(request: Request): Promise<void> {
  if (!request.body) return;
  const reader = request.body.getReader();
  let total = 0;
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (done) return;
      total += value.byteLength;
      if (total > 8 * 1024 * 1024) {
        await reader.cancel();
        return;
      }
    }
  } catch {
    /* the sender went away: nothing to answer it */
  }
}

/** Lets work outlive the response (KV writes, following up a completion event). */
function keep(c: Ctx): (p: Promise<unknown>) => void {
  return (p) => c.exec.waitUntil(p);
}

/** Describes a run the edge may talk about: one of the manifest's workflows. */
/**
 * Rethrows a failed signal or update. A run described a moment ago that Temporal now calls "not
 * found" has closed in between (an order completes right after its approval), and Temporal words
 * that differently by version and transport: describe it again, and answer run-closed if so.
 */
async function closedMeanwhile(c: Ctx, id: string, e: unknown): Promise<never> {
  if (e instanceof TemporalError && e.kind === "not-found" && isTerminal((await describeKnown(c, id)).status)) {
    throw problem("run-closed");
  }
  throw e;
}

async function describeKnown(c: Ctx, id: string): Promise<Execution> {
  const exec = await c.temporal.describe(id);
  if (!c.catalog.get(exec.workflowType)) throw problem("not-found", { detail: "No such run" });
  return exec;
}

function limits(s: Settings) {
  return { maxBytes: s.maxBodyBytes, maxDepth: s.maxJsonDepth };
}

function temporalIdentity(caller: NamedCaller): string {
  return `edge:${caller.principal}`.slice(0, 200);
}

/** `Idempotency-Key` (a plain token or an RFC 8941 string); 400 when present but unusable. */
export function idempotencyKey(h: Headers): string | null {
  let v = h.get("Idempotency-Key");
  if (v === null) return null;
  v = v.trim();
  if (v.length >= 2 && v.startsWith('"') && v.endsWith('"')) v = v.slice(1, -1);
  if (!/^[\x20-\x7e]{1,255}$/.test(v) || !v.trim()) {
    throw problem("invalid-request", { detail: "Idempotency-Key must be 1 to 255 printable ASCII characters, not all spaces" });
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

function uuidFromHex(hex: string): string {
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20, 32)}`;
}

