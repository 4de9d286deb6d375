// POST /v1/activities/{name}: one attempt of an edge activity, pushed by the worker (a Worker
// cannot poll a task queue). In this order, and nothing runs until every check has passed:
//   off (no ACTIVITY_KEYS) → 404; the body read (capped); the token and its binding → 401;
//   an undeclared name → 404; the token's jti claimed once → 401 when replayed;
//   the deadline header → 400; the input against the schema → 422 InvalidInput.
// Then the handler runs with the activity bindings only, an AbortSignal (deadline, or the
// worker dropping the request) and a logger on the trace. Its answer: 200 with the output
// (checked against the output schema, else 422 InvalidOutput), or 422 with the failure's type
// and whether Temporal may retry it. Every 422 is non-retryable only when the handler or a
// schema said so.
import { unauthorized } from "../auth";
import { fieldError, problem } from "../problem";
import type { Ctx } from "../routes";
import { inputProblems, parseJson, readBytes } from "../schemas";
import { ActivityError, activityEnv, INVALID_INPUT, INVALID_OUTPUT, type ActivityContext, type ActivityInfo, type ActivityLog } from "./activity";
import type { Registered } from "./index";
import { CLOCK_TOLERANCE_SECONDS, verifyActivityRequest } from "./token";
import { claimTokenId } from "./tokens";

/** Bodies up to 1 MiB (a kv.put value is at most 64 Ki characters; Temporal's own payload cap is 2 MiB). */
export const MAX_ACTIVITY_BODY_BYTES = 1024 * 1024;
/** An attempt's longest run at the edge unless the activity says less; a later deadline is cut to it. */
export const DEFAULT_MAX_ATTEMPT_SECS = 900;
const MAX_MESSAGE_CHARS = 2000;

/** How an attempt failed, as the worker reads it (the 422's `error`). */
export interface ActivityFailure {
  type: string;
  message: string;
  non_retryable: boolean;
}

type Outcome = { ok: true; output: unknown } | { ok: false; error: ActivityFailure; errors?: { path: string; message: string }[] };

export async function activityRoute(c: Ctx): Promise<Response> {
  const keys = c.settings.activities;
  if (!keys) throw problem("not-found", { detail: "Edge activities are off here (ACTIVITY_KEYS is not set)" });
  const body = await readBytes(c.request, MAX_ACTIVITY_BODY_BYTES);
  const claims = await verifyActivityRequest(c.request, body, keys);
  c.workflowId = claims.workflowId;
  const entry = c.activities.get(c.params.name);
  if (!entry) throw problem("not-found", { detail: "No such edge activity" });
  if ((await claimTokenId(c.env, claims.jti, claims.exp, CLOCK_TOLERANCE_SECONDS)) === "replayed") {
    throw unauthorized("token_replayed");
  }
  const deadlineText = c.request.headers.get("Edgeflow-Deadline") ?? "";
  const deadline = Number(deadlineText);
  if (!/^[0-9]{1,16}$/.test(deadlineText) || deadline <= Date.now()) {
    // The edge's clock in the detail: the worker keeps it in the failure, so skew shows there.
    throw problem("invalid-request", { detail: `Edgeflow-Deadline must be a future time in unix epoch milliseconds; the edge's clock reads ${Date.now()}` });
  }
  const info: ActivityInfo = {
    name: entry.activity.name,
    workflowId: claims.workflowId,
    runId: c.request.headers.get("Edgeflow-Run-Id") ?? "",
    activityId: claims.activityId,
    attempt: claims.attempt,
    deadline,
    idempotencyKey: `${claims.workflowId}/${claims.activityId}`,
  };
  const log = activityLog(c, info);
  const outcome = await attempt(entry, body, c, info, log);
  if (outcome.ok) return new Response(JSON.stringify(outcome.output), { status: 200, headers: { "Content-Type": "application/json" } });
  log[outcome.error.non_retryable ? "error" : "warn"]("attempt failed", { error_type: outcome.error.type, non_retryable: outcome.error.non_retryable, error: outcome.error.message });
  throw problem("activity-failed", {
    detail: outcome.error.message,
    extra: { error: outcome.error, ...(outcome.errors ? { errors: outcome.errors } : {}) },
  });
}

/** Parses and checks the input, runs the handler under the attempt's signal, checks the output. */
async function attempt(entry: Registered, body: Uint8Array, c: Ctx, info: ActivityInfo, log: ActivityLog): Promise<Outcome> {
  const name = entry.activity.name;
  let input: unknown;
  try {
    input = parseJson(body, { maxBytes: MAX_ACTIVITY_BODY_BYTES, maxDepth: c.settings.maxJsonDepth });
  } catch (e) {
    const message = e instanceof Error ? e.message : String(e);
    return invalid(INVALID_INPUT, `${name}: the input is not JSON (${message})`, [fieldError([], message)]);
  }
  const inputErrors = inputProblems(entry.input, input);
  if (inputErrors.length) return invalid(INVALID_INPUT, `${name}: the input does not match the schema`, inputErrors);

  const maxMs = (entry.activity.maxAttemptSecs ?? DEFAULT_MAX_ATTEMPT_SECS) * 1000;
  const deadline = AbortSignal.timeout(Math.max(0, Math.min(info.deadline - Date.now(), maxMs)));
  const signal = AbortSignal.any([deadline, c.request.signal]);
  const ctx: ActivityContext = { env: activityEnv(c.env), info, signal, log };
  let output: unknown;
  try {
    // A handler that ignores its signal is not waited for past it: the worker has given up by then.
    output = await new Promise((resolve, reject) => {
      const abort = () => reject(c.request.signal.aborted ? new ActivityError("Cancelled", "the worker dropped the request") : new ActivityError("DeadlineExceeded", "the attempt's deadline passed"));
      if (signal.aborted) return abort();
      signal.addEventListener("abort", abort, { once: true });
      entry.activity.handler(input, ctx).then(resolve, reject).finally(() => signal.removeEventListener("abort", abort));
    });
  } catch (e) {
    return { ok: false, error: failureOf(e) };
  }
  const outputErrors = inputProblems(entry.output, output);
  if (outputErrors.length) return invalid(INVALID_OUTPUT, `${name}: the handler's output does not match the schema`, outputErrors);
  return { ok: true, output };
}

function invalid(type: string, message: string, errors: ReturnType<typeof fieldError>[]): Outcome {
  const listed = errors.map((e) => ({ path: e.path, message: e.detail }));
  const names = listed.map((e) => `${e.path}: ${e.message}`).join("; ");
  return { ok: false, error: { type, message: `${message}: ${names}`.slice(0, MAX_MESSAGE_CHARS), non_retryable: true }, errors: listed };
}

/** What a thrown value tells Temporal: an ActivityError its type and flag; anything else retryable `Error`. */
export function failureOf(e: unknown): ActivityFailure {
  if (e instanceof ActivityError) return { type: e.type, message: e.message.slice(0, MAX_MESSAGE_CHARS), non_retryable: e.nonRetryable };
  const message = e instanceof Error ? e.message : String(e);
  return { type: "Error", message: message.slice(0, MAX_MESSAGE_CHARS), non_retryable: false };
}

/** JSON lines with the trace and the activity's ids, as the edge's other lines are written. */
function activityLog(c: Ctx, info: ActivityInfo): ActivityLog {
  const line = (level: "info" | "warn" | "error") => (msg: string, fields: Record<string, unknown> = {}) => {
    const write = level === "info" ? console.log : level === "warn" ? console.warn : console.error;
    write(
      JSON.stringify({
        level,
        msg,
        ...fields,
        activity: `edge.${info.name}`,
        workflow_id: info.workflowId,
        run_id: info.runId,
        activity_id: info.activityId,
        attempt: info.attempt,
        trace_id: c.trace.traceId,
        span_id: c.trace.spanId,
        request_id: c.requestId,
      }),
    );
  };
  return { info: line("info"), warn: line("warn"), error: line("error") };
}
