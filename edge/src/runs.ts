// What the edge says about a run, and how a caller waits for one. The edge
// reports a terminal state only once Temporal has closed the run: every answer
// comes from Temporal's describe and the run's close event. A completion event
// (Temporal's callback, the worker's webhook) is a trigger to go and read them
// (`settle`), never the outcome itself. What was read is kept in KV (`run:<id>`,
// for the same run id only) and handed to the run's Durable Object, which wakes
// the callers waiting on it.
import type { Settings } from "./config";
import { runPath } from "./problem";
import { TemporalError, TERMINAL, type Execution, type Outcome, type RunStatus, type TemporalClient } from "./temporal";

/** The run resource as `GET /v1/runs/{id}` and waited starts return it. */
export interface RunView {
  workflow_id: string;
  run_id: string | null;
  workflow_type: string;
  status: RunStatus;
  result: unknown;
  error: { message: string } | null;
  links: { self: string };
}

/** How a closed run ended, as read from Temporal; kept under `run:<workflow id>`. */
export interface RunHint {
  workflow_id: string;
  run_id: string;
  workflow_type: string;
  status: RunStatus;
  result: unknown;
  error: { message: string } | null;
  updated_at: string;
}

const HINT_TTL_SECONDS = 7 * 24 * 3600;
/** How long a completion event's `settle` long-polls for the close (a Worker's waitUntil lasts ~30 s). */
const SETTLE_SECONDS = 25;

export const hintKey = (workflowId: string) => `run:${workflowId}`;

export async function readHint(kv: KVNamespace, workflowId: string): Promise<RunHint | null> {
  return kv.get<RunHint>(hintKey(workflowId), "json");
}

async function writeHint(kv: KVNamespace, hint: RunHint): Promise<void> {
  await kv.put(hintKey(hint.workflow_id), JSON.stringify(hint), { expirationTtl: HINT_TTL_SECONDS });
}

export function isTerminal(status: RunStatus): boolean {
  return TERMINAL.has(status);
}

export function runningView(workflowId: string, runId: string | null, workflowType: string, status: RunStatus = "running"): RunView {
  return { workflow_id: workflowId, run_id: runId, workflow_type: workflowType, status, result: null, error: null, links: { self: runPath(workflowId) } };
}

export function outcomeView(workflowId: string, runId: string | null, workflowType: string, o: Outcome): RunView {
  return {
    workflow_id: workflowId,
    run_id: o.runId ?? runId,
    workflow_type: workflowType,
    status: o.status,
    result: o.result ?? null,
    error: o.error ?? null,
    links: { self: runPath(workflowId) },
  };
}

/** What a run ended with, once Temporal has closed it; the caller writes nothing it did not read from Temporal. */
function hintOf(exec: Execution, o: Outcome): RunHint {
  return {
    workflow_id: exec.workflowId,
    run_id: exec.runId,
    workflow_type: exec.workflowType,
    status: o.status,
    result: o.result ?? null,
    error: o.error ?? null,
    updated_at: new Date().toISOString(),
  };
}

/**
 * The outcome of a described run that Temporal reports closed: from the KV hint
 * of that same run, else from its close event (`read`, when the caller has it;
 * then kept in KV). The status is always the describe's.
 */
export async function closedOutcome(
  env: Env,
  exec: Execution,
  temporal: TemporalClient,
  keep: (p: Promise<unknown>) => void,
  read?: Outcome,
): Promise<Outcome> {
  const hint = read ? null : await readHint(env.RUN_STATUS, exec.workflowId);
  if (hint && hint.run_id === exec.runId && hint.status === exec.status) {
    return { status: hint.status, runId: hint.run_id, result: hint.result, error: hint.error };
  }
  const outcome = read ?? (await temporal.closeEvent(exec.workflowId, { wait: false })).outcome;
  const o: Outcome = { result: null, error: null, ...outcome, status: exec.status, runId: exec.runId };
  keep(writeHint(env.RUN_STATUS, hintOf(exec, o)).catch((e) => logWarn("run hint not written", exec.workflowId, e)));
  return o;
}

/** The view of a described run: running as described, or how it ended. */
export async function viewOf(env: Env, exec: Execution, temporal: TemporalClient, keep: (p: Promise<unknown>) => void): Promise<RunView> {
  if (!isTerminal(exec.status)) return runningView(exec.workflowId, exec.runId, exec.workflowType, exec.status);
  return outcomeView(exec.workflowId, exec.runId, exec.workflowType, await closedOutcome(env, exec, temporal, keep));
}

/**
 * Waits up to `seconds` for the run to close, then returns how it ended (null
 * while it is open). With completion callbacks attached to every start, the
 * caller parks on the run's Durable Object until `settle` delivers the outcome
 * read from Temporal, and asks Temporal once more at the deadline (a callback
 * held back, e.g. by Temporal's circuit breaker). Without them the caller
 * long-polls the run's close event itself, which covers every terminal state too.
 */
export async function waitForOutcome(
  env: Env,
  settings: Settings,
  temporal: TemporalClient,
  workflowId: string,
  seconds: number,
  keep: (p: Promise<unknown>) => void,
): Promise<Outcome | null> {
  if (seconds <= 0) return null;
  let read: Outcome | undefined;
  if (settings.callback) {
    const delivered = await waiter(env, workflowId).wait(seconds * 1000);
    if (delivered) return delivered;
  } else {
    read = (await temporal.waitForClose(workflowId, Date.now() + seconds * 1000)) ?? undefined;
    if (!read) return null;
  }
  const exec = await temporal.describe(workflowId);
  return isTerminal(exec.status) ? closedOutcome(env, exec, temporal, keep, read) : null;
}

/**
 * Follows up a completion event for `workflowId`: reads from Temporal how the
 * run ended (waiting briefly for the close when the event may come before it,
 * as the worker's webhook does), keeps that in KV and wakes the callers waiting
 * on the run. A run that does not close, or is not one the edge serves, changes
 * nothing. Runs after the event was answered (waitUntil).
 */
export async function settle(
  env: Env,
  temporal: TemporalClient,
  workflowId: string,
  o: { isServed: (type: string) => boolean; closed: boolean },
): Promise<void> {
  try {
    const stub = waiter(env, workflowId);
    if (await stub.delivered()) return;
    let read: Outcome | undefined;
    let exec: Execution | undefined;
    if (o.closed) {
      // Temporal calls back only once the run has closed: ask for its state and its close event at once
      // (the latter is held by Temporal while the run is open, so it is dropped when the run turns out open).
      const stop = new AbortController();
      const close = temporal.closeEvent(workflowId, { wait: false, signal: stop.signal }).catch(() => null);
      try {
        exec = await temporal.describe(workflowId);
      } finally {
        if (!exec || !isTerminal(exec.status)) stop.abort();
      }
      read = (await close)?.outcome ?? undefined;
    } else {
      read = (await temporal.waitForClose(workflowId, Date.now() + SETTLE_SECONDS * 1000)) ?? undefined;
      if (!read) return;
      exec = await temporal.describe(workflowId);
    }
    if (!isTerminal(exec.status) || !o.isServed(exec.workflowType)) return;
    const writes: Promise<unknown>[] = [];
    const outcome = await closedOutcome(env, exec, temporal, (p) => writes.push(p), read);
    await Promise.all([stub.deliver(outcome), ...writes]);
  } catch (e) {
    if (!(e instanceof TemporalError && e.kind === "not-found")) logWarn("completion event not followed up", workflowId, e);
  }
}

function waiter(env: Env, workflowId: string) {
  return env.RUN_WAITER.get(env.RUN_WAITER.idFromName(workflowId));
}

function logWarn(msg: string, workflowId: string, e: unknown) {
  console.error(JSON.stringify({ level: "warn", msg, workflow_id: workflowId, error: String(e) }));
}
